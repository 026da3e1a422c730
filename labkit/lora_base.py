"""One ONNX base model for many LoRA adapters: the onnxruntime-genai builder's export with
every LoRA update ``x·Aᵀ·(α/r)Bᵀ`` left as two MatMuls whose weights are graph **inputs**.

:func:`build_base` runs the builder with a LoRA template covering the target modules, keeps
the LoRA MatMuls in float (also in an int4 build, whose base MatMuls are 4-bit) and turns their
weights into graph inputs whose default is an empty (rank-0) matrix: with no adapter active
the model computes the plain base. :func:`read_base` reads back what a base accepts. Each
task's adapter then becomes an ``.onnx_adapter`` file (:mod:`labkit.adapters`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import zlib
from pathlib import Path

from .export import (
    build_once,
    builder_options,
    check_model_dir,
    check_target,
    folder_fingerprint,
    option_names,
    read_export_manifest,
    run_builder,
)
from .lora_files import AdapterError, target_names
from .runtime import import_og

SUFFIX = ".onnx_adapter"   # an adapter file: the only other files a base's folder may hold

BASE_MANIFEST = "labkit_adapters.json"
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


def short_model_name(name_or_path) -> str:
    """``HuggingFaceTB/SmolLM2-135M-Instruct`` and ``~/.cache/.../SmolLM2-135M-Instruct`` -> ``SmolLM2-135M-Instruct``."""
    return Path(str(name_or_path).rstrip("/")).name


# --------------------------------------------------------------------------- base build


def default_base_dir(model_dir, precision="fp32") -> Path:
    """``<labkit home>/onnx/<model>-multi-lora-<precision>``."""
    from .atomic import labkit_home

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
    """Builder options: :func:`labkit.export.builder_options`, plus for int4 every LoRA MatMul
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
            ``labkit.export.DEFAULT_INT4_OPTIONS``; the LoRA MatMuls always stay float32).
        device, int4_options, force, overwrite: as in :func:`labkit.export.export_onnx`.
        out: output folder; default :func:`default_base_dir`.

    Returns the folder: an onnxruntime-genai model folder plus ``labkit_adapters.json``,
    which records the base's identity and LoRA inputs for :func:`check_adapter_file`.
    Cached and atomic like :func:`labkit.export.export_onnx`; ``.onnx_adapter`` files you
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
                               "this model's architecture is not supported by labkit.adapters.")
        (onnx_dir / BASE_MANIFEST).write_text(json.dumps(manifest, indent=1))
        for f in onnx_dir.iterdir():
            os.replace(f, final / f.name)

    build_once(out, manifest, read_base_manifest, build, force=force, overwrite=overwrite,
               same=lambda old, new: {k: v for k, v in old.items() if k != "lora_modules"} == new,
               may_hold=lambda path: path.suffix == SUFFIX,   # adapter files kept beside a base survive a cached call
               what="labkit multi-adapter base")
    return out


def read_base_manifest(folder: Path) -> dict | None:
    """The base's ``labkit_adapters.json``, or None."""
    try:
        return json.loads((Path(folder) / BASE_MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def read_base(base_dir) -> dict:
    """The manifest of a multi-adapter base folder, or an :class:`AdapterError` saying how to build one."""
    manifest = read_base_manifest(base_dir)
    if manifest is None or manifest.get("kind") != "multi-adapter base":
        hint = " (it is a merged export: one adapter baked in)" if read_export_manifest(Path(base_dir)) else ""
        raise AdapterError(f"{base_dir} is not a multi-adapter base{hint}: build one with "
                           "labkit.adapters.build_base() or generate_adapter().")
    return manifest
