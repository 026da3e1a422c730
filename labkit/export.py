"""Export a (fine-tuned) Hugging Face causal LM to ONNX and run it with onnxruntime-genai.

Three things live here:

* :func:`export_onnx` turns a local HF model folder (optionally + a LoRA adapter,
  which is merged first) into an onnxruntime-genai folder: ``model.onnx`` (+ ``.data``),
  ``genai_config.json`` and the tokenizer files. Builds are atomic and cached.
* :class:`GenAIModel` is a small wrapper to chat with, stream from and score with
  such a folder.
* :func:`parity` compares the ONNX model with the PyTorch one it came from.

Heavy libraries (torch, transformers, peft, onnxruntime_genai) are imported inside
the functions that need them, so ``import labkit.export`` stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

MANIFEST = "labkit_export.json"
PRECISIONS = ("fp32", "fp16", "int4")
DEVICES = ("cpu", "cuda", "dml", "webgpu")
INSTALL_HINT = "pip install onnxruntime-genai onnx-ir onnxscript"

# For every precision: compute the output layer (49,152 logits per position for SmolLM2) only
# at the last prompt position during prefill, the only one generation and label scoring read:
# the same idea as training's answer-only logits (labkit.answer_loss). Measured with
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


def _import_og():
    """Import onnxruntime_genai, or explain how to install it."""
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        raise ImportError(f"onnxruntime-genai is needed for ONNX export/inference: {INSTALL_HINT}") from e
    return og


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


def _import_builder():
    """Import the onnxruntime-genai model builder (needs onnx-ir and onnxscript too)."""
    _import_og()
    try:
        with _keep_root_logger():
            from onnxruntime_genai.models import builder
    except ImportError as e:
        raise ImportError(f"The onnxruntime-genai model builder could not be imported ({e}): {INSTALL_HINT}") from e
    return builder


def _check_model_dir(model_dir) -> Path:
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


def _check_adapter_dir(adapter_dir) -> Path:
    """Return ``adapter_dir`` as a Path, or raise a clear error if it is not a PEFT adapter folder."""
    path = Path(adapter_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Adapter folder not found: {path}. Pass the folder you saved the LoRA adapter to.")
    if not (path / "adapter_config.json").is_file():
        raise ValueError(
            f"{path} is not a PEFT adapter folder (no adapter_config.json); save it with model.save_pretrained()."
        )
    return path


def _fingerprint(folder: Path | None) -> dict | None:
    """Cheap identity of a folder: relative path -> [size, mtime_ns] of every file.

    Re-saving a model or adapter changes the mtimes, which triggers a rebuild.
    """
    if folder is None:
        return None
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not any(
        part.startswith(".") for part in f.relative_to(folder).parts))
    return {str(f.relative_to(folder)): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def default_export_dir(model_dir, adapter_dir=None, precision="int4") -> Path:
    """``<labkit home>/onnx/<model>[-<adapter>]-<precision>``, e.g. ``~/.cache/labkit/onnx/SmolLM2-135M-Instruct-int4``.

    The adapter part is the adapter folder's name, or its parent's when the folder is
    called ``adapter`` (``labkit.train`` saves every run to ``<run>/adapter``; naming the
    export after the run keeps two adapters from overwriting each other's export).
    """
    from .models import labkit_home

    home = labkit_home()
    name = Path(model_dir).name
    if adapter_dir:
        adapter = Path(adapter_dir).expanduser().resolve()
        name += f"-{adapter.parent.name if adapter.name == 'adapter' else adapter.name}"
    return home / "onnx" / f"{name}-{precision}"


def merge_adapter(model_dir, adapter_dir, out_dir) -> Path:
    """Load the base model in fp32, apply the LoRA adapter, merge it and save to ``out_dir``.

    The tokenizer is taken from the adapter folder when it has one (fine-tuning scripts
    often save it there, e.g. with a changed chat template), else from ``model_dir``.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
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


def _run_builder(input_dir: Path, output_dir: Path, precision: str, device: str, cache_dir: Path, options: dict):
    """Run the onnxruntime-genai model builder in this process (its Python API).

    ``parse_extra_options`` validates the ``KEY=VALUE`` options and reads the HF config;
    ``create_model`` writes model.onnx(.data), genai_config.json and the tokenizer files.
    The builder prints hundreds of progress lines; they go to ``builder.log`` next to
    ``output_dir`` (the tail is shown if the build fails).
    """
    builder = _import_builder()
    kv = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()]
    args = (None, str(input_dir), str(output_dir), precision, device, str(cache_dir))
    log_path = Path(output_dir).parent / "builder.log"
    try:
        with _output_to(log_path), _keep_root_logger(), warnings.catch_warnings():
            # k_quant divides by zero for constant blocks and then ignores the result: harmless
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            extra = builder.parse_extra_options(*args, kv)
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


def export_onnx(
    model_dir, adapter_dir=None, precision="int4", device="cpu", out=None, int4_options=None, force=False,
    verbose=True, prune_lm_head=True, overwrite=True,
) -> Path:
    """Build an onnxruntime-genai model folder from a local HF model (+ optional LoRA adapter).

    Args:
        model_dir: local Hugging Face model folder (config.json, *.safetensors, tokenizer).
        adapter_dir: optional PEFT LoRA adapter folder. It is merged into the fp32 base
            model (``merge_and_unload``) before the export, so the ONNX model needs no PEFT.
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

    The build is cached and atomic: ``out/labkit_export.json`` records the inputs (file
    sizes and times of model and adapter, precision, options, versions); if it matches,
    ``out`` is returned at once. Otherwise the model is built in a temporary folder next
    to ``out`` that replaces ``out`` only when the build succeeded; a failed build leaves
    ``out`` as it was and removes the temporary folder (:func:`labkit.atomic.atomic_dir`).
    Two processes exporting to the same ``out`` take turns, and the second reuses the first's build.
    """
    model_dir = _check_model_dir(model_dir)
    adapter_dir = _check_adapter_dir(adapter_dir) if adapter_dir is not None else None
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if precision == "fp16" and device == "cpu":
        raise ValueError("fp16 ONNX models do not run on the CPU execution provider: use 'fp32' or 'int4' on CPU.")
    og = _import_og()

    options = dict(PREFILL_OPTIONS) if prune_lm_head else {}
    if precision == "int4":
        options.update({k: v for k, v in {**DEFAULT_INT4_OPTIONS, **(int4_options or {})}.items() if v is not None})
        hidden = json.loads((model_dir / "config.json").read_text()).get("hidden_size")
        if hidden and int(options.get("block_size", 32)) > hidden:
            raise ValueError(f"int4 block_size {options['block_size']} > hidden_size {hidden}: use a smaller block_size.")
    elif int4_options:
        warnings.warn(f"int4_options are ignored for precision={precision!r}")

    out = Path(out).expanduser() if out is not None else default_export_dir(model_dir, adapter_dir, precision)
    manifest = {
        "model_dir": str(model_dir.resolve()),
        "adapter_dir": str(adapter_dir.resolve()) if adapter_dir else None,
        "precision": precision,
        "device": device,
        "builder_options": options,
        "onnxruntime_genai": og.__version__,
        "model_files": _fingerprint(model_dir),
        "adapter_files": _fingerprint(adapter_dir),
    }
    if out.exists():
        old = _read_manifest(out)
        if old == manifest and not force:
            return out  # cached: same inputs, same options
        if old is None and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"{out} exists and is not a labkit export: delete it or pick another out=.")
        if old is not None and not overwrite:
            refuse_another_export(out, old, manifest)

    _import_builder()  # fail early (and before making folders) if it is missing
    from .atomic import atomic_dir, locked

    with locked(out):  # another kernel may be building the same folder: wait, then look again
        if not force and _read_manifest(out) == manifest:
            return out
        start = time.perf_counter()
        # tmp becomes `out`; the merged model, the builder's cache and its output are made in
        # a work folder beside it, and only the finished files move into tmp
        with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(prefix=f".{out.name}.work-",
                                                                dir=out.parent) as work:
            work = Path(work)
            source = merge_adapter(model_dir, adapter_dir, work / "merged") if adapter_dir else model_dir
            _run_builder(source, work / "onnx", precision, device, work / "cache", options)
            missing = [f for f in ("genai_config.json", "model.onnx") if not (work / "onnx" / f).is_file()]
            if missing:
                raise RuntimeError(f"The model builder did not write {missing} in {work / 'onnx'}")
            for f in [*(work / "onnx").iterdir(), work / "builder.log"]:
                if f.exists():
                    os.replace(f, tmp / f.name)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if verbose:
        print(f"Exported {precision} ONNX model to {out}: {folder_size_mb(out):.0f} MB in "
              f"{time.perf_counter() - start:.0f} s (the builder's output is in {out / 'builder.log'})")
    return out


# --------------------------------------------------------------------------- runtime


def session_config(path, threads: int | None = None):
    """An ``onnxruntime_genai.Config`` for the model folder ``path`` that computes on
    ``threads`` CPU threads (default: every core this process may use).

    Left alone, onnxruntime chose fewer threads than cores on the course's 2-core machine, and
    a 128-token prompt took 244 ms with the int4 model instead of 153 ms with both cores
    (bench/inference.py). The setting is made at load time, not written into the export's
    genai_config.json, so an export copied to another machine uses that machine's cores."""
    from .env import cpu_cores

    og = _import_og()
    config = og.Config(str(path))
    options = {"model": {"decoder": {"session_options": {"intra_op_num_threads": threads or cpu_cores()}}}}
    config.overlay(json.dumps(options))
    return config


class GenAIModel:
    """Chat with, stream from and score with an onnxruntime-genai model folder.

    >>> m = GenAIModel(export_onnx(model_dir))
    >>> m.generate([{"role": "user", "content": "Hi!"}], max_new_tokens=32)
    """

    def __init__(self, path, threads: int | None = None):
        og = _import_og()
        self.path = Path(path)
        if not (self.path / "genai_config.json").is_file():
            raise FileNotFoundError(f"No genai_config.json in {self.path}: build the folder with export_onnx() first.")
        self._og = og
        self.model = og.Model(session_config(self.path, threads))  # threads: default every core
        self.tokenizer = og.Tokenizer(self.model)

    def __repr__(self):
        return f"GenAIModel({str(self.path)!r})"

    def token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with the onnxruntime-genai tokenizer."""
        return [int(t) for t in self.tokenizer.encode(text)]

    def prompt_text(self, prompt_or_messages, chat=True) -> str:
        """The text fed to the model: the chat template applied to messages, or the raw prompt.

        A string is wrapped as one user message when ``chat`` is True. If the model has
        no chat template, a string is used as is.
        """
        if isinstance(prompt_or_messages, str):
            if not chat:
                return prompt_or_messages
            messages = [{"role": "user", "content": prompt_or_messages}]
        else:
            messages = list(prompt_or_messages)
        try:
            return self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        except RuntimeError as e:  # "Empty chat template." or a template the runtime cannot render
            if isinstance(prompt_or_messages, str) and "Empty chat template" in str(e):
                return prompt_or_messages
            from transformers import AutoTokenizer  # fall back to transformers' jinja renderer

            return AutoTokenizer.from_pretrained(self.path).apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )

    def _generator(self, input_ids, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0, top_k=50,
                   adapter=None):
        params = self._og.GeneratorParams(self.model)
        search = dict(max_length=len(input_ids) + max_new_tokens, do_sample=do_sample)
        if do_sample:  # each sampled answer draws its own seed from the course's seed (LABKIT_SEED)
            search.update(temperature=temperature, top_p=top_p, top_k=top_k, random_seed=self._next_seed())
        params.set_search_options(**search)
        generator = self._og.Generator(self.model, params)
        self._before_prompt(generator, adapter)
        generator.append_tokens(list(input_ids))
        return generator

    def _next_seed(self) -> int:
        """A fresh sampling seed, drawn from a stream seeded once with :func:`labkit.env.seed`: ten
        samples differ from each other, and the same ten come back on a re-run."""
        if not hasattr(self, "_seeds"):
            import random

            from . import env

            self._seeds = random.Random(env.seed())
        return self._seeds.randrange(2**31)

    def _before_prompt(self, generator, adapter) -> None:
        """Set up a request's generator before its prompt is processed: a plain export has no
        adapters (:class:`labkit.adapters.MultiAdapterModel` sets the request's adapter here)."""
        if adapter is not None:
            raise ValueError(f"{self.path} is a plain export with no adapters; adapter={adapter!r} needs a "
                             "multi-adapter base (labkit.adapters.MultiAdapterModel).")

    def stream(self, prompt_or_messages, max_new_tokens=64, do_sample=False, temperature=0.7, top_p=0.9, chat=True,
               adapter=None):
        """Yield the answer piece by piece as it is generated (stops at EOS or max_new_tokens)."""
        ids = self.token_ids(self.prompt_text(prompt_or_messages, chat=chat))
        generator = self._generator(ids, max_new_tokens, do_sample, temperature, top_p, adapter=adapter)
        decoder = self.tokenizer.create_stream()
        while not generator.is_done():
            generator.generate_next_token()
            yield decoder.decode(int(generator.get_next_tokens()[0]))

    def generate(
        self, prompt_or_messages, max_new_tokens=64, do_sample=False, temperature=0.7, top_p=0.9, chat=True,
        adapter=None,
    ) -> str:
        """Answer to a prompt string or a list of chat messages (greedy unless ``do_sample``)."""
        return "".join(self.stream(prompt_or_messages, max_new_tokens, do_sample, temperature, top_p, chat,
                                   adapter=adapter))

    def greedy_ids(self, input_ids, max_new_tokens=16, adapter=None) -> list[int]:
        """Greedy continuation of ``input_ids`` as token ids (stops early at EOS)."""
        generator = self._generator(input_ids, max_new_tokens, adapter=adapter)
        new = []
        while not generator.is_done():
            generator.generate_next_token()
            new.append(int(generator.get_next_tokens()[0]))
        return new

    def logits(self, prompt, all_positions=False, adapter=None):
        """Logits (float32 numpy) for a prompt string (no chat template) or a list of token ids.

        Returns the last position, shape ``[vocab]``, or every position, ``[seq, vocab]``
        (only for an export made with ``prune_lm_head=False``).
        """
        ids = self.token_ids(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        generator = self._generator(ids, 1, adapter=adapter)
        if all_positions:
            every = generator.get_output("logits")[0].copy()  # [1, seq, vocab] after the prompt
            if len(ids) > 1 and every.shape[0] == 1:
                raise ValueError(f"{self.path} computes logits only at the last position (exported with "
                                 "prune_lm_head=True, the default): export with prune_lm_head=False for every position.")
            return every
        return generator.get_logits()[0, -1].copy()  # [1, 1, vocab]


# --------------------------------------------------------------------------- parity


def _torch_greedy(model, input_ids, max_new_tokens, eos_ids):
    """Last-position logits of ``input_ids`` (a float32 numpy array on the CPU) and the greedy
    continuation (stops at EOS). Works on any device: the inputs go where the model is."""
    import torch

    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([input_ids], device=device), use_cache=True)
    first_logits = out.logits[0, -1].float().cpu().numpy()
    new = []
    for _ in range(max_new_tokens):
        token = int(out.logits[0, -1].argmax())
        new.append(token)
        if token in eos_ids or len(new) == max_new_tokens:
            break
        out = model(input_ids=torch.tensor([[token]], device=device), past_key_values=out.past_key_values,
                    use_cache=True)
    return first_logits, new


def greedy_match(reference: list, other: list) -> float:
    """The share of ``reference``'s greedy tokens that ``other`` reproduces *before the first
    difference*: after outputs diverge, each side continues a different text, so later tokens
    that happen to agree say nothing. 1.0 only for identical outputs."""
    same = 0
    for a, b in zip(reference, other):
        if a != b:
            break
        same += 1
    return same / max(len(reference), len(other), 1)


def parity(torch_model, tokenizer, onnx_path, prompts, max_new_tokens=16) -> dict:
    """Compare a PyTorch model (fp32, e.g. a PeftModel) with its ONNX export on the same token ids.

    For each prompt (tokenised with the HF ``tokenizer``, no chat template) it reports the
    max abs difference of the last-position logits and :func:`greedy_match`, the share of
    greedy tokens the two sides agree on before their first difference, over
    ``max_new_tokens`` steps (both decode greedily and stop at EOS). The PyTorch model may sit
    on any device. ``same_tokenizer`` says whether onnxruntime-genai's
    tokenizer gives the same ids as the HF one.

    Returns ``{"prompts": [...per prompt...], "max_abs_diff": ..., "greedy_match": ...,
    "all_greedy_identical": ...}``.
    """
    import numpy as np
    import torch

    if next(torch_model.parameters()).dtype != torch.float32:
        warnings.warn("parity() expects a float32 PyTorch model; differences will include its rounding.")
    onnx = onnx_path if isinstance(onnx_path, GenAIModel) else GenAIModel(onnx_path)
    eos = torch_model.config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    was_training = torch_model.training
    torch_model.eval()
    rows = []
    try:
        with torch.no_grad():
            for prompt in prompts:
                ids = tokenizer(prompt)["input_ids"]
                ref_logits, ref_tokens = _torch_greedy(torch_model, ids, max_new_tokens, eos_ids)
                onnx_tokens = onnx.greedy_ids(ids, max_new_tokens)
                rows.append({
                    "prompt": prompt,
                    "n_tokens": len(ids),
                    "max_abs_diff": float(np.abs(ref_logits - onnx.logits(ids)).max()),
                    "greedy_match": greedy_match(ref_tokens, onnx_tokens),
                    "torch_tokens": ref_tokens,
                    "onnx_tokens": onnx_tokens,
                    "same_tokenizer": onnx.token_ids(prompt) == list(ids),
                })
    finally:
        torch_model.train(was_training)
    return {
        "prompts": rows,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "greedy_match": sum(r["greedy_match"] for r in rows) / len(rows),
        "all_greedy_identical": all(r["torch_tokens"] == r["onnx_tokens"] for r in rows),
    }
