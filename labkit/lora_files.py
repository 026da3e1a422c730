"""A trained LoRA adapter on disk, read without loading any model: what it adapts, which base
it was trained on, and whether it fits a base.

* :func:`check_adapter`: a folder that loads (``adapter_config.json``, readable weights) and
  fits a base model folder: every adapted layer exists there with the adapter's sizes, and the
  base's weights are the ones it was trained on (:func:`check_trained_on`). ``labkit evaluate``,
  ``auto-opt`` and ``generate-adapter`` call it before loading anything.
* :func:`read_peft_adapter`: the LoRA matrices and scalings, for multi-adapter serving
  (:mod:`labkit.adapters`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path


class AdapterError(ValueError):
    """An adapter that does not fit the base model (or cannot be read); the message says why
    and what to do."""


def check_adapter_dir(adapter_dir) -> Path:
    """Return ``adapter_dir`` as a Path, or raise a clear error if it is not a PEFT adapter folder."""
    path = Path(adapter_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Adapter folder not found: {path}. Pass the folder you saved the LoRA adapter to.")
    if not (path / "adapter_config.json").is_file():
        raise ValueError(
            f"{path} is not a PEFT adapter folder (no adapter_config.json); save it with model.save_pretrained()."
        )
    return path


def adapter_name(adapter_dir) -> str:
    """The name an adapter gets by default: its folder's name, or the run's (the parent
    folder's) when the folder is called ``adapter`` (``labkit.train`` saves ``<run>/adapter``)."""
    path = Path(adapter_dir).expanduser().resolve()
    return path.parent.name if path.name == "adapter" else path.name


def read_peft_adapter(adapter_dir) -> dict:
    """Read a PEFT LoRA adapter folder without loading any model.

    Returns ``{"name", "dir", "config", "base_model", "modules"}`` where ``modules`` maps each
    adapted module (``"model.layers.0.self_attn.q_proj"``) to ``{"A": [r, in], "B": [out, r],
    "scaling": α/r}`` (numpy float32; ``α/√r`` with rsLoRA; ``alpha_pattern`` honoured).
    Refuses what a plain LoRA update cannot express (DoRA, LoRA bias, trained biases,
    ``modules_to_save``, trainable tokens) with an :class:`AdapterError`.
    """
    import numpy as np

    path = check_adapter_dir(adapter_dir)
    config = json.loads((path / "adapter_config.json").read_text())
    where = f"{path / 'adapter_config.json'}"
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{where}: peft_type is {config.get('peft_type')!r}; only LoRA adapters can be converted.")
    unsupported = {
        "use_dora": "DoRA rescales the merged weight, which two extra MatMuls cannot express; merge it with export_onnx()",
        "lora_bias": "a LoRA bias is not part of the adapter format; train without lora_bias or merge with export_onnx()",
        "modules_to_save": "the adapter replaces whole modules (modules_to_save); merge it with export_onnx() instead",
        "trainable_token_indices": "the adapter changes token embeddings; merge it with export_onnx() instead",
    }
    for key, why in unsupported.items():
        if config.get(key):
            raise AdapterError(f"{where}: {key}={config[key]!r} is not supported for multi-adapter serving: {why}.")
    if config.get("bias", "none") != "none":
        raise AdapterError(f"{where}: bias={config['bias']!r} trains the base model's biases; "
                           "use bias='none' or merge the adapter with export_onnx().")

    weights_file = path / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise AdapterError(f"{path} has no adapter_model.safetensors; re-save the adapter with "
                           "model.save_pretrained(path) (safe_serialization is the default).")
    from safetensors.numpy import load_file

    tensors = load_file(str(weights_file))
    modules, other = {}, []
    for key, value in tensors.items():
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight", key)
        if m is None:
            other.append(key)
            continue
        modules.setdefault(m.group(1), {})[m.group(2)] = value.astype(np.float32)
    if other:
        raise AdapterError(f"{weights_file} holds weights that are not LoRA A/B matrices: {other[:3]}... "
                           "Only plain LoRA adapters can be served as .onnx_adapter files.")
    alpha_pattern = config.get("alpha_pattern") or {}
    for module, ab in modules.items():
        if set(ab) != {"A", "B"}:
            raise AdapterError(f"{weights_file}: {module} has lora_{''.join(ab)} but not both A and B.")
        r = ab["A"].shape[0]
        if ab["B"].shape[1] != r:
            raise AdapterError(f"{weights_file}: {module} has lora_A of rank {r} but lora_B of rank {ab['B'].shape[1]}.")
        alpha = next((v for k, v in alpha_pattern.items() if re.match(rf"(.*\.)?({k})$", module)), config["lora_alpha"])
        ab["scaling"] = alpha / (r ** 0.5 if config.get("use_rslora") else r)
    return {"name": adapter_name(path), "dir": path, "config": config,
            "base_model": config.get("base_model_name_or_path"), "base_weights": trained_base_weights(path),
            "modules": modules}


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
    from .models import weights_fingerprint

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


def check_adapter(adapter_path, base: str | None = None, flag: str = "--adapter_path") -> Path:
    """A LoRA adapter folder that can be loaded, and that fits ``base`` (a local model folder):
    adapter_config.json is JSON, the weights are readable, and every adapted layer exists in
    the base with the adapter's sizes. Reads only file headers: no model is loaded."""
    path = Path(adapter_path).expanduser()
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
            raise AdapterError(f"--adapter_path {adapter}: adapts {m.group(1)}, which the base model {base} "
                               "does not have: the adapter was trained for another base. Pass the base it "
                               "was trained on (see base_model_name_or_path in its adapter_config.json).")
        out_features, in_features = base_shapes[layer][:2]
        wanted = in_features if m.group(2) == "A" else out_features
        got = shape[1] if m.group(2) == "A" else shape[0]
        if got != wanted:
            raise AdapterError(f"--adapter_path {adapter}: {m.group(1)} has {got} features in the adapter but "
                               f"{wanted} in the base model {base}: the adapter was trained for another base "
                               "(another size). Pass the base it was trained on.")
