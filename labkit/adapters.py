"""One ONNX base model, many LoRA adapters, switched per request.

``labkit.export`` merges *one* adapter into the weights. Here the base is exported *once*
with every LoRA update ``x·Aᵀ·(α/r)Bᵀ`` left as two small MatMuls whose weights are graph
**inputs**; each task's adapter becomes a small ``.onnx_adapter`` file (onnxruntime's
adapter format) that onnxruntime-genai feeds to those inputs when the adapter is active.

* :func:`build_base` (in :mod:`labkit.lora_base`) runs the onnxruntime-genai model builder
  with a LoRA template covering the target modules, keeps the LoRA MatMuls in float (also in
  an int4 build, whose base MatMuls are 4-bit) and turns their weights into graph inputs
  whose default is an empty (rank-0) matrix: with no adapter active the model computes the
  plain base.
* :func:`convert_adapter` writes a PEFT adapter folder as an ``.onnx_adapter`` file.
* :func:`check_adapter_file` refuses, at load time, a file the base cannot run: converted for
  another base model, adapting modules the base has no LoRA inputs for, wrong shapes, or not
  readable at all. (onnxruntime-genai itself loads such files and fails only when generating.)
* :class:`MultiAdapterModel` is :class:`labkit.runtime.GenAIModel` with adapters: pick one
  per request (``adapter="tone"``), or set a default with :meth:`~MultiAdapterModel.set_adapter`.
* :func:`generate_adapter` does it all, like ``olive generate-adapter``.

The rank is a symbolic dimension of the LoRA inputs, so adapters of any rank fit one base,
and an adapter may adapt a *subset* of the base's target modules (the rest keep the empty
default and add nothing).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from .atomic import atomic_file
from .export import check_model_dir
from .lora_base import (  # noqa: F401  (build_base, read_base... are this module's API too)
    ALL_LINEAR,
    BASE_MANIFEST,
    BASE_PRECISIONS,
    SUFFIX,
    base_identity,
    build_base,
    default_base_dir,
    read_base,
    read_base_manifest,
    short_model_name,
)
from .lora_files import (  # noqa: F401  (also this module's API, as before)
    AdapterError,
    adapter_name,
    check_trained_on,
    read_peft_adapter,
    target_names,
)
from .runtime import GenAIModel

ADAPTER_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- compatibility


def check_peft_adapter(adapter: dict, base: dict) -> None:
    """Refuse a PEFT adapter (from :func:`read_peft_adapter`) the base cannot serve:
    trained on another base model, adapting modules the base has no LoRA inputs for, or
    with other layer sizes."""
    where = f"Adapter {adapter['name']!r} ({adapter['dir']})"
    trained_on = adapter["base_model"]
    if trained_on and short_model_name(trained_on) != base["base"]["name"]:
        raise AdapterError(f"{where} was trained on {trained_on!r}, but this base is {base['base']['name']!r} "
                           f"({base['model_dir']}). A LoRA update only means something on the weights it was trained "
                           "with: build the base from the adapter's base model, or retrain the adapter on this one.")
    _check_modules(where, {m: (ab["A"].shape[1], ab["B"].shape[0]) for m, ab in adapter["modules"].items()}, base)
    check_trained_on(adapter["dir"], base["model_dir"])


def _check_modules(where: str, sizes: dict, base: dict) -> None:
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


def read_adapter_file(path) -> tuple[int, dict]:
    """``(model_version, {name: numpy array})`` of an ``.onnx_adapter`` file (copies: the
    arrays onnxruntime returns are views that live only as long as their OrtValues)."""
    import onnxruntime as ort

    fmt = ort.AdapterFormat.read_adapter(str(path))
    values = fmt.get_parameters()
    return fmt.get_model_version(), {k: v.numpy().copy() for k, v in values.items()}


def check_adapter_file(path, base) -> dict:
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
        raise FileNotFoundError(f"Adapter file not found: {path}. Write it with labkit.adapters.convert_adapter().")
    try:
        model_version, params = read_adapter_file(path)
    except Exception as e:  # onnxruntime raises RuntimeError/Fail for a truncated or foreign file
        raise AdapterError(f"{path} is not a readable .onnx_adapter file ({type(e).__name__}: {str(e)[:160]}). "
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
    _check_modules(where, sizes, base)
    return {"modules": len(sizes), "ranks": sorted(ranks), "MB": path.stat().st_size / 1e6}


# --------------------------------------------------------------------------- conversion


def lora_parameters(adapter: dict) -> dict:
    """The ``.onnx_adapter`` parameters of a PEFT adapter: ``A`` transposed to ``[in, r]`` and
    ``scaling·B`` transposed to ``[r, out]`` (the graph computes ``x @ A @ B``)."""
    import numpy as np

    params = {}
    for module, ab in adapter["modules"].items():
        params[f"{module}.lora_A.weight"] = np.ascontiguousarray(ab["A"].T, dtype=np.float32)
        params[f"{module}.lora_B.weight"] = np.ascontiguousarray((ab["B"] * ab["scaling"]).T, dtype=np.float32)
    return params


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
    check_peft_adapter(adapter, base)
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
        check_peft_adapter(adapter, base)
    for name, adapter in adapters.items():
        convert_adapter(adapter["dir"], out, Path(out) / f"{name}{SUFFIX}")
    return Path(out)


def find_adapter_files(folder) -> dict:
    """``{name: path}`` of the ``*.onnx_adapter`` files in ``folder``."""
    return {p.name[: -len(SUFFIX)]: p for p in sorted(Path(folder).glob(f"*{SUFFIX}"))}


# --------------------------------------------------------------------------- runtime

_ACTIVE = object()  # "the adapter set with set_adapter()"


class MultiAdapterModel(GenAIModel):
    """A multi-adapter base with its adapters: chat, stream and score with any of them per request.

    >>> m = MultiAdapterModel(generate_adapter(base, [tone_dir, recipes_dir], out))
    >>> m.adapters                      # loaded from out/*.onnx_adapter, each checked first
    >>> m.generate(prompt, adapter="tone")     # this request only
    >>> m.set_adapter("recipes"); m.generate(prompt)   # the default for later requests
    >>> m.generate(prompt, adapter=None)       # the plain base model

    Every method of :class:`labkit.export.GenAIModel` that runs the model (``generate``,
    ``stream``, ``greedy_ids``, ``logits``) takes ``adapter=``. An adapter is applied to a
    request when its generator is created, so requests with different adapters can be
    interleaved (e.g. two streams).
    """

    def __init__(self, path, adapters=None):
        self.base = read_base(path)
        super().__init__(path)
        self.og_adapters = self._og.Adapters(self.model)
        self.adapters: dict[str, Path] = {}
        self.active: str | None = None
        files = find_adapter_files(self.path) if adapters is None else adapters
        for name, file in files.items():
            self.load_adapter(name, file)

    def __repr__(self):
        return f"MultiAdapterModel({str(self.path)!r}, adapters={list(self.adapters)})"

    def load_adapter(self, name: str, file) -> dict:
        """Check ``file`` against this base (:func:`check_adapter_file`), then load it as ``name``."""
        info = check_adapter_file(file, self.base)
        if name in self.adapters:
            self.unload_adapter(name)
        self.og_adapters.load(str(file), name)
        self.adapters[name] = Path(file)
        return info

    def unload_adapter(self, name: str) -> None:
        """Free an adapter's memory; later requests cannot use it."""
        self._known(name)
        self.og_adapters.unload(name)
        del self.adapters[name]
        if self.active == name:
            self.active = None

    def set_adapter(self, name: str | None) -> None:
        """The adapter requests use when they do not pass ``adapter=`` (None: the base model)."""
        self.active = self._known(name)

    def _known(self, name):
        if name is not None and name not in self.adapters:
            raise KeyError(f"No adapter {name!r} loaded; loaded: {list(self.adapters)} (load_adapter() adds one).")
        return name

    def _resolve(self, adapter) -> str | None:
        """The adapter a request asked for: ``adapter=`` if given, else the one set with set_adapter()."""
        return self._known(self.active if adapter is _ACTIVE else adapter)

    def _before_prompt(self, generator, adapter) -> None:
        """The request's adapter, passed down with the request, is set on its own generator
        before the prompt is processed."""
        if adapter is not None:
            generator.set_active_adapter(self.og_adapters, adapter)

    def stream(self, prompt_or_messages, *args, adapter=_ACTIVE, **kwargs):
        """GenAIModel.stream with ``adapter=`` (a loaded adapter's name, or None for the base).
        The adapter is chosen when the call is made, not when the stream is first read."""
        return super().stream(prompt_or_messages, *args, adapter=self._resolve(adapter), **kwargs)

    def generate(self, prompt_or_messages, *args, adapter=_ACTIVE, **kwargs) -> str:
        """GenAIModel.generate with ``adapter=``."""
        return "".join(self.stream(prompt_or_messages, *args, adapter=adapter, **kwargs))

    def greedy_ids(self, input_ids, max_new_tokens=16, adapter=_ACTIVE) -> list[int]:
        """GenAIModel.greedy_ids with ``adapter=``."""
        return super().greedy_ids(input_ids, max_new_tokens, adapter=self._resolve(adapter))

    def logits(self, prompt, all_positions=False, adapter=_ACTIVE):
        """GenAIModel.logits with ``adapter=``."""
        return super().logits(prompt, all_positions, adapter=self._resolve(adapter))

    def classify(self, prompts_ids, labels, label_ids, adapter=_ACTIVE) -> list[str]:
        """Label scoring: for each prompt (a list of token ids), the label whose first token
        (``label_ids``, see ``labkit.evaluate.label_token_ids``) has the highest logit at the
        last position. One forward pass per prompt, no generation."""
        import numpy as np

        return [labels[int(np.argmax(self.logits(ids, adapter=adapter)[label_ids]))] for ids in prompts_ids]


# --------------------------------------------------------------------------- measured in lesson 07


def adapter_switch_us(model: MultiAdapterModel, names, repeats: int = 200, max_length: int = 64) -> list[float]:
    """What switching adapters costs per request, in microseconds: for each of ``repeats`` fresh
    requests (an onnxruntime-genai generator whose KV cache holds ``max_length`` tokens) the time
    of ``set_active_adapter`` alone, cycling through ``names`` (adapters loaded in ``model``).
    Returns one time per request (read the median: the first ones include a warm-up)."""
    og = model._og
    names = [model._known(name) for name in names]
    times = []
    for i in range(repeats):
        params = og.GeneratorParams(model.model)
        params.set_search_options(max_length=max_length)
        generator = og.Generator(model.model, params)
        start = time.perf_counter()
        generator.set_active_adapter(model.og_adapters, names[i % len(names)])
        times.append(1e6 * (time.perf_counter() - start))
        del generator
    return times


def request_without_checks(model: GenAIModel, adapter_file, prompt_ids) -> str | None:
    """What happens when labkit's load-time checks are skipped: ``adapter_file`` is loaded with
    onnxruntime-genai's own ``Adapters.load`` (which only parses it) and one request runs with it
    on ``model``. Returns None if the request ran, or onnxruntime-genai's error message if it
    failed (for an adapter the base has no inputs for: ``Invalid input name ...``)."""
    og = model._og
    raw = og.Adapters(model.model)
    raw.load(str(adapter_file), "unchecked")
    params = og.GeneratorParams(model.model)
    params.set_search_options(max_length=len(prompt_ids) + 1)
    generator = og.Generator(model.model, params)
    generator.set_active_adapter(raw, "unchecked")
    try:
        generator.append_tokens([int(t) for t in prompt_ids])
        return None
    except Exception as e:  # onnxruntime-genai raises a plain RuntimeError
        return str(e)
