"""Export a (fine-tuned) Hugging Face causal LM to ONNX and run it with onnxruntime-genai.

Three things live here:

* :func:`export_onnx` turns a local HF model folder (optionally + a LoRA adapter,
  which is merged first) into an onnxruntime-genai folder: ``model.onnx`` (+ ``.data``),
  ``genai_config.json`` and the tokenizer files. Builds are atomic and cached.
* :class:`GenAIModel` is a small wrapper to chat with, stream from and score with
  such a folder.
* :func:`parity` compares the ONNX model with the PyTorch one it came from.

Heavy libraries (torch, transformers, peft, onnxruntime_genai) are imported inside
the functions that need them, so ``import labkit.onnx.build`` stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
import warnings
import zlib
from pathlib import Path

from labkit.cache import atomic_file
from labkit.models import no_progress_bars, short_model_name
from labkit.onnx.adapter_files import (
    ADAPTER_FORMAT_VERSION,
    BASE_MANIFEST,
    SUFFIX,
    AdapterError,
    adapter_name,
    check_lora_modules,
    check_peft_adapter,
    check_trained_on,
    lora_parameters,
    read_base,
    read_base_manifest,
    read_peft_adapter,
    target_names,
)
from labkit.onnx.serve import INSTALL_HINT, import_og

EXPORT_MANIFEST = "labkit_export.json"
EXPORT_PRECISIONS = ("fp32", "fp16", "int4")
DEVICES = ("cpu", "cuda", "dml", "webgpu")

# For every precision: compute the output layer (49,152 logits per position for SmolLM2) only
# at the last prompt position during prefill, the only one generation and label scoring read:
# the same idea as training's answer-only logits (labkit.train). Measured with
# bench/inference.py (128-token prompt, 2 threads, AVX-512 CPU): int4 time to first token
# 295 -> 244 ms, fp32 339 -> 279 ms. An export made with it returns no logits for earlier
# positions: export with prune_lm_head=False to score every position (perplexity of a text).
PREFILL_OPTIONS = {"prune_lm_head": True}

# Options of the onnxruntime-genai model builder (names as in its builder.py
# ``--extra_options``) used for ``precision="int4"``. The defaults favour accuracy
# over the last few percent of size/speed. Pass ``int4_options={...}`` to change
# one; a value of ``None`` removes the option (the builder's default then applies).
DEFAULT_INT4_OPTIONS = {
    # How the 4-bit values are chosen: "default"/"rtn" = round-to-nearest,
    # "k_quant" = searches the per-block scale/offset that minimises the rounding
    # error (llama.cpp style). Same size and speed of the result. Measured on tone
    # adapters from lesson 01, three each (138 test messages, the options below otherwise):
    # rtn lost at most 0.7 points against PyTorch (-0.7, 0.0, -0.7), k_quant up to 3.6
    # (-0.7, 0.0, -3.6), and rtn builds this model in ~11 s instead of ~60 s. On 138
    # examples one answer is 0.7 points, so this is near noise; rtn is the simpler and
    # faster choice. Adapters differ: on a later tone adapter (PyTorch 81.2%) every option
    # lost 5-7 points (rtn 75.4%, k_quant 75.4%, block_size 16 73.9%, accuracy_level 1
    # 73.9%); only keeping every down_proj in fp32 came close (79.7%, 200 MB instead of 117).
    # Measure your adapter after quantising (lesson 06 does).
    "algo_config": "rtn",
    # Weights are quantised in blocks of this many input values; each block gets its
    # own scale. Smaller = more accurate, slightly bigger. 16/32/64/128/256; 32 is the
    # builder's default and the smallest size with fast kernels. Must be <= hidden_size.
    # bench/int4_options.py (lesson 07's base, seeds 0 and 1, AMX CPU): 16 added 3.6 tone
    # points on both adapters, but recipes' share of gain kept went 0.84 -> 0.96 on one and
    # 0.92 -> 0.88 on the other, for +19 MB, ~15% slower decoding and ~15% more TTFT.
    "block_size": 32,
    # false: each block also gets a zero-point (uint4, asymmetric range), which fits
    # skewed weight blocks better than the symmetric int4 default. (In onnxruntime-genai
    # 0.18 "rtn" and "k_quant" are always asymmetric; this flag matters for "default".)
    "is_symmetric": False,
    # Precision of the *activations* inside the int4/int8 MatMuls: 1 = fp32, 4 = int8
    # (the builder's CPU default). On this course's 2-core AVX2 CPU, fp32 activations
    # with the 8-bit layers below fell back to a slow kernel: 2.4 tokens/s decoding
    # against 47 with int8 activations, at the same task accuracy within a point.
    # Use {"accuracy_level": 1} only where your hardware has fast fp32 kernels.
    "accuracy_level": 4,
    # Which MatMuls get 8 bits instead of 4. "last_matmul": the LM head (and the
    # embedding table too when the model ties them), the most sensitive matrix.
    # "mixed_layers": llama.cpp's Q4_K_M-style choice of sensitive weights, qkv_proj and
    # down_proj in the first and last eighth of the layers and every third layer between.
    # Measured on lesson 06 (the tone LoRA merged into SmolLM2-135M, 138 test examples,
    # k_quant, accuracy_level 4): PyTorch 82.6%; all 4-bit 76.1% (92 MB);
    # "last_matmul:int8" 76.8% (107 MB); with mixed_layers 81.9% (117 MB). A merged LoRA
    # update is a few percent of a weight's size while int4 rounding error is larger than the update,
    # so the update survives only on average; more 8-bit layers keep more of it (lesson 06
    # shows this).
    "matmul_mixed_precision": "last_matmul:int8,mixed_layers:int8",
    # labkit's own option: MatMuls in 8 bits by node name, over the presets above ("layers.*" = every
    # layer; labkit hands them to the builder as target_options.quant_config overrides, its only way
    # to name single MatMuls). Here q, k, v (packed as qkv_proj) and down_proj of *every* layer,
    # not only the "mixed" ones. bench/int4_options.py, lesson 07's int4 base, lessons 01/02's
    # adapters of seeds 0 and 1 (AVX-512 EPYC), share of the fine-tune's gain kept, tone / recipes:
    # presets only (the default before) 1.02, 0.94 / 0.85, 0.90 at 118 MB; with these 8-bit
    # nodes 0.96, 0.94 / 0.99, 1.00 at 129 MB, and no slower; every MatMul 8-bit 1.02, 1.00 /
    # 0.98, 1.00 at 162 MB. The node names are the builder's for every family it exports
    # (tests/test_export.py builds each); set this to None for the presets alone.
    "int8_nodes": "/model/layers.*/attn/qkv_proj/MatMul,/model/layers.*/mlp/down_proj/MatMul",
    # Other useful builder options: "nodes_to_exclude" (comma-separated node names to
    # keep in full precision, e.g. "/lm_head/MatMul"), "op_types_to_quantize"
    # ("MatMul" or "MatMul/Gather" to also quantise the embedding table),
    # "shared_embeddings" (true/false: one matrix for embeddings + LM head when the
    # model ties them; the builder's default follows config.tie_word_embeddings).
    # {"algo_config": "k_quant"} needs several float32 copies of the largest matrix while
    # building (the LM head of a big-vocabulary model): watch memory on large models.
}


# --------------------------------------------------------------------------- helpers


def folder_size_mb(path) -> float:
    """Total size of all files under ``path`` (or of the file ``path``) in MB (1e6 bytes)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


@contextlib.contextmanager
def _keep_root_logger():
    """Undo changes to the root logger: onnxruntime's int4 quantizer calls
    ``logging.basicConfig(level=INFO)`` when imported, which would make every library
    in the notebook print its INFO messages from then on."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def import_builder():
    """Import the onnxruntime-genai model builder (needs onnx-ir and onnxscript too)."""
    import_og()
    try:
        with _keep_root_logger():
            from onnxruntime_genai.models import builder
    except ImportError as e:
        raise ImportError(f"The onnxruntime-genai model builder could not be imported ({e}): {INSTALL_HINT}") from e
    return builder


def check_model_dir(model_dir) -> Path:
    """Return ``model_dir`` as a Path, or raise a clear error if it is not an HF model folder."""
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"Model folder not found: {path}. Pass a local Hugging Face model folder "
            "(config.json + *.safetensors + tokenizer files), e.g. one saved with save_pretrained()."
        )
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise ValueError(
            f"{path} is not a Hugging Face model folder: it needs config.json and *.safetensors. "
            "If it holds a LoRA adapter (adapter_config.json), pass it as adapter_dir= and the base model as model_dir=."
        )
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise ValueError(f"{path} has no tokenizer files: save the tokenizer there too (tokenizer.save_pretrained(path)).")
    return path


def folder_fingerprint(folder: Path | None) -> dict | None:
    """Cheap identity of a folder: relative path -> [size, mtime_ns] of every file.

    Re-saving a model or adapter changes the mtimes, which triggers a rebuild.
    """
    if folder is None:
        return None
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not any(
        part.startswith(".") for part in f.relative_to(folder).parts))
    return {str(f.relative_to(folder)): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def read_export_manifest(folder: Path) -> dict | None:
    """An export folder's ``labkit_export.json`` (what it was built from), or None."""
    try:
        return json.loads((folder / EXPORT_MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def default_export_dir(model_dir, adapter_dir=None, precision="int4") -> Path:
    """``<labkit home>/onnx/<model>[-<adapter>]-<precision>``, e.g. ``~/.cache/labkit/onnx/SmolLM2-135M-Instruct-int4``.

    The adapter part is :func:`labkit.onnx.adapter_files.adapter_name`: the run's name for
    ``<run>/adapter`` (naming the export after the run keeps two adapters from overwriting
    each other's export).
    """
    from labkit.cache import labkit_home

    name = Path(model_dir).name + (f"-{adapter_name(adapter_dir)}" if adapter_dir else "")
    return labkit_home() / "onnx" / f"{name}-{precision}"


def trained_against(adapter_dir) -> str:
    """The weights an adapter learned against: ``"nf4"`` for a QLoRA adapter (its run record, written
    by :func:`labkit.train.finetune`, says ``method: qlora``), else ``"fp32"``."""
    run = Path(adapter_dir) / "labkit_run.json"
    try:
        method = json.loads(run.read_text()).get("config", {}).get("method") if run.is_file() else None
    except (ValueError, AttributeError):
        method = None
    return "nf4" if method == "qlora" else "fp32"


def merge_base(model_dir, adapter_dir):
    """The fp32 base an adapter is merged into: the base's own weights, or for a QLoRA adapter the
    dequantised NF4 weights it learned against (the NF4 rounding is part of what it corrected for;
    merged into the unrounded weights it would add its correction to weights it never saw)."""
    import torch
    from transformers import AutoModelForCausalLM

    from labkit.models import quantization_config

    if trained_against(adapter_dir) != "nf4":
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    quantized = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, device_map={"": "cpu"},
        quantization_config=quantization_config("nf4", compute_dtype=torch.float32))
    return quantized.dequantize(dtype=torch.float32)


def merge_adapter(model_dir, adapter_dir, out_dir) -> Path:
    """Apply the LoRA adapter to its base (:func:`merge_base`: fp32, or the dequantised NF4 weights
    of a QLoRA adapter), merge it and save the result to ``out_dir``.

    The tokenizer is taken from the adapter folder when it has one (fine-tuning scripts
    often save it there, e.g. with a changed chat template), else from ``model_dir``.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    with no_progress_bars():   # "Loading weights" / "Writing model shards": left at 0% in a saved notebook
        merged = PeftModel.from_pretrained(merge_base(model_dir, adapter_dir), adapter_dir).merge_and_unload()
        merged.save_pretrained(out_dir)
    tok_dir = adapter_dir if (Path(adapter_dir) / "tokenizer_config.json").is_file() else model_dir
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(out_dir)
    return Path(out_dir)


@contextlib.contextmanager
def _output_to(log_path: Path):
    """Send everything printed while the block runs to ``log_path``: Python's ``print`` and
    ``logging`` (through sys.stdout/sys.stderr) and the C++ libraries' output (file
    descriptors 1 and 2, which Jupyter would otherwise show too)."""
    import sys

    with open(log_path, "w") as log:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(log.fileno(), fd)
        except OSError:  # no real file descriptors (an unusual host): Python-level capture only
            pass
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            log.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def _log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def option_names(value) -> list[str]:
    """A builder option's comma-separated list (``"a,b"``; None or "" for none) as a list."""
    return [n for n in str(value or "").split(",") if n]


def named_int8_overrides(options: dict, config: dict) -> tuple[dict, dict | None]:
    """Turn labkit's ``int8_nodes`` option (comma-separated MatMul node names to keep in 8 bits;
    ``layers.*`` stands for every layer, e.g. ``/model/layers.*/mlp/down_proj/MatMul``) into the
    builder's structured ``target_options``: its flat options can put only whole presets
    ("last_matmul", "mixed_layers") in 8 bits, never one MatMul by name. ``config``: the
    model's config.json.

    The structured overrides list replaces the one the flat options imply, so it is written
    whole, first match winning: ``nodes_to_exclude`` (kept in float), then the named 8-bit
    MatMuls, then the ``matmul_mixed_precision`` presets. A model that ties its embeddings to
    its output layer keeps one quantised matrix for both, as the flat options give it: the
    structured path needs ``Gather`` named among the quantised op types.
    Returns the flat options left and ``target_options`` (None when no node is named: the flat
    options then go as they are).
    """
    options = dict(options)
    layers = [str(i) for i in range(int(config.get("num_hidden_layers", 0)))]
    names = [n.replace("layers.*", f"layers.{i}") for n in option_names(options.pop("int8_nodes", None))
             for i in (layers if "layers.*" in n else [None])]
    names = list(dict.fromkeys(names))
    if not names:
        return options, None
    excluded = option_names(options.pop("nodes_to_exclude", None))
    presets = [p.split(":") for p in option_names(options.pop("matmul_mixed_precision", None))]
    overrides = ([{"match": {"name": n}, "exclude": True} for n in excluded]
                 + [{"match": {"name": n}, "type": "int8"} for n in names if n not in excluded]
                 + [{"match": {"preset": selector}, "type": bits} for selector, bits in presets])
    weights = {"overrides": overrides}
    if config.get("tie_word_embeddings") and str(options.get("shared_embeddings", True)).lower() != "false":
        weights["op_types"] = ["MatMul", "Gather"]
    return options, {"quant_config": {"weights": weights}}


def run_builder(input_dir: Path, output_dir: Path, precision: str, device: str, cache_dir: Path, options: dict):
    """Run the onnxruntime-genai model builder in this process (its Python API).

    ``parse_extra_options`` validates the ``KEY=VALUE`` options and reads the HF config;
    ``create_model`` writes model.onnx(.data), genai_config.json and the tokenizer files.
    The builder prints hundreds of progress lines; they go to ``builder.log`` next to
    ``output_dir`` (the tail is shown if the build fails).
    """
    builder = import_builder()
    config = json.loads((Path(input_dir) / "config.json").read_text())
    options, target_options = named_int8_overrides(options, config)
    kv = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()]
    args = (None, str(input_dir), str(output_dir), precision, device, str(cache_dir))
    log_path = Path(output_dir).parent / "builder.log"
    try:
        with _output_to(log_path), _keep_root_logger(), warnings.catch_warnings(), no_progress_bars():
            # k_quant divides by zero for constant blocks and then ignores the result: harmless
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            extra = builder.parse_extra_options(*args, kv, target_options=target_options)
            builder.create_model(*args, **extra)
    except Exception as e:
        raise RuntimeError(f"The onnxruntime-genai builder failed ({type(e).__name__}: {e}). "
                           f"The end of its output:\n{_log_tail(log_path)}") from e


# --------------------------------------------------------------------------- export


def refuse_another_export(out: Path, old: dict, new: dict) -> None:
    """``FileExistsError`` if the export recorded in ``out`` (``old``) is of another model,
    adapter or precision than ``new``: rebuilding there would replace it. The same inputs
    with newer files (an adapter trained again) are the same export, rebuilt."""
    keys = ("model_dir", "adapter_dir", "precision")
    if any(old.get(k) != new.get(k) for k in keys):
        held = ", ".join(f"{k} {old.get(k)}" for k in keys if old.get(k) is not None)
        raise FileExistsError(f"{out} holds another export ({held}); building here would replace it. Pick "
                              "another output folder, or replace it on purpose (--overwrite / overwrite=True).")


def check_target(precision: str, device: str, precisions=EXPORT_PRECISIONS) -> None:
    """A precision among ``precisions`` and a device among ``DEVICES`` that can run it (fp16
    has no CPU kernels), else a ValueError that says what to pass."""
    if precision not in precisions:
        raise ValueError(f"precision must be one of {precisions}, got {precision!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if precision == "fp16" and device == "cpu":
        raise ValueError("fp16 ONNX models do not run on the CPU execution provider: use 'fp32' or 'int4' on CPU.")


def builder_options(model_dir: Path, precision: str, int4_options=None, prune_lm_head: bool = True) -> dict:
    """The model builder's options for ``precision``: ``PREFILL_OPTIONS`` (unless
    ``prune_lm_head`` is False), and for int4 ``DEFAULT_INT4_OPTIONS`` updated by
    ``int4_options`` (a None value removes an option), with the block size checked against the
    model's hidden size. ``int4_options`` for another precision are ignored, with a warning."""
    options = dict(PREFILL_OPTIONS) if prune_lm_head else {}
    if precision != "int4":
        if int4_options:
            warnings.warn(f"int4_options are ignored for precision={precision!r}")
        return options
    options.update({k: v for k, v in {**DEFAULT_INT4_OPTIONS, **(int4_options or {})}.items() if v is not None})
    hidden = json.loads((Path(model_dir) / "config.json").read_text()).get("hidden_size")
    if hidden and int(options.get("block_size", 32)) > hidden:
        raise ValueError(f"int4 block_size {options['block_size']} > hidden_size {hidden}: use a smaller block_size.")
    return options


def build_once(out: Path, manifest: dict, read_manifest, build, *, force: bool = False, overwrite: bool = True,
               same=lambda old, new: old == new, may_hold=lambda path: False, what: str = "labkit export") -> bool:
    """Build the folder ``out`` described by ``manifest`` once: the cache, lock and atomic-build
    steps that :func:`export_onnx` and :func:`labkit.onnx.build.build_base` share. Returns False
    when ``out`` already holds the same build (``same(old, manifest)``, ``old`` read back by
    ``read_manifest``), True after building it.

    ``build(tmp, work)`` writes the new folder's files into ``tmp``, which replaces ``out`` only
    when it returns (:func:`labkit.cache.atomic_dir`), with a scratch folder ``work`` beside
    it. A folder ``out`` that holds something else than such a build (files ``may_hold`` does
    not accept) is refused, and so is another build unless ``overwrite``. Two processes building
    the same ``out`` take turns, and the second finds the first's build."""
    from labkit.cache import atomic_dir, locked

    def cached() -> bool:
        old = read_manifest(out)
        return not force and old is not None and same(old, manifest)

    if cached():
        return False
    old = read_manifest(out)
    if out.exists() and old is None and (not out.is_dir() or any(not may_hold(p) for p in out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a {what}: delete it or pick another out=.")
    if old is not None and not overwrite:
        refuse_another_export(out, old, manifest)
    import_builder()  # fail early (and before making folders) if it is missing
    with locked(out):  # another kernel may be building the same folder: wait, then look again
        if cached():
            return False
        with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(prefix=f".{out.name}.work-", dir=out.parent) as work:
            build(tmp, Path(work))
    return True


def export_manifest(model_dir: Path, adapter_dir: Path | None, precision: str, device: str, options: dict) -> dict:
    """What an export is made from (``labkit_export.json``): an export whose inputs are unchanged is reused."""
    return {"model_dir": str(model_dir.resolve()), "adapter_dir": str(adapter_dir.resolve()) if adapter_dir else None,
            "merged_into": trained_against(adapter_dir) if adapter_dir else None,
            "precision": precision, "device": device, "builder_options": options,
            "onnxruntime_genai": import_og().__version__,
            "model_files": folder_fingerprint(model_dir), "adapter_files": folder_fingerprint(adapter_dir)}


def export_onnx(
    model_dir, adapter_dir=None, precision="int4", device="cpu", out=None, int4_options=None, force=False,
    verbose=True, prune_lm_head=True, overwrite=True,
) -> Path:
    """Build an onnxruntime-genai model folder from a local HF model (+ optional LoRA adapter).

    Args:
        model_dir: local Hugging Face model folder (config.json, *.safetensors, tokenizer).
        adapter_dir: optional PEFT LoRA adapter folder. It is merged into the fp32 base
            model (``merge_and_unload``) before the export, so the ONNX model needs no PEFT; a QLoRA
            adapter into the dequantised NF4 weights it learned against (:func:`merge_base`).
        precision: "fp32", "fp16" (GPU only) or "int4" (weight-only 4-bit, see
            ``DEFAULT_INT4_OPTIONS``).
        device: execution provider the model is built for: "cpu", "cuda", "dml" or "webgpu".
        out: output folder; default ``$LABKIT_HOME/onnx/<name>-<precision>`` (LABKIT_HOME
            defaults to the user cache folder, ``~/.cache/labkit`` on Linux).
        int4_options: dict overriding ``DEFAULT_INT4_OPTIONS`` (builder option names);
            a value of None removes that option.
        force: rebuild even if ``out`` already holds an export of the same inputs.
        verbose: print one summary line after a build (the builder's own output, hundreds
            of lines, goes to ``out/builder.log``).
        prune_lm_head: compute logits only at the last position of a prompt (faster
            prefill, see ``PREFILL_OPTIONS``); False keeps logits for every position.
        overwrite: False refuses (``FileExistsError``) to replace an export of *another*
            model, adapter or precision in ``out`` (the command line's default).

    Returns:
        The output folder; load it with ``GenAIModel(path)`` or ``onnxruntime_genai.Model(path)``.

    Cached and atomic (:func:`build_once`): ``out/labkit_export.json`` records the inputs (file
    sizes and times of model and adapter, precision, options, versions), and a matching ``out``
    is returned at once; a failed build leaves ``out`` as it was.
    """
    model_dir = check_model_dir(model_dir)
    adapter_dir = check_peft_adapter(adapter_dir) if adapter_dir is not None else None
    check_target(precision, device, EXPORT_PRECISIONS)
    options = builder_options(model_dir, precision, int4_options, prune_lm_head)
    out = Path(out).expanduser() if out is not None else default_export_dir(model_dir, adapter_dir, precision)
    manifest = export_manifest(model_dir, adapter_dir, precision, device, options)
    start = time.perf_counter()

    def build(tmp: Path, work: Path) -> None:
        source = merge_adapter(model_dir, adapter_dir, work / "merged") if adapter_dir else model_dir
        run_builder(source, work / "onnx", precision, device, work / "cache", options)
        missing = [f for f in ("genai_config.json", "model.onnx") if not (work / "onnx" / f).is_file()]
        if missing:
            raise RuntimeError(f"The model builder did not write {missing} in {work / 'onnx'}")
        for f in [*(work / "onnx").iterdir(), work / "builder.log"]:
            if f.exists():
                os.replace(f, tmp / f.name)
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2))

    if build_once(out, manifest, read_export_manifest, build, force=force, overwrite=overwrite) and verbose:
        print(f"Exported {precision} ONNX model to {out}: {folder_size_mb(out):.0f} MB in "
              f"{time.perf_counter() - start:.0f} s (the builder's output is in {out / 'builder.log'})")
    return out


# --------------------------------------------------------------------------- runtime


# --------------------------------------------------------------------------- one base for many adapters
# One ONNX base model for many LoRA adapters: the onnxruntime-genai builder's export with
# every LoRA update ``x·Aᵀ·(α/r)Bᵀ`` left as two MatMuls whose weights are graph **inputs**.
#
# :func:`build_base` runs the builder with a LoRA template covering the target modules, keeps
# the LoRA MatMuls in float (also in an int4 build, whose base MatMuls are 4-bit) and turns their
# weights into graph inputs whose default is an empty (rank-0) matrix: with no adapter active
# the model computes the plain base. :func:`read_base` reads back what a base accepts. Each
# task's adapter then becomes an ``.onnx_adapter`` file (:mod:`labkit.onnx.serve`).

BASE_PRECISIONS = ("fp32", "int4")
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_RANK_DIM = "lora_rank"
# The builder names a LoRA pair's nodes "/model/layers.3/attn/q_proj/lora_A/MatMul"; PEFT
# calls that module "model.layers.3.self_attn.q_proj" (Llama-style models).
_BUILDER_TO_HF = {"attn": "self_attn"}


# --------------------------------------------------------------------------- identity


def base_identity(model_dir) -> dict:
    """Name and a cheap id of a base model folder, stamped into every ``.onnx_adapter``.

    The id hashes the model's ``config.json`` (architecture, sizes) and the first and last
    MiB of each ``*.safetensors`` file (header + some weights), so a model with another
    architecture or other weights gets another id. It is a 31-bit number because the
    adapter format stores it as its ``model_version``.
    """
    model_dir = Path(model_dir)
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for f in sorted(model_dir.glob("*.safetensors")):
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            fh.seek(max(0, f.stat().st_size - (1 << 20)))
            h.update(fh.read())
    return {"name": model_dir.name, "id": zlib.crc32(h.digest()) & 0x7FFFFFFF}




# --------------------------------------------------------------------------- base build


def default_base_dir(model_dir, precision="fp32") -> Path:
    """``<labkit home>/onnx/<model>-multi-lora-<precision>``."""
    from labkit.cache import labkit_home

    return labkit_home() / "onnx" / f"{Path(model_dir).name}-multi-lora-{precision}"


def _resolve_targets(target_modules) -> list[str]:
    """``"all-linear"`` -> the seven Llama projections; otherwise a sorted list of names."""
    if target_modules in (None, "all-linear"):
        return sorted(ALL_LINEAR)
    names = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    unknown = sorted(set(names) - set(ALL_LINEAR))
    if unknown:
        raise ValueError(f"target_modules {unknown} are not among the Llama projections {list(ALL_LINEAR)}.")
    return sorted(set(names))


def _builder_node(layer: int, target: str, which: str) -> str:
    """The builder's name for a LoRA MatMul node, e.g. ``/model/layers.0/attn/q_proj/lora_A/MatMul``."""
    block = "mlp" if target in ("gate_proj", "up_proj", "down_proj") else "attn"
    return f"/model/layers.{layer}/{block}/{target}/lora_{which}/MatMul"


def _hf_module(node_name: str) -> str:
    """``/model/layers.0/attn/q_proj/lora_A/MatMul`` -> ``model.layers.0.self_attn.q_proj``."""
    parts = node_name.strip("/").split("/")[:-2]
    return ".".join(_BUILDER_TO_HF.get(p, p) for p in parts)


def _write_template_adapter(model_dir: Path, targets: list[str], folder: Path) -> Path:
    """A rank-1 LoRA adapter on ``targets``: it only tells the builder where LoRA goes
    (its weights are replaced by graph inputs afterwards)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(r=1, lora_alpha=1, target_modules=targets))
        peft_model.save_pretrained(folder)
    return folder


def _lora_weights_to_inputs(onnx_dir: Path) -> dict:
    """Turn the weights of every LoRA MatMul in ``onnx_dir/model.onnx`` into graph inputs.

    Each input is named after the PEFT module (``model.layers.0.self_attn.q_proj.lora_A.weight``),
    has shape ``[in, r]`` (A) or ``[r, out]`` (B) with a symbolic rank ``r`` per module
    (``lora_rank.<module>``), and an empty default
    (rank 0), so the graph runs as the plain base when no adapter feeds it. Returns
    ``{module: [in, out]}``.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model_path = onnx_dir / "model.onnx"
    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    lora_nodes = [n for n in graph.node if re.search(r"/lora_[AB]/MatMul$", n.name)]
    quantised = [n.name for n in lora_nodes if n.op_type != "MatMul"]
    if quantised:
        raise RuntimeError(f"The builder quantised LoRA MatMuls {quantised[:2]}...; they must stay float.")
    modules, drop = {}, set()
    for node in lora_nodes:
        which = node.name.split("/")[-2][-1]  # "A" or "B"
        module = _hf_module(node.name)
        weight = initializers.get(node.input[1])
        if weight is None:
            raise RuntimeError(f"LoRA node {node.name} has no weight initializer {node.input[1]!r}.")
        rows, cols = weight.dims
        name = f"{module}.lora_{which}.weight"
        # one rank symbol per module: a symbol shared by all modules would tell onnxruntime
        # that all ranks are equal, and its memory planner fails when they are not (an adapter
        # on some modules only, or with rank_pattern)
        rank = f"{_RANK_DIM}.{module}"
        dims, empty = ([rows, rank], np.zeros((rows, 0), np.float32)) if which == "A" else \
            ([rank, cols], np.zeros((0, cols), np.float32))
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        graph.initializer.append(numpy_helper.from_array(empty, name))  # the default: no update
        node.input[1] = name
        drop.add(weight.name)
        sizes = modules.setdefault(module, [None, None])
        if which == "A":
            sizes[0] = rows
        else:
            sizes[1] = cols
    _drop_template_leftovers(graph, lora_nodes, drop)
    data_file = onnx_dir / "model.onnx.data"
    if data_file.exists():
        data_file.unlink()  # onnx.load read everything into memory; write it anew
    # small tensors (the empty defaults among them) stay inside model.onnx: onnxruntime
    # cannot read a zero-byte tensor from an external data file
    onnx.save_model(model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)
    return modules


def _drop_template_leftovers(graph, lora_nodes, weights: set) -> None:
    """Remove what the builder's template adapter left in ``graph``: the LoRA ``weights`` (now
    graph inputs), and the shape it declared for each LoRA A output, ``[batch, seq, template
    rank]`` (kept, onnxruntime would plan buffers for that fixed rank)."""
    a_outputs = {n.output[0] for n in lora_nodes if "/lora_A/" in n.name}
    kept_info = [v for v in graph.value_info if v.name not in a_outputs]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    kept = [t for t in graph.initializer if t.name not in weights]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _builder_options(model_dir: Path, precision: str, targets: list[str], int4_options) -> dict:
    """Builder options: :func:`labkit.onnx.build.builder_options`, plus for int4 every LoRA MatMul
    excluded from quantisation (a 4-bit LoRA update loses most of its effect)."""
    options = builder_options(model_dir, precision, int4_options)
    if precision != "int4":
        return options
    n_layers = json.loads((model_dir / "config.json").read_text())["num_hidden_layers"]
    lora_nodes = [_builder_node(i, t, w) for i in range(n_layers) for t in targets for w in "AB"]
    extra = option_names(options.get("nodes_to_exclude"))
    int8 = [part for n in option_names(options.get("int8_nodes")) for part in _qkv_apart(n)]
    if "mixed_layers" in str(options.get("matmul_mixed_precision", "")):
        # The builder's "mixed_layers" puts the packed qkv_proj of the sensitive layers in 8 bits;
        # apart, only v_proj is matched and q/k would fall to 4 bits: name them for 8 bits. (Kept in
        # float before labkit could name them: bench/int4_options.py, seed 0's adapters, the same
        # share of the gain kept, tone 1.00 -> 1.02, recipes 0.87 -> 0.85, at 135 -> 118 MB.)
        int8 += [f"/model/layers.{i}/attn/{p}/MatMul" for i in mixed_layers(n_layers) for p in ("q_proj", "k_proj")]
    options["nodes_to_exclude"] = ",".join(extra + lora_nodes)
    options["int8_nodes"] = ",".join(dict.fromkeys(int8))
    return options


def _qkv_apart(node: str) -> list[str]:
    """With LoRA the builder keeps q, k and v apart (LoRA inputs join each): a packed ``qkv_proj``
    node name means its three parts; any other name is itself."""
    if "/qkv_proj/" not in node:
        return [node]
    return [node.replace("/qkv_proj/", f"/{p}/") for p in ("q_proj", "k_proj", "v_proj")]


@contextlib.contextmanager
def _quiet_option_echo(n_excluded: int):
    """The builder prints its options; with every LoRA node listed in ``nodes_to_exclude`` that
    line runs to kilobytes. Print the rest of its output, and one short line instead."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.startswith("Extra options:"):
                line = re.sub(r"'nodes_to_exclude': '[^']*'", f"'nodes_to_exclude': <{n_excluded} LoRA MatMuls>", line)
            print(line)


def mixed_layers(n: int) -> list[int]:
    """The layers the builder's "mixed_layers" option treats as sensitive (llama.cpp's choice)."""
    return [i for i in range(n) if i < n / 8 or i >= 7 * n / 8 or (i - round(n / 8)) % 3 == 2]


def build_base(model_dir, target_modules="all-linear", precision="fp32", device="cpu", out=None,
               int4_options=None, force=False, overwrite=True) -> Path:
    """Export ``model_dir`` once, with LoRA inputs on ``target_modules``, for any number of adapters.

    Args:
        model_dir: local Hugging Face model folder (the base the adapters were trained on).
        target_modules: the projections that get LoRA inputs: ``"all-linear"`` or a list such
            as ``["q_proj", "v_proj"]``. Every adapter served must adapt a subset of these.
        precision: ``"fp32"`` or ``"int4"`` (base MatMuls 4/8-bit as in
            ``labkit.onnx.build.DEFAULT_INT4_OPTIONS``; the LoRA MatMuls always stay float32).
        device, int4_options, force, overwrite: as in :func:`labkit.onnx.build.export_onnx`.
        out: output folder; default :func:`default_base_dir`.

    Returns the folder: an onnxruntime-genai model folder plus ``labkit_adapters.json``,
    which records the base's identity and LoRA inputs for :func:`check_adapter_file`.
    Cached and atomic like :func:`labkit.onnx.build.export_onnx`; ``.onnx_adapter`` files you
    keep in the folder survive a cached call but not a rebuild.
    """
    model_dir = check_model_dir(model_dir)
    check_target(precision, device, BASE_PRECISIONS)
    targets = _resolve_targets(target_modules)
    options = _builder_options(model_dir, precision, targets, int4_options)
    og = import_og()
    out = Path(out).expanduser() if out is not None else default_base_dir(model_dir, precision)
    manifest = {
        "kind": "multi-adapter base",
        "model_dir": str(model_dir.resolve()),
        "base": base_identity(model_dir),
        "precision": precision,
        "device": device,
        "target_modules": targets,
        "builder_options": options,
        "onnxruntime_genai": og.__version__,
        "model_files": folder_fingerprint(model_dir),
    }

    def build(final: Path, work: Path) -> None:
        template = _write_template_adapter(model_dir, targets, work / "template")
        onnx_dir = work / "onnx"
        with _quiet_option_echo(len(options.get("nodes_to_exclude", "").split(","))):
            run_builder(model_dir, onnx_dir, precision, device, work / "cache", {**options, "adapter_path": str(template)})
        manifest["lora_modules"] = _lora_weights_to_inputs(onnx_dir)
        found = set(target_names(manifest["lora_modules"]))
        if found != set(targets):
            raise RuntimeError(f"The exported graph has LoRA inputs for {sorted(found)}, expected {targets}: "
                               "this model's architecture is not supported by labkit.onnx.serve.")
        (onnx_dir / BASE_MANIFEST).write_text(json.dumps(manifest, indent=1))
        for f in onnx_dir.iterdir():
            os.replace(f, final / f.name)

    build_once(out, manifest, read_base_manifest, build, force=force, overwrite=overwrite,
               same=lambda old, new: {k: v for k, v in old.items() if k != "lora_modules"} == new,
               may_hold=lambda path: path.suffix == SUFFIX,   # adapter files kept beside a base survive a cached call
               what="labkit multi-adapter base")
    return out






# --------------------------------------------------------------------------- adapter files for a base


def convert_adapter(adapter_dir, base_dir, out_file=None) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as an ``.onnx_adapter`` file for the base in ``base_dir``.

    Checks first that the base can serve it (:func:`check_peft_adapter`). The file is
    stamped with the base's id (its ``model_version``) so that :func:`check_adapter_file`
    can refuse it on another base. Default ``out_file``: ``base_dir/<adapter name>.onnx_adapter``.
    The file is written to a temporary name and renamed, so it is never half written.
    """
    import onnxruntime as ort

    base = read_base(base_dir)
    adapter = read_peft_adapter(adapter_dir)
    _check_convertible(adapter, base)
    out_file = Path(out_file) if out_file is not None else Path(base_dir) / f"{adapter['name']}{SUFFIX}"
    arrays = lora_parameters(adapter)  # must outlive export_adapter(): OrtValues only point at them
    fmt = ort.AdapterFormat()
    fmt.set_adapter_version(ADAPTER_FORMAT_VERSION)
    fmt.set_model_version(base["base"]["id"])
    fmt.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in arrays.items()})
    with atomic_file(out_file) as tmp:
        fmt.export_adapter(str(tmp))
    return out_file


def generate_adapter(base_model_path, adapter_paths, output_path, precision: str = "fp32", overwrite: bool = True) -> Path:
    """Like ``olive generate-adapter``: one base exported with LoRA inputs + one ``.onnx_adapter`` per adapter.

    Args:
        base_model_path: the local HF model folder the adapters were trained on.
        adapter_paths: PEFT adapter folders (a list; or a dict ``{name: folder}`` to choose
            the names). Each becomes ``output_path/<name>.onnx_adapter``; the name is the
            folder's (the run's for ``<run>/adapter``).
        output_path: the onnxruntime-genai folder to write (base + adapter files).
        precision: ``"fp32"`` or ``"int4"`` (LoRA weights stay float32 either way).

    The base gets LoRA inputs for the union of the adapters' target modules. Every adapter
    is checked before anything is built: trained on this base (``base_model_name_or_path``),
    plain LoRA, layer sizes that match. Returns ``output_path``.
    """
    if isinstance(adapter_paths, (str, os.PathLike)):
        adapter_paths = [adapter_paths]
    named = dict(adapter_paths) if isinstance(adapter_paths, dict) else {adapter_name(p): p for p in adapter_paths}
    if not isinstance(adapter_paths, dict) and len(named) != len(adapter_paths):
        raise AdapterError(f"Two adapters would get the same file name: {[adapter_name(p) for p in adapter_paths]}; "
                           "pass a dict {name: folder} to name them.")
    if not named:
        raise ValueError("adapter_paths is empty: pass at least one PEFT adapter folder.")
    model_dir = check_model_dir(base_model_path)
    adapters = {name: read_peft_adapter(p) for name, p in named.items()}
    for name, adapter in adapters.items():
        adapter["name"] = name
        trained_on = adapter["base_model"]
        if trained_on and short_model_name(trained_on) != model_dir.name:
            raise AdapterError(f"Adapter {name!r} ({adapter['dir']}) was trained on {trained_on!r}, not on "
                               f"{model_dir.name!r} ({model_dir}): pass the base it was trained on.")
        check_trained_on(adapter["dir"], model_dir)   # the same name is not enough: the same weights
    targets = sorted({t for a in adapters.values() for t in target_names(a["modules"])})
    out = build_base(model_dir, targets, precision=precision, out=output_path, overwrite=overwrite)
    base = read_base(out)
    for adapter in adapters.values():
        _check_convertible(adapter, base)
    for name, adapter in adapters.items():
        convert_adapter(adapter["dir"], out, Path(out) / f"{name}{SUFFIX}")
    return Path(out)


def _check_convertible(adapter: dict, base: dict) -> None:
    """Refuse a PEFT adapter (from :func:`read_peft_adapter`) the base cannot serve:
    trained on another base model, adapting modules the base has no LoRA inputs for, or
    with other layer sizes."""
    where = f"Adapter {adapter['name']!r} ({adapter['dir']})"
    trained_on = adapter["base_model"]
    if trained_on and short_model_name(trained_on) != base["base"]["name"]:
        raise AdapterError(f"{where} was trained on {trained_on!r}, but this base is {base['base']['name']!r} "
                           f"({base['model_dir']}). A LoRA update only means something on the weights it was trained "
                           "with: build the base from the adapter's base model, or retrain the adapter on this one.")
    check_lora_modules(where, {m: (ab["A"].shape[1], ab["B"].shape[0]) for m, ab in adapter["modules"].items()}, base)
    check_trained_on(adapter["dir"], base["model_dir"])
