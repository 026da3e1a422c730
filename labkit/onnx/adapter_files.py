"""A trained LoRA adapter on disk, read without loading any model: what it adapts, which base
it was trained on, and whether it fits a base.

* :func:`check_adapter`: a folder that loads (``adapter_config.json``, readable weights) and
  fits a base model folder: every adapted layer exists there with the adapter's sizes, and the
  base's weights are the ones it was trained on (:func:`check_trained_on`). ``labkit evaluate``,
  ``auto-opt`` and ``generate-adapter`` call it before loading anything.
* :func:`read_peft_adapter`: the LoRA matrices and scalings, for multi-adapter serving
  (:mod:`labkit.onnx.build`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path


class AdapterError(ValueError):
    """An adapter that does not fit the base model (or cannot be read); the message says why
    and what to do."""


def adapter_name(adapter_dir) -> str:
    """The name an adapter gets by default: its folder's name, or the run's (the parent
    folder's) when the folder is called ``adapter`` (``labkit.train`` saves ``<run>/adapter``)."""
    path = Path(adapter_dir).expanduser().resolve()
    return path.parent.name if path.name == "adapter" else path.name


UNSUPPORTED = {   # LoRA variants that two extra MatMuls per layer cannot express
    "use_dora": "DoRA rescales the merged weight, which two extra MatMuls cannot express; merge it with export_onnx()",
    "lora_bias": "a LoRA bias is not part of the adapter format; train without lora_bias or merge with export_onnx()",
    "modules_to_save": "the adapter replaces whole modules (modules_to_save); merge it with export_onnx() instead",
    "trainable_token_indices": "the adapter changes token embeddings; merge it with export_onnx() instead",
}


def read_peft_adapter(adapter_dir) -> dict:
    """Read a PEFT LoRA adapter folder without loading any model, through PEFT's own loaders
    (``LoraConfig.from_pretrained``, ``load_peft_weights``).

    Returns ``{"name", "dir", "config", "base_model", "modules"}`` where ``modules`` maps each
    adapted module (``"model.layers.0.self_attn.q_proj"``) to ``{"A": [r, in], "B": [out, r],
    "scaling": α/r}`` (numpy float32; ``α/√r`` with rsLoRA; ``alpha_pattern`` honoured, as PEFT
    scales it). Refuses what a plain LoRA update cannot express (DoRA, LoRA bias, trained biases,
    ``modules_to_save``, trainable tokens) with an :class:`AdapterError`.
    """
    path = check_peft_adapter(adapter_dir)
    config = _plain_lora_config(path)
    modules = _lora_matrices(path)
    for module, ab in modules.items():
        ab["scaling"] = lora_scaling(config, module, ab["A"].shape[0])
    raw = json.loads((path / "adapter_config.json").read_text())
    return {"name": adapter_name(path), "dir": path, "config": raw,
            "base_model": config.base_model_name_or_path, "base_weights": trained_base_weights(path),
            "modules": modules}


def _plain_lora_config(path: Path):
    """The adapter's ``LoraConfig`` (PEFT's loader), or an :class:`AdapterError` for another PEFT
    method or a LoRA variant that :data:`UNSUPPORTED` lists."""
    from peft import LoraConfig

    where = f"{path / 'adapter_config.json'}"
    peft_type = json.loads((path / "adapter_config.json").read_text()).get("peft_type", "LORA")
    if peft_type != "LORA":
        raise AdapterError(f"{where}: peft_type is {peft_type!r}; only LoRA adapters can be converted.")
    config = LoraConfig.from_pretrained(str(path))
    for key, why in UNSUPPORTED.items():
        if getattr(config, key, None):
            raise AdapterError(f"{where}: {key}={getattr(config, key)!r} is not supported for multi-adapter "
                               f"serving: {why}.")
    if config.bias != "none":
        raise AdapterError(f"{where}: bias={config.bias!r} trains the base model's biases; "
                           "use bias='none' or merge the adapter with export_onnx().")
    return config


def _lora_matrices(path: Path) -> dict:
    """``{module: {"A", "B"}}`` as float32 numpy arrays, from PEFT's ``load_peft_weights``."""
    import numpy as np
    from peft.utils import load_peft_weights

    weights_file = path / "adapter_model.safetensors"
    modules, other = {}, []
    for key, value in load_peft_weights(str(path), device="cpu").items():
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight", key)
        if m is None:
            other.append(key)
            continue
        modules.setdefault(m.group(1), {})[m.group(2)] = value.float().numpy().astype(np.float32)
    if other:
        raise AdapterError(f"{weights_file} holds weights that are not LoRA A/B matrices: {other[:3]}... "
                           "Only plain LoRA adapters can be served as .onnx_adapter files.")
    for module, ab in modules.items():
        if set(ab) != {"A", "B"}:
            raise AdapterError(f"{weights_file}: {module} has lora_{''.join(ab)} but not both A and B.")
        if ab["B"].shape[1] != ab["A"].shape[0]:
            raise AdapterError(f"{weights_file}: {module} has lora_A of rank {ab['A'].shape[0]} but lora_B "
                               f"of rank {ab['B'].shape[1]}.")
    return modules


def lora_scaling(config, module: str, r: int) -> float:
    """The factor PEFT multiplies ``B·A`` by in ``module``: ``α/r``, or ``α/√r`` with rsLoRA, with
    ``α`` from ``alpha_pattern`` where a pattern matches the module (PEFT's ``get_pattern_key``)."""
    from peft.utils.other import get_pattern_key

    alpha = config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), module), config.lora_alpha)
    return alpha / (r ** 0.5 if config.use_rslora else r)


def trained_base_weights(adapter_dir) -> str | None:
    """The weights fingerprint (:func:`labkit.models.weights_fingerprint`) of the base the
    adapter was trained on, as labkit recorded it in ``labkit_run.json``; None if unknown."""
    run = Path(adapter_dir) / "labkit_run.json"
    try:
        return json.loads(run.read_text()).get("base_weights") if run.is_file() else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def check_trained_on(adapter_dir, base_dir) -> None:
    """Refuse an adapter whose recorded base weights differ from ``base_dir``'s: a folder of the
    same name and shapes (another full fine-tune saved as ``<run>/adapter``, another
    checkpoint) is still another model, and a LoRA update means nothing on other weights."""
    from labkit.models import weights_fingerprint

    recorded = trained_base_weights(adapter_dir)
    actual = weights_fingerprint(base_dir) if recorded else None
    if recorded and actual and recorded != actual:
        raise AdapterError(f"{adapter_dir} was trained on a base with other weights than {base_dir} (weights "
                           f"fingerprint {recorded} when trained, {actual} now), though names and shapes may "
                           "match. Pass the exact base it was trained on, or train the adapter again on this one.")


def target_names(modules) -> list[str]:
    """The short module names (``q_proj``, ``down_proj``...) among full module paths."""
    return sorted({m.rsplit(".", 1)[-1] for m in modules})


def _safetensors_shapes(files) -> dict:
    from safetensors import safe_open

    shapes = {}
    for f in files:
        with safe_open(str(f), "pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def check_peft_adapter(adapter_path, base=None, flag: str | None = None) -> Path:
    """A PEFT LoRA adapter folder that can be loaded, and that fits ``base`` (a local model folder,
    optional): adapter_config.json is JSON, the weights are readable, and every adapted layer exists
    in the base with the adapter's sizes. Reads only file headers: no model is loaded. Returns the
    folder as a Path. ``flag`` (e.g. ``"--adapter_path"``) names where the folder came from in errors."""
    path = Path(adapter_path).expanduser()
    flag = flag or "adapter folder"
    if not path.is_dir():
        raise AdapterError(f"{flag} {adapter_path}: no such folder. Pass the folder `labkit finetune` "
                           "wrote (<output_path>/adapter).")
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterError(f"{flag} {adapter_path}: not a LoRA adapter folder (no adapter_config.json).")
    try:
        json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise AdapterError(f"{config_file}: corrupt adapter config ({e}). Train the adapter again.") from None
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterError(f"{flag} {adapter_path}: no adapter_model.safetensors; the adapter was not "
                           "saved completely. Train it again.")
    try:
        shapes = _safetensors_shapes([weights])
    except Exception as e:
        raise AdapterError(f"{weights}: the adapter weights are corrupt or incomplete ({str(e)[:120]}). "
                           "Train the adapter again.") from None
    if base and Path(base).is_dir() and list(Path(base).glob("*.safetensors")):
        _check_adapter_fits(path, shapes, Path(base))
        try:
            check_trained_on(path, base)
        except AdapterError as e:
            raise AdapterError(f"{flag} {adapter_path}: {e}") from None
    return path


def _check_adapter_fits(adapter: Path, shapes: dict, base: Path) -> None:
    base_shapes = _safetensors_shapes(sorted(base.glob("*.safetensors")))
    for key, shape in shapes.items():
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight", key)
        if not m:
            continue
        layer = m.group(1) + ".weight"
        if layer not in base_shapes:
            raise AdapterError(f"{adapter}: adapts {m.group(1)}, which the base model {base} "
                               "does not have: the adapter was trained for another base. Pass the base it "
                               "was trained on (see base_model_name_or_path in its adapter_config.json).")
        out_features, in_features = base_shapes[layer][:2]
        wanted = in_features if m.group(2) == "A" else out_features
        got = shape[1] if m.group(2) == "A" else shape[0]
        if got != wanted:
            raise AdapterError(f"{adapter}: {m.group(1)} has {got} features in the adapter but "
                               f"{wanted} in the base model {base}: the adapter was trained for another base "
                               "(another size). Pass the base it was trained on.")


# --------------------------------------------------------------------------- .onnx_adapter files


SUFFIX = ".onnx_adapter"   # an adapter file: the only other files a base's folder may hold
ADAPTER_FORMAT_VERSION = 1




def check_lora_modules(where: str, sizes: dict, base: dict) -> None:
    """``sizes``: module -> (in, out). Every module must be a LoRA input of the base, with its sizes."""
    lora = base["lora_modules"]
    extra = sorted(set(sizes) - set(lora))
    if extra:
        raise AdapterError(
            f"{where} adapts {len(extra)} modules this base has no LoRA inputs for, e.g. {extra[0]} "
            f"(targets {target_names(extra)}); the base was built for {base['target_modules']}. Rebuild the base with "
            f"build_base(..., target_modules={sorted(set(base['target_modules']) | set(target_names(extra)))}) "
            "or generate_adapter() with all your adapters, or retrain the adapter on the base's targets.")
    for module, (n_in, n_out) in sizes.items():
        want = tuple(lora[module])
        if (n_in, n_out) != want:
            raise AdapterError(f"{where}: {module} maps {n_in} -> {n_out} features but the base's layer maps "
                               f"{want[0]} -> {want[1]}: the adapter was made for a model of another size.")


def read_onnx_adapter(path) -> tuple[int, dict]:
    """``(model_version, {name: numpy array})`` of an ``.onnx_adapter`` file (copies: the
    arrays onnxruntime returns are views that live only as long as their OrtValues)."""
    import onnxruntime as ort

    fmt = ort.AdapterFormat.read_adapter(str(path))
    values = fmt.get_parameters()
    return fmt.get_model_version(), {k: v.numpy().copy() for k, v in values.items()}


def check_onnx_adapter(path, base) -> dict:
    """Check that an ``.onnx_adapter`` file fits a multi-adapter base, before loading it.

    ``base`` is the base folder or its manifest (:func:`read_base`). Refuses, with an
    :class:`AdapterError` naming what differs and what to do: a file onnxruntime cannot
    read; one converted for another base model; one with parameters the base has no input
    for (other target modules); wrong shapes or dtype; A and B of different ranks.
    Returns ``{"modules", "ranks", "MB"}``.
    """
    import numpy as np

    base = read_base(base) if not isinstance(base, dict) else base
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Adapter file not found: {path}. Write it with labkit.onnx.build.convert_adapter().")
    try:
        model_version, params = read_onnx_adapter(path)
    except Exception as e:  # onnxruntime raises RuntimeError/Fail for a truncated or foreign file
        raise AdapterError(f"{path} is not a readable .onnx_adapter file ({type(e).__name__}: {_reason(e)}). "
                           "It may be truncated or corrupt: convert the PEFT adapter again with convert_adapter().") from None
    where = f"Adapter file {path.name}"
    if model_version != base["base"]["id"]:
        raise AdapterError(f"{where} was converted for another base model (base id {model_version}), "
                           f"not for {base['base']['name']!r} (id {base['base']['id']}). Convert the PEFT adapter "
                           "again against this base with convert_adapter(), after checking it was trained on it.")
    shapes = {}
    for name, value in params.items():
        m = re.fullmatch(r"(.+)\.lora_([AB])\.weight", name)
        if m is None or value.ndim != 2:
            raise AdapterError(f"{where}: parameter {name!r} {value.shape} is not a LoRA A/B matrix of this format.")
        if value.dtype != np.float32:
            raise AdapterError(f"{where}: {name} is {value.dtype}; the base's LoRA inputs are float32. "
                               "Keep LoRA weights in float (quantising them loses the adapter's effect).")
        shapes.setdefault(m.group(1), {})[m.group(2)] = value.shape
    sizes, ranks = {}, set()
    for module, ab in shapes.items():
        if set(ab) != {"A", "B"}:
            raise AdapterError(f"{where}: {module} has only lora_{''.join(ab)}, not both lora_A and lora_B.")
        (n_in, rank_a), (rank_b, n_out) = ab["A"], ab["B"]
        if rank_a != rank_b:
            raise AdapterError(f"{where}: {module} has lora_A of rank {rank_a} but lora_B of rank {rank_b}.")
        sizes[module] = (n_in, n_out)
        ranks.add(rank_a)
    check_lora_modules(where, sizes, base)
    return {"modules": len(sizes), "ranks": sorted(ranks), "MB": path.stat().st_size / 1e6}


def lora_parameters(adapter: dict) -> dict:
    """The ``.onnx_adapter`` parameters of a PEFT adapter: ``A`` transposed to ``[in, r]`` and
    ``scaling·B`` transposed to ``[r, out]`` (the graph computes ``x @ A @ B``)."""
    import numpy as np

    params = {}
    for module, ab in adapter["modules"].items():
        params[f"{module}.lora_A.weight"] = np.ascontiguousarray(ab["A"].T, dtype=np.float32)
        params[f"{module}.lora_B.weight"] = np.ascontiguousarray((ab["B"] * ab["scaling"]).T, dtype=np.float32)
    return params


def find_adapter_files(folder) -> dict:
    """``{name: path}`` of the ``*.onnx_adapter`` files in ``folder``."""
    return {p.name[: -len(SUFFIX)]: p for p in sorted(Path(folder).glob(f"*{SUFFIX}"))}


# --------------------------------------------------------------------------- a multi-adapter base's manifest


BASE_MANIFEST = "labkit_adapters.json"


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
        hint = (" (it is an onnxruntime-genai folder without LoRA inputs, such as a merged export)"
                if (Path(base_dir) / "genai_config.json").is_file() else "")
        raise AdapterError(f"{base_dir} is not a multi-adapter base{hint}: build one with "
                           "labkit.onnx.build.build_base() or generate_adapter().")
    return manifest


def _reason(error: Exception, limit: int = 200) -> str:
    """The end of an error's message, where onnxruntime puts the reason (its start is a source-file
    location), at most ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else "..." + text[-limit:]
