"""The ``labkit`` command line. Flag names follow Microsoft Olive's CLI, so the commands from
the EdgeAI for Beginners fine-tuning module work with ``labkit`` in place of ``olive``:

    labkit doctor                                   # is this machine ready for the course?
    labkit prepare                                  # convert the offline base model once
    labkit finetune --data_name tone --text_template "{phrase} -> {tone}" --method lora --max_steps 50 --output_path models/ft
    labkit evaluate --adapter_path models/ft/adapter --data_name tone
    labkit auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter --precision int4 --output_path models/onnx
    labkit generate-adapter --base_model_path <base> --adapter_paths a/adapter,b/adapter --output_path models/multi
    labkit chat --model_path models/onnx
    labkit run --config run.yaml                    # the same settings as a YAML/JSON file

Every bad input ends in one message that names the file, line, field or flag and says what to
do, with exit code 2, and before anything is written: an output folder is either complete or
absent. ``finetune`` writes ``<output_path>/adapter`` (the LoRA adapter) and
``<output_path>/model`` (a small pointer to the base model, so that Olive's
``auto-opt --model_name_or_path <output_path>/model`` works without a 500 MB copy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

from .atomic import atomic_file

# Rough minutes per lesson in the quick profile on a 2-core laptop (measured; see README).
QUICK_MINUTES_PER_LESSON = 5
BASE_POINTER = "labkit_base.json"   # in <output_path>/model: which base an adapter belongs to
MIN_TRAIN_EXAMPLES = 8              # fewer: a model only memorises them
DEFAULT_EVAL_SAMPLES = 64           # validation examples without --eval_split: eval stays quick on a CPU
PROVIDERS = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
             "DmlExecutionProvider": "dml", "WebGpuExecutionProvider": "webgpu"}
DATA_BUILDERS = ("json", "csv")     # Olive's `--data_name json --data_files FILE` form


class CLIError(Exception):
    """A bad flag or input on the command line; the message names it. Exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`CLIError` (one message, exit code 2)."""

    def error(self, message):
        raise CLIError(f"{self.prog}: {message} (see `{self.prog} --help`)")


# --- argument types: a bad value names its flag -----------------------------------------------

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0 or str(text).strip() != str(value):
        raise argparse.ArgumentTypeError(f"must be a whole number greater than 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def learning_rate(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is far too large: use 1e-5..1e-4 for full "
                                         "fine-tuning, 1e-4..2e-3 for LoRA")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 up to (not including) 1, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def boolean(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def comma_list(text: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list, got {text!r}")
    return items


# --- small helpers -------------------------------------------------------------------------

def note(message: str) -> None:
    """One line about a legal but costly setting (stderr, so stdout stays the result); under
    accelerate/torchrun only the main process says it."""
    from .train import is_main_process

    if is_main_process():
        print(f"note: {message}", file=sys.stderr)


def set_log_level(level: int) -> None:
    """Olive's --log_level: 0 debug, 1 info, 2 warning, 3 error, 4 critical."""
    import logging

    py_level = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL][level]
    logging.basicConfig(level=py_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(py_level)
    try:
        import transformers

        transformers.utils.logging.set_verbosity(py_level)
    except ImportError:
        pass


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers (False at once with HF_HUB_OFFLINE=1)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def looks_like_hub_id(text: str) -> bool:
    return re.fullmatch(r"[\w.\-]+/[\w.\-]+", str(text)) is not None and not Path(text).exists()


def unescape(template: str) -> str:
    r"""``\n`` and ``\t`` typed in a shell mean a newline and a tab (as in Olive's templates)."""
    return template.replace("\\n", "\n").replace("\\t", "\t")


# --- models and adapters: checked before anything is loaded --------------------------------

def check_weights(folder: Path) -> None:
    """Every ``*.safetensors`` file in a model folder is readable (a truncated or corrupt
    file is named here, not reported later as a tokenizer problem)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files and not list(folder.glob("*.bin")):
        raise CLIError(f"{folder} has a config.json but no weights (*.safetensors or *.bin). "
                       "Save the model there with save_pretrained(), or point to another folder.")
    for f in files:
        try:
            with safe_open(str(f), "pt") as handle:
                handle.keys()
        except Exception as e:  # SafetensorError: truncated, not safetensors at all, ...
            raise CLIError(f"{f}: the weights file is corrupt or incomplete ({str(e)[:120]}). Copy or "
                           "download it again (for the course default: delete the folder and run "
                           "`labkit prepare`).") from None


def resolve_model(name_or_path, flag: str = "--model_name_or_path") -> str:
    """A model reference as a loadable path or hub id: the default base (converted once), a
    local folder (checked: config.json, readable weights), a finetune output's ``model``
    pointer, or a Hugging Face id (checked: in the local cache, or the hub reachable)."""
    from . import models

    if name_or_path is None:
        return models.base_model_path(None)
    path = Path(name_or_path).expanduser()
    if (path / BASE_POINTER).is_file():
        try:
            target = json.loads((path / BASE_POINTER).read_text())["base_model"]
        except (ValueError, KeyError, TypeError):
            raise CLIError(f"{path / BASE_POINTER}: corrupt base-model pointer (needs \"base_model\"). "
                           "Pass the base model's folder instead.") from None
        return resolve_model(target, flag)
    if path.exists():
        if not path.is_dir():
            raise CLIError(f"{flag} {name_or_path}: is a file, not a model folder.")
        if not (path / "config.json").is_file():
            what = (" It holds a LoRA adapter: pass it as --adapter_path and the base as "
                    f"{flag}." if (path / "adapter_config.json").is_file() else "")
            raise CLIError(f"{flag} {name_or_path}: not a model folder (no config.json).{what}")
        check_weights(path)
        return str(path)
    if looks_like_hub_id(str(name_or_path)):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(name_or_path), "config.json")
        if not isinstance(cached, str) and not hub_reachable():
            raise CLIError(f"{flag} {name_or_path}: not a local folder, and the Hugging Face hub is "
                           "not reachable (offline?) nor is the model in the local cache. Pass a local "
                           "model folder, or leave the flag out for the offline course default.")
        return str(name_or_path)
    raise CLIError(f"{flag} {name_or_path}: no such folder, and not a Hugging Face id ('org/name'). "
                   "Check the path, or leave the flag out for the offline course default.")


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
        raise CLIError(f"{flag} {adapter_path}: no such folder. Pass the folder `labkit finetune` "
                       "wrote (<output_path>/adapter).")
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise CLIError(f"{flag} {adapter_path}: not a LoRA adapter folder (no adapter_config.json).")
    try:
        json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CLIError(f"{config_file}: corrupt adapter config ({e}). Train the adapter again.") from None
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise CLIError(f"{flag} {adapter_path}: no adapter_model.safetensors; the adapter was not "
                       "saved completely. Train it again.")
    try:
        shapes = _safetensors_shapes([weights])
    except Exception as e:
        raise CLIError(f"{weights}: the adapter weights are corrupt or incomplete ({str(e)[:120]}). "
                       "Train the adapter again.") from None
    if base and Path(base).is_dir() and list(Path(base).glob("*.safetensors")):
        _check_adapter_fits(path, shapes, Path(base))
        from .adapters import AdapterError, check_trained_on

        try:
            check_trained_on(path, base)
        except AdapterError as e:
            raise CLIError(f"{flag} {adapter_path}: {e}") from None
    return path


def _check_adapter_fits(adapter: Path, shapes: dict, base: Path) -> None:
    base_shapes = _safetensors_shapes(sorted(base.glob("*.safetensors")))
    for key, shape in shapes.items():
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight", key)
        if not m:
            continue
        layer = m.group(1) + ".weight"
        if layer not in base_shapes:
            raise CLIError(f"--adapter_path {adapter}: adapts {m.group(1)}, which the base model {base} "
                           "does not have: the adapter was trained for another base. Pass the base it "
                           "was trained on (see base_model_name_or_path in its adapter_config.json).")
        out_features, in_features = base_shapes[layer][:2]
        wanted = in_features if m.group(2) == "A" else out_features
        got = shape[1] if m.group(2) == "A" else shape[0]
        if got != wanted:
            raise CLIError(f"--adapter_path {adapter}: {m.group(1)} has {got} features in the adapter but "
                           f"{wanted} in the base model {base}: the adapter was trained for another base "
                           "(another size). Pass the base it was trained on.")


# --- data: the task a command works on -------------------------------------------------------

@dataclasses.dataclass
class Task:
    """The data a command works on: the source's own splits, the template and what it asks."""

    source: str
    raw: dict                 # split -> records, as the source splits them (records keep _source)
    template: str
    target: str               # the template field the model learns to write
    kind: str                 # "classification" | "extraction" | "sql" | "text"
    labels: list | None = None
    made: dict | None = None  # raw completed to train/validation/test (80/10/10, stratified)

    def split(self, spec: str, flag: str) -> list[dict]:
        """Examples of a split spec. With a slice (``train[:4096]``) or ``+`` it reads the
        source's own splits, as ``datasets`` does; a bare name (``train``, ``test``) reads
        labkit's train/validation/test split, stratified by label for classification."""
        from . import data

        if "[" in spec or "+" in spec:
            return data.select_split(self.raw, spec, flag)
        if self.made is None:
            field = self.target if self.kind == "classification" else None
            self.made = data.make_splits(self.raw, field)
        return data.select_split(self.made, spec, flag)

    def pairs(self, records) -> list[dict]:
        from . import data

        return data.to_prompt_completion(records, self.template, self.target)


def data_source(args) -> str:
    """The data to use, from ``--data_name`` and/or ``--data_files`` (Olive accepts both
    ``--data_name tone`` and ``--data_name json --data_files file.jsonl``)."""
    name, files = getattr(args, "data_name", None), getattr(args, "data_files", None)
    if name and files and name not in DATA_BUILDERS:
        raise CLIError(f"--data_name {name} and --data_files {files}: pass one of them (or Olive's "
                       "form, --data_name json --data_files FILE).")
    source = files or (None if name in DATA_BUILDERS else name)
    if not source:
        raise CLIError("no data: pass --data_name with a bundled dataset (tone, recipes, sql), a "
                       ".jsonl/.json/.csv file, a folder with train.jsonl, or a Hugging Face dataset id.")
    return source


def hub_splits(dataset_id: str) -> tuple[dict, dict]:
    """A Hugging Face dataset's splits as records (only where the hub is reachable)."""
    from . import data

    if not hub_reachable():
        raise data.DataError(f"--data_name {dataset_id}: not a bundled dataset ({data.bundled_names()}) nor "
                             "a local file or folder, and the Hugging Face hub is not reachable (offline?). "
                             "Pass a bundled name or a local .jsonl/.json/.csv file.")
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as e:
        raise data.DataError(f"--data_name {dataset_id}: could not load it from the Hugging Face hub "
                             f"({type(e).__name__}: {str(e)[:160]}). Check the id.") from None
    return {split: [{**r, "_source": f"{dataset_id}/{split}: row {i}"} for i, r in enumerate(ds)]
            for split, ds in loaded.items()}, {}


def load_task(args) -> Task:
    """Read and check the data named by the flags, before any model is loaded."""
    from . import data

    source = data_source(args)
    if (source not in data.bundled_names() and not Path(source).expanduser().exists()
            and looks_like_hub_id(source)):
        raw, info = hub_splits(source)
    else:
        raw, info = data.read_splits(source)
    if info.get("name"):  # a bundled task: extra template fields (the sql task's {schema})
        context = data.task_context(info["name"])
        raw = {s: [{**context, **r} for r in records] for s, records in raw.items()}
    template = unescape(args.text_template) if args.text_template else info.get("template")
    fields_in_data = sorted({k for records in raw.values() for r in records[:50] for k in r} - {"_source"})
    if not template:
        raise CLIError(f"--text_template is required for your own data: write it with your fields, "
                       f"the answer last, e.g. \"{{{fields_in_data[0]}}} -> {{{fields_in_data[-1]}}}\". "
                       f"Fields in {source}: {fields_in_data}.")
    fields = data.template_fields(template)
    if not fields:
        raise CLIError(f"--text_template {template!r} uses no {{field}}: name your data's fields in it, "
                       f"e.g. \"{{{fields_in_data[0]}}} -> {{{fields_in_data[-1]}}}\".")
    target = info["target_field"] if info.get("target_field") in fields else fields[-1]
    for records in raw.values():
        data.check_fields(records, fields)
    raw = _one_spelling_per_label(args, raw, target, source)
    kind, labels = _task_kind(args, info, raw, target)
    return Task(source=source, raw=raw, template=template, target=target, kind=kind, labels=labels)


def _one_spelling_per_label(args, raw: dict, target: str, source: str) -> dict:
    """Labels that differ only by case or surrounding whitespace ("joy", "Joy", "joy ") would
    train as different classes: an error naming them, or with --normalize_labels each written
    as its most frequent spelling."""
    from . import data

    every = [r for records in raw.values() for r in records]
    variants = data.label_variants(every, target)
    if not variants:
        return raw
    spellings = data.label_spellings(every, target)
    if not getattr(args, "normalize_labels", False):
        if getattr(args, "task_name", None) not in ("classification", None) or \
                data.detect_labels(data.normalize_labels(every, target, spellings), target, max_labels=1000) is None:
            return raw  # free text, not labels
        shown = "; ".join(", ".join(f"{v!r} x{n}" for v, n in spelled.items()) for spelled in list(variants.values())[:4])
        raise CLIError(f"{source}: {target} has labels that differ only by case or spaces: {shown}"
                       f"{' ...' if len(variants) > 4 else ''}. They would train as different classes. Fix the file, "
                       "or pass --normalize_labels true to write each as its most frequent spelling "
                       f"({', '.join(repr(spellings[k]) for k in list(variants)[:4])}).")
    note(f"--normalize_labels: {sum(len(v) for v in variants.values())} spellings of {len(variants)} label(s) in "
         f"{target} written one way: " + ", ".join(repr(spellings[k]) for k in variants) + ".")
    return {split: data.normalize_labels(records, target, spellings) for split, records in raw.items()}


def _task_kind(args, info: dict, raw: dict, target: str) -> tuple[str, list | None]:
    """classification (with its labels), extraction, sql or text. ``--task_name`` decides;
    else a bundled task's datasheet; else your data: few distinct short answers = labels."""
    from . import data

    all_records = [r for records in raw.values() for r in records]
    wanted = getattr(args, "task_name", None)
    if wanted == "classification":
        labels = data.detect_labels(all_records, target, max_labels=1000)
        if labels is None or len(labels) < 2:
            raise CLIError(f"--task_name classification: the answer field {target!r} must hold at least "
                           "two distinct short labels, each used at least twice on average.")
        return "classification", labels
    if wanted in ("generation", "text-generation"):
        return "text", None
    if info.get("task"):
        return info["task"], info.get("labels") if info["task"] == "classification" else None
    labels = data.detect_labels(all_records, target)
    if labels and len(labels) >= 2:
        return "classification", labels
    return "text", None


def check_labels_seen(task: Task, train: list[dict], others: dict) -> None:
    """Labels of the evaluation examples all occur in training (classification only)."""
    from . import data

    if task.kind == "classification":
        data.check_unseen_labels({"train": train, **others}, task.target)


def label_scoring_setup(tokenizer, task: Task, prompts: list[str]) -> tuple[list[str], str]:
    """Prompts and prefix for label scoring. The text between prompt and label (``" "`` in
    ``"{phrase} -> {tone}"``, ``"\\n"`` after a chat template's assistant header) goes before
    the label when it merges with the label's first token (``" joy"``), else into the prompt
    (a newline is its own token, and the label's first token follows it)."""
    from . import data

    _, completion_t = data.split_template(task.template, task.target)
    prefix = completion_t.split("{" + task.target + "}", 1)[0]
    if prefix:
        alone = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        if all(tokenizer(prefix + label, add_special_tokens=False)["input_ids"][:len(alone)] == alone
               for label in task.labels):
            return [p + prefix for p in prompts], ""
    return prompts, prefix


# --- commands ------------------------------------------------------------------------------

def _doctor_peaks(report: dict) -> tuple[dict, str]:
    """This machine's matmul peaks for doctor (about two seconds on a CPU; none on a GPU) and
    the line that reports them."""
    from . import course, env

    if report["device"] == "cuda":
        return {}, "not measured: the lessons run on the GPU here, so the CPU lesson times do not apply"
    peaks = course.machine_peaks()
    native = "native" if env.native_bf16() else "emulated: no native bf16 on this CPU, a bf16 step is much slower"
    return peaks, (f"fp32 {peaks['fp32_gflops']:.0f} GFLOP/s, bf16 {peaks['bf16_gflops']:.1f} GFLOP/s ({native}); "
                   f"measured on {report['cpu_threads']} threads")


def print_prediction(rows: list[dict], slot: float, kind_here: str, peak_here: float | None) -> None:
    """Print :func:`labkit.course.predict_times`' rows as doctor's table: lesson, recorded minutes
    and on which machine, predicted minutes here, and a flag for a lesson over the ``slot``."""
    from .course import kind_machine, kind_profile

    def where(kind):
        return kind_machine(kind) if kind else "-"

    def minutes(value):
        return f"{value:.1f}" if value is not None else "-"

    peak = f"fp32 matmul peak {peak_here:.0f} GFLOP/s" if peak_here else "no CPU peak measured"
    print(f"Lesson times on this machine ({where(kind_here)}, {kind_profile(kind_here)} profile, {peak}), "
          f"against a {slot:g}-minute slot:")
    width = max([len(where(r["reference"])) for r in rows] + [len("recorded on")])
    print(f"  lesson  {'recorded':>8}  {'recorded on':<{width}}  {'predicted here':>14}  notes")
    notes = {r["note"] for r in rows}
    shared = notes.pop() if len(rows) > 1 and len(notes) == 1 else ""   # one note for all: said once, below
    for r in rows:
        flags = ([f"⚠ over the {slot:g}-min slot"] if r["over_slot"] else []) + \
                ([r["note"]] if r["note"] and not shared else [])
        print(f"  {r['lesson']:<6}  {minutes(r['recorded']):>8}  {where(r['reference']):<{width}}  "
              f"{minutes(r['minutes']):>14}  {'; '.join(flags)}".rstrip())
    known = [r for r in rows if r["minutes"] is not None]
    total = sum(r["minutes"] for r in known)
    missing = f"  ({len(rows) - len(known)} lessons not predicted)" if len(known) < len(rows) else ""
    print(f"  {'all':<6}  {minutes(sum(r['recorded'] for r in known)) if known else '-':>8}  {'':<{width}}  "
          f"{minutes(total) if known else '-':>14}{missing}")
    if shared:
        print(f"  every lesson: {shared}")
    over = [r["lesson"] for r in rows if r["over_slot"]]
    if over:
        print(f"  ⚠ {len(over)} lesson(s) predicted over the {slot:g}-minute slot: {', '.join(over)}. "
              "Plan more time for them, run them on a faster machine, or demo them.")
    if any(r["scaled"] for r in rows):
        print("  predicted = recorded minutes x (recorded machine's fp32 peak / this machine's): the lessons "
              "train in fp32, so a rough guide (other programs running, or a laptop on battery, make it slower).")
    print()


def _doctor(args) -> int:
    from . import course, env, models

    problems, rows = [], []

    def check(name, ok, detail, fix=""):
        rows.append((("ok" if ok else "FAIL"), name, detail))
        if not ok:
            problems.append(f"{name}: {fix or detail}")

    report = env.env_report()
    check("python", sys.version_info >= (3, 10), report["python"], "use Python 3.10 or newer")
    for pkg in ("torch", "transformers", "peft", "trl", "datasets"):
        check(pkg, report[pkg] != "not installed", report[pkg], f"pip install {pkg} (or `make lab`)")
    check("bitsandbytes (QLoRA)", report["bitsandbytes"] != "not installed", report["bitsandbytes"],
          "pip install bitsandbytes  (only lesson 03 needs it)")
    check("onnxruntime-genai (ONNX)", report["onnxruntime-genai"] != "not installed",
          report["onnxruntime-genai"], "pip install onnxruntime-genai onnx-ir onnxscript (lesson 06)")
    check("device", True, f"{report['device']} ({report['gpu']}), CPU {report['cpu']}, "
          f"{report['cpu_threads']} threads, train dtype {report['train_dtype']}, output layer on answer "
          f"tokens only: {report['device'] == 'cpu'}")
    check("memory", report["memory_available_gb"] >= 4,
          f"{report['memory_available_gb']} GB free of {report['memory_total_gb']} GB",
          "close other programs: the course needs about 4 GB free")
    home = models.labkit_home()
    home.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(home).free / 1e9
    check("disk", free_gb >= 5, f"{free_gb:.0f} GB free at {home}", "free 5 GB (model, adapters, exports)")
    try:
        gguf = models.find_gguf()
        check("base model package", True, f"{gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB)")
    except models.ModelNotFoundError as e:
        check("base model package", False, "missing", str(e))
    converted = models.converted_model_dir()
    if models.is_complete(converted):
        try:
            start = time.perf_counter()
            model, tok = models.load_base()
            ids = tok("The capital of France is", return_tensors="pt")
            model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
            check("base model loads", True, f"{converted} ({time.perf_counter() - start:.1f} s incl. 3 tokens)")
        except Exception as e:  # report, do not crash: this is a diagnosis tool
            check("base model loads", False, f"{type(e).__name__}: {e}",
                  f"delete {converted} and run `labkit prepare` to convert it again")
    else:
        check("base model converted", False, f"not yet at {converted}", "run `labkit prepare` (about a minute)")
    check("profile", True, f"{report['profile']} (set LABKIT_PROFILE=quick|full to choose)")
    peaks, peak_line = _doctor_peaks(report)
    check("matmul peak", True, peak_line)
    kind_here = course.machine_kind()
    predicted = course.predict_times(peaks.get("fp32_gflops"), kind_here=kind_here, slot=args.slot)
    known = [r["minutes"] for r in predicted if r["minutes"] is not None]
    if known:
        check("estimated course run time", True,
              f"about {sum(known):.0f} minutes for {len(known)} lessons ({report['profile']}; per lesson below)")
    else:
        minutes = 8 * QUICK_MINUTES_PER_LESSON if report["profile"] == "quick" else 8 * 3
        check("estimated course run time", True, f"about {minutes} minutes for all lessons ({report['profile']})")

    width = max(len(r[1]) for r in rows)
    for status, name, detail in rows:
        print(f"[{status:>4}] {name:<{width}}  {detail}")
    print()
    print_prediction(predicted, args.slot, kind_here, peaks.get("fp32_gflops"))
    if problems:
        print("NOT READY. Fix these, then run `labkit doctor` again:")
        for p in problems:
            print("  -", p)
        return 1
    print("READY: this machine can run the course.")
    return 0


def _prepare(args) -> int:
    path = resolve_model(args.model_name_or_path)
    print(f"Base model ready: {path}")
    return 0


def train_config(args):
    """Olive's finetune flags as a :class:`labkit.train.TrainConfig`."""
    from . import env, train

    values = dict(method=args.method, r=args.lora_r, lora_alpha=args.lora_alpha,
                  lora_dropout=args.lora_dropout, learning_rate=args.learning_rate,
                  lr_scheduler_type=args.lr_scheduler_type, warmup_steps=args.warmup_steps,
                  weight_decay=args.weight_decay, max_steps=args.max_steps,
                  batch_size=args.per_device_train_batch_size,
                  gradient_accumulation_steps=args.gradient_accumulation_steps,
                  group_by_length=args.group_by_length, max_length=args.max_seq_len, logging_steps=args.logging_steps,
                  eval_steps=args.eval_steps, save_steps=args.save_steps,
                  early_stopping_patience=args.early_stopping_patience, report_to=args.report_to,
                  logging_dir=args.logging_dir, seed=env.seed() if args.seed is None else args.seed,
                  target_modules=args.target_modules or "all-linear",
                  modules_to_save=args.modules_to_save or None,
                  eval_batch_size=args.per_device_eval_batch_size or None,
                  gradient_checkpointing=args.gradient_checkpointing,   # None: the hardware rule
                  dtype=None if args.torch_dtype == "auto" else args.torch_dtype)
    return train.TrainConfig(**values)


def check_hardware_flags(args) -> str:
    """Check --gradient_checkpointing / --torch_dtype against this machine, saying once what a
    choice that differs from labkit's hardware rule (``labkit.env``) costs; returns the device.
    The values themselves go into the TrainConfig (:func:`train_config`)."""
    from . import env

    dev = env.device()
    if dev == "cpu" and args.torch_dtype == "float16":
        raise CLIError("--torch_dtype float16: fp16 mixed precision needs a CUDA GPU; on a CPU use "
                       "float32 (the default here) or bfloat16.")
    if dev == "cpu" and args.gradient_checkpointing:
        note("--gradient_checkpointing true on a CPU: each step recomputes the forward pass "
             "(about a third more compute per step) to save memory, which a CPU rarely lacks.")
    if dev == "cpu" and args.torch_dtype == "bfloat16" and not env.native_bf16():
        note("--torch_dtype bfloat16 on a CPU without native bf16 (no avx512_bf16/amx_bf16): bf16 "
             "is emulated, several times slower than float32 (TRL's bf16 defaults measured ~15x "
             "slower per step on such a CPU).")
    elif dev == "cpu" and args.torch_dtype == "bfloat16":
        note("--torch_dtype bfloat16 on a CPU with native bf16: steps are ~1.4-1.6x faster than float32, "
             "but the tone adapter trained this way scored 0.7-5 points lower (bench/bf16_vs_fp32.py).")
    if dev == "cpu" and args.method == "qlora":
        note("--method qlora on a CPU: the 4-bit weights are unpacked at every step, so a step is "
             "slower than LoRA; QLoRA saves GPU memory, which is what it is for.")
    return dev


def _finetune(args) -> int:
    import torch

    from . import data, models, train

    cfg = train_config(args)  # flags first, then data, then the model: cheap checks first
    if cfg.early_stopping_patience and not args.eval_steps:
        raise CLIError("--early_stopping_patience needs --eval_steps: it watches the validation loss.")
    task = load_task(args)
    train_records = task.split(args.train_split or "train", "--train_split")[: args.max_samples]
    eval_cap = args.max_eval_samples or (None if args.eval_split else DEFAULT_EVAL_SAMPLES)
    eval_records = task.split(args.eval_split or "validation", "--eval_split")[:eval_cap]
    if len(train_records) < MIN_TRAIN_EXAMPLES:
        raise CLIError(f"{task.source}: {len(train_records)} training example(s) (--train_split "
                       f"{args.train_split or 'train'}); fine-tuning needs at least {MIN_TRAIN_EXAMPLES} "
                       "(a few hundred to learn a task well). Add examples.")
    check_labels_seen(task, train_records, {"validation": eval_records})
    overlap = len({id(r) for r in train_records} & {id(r) for r in eval_records})
    if overlap:
        note(f"--train_split and --eval_split share {overlap} examples: the validation loss will look "
             "better than it is.")
    base = resolve_model(args.model_name_or_path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=args.trust_remote_code)
    train_pairs, eval_pairs = task.pairs(train_records), task.pairs(eval_records)
    data.check_lengths(train_pairs, tokenizer, args.max_seq_len, train_records)
    data.check_lengths(eval_pairs, tokenizer, args.max_seq_len, eval_records)
    dev = check_hardware_flags(args)
    load_dtype = torch.float32 if dev == "cpu" else cfg.train_dtype(dev)  # CPU bf16 = autocast over fp32
    model, tok = models.load_base(base, quantization="nf4" if args.method == "qlora" else None,
                                  dtype=load_dtype, trust_remote_code=args.trust_remote_code)
    if train.is_main_process():
        print(f"{task.kind} task: {len(train_pairs)} training and {len(eval_pairs)} validation "
              f"examples from {task.source}" + (f", labels {task.labels}" if task.labels else ""))
    try:
        result = train.finetune(model, tok, train_pairs, eval_pairs, cfg, output_dir=args.output_path,
                                live_plot=False, overwrite=args.overwrite)
    except train.RunConflictError as e:
        raise CLIError(f"--output_path {e}") from None
    except KeyboardInterrupt:
        _say_what_was_kept(args, cfg)
        raise
    pointer = {"base_model": base, "adapter": str(result.adapter_dir),
               "note": "labkit writes this pointer instead of a copy of the base model"}
    if args.method == "full":
        pointer["base_model"] = str(result.adapter_dir)
    if not train.is_main_process():  # data parallel: the main process writes and reports
        return 0
    with atomic_file(Path(result.output_dir) / "model" / BASE_POINTER) as tmp:
        tmp.write_text(json.dumps(pointer, indent=2))
    print(f"Saved to {result.adapter_dir} after {result.steps} steps in {result.train_seconds:.0f} s "
          f"(base model pointer: {Path(result.output_dir) / 'model'})")
    return 0


def _say_what_was_kept(args, cfg) -> None:
    """After Ctrl-C during training: what is on disk, and the command that resumes."""
    import shlex

    from . import train

    if not train.is_main_process():
        return
    command = "labkit " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "the same labkit finetune command"
    checkpoint = train.last_checkpoint(Path(args.output_path)) if args.output_path else None
    if checkpoint:
        print(f"interrupted: kept {checkpoint} (step {checkpoint.rsplit('-', 1)[-1]}); run the same command again "
              f"to resume from it:\n  {command}", file=sys.stderr)
    else:
        where = "" if args.output_path else " (no --output_path: pass one to be able to resume)"
        print(f"interrupted before the first checkpoint (one is saved every {cfg.save_steps} steps): nothing kept"
              f"{where}. Run the command again to start over:\n  {command}", file=sys.stderr)


def _load_adapter(model, adapter: Path):
    """Wrap ``model`` with the PEFT adapter in ``adapter`` (checked beforehand)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter)).eval()
    except (RuntimeError, ValueError, KeyError) as e:  # size mismatch, missing target modules
        raise CLIError(f"--adapter_path {adapter}: does not fit this base model "
                       f"({type(e).__name__}: {str(e).strip().splitlines()[0][:160]}). Pass the base "
                       "it was trained on.") from None


def _evaluate(args) -> int:
    from . import evaluate, models

    task = load_task(args)
    records = task.split(args.split, "--split")[: args.max_samples]
    if task.kind == "classification":
        check_labels_seen(task, task.split("train", "--split"), {"test": records})
    base = resolve_model(args.model_name_or_path)
    adapter = check_adapter(args.adapter_path, base) if args.adapter_path else None
    model, tok = models.load_base(base, trust_remote_code=args.trust_remote_code)
    if adapter:
        model = _load_adapter(model, adapter)
    pairs = task.pairs(records)
    prompts = [p["prompt"] for p in pairs]
    if task.kind == "classification":
        golds = [str(r[task.target]).strip() for r in records]
        scored, prefix = label_scoring_setup(tok, task, prompts)
        try:
            preds = evaluate.classify(model, tok, scored, task.labels, prefix,
                                      batch_size=args.per_device_eval_batch_size)
        except ValueError as e:  # two labels start with the same token
            raise CLIError(f"{e} Or evaluate by generation: --task_name generation.") from None
        report = evaluate.classification_report(golds, preds, task.labels)
        print(confusion_table(report))
        out = {"task": "classification", "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
               "labels": task.labels, "confusion_matrix": report["confusion_matrix"].tolist()}
    else:
        outputs = evaluate.generate(model, tok, prompts, max_new_tokens=args.max_new_tokens)
        if task.kind == "extraction":
            golds = [json.loads(p["completion"]) for p in pairs]
            out = {k: v for k, v in evaluate.extraction_scores(outputs, golds).items() if k != "f1s"}
        elif task.kind == "sql":
            from .data import database_path

            golds = [p["completion"].strip() for p in pairs]
            out = {k: v for k, v in evaluate.sql_scores(outputs, golds, database_path()).items()
                   if k != "matches"}
        else:
            out = {"exact_match": sum(o.strip() == p["completion"].strip()
                                      for o, p in zip(outputs, pairs)) / len(pairs)}
        out = {"task": task.kind, **out}
    print(json.dumps({"n": len(pairs), **out}))  # one line: easy to read back (json.loads)
    return 0


def confusion_table(report: dict) -> str:
    """The confusion matrix as text: rows are the true labels, columns the predictions."""
    labels, cm = report["labels"], report["confusion_matrix"]
    width = max(6, *(len(label) for label in labels))
    lines = [f"accuracy {report['accuracy']:.3f}   macro-F1 {report['macro_f1']:.3f}", "",
             "true \\ predicted".ljust(width + 2) + " ".join(label[:width].rjust(width) for label in labels)]
    for label, row in zip(labels, cm):
        lines.append(label.ljust(width + 2) + " ".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines)


def _export(args) -> int:
    from . import export

    device = args.device
    if args.provider:
        provider_device = PROVIDERS[args.provider]
        if args.device and args.device != provider_device:
            raise CLIError(f"--device {args.device} and --provider {args.provider} disagree: "
                           f"{args.provider} runs on {provider_device}.")
        device = provider_device
    device = device or "cpu"
    if args.precision == "fp16" and device == "cpu":
        raise CLIError("--precision fp16 does not run on the CPU execution provider: use int4 or fp32.")
    base = resolve_model(args.model_name_or_path)
    if not Path(base).is_dir():
        raise CLIError(f"--model_name_or_path {args.model_name_or_path}: export needs a local model "
                       "folder (the ONNX builder reads its files); save the model with save_pretrained().")
    adapter = check_adapter(args.adapter_path, base) if args.adapter_path else None
    out = Path(args.output_path).expanduser() if args.output_path else None
    if out is not None and out.exists() and not out.is_dir():
        raise CLIError(f"--output_path {out}: is a file; pass a folder.")
    try:
        built = export.export_onnx(base, adapter_dir=adapter, precision=args.precision, device=device,
                                   out=out, overwrite=args.overwrite)
    except FileExistsError as e:
        raise CLIError(f"--output_path: {e}") from None
    print(f"ONNX model ready: {built} ({export.folder_size_mb(built):.0f} MB)")
    return 0


def check_onnx_folder(path) -> Path:
    """A folder built by ``labkit export`` (or Olive): it has a genai_config.json."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CLIError(f"--model_path {path}: no such folder. Build one with `labkit export`.")
    if not (folder / "genai_config.json").is_file():
        raise CLIError(f"--model_path {path}: not an ONNX export (no genai_config.json). Build one with "
                       "`labkit export --output_path FOLDER` and pass that folder.")
    return folder


def _chat(args) -> int:
    folder = check_onnx_folder(args.model_path)
    model, adapter = _chat_model(folder, args.adapter)
    print(f"Chatting with {folder}" + (f" (adapter {adapter!r})" if adapter else "") + ". Empty line to quit.")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        print("model> ", end="", flush=True)
        kwargs = {"adapter": adapter} if adapter is not None else {}
        for piece in model.stream([{"role": "user", "content": line}], max_new_tokens=args.max_new_tokens, **kwargs):
            print(piece, end="", flush=True)
        print()
    return 0


def _chat_model(folder: Path, wanted: str | None):
    """The model to chat with, and the adapter to use: a plain export, or a multi-adapter base
    with every .onnx_adapter loaded (and checked) now, so a damaged one is named before the chat."""
    from . import adapters
    from .export import GenAIModel

    try:
        adapters.read_base(folder)
        multi = True
    except adapters.AdapterError:
        multi = False
    try:
        model = adapters.MultiAdapterModel(folder) if multi else GenAIModel(folder)
    except adapters.AdapterError:
        raise  # a damaged or mismatched .onnx_adapter: its own message names the file
    except Exception as e:  # onnxruntime-genai: a broken or half-copied export
        raise CLIError(f"--model_path {folder}: onnxruntime-genai could not load it "
                       f"({type(e).__name__}: {str(e).strip()[:160]}). Build it again with `labkit export`.") from None
    if not multi:
        if wanted not in (None, "none"):
            raise CLIError(f"--adapter {wanted}: {folder} is a plain export (one model, no adapters); "
                           "--adapter is for a `labkit generate-adapter` folder.")
        return model, None
    names = sorted(model.adapters)
    if wanted is None:
        raise CLIError(f"--model_path {folder} serves {len(names)} adapters: {names}. Pass --adapter NAME "
                       "(or --adapter none for the base model alone).")
    if wanted == "none":
        return model, None
    if wanted not in names:
        raise CLIError(f"--adapter {wanted}: no such adapter in {folder}; it has {names} (or none).")
    return model, wanted


def _generate_adapter(args) -> int:
    base = resolve_model(args.base_model_path, "--base_model_path")
    if not Path(base).is_dir():
        raise CLIError(f"--base_model_path {args.base_model_path}: needs a local model folder.")
    adapters = [check_adapter(p, base, "--adapter_paths") for p in args.adapter_paths]
    from .adapters import generate_adapter

    try:
        out = generate_adapter(base, adapters, args.output_path, precision=args.precision, overwrite=args.overwrite)
    except FileExistsError as e:
        raise CLIError(f"--output_path: {e}") from None
    print(f"Multi-adapter model ready: {out} (adapters: "
          f"{', '.join(p.name for p in sorted(Path(out).glob('*.onnx_adapter')))})")
    return 0


# --- run: the same settings from a YAML or JSON file ---------------------------------------

def read_run_config(path: Path) -> dict:
    """A run file: YAML or JSON, one mapping of flag names (without ``--``) to values."""
    if not path.is_file():
        raise CLIError(f"--config {path}: file not found.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            config = json.loads(text)
        else:
            import yaml

            config = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}).") from None
    except Exception as e:  # yaml.YAMLError, with the line in problem_mark
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise CLIError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)}).") from None
    if not isinstance(config, dict):
        raise CLIError(f"{path}: expected a mapping of settings (model_name_or_path: ..., max_steps: ...).")
    return config


def config_to_argv(config: dict, parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """The run file's settings as command-line flags; an unknown key is an error naming it."""
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv = []
    for key, value in config.items():
        if key not in options:
            import difflib

            close = difflib.get_close_matches(str(key).replace("-", "_"), list(options), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CLIError(f"{path}: unknown setting {key!r}.{hint} Known settings: {sorted(options)}.")
        action = options[key]
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise CLIError(f"{path}: {key} must be true or false, got {value!r}.")
            argv += [flag] if value else []
        elif value is not None:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value).lower() \
                if isinstance(value, bool) else str(value)
            argv += [flag, text]
    return argv


def _run(args) -> int:
    path = Path(args.config).expanduser()
    config = read_run_config(path)
    command = config.pop("command", "finetune")
    sub = args.subparsers.get(command) if command in RUNNABLE else None
    if sub is None:
        raise CLIError(f"{path}: command {command!r} cannot be run from a file; use one of {list(RUNNABLE)}.")
    argv = config_to_argv(config, sub, path)
    try:
        run_args = sub.parse_args(argv)
    except CLIError as e:
        raise CLIError(f"{path}: {str(e).split(': ', 1)[-1]}") from None
    print(f"labkit {command} " + " ".join(argv))
    return run_args.func(run_args)


RUNNABLE = ("finetune", "evaluate", "auto-opt", "export", "generate-adapter")


# --- the parser ----------------------------------------------------------------------------

def _common(s, model=True):
    if model:
        s.add_argument("--model_name_or_path", "-m", default=None,
                       help="a local model folder, a finetune output's model/ pointer, or a Hugging Face "
                            "id; default: SmolLM2-135M-Instruct (offline)")
    s.add_argument("--trust_remote_code", action="store_true",
                   help="allow a hub model's own Python code (only for models you trust)")
    s.add_argument("--log_level", type=int, choices=range(5), default=3,
                   help="0 debug, 1 info, 2 warning, 3 error (default), 4 critical")


def _data_flags(s):
    s.add_argument("--data_name", default=None,
                   help="a bundled dataset (tone, recipes, sql), a .jsonl/.json/.csv file, a folder with "
                        "train.jsonl, or a Hugging Face dataset id (where the hub is reachable)")
    s.add_argument("--data_files", "-d", default=None, help="a data file (Olive: --data_name json --data_files FILE)")
    s.add_argument("--text_template", default=None,
                   help='e.g. "{phrase} -> {tone}": your fields, the answer last; \\n is a newline '
                        "(default for a bundled dataset: its own template)")
    s.add_argument("--task_name", choices=["classification", "generation", "text-generation"], default=None,
                   help="classification: label scoring, accuracy, macro-F1, stratified split (default: "
                        "detected, few distinct short answers = classification)")
    s.add_argument("--normalize_labels", type=boolean, default=False,
                   help="true: labels that differ only by case or spaces (joy, Joy, 'joy ') become one label, "
                        "written as the most frequent spelling (default: such labels are an error)")


EXAMPLES = {
    "finetune": """examples:
  labkit finetune --data_name tone --text_template "{phrase} -> {tone}" --method lora --max_steps 50 --output_path models/ft
  labkit finetune --data_name my.csv --text_template "{text} -> {label}" --max_steps 100 --output_path adapters/mine
  labkit finetune --data_name json --data_files my.jsonl --train_split "train[:4096]" --eval_split "train[4096:4224]" \\
      --text_template "### Question: {prompt} \\n### Answer: {response}" --max_steps 150 --output_path adapters/x

Split specs use the datasets slice syntax: with a slice (train[:4096]) they read the data's own
splits; a bare name (train, validation) reads labkit's 80/10/10 split (stratified by label).
Writes <output_path>/adapter and <output_path>/model (a pointer to the base, for auto-opt).""",
    "evaluate": """examples:
  labkit evaluate --adapter_path models/ft/adapter --data_name tone
  labkit evaluate --adapter_path adapters/mine/adapter --data_name my.csv --text_template "{text} -> {label}"
A classification task is scored by label scoring: accuracy, macro-F1 and the confusion matrix.""",
    "export": """examples:
  labkit export --adapter_path models/ft/adapter --precision int4 --output_path models/onnx
  labkit auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter --device cpu \\
      --provider CPUExecutionProvider --use_ort_genai --precision int4 --output_path models/onnx""",
    "chat": "examples:\n  labkit chat --model_path models/onnx\n  labkit chat --model_path models/multi-adapter --adapter tone",
    "generate-adapter": """example:
  labkit generate-adapter --base_model_path models/tone/model --adapter_paths models/tone/adapter,models/recipes/adapter \\
      --output_path models/multi-adapter""",
    "run": """example run.yaml (keys are finetune's flag names; `command:` picks another command):
  model_name_or_path: null          # the offline default
  data_name: tone
  text_template: "{phrase} -> {tone}"
  method: lora
  lora_r: 16
  lora_alpha: 32
  target_modules: [q_proj, v_proj]
  max_steps: 50
  learning_rate: 0.001
  output_path: models/ft
then: labkit run --config run.yaml""",
    "doctor": """examples:
  labkit doctor
  labkit doctor --slot 20        # the workshop gives each lesson 20 minutes
Predicts each lesson's minutes here from the times recorded by
`python -m labkit.course notebooks --save-times`, scaled by this machine's fp32 matmul peak,
and flags a lesson predicted over the slot.""",
    "prepare": "example:\n  labkit prepare",
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="labkit", description="Fine-Tuning Lab command line (Olive's flag names).",
                epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    subparsers = {}

    def command(name, help, func, **kw):
        s = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[kw.pop("example", name)],
                           formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        s.set_defaults(func=func, subparsers=subparsers)
        subparsers[name] = s
        return s

    s = command("doctor", "check this machine for the course and predict each lesson's minutes", _doctor)
    s.add_argument("--slot", type=positive_float, default=15.0, metavar="MINUTES",
                   help="the minutes the workshop gives each lesson; a lesson predicted over it is flagged (default 15)")

    s = command("prepare", "convert the offline base model once", _prepare)
    s.add_argument("--model_name_or_path", "-m", default=None)

    s = command("finetune", "fine-tune with LoRA, QLoRA or all weights", _finetune)
    _common(s)
    _data_flags(s)
    s.add_argument("--train_split", default=None, help='default "train"; e.g. "train[:4096]"')
    s.add_argument("--eval_split", default=None, help='default "validation"; e.g. "train[4096:4224]"')
    s.add_argument("--method", choices=["lora", "qlora", "full"], default="lora")
    s.add_argument("--lora_r", type=positive_int, default=16)
    s.add_argument("--lora_alpha", type=positive_int, default=32)
    s.add_argument("--lora_dropout", type=fraction, default=0.0)
    s.add_argument("--target_modules", type=comma_list, default=None, help="e.g. q_proj,v_proj (default: all linear layers)")
    s.add_argument("--modules_to_save", type=comma_list, default=None,
                   help="layers trained in full and saved next to the adapter, e.g. lm_head")
    s.add_argument("--max_steps", type=positive_int, default=50)
    s.add_argument("--learning_rate", type=learning_rate, default=1e-3)
    s.add_argument("--lr_scheduler_type", choices=["cosine", "linear", "constant", "constant_with_warmup"], default="cosine")
    s.add_argument("--warmup_steps", type=non_negative_int, default=5)
    s.add_argument("--weight_decay", type=non_negative_float, default=0.0)
    s.add_argument("--per_device_train_batch_size", type=positive_int, default=8)
    s.add_argument("--per_device_eval_batch_size", type=positive_int, default=None,
                   help="validation batch size (default: max(train batch, 16))")
    s.add_argument("--gradient_accumulation_steps", type=positive_int, default=1)
    s.add_argument("--gradient_checkpointing", type=boolean, default=None,
                   help="true/false (default: off on CPU, on on GPU)")
    s.add_argument("--group_by_length", type=boolean, default=True,
                   help="true/false: batch examples of similar length (less padding); false: random batches")
    s.add_argument("--torch_dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="auto: float32 on CPU, bf16/fp16 on GPU")
    s.add_argument("--max_seq_len", type=positive_int, default=256, help="longer examples are an error, never cut")
    s.add_argument("--max_samples", type=positive_int, default=None, help="use at most this many training examples")
    s.add_argument("--max_eval_samples", type=positive_int, default=None,
                   help=f"validation examples (default: all of --eval_split, else {DEFAULT_EVAL_SAMPLES})")
    s.add_argument("--logging_steps", type=positive_int, default=5)
    s.add_argument("--eval_steps", type=positive_int, default=10)
    s.add_argument("--save_steps", type=positive_int, default=25)
    s.add_argument("--early_stopping_patience", type=positive_int, default=None)
    s.add_argument("--report_to", choices=["none", "tensorboard"], default="none")
    s.add_argument("--logging_dir", default=None, help="TensorBoard logs (default: <output_path>/runs)")
    s.add_argument("--seed", type=non_negative_int, default=None, help="default: $LABKIT_SEED, else 0")
    s.add_argument("--output_path", "-o", default=None)
    s.add_argument("--overwrite", action="store_true",
                   help="replace a different run already in --output_path (default: refuse and say what it holds)")

    s = command("evaluate", "score a model (and adapter) on a dataset split", _evaluate)
    _common(s)
    _data_flags(s)
    s.add_argument("--adapter_path", default=None)
    s.add_argument("--split", default="test", help='"test" (default), "validation", or a slice like "train[4096:4224]"')
    s.add_argument("--max_samples", type=positive_int, default=None)
    s.add_argument("--max_new_tokens", type=positive_int, default=64)
    s.add_argument("--per_device_eval_batch_size", type=positive_int, default=16)

    for name, help in (("export", "export to ONNX for onnxruntime-genai"),
                       ("auto-opt", "export to ONNX for onnxruntime-genai (Olive's name for export)")):
        s = command(name, help, _export, example="export")
        _common(s)
        s.add_argument("--adapter_path", default=None, help="a LoRA adapter to merge before export")
        s.add_argument("--precision", choices=["fp32", "fp16", "int4"], default="int4")
        s.add_argument("--device", choices=["cpu", "cuda", "dml", "webgpu"], default=None)
        s.add_argument("--provider", choices=sorted(PROVIDERS), default=None)
        s.add_argument("--use_ort_genai", action="store_true",
                       help="accepted for Olive: labkit always builds for onnxruntime-genai")
        s.add_argument("--output_path", "-o", default=None)
        s.add_argument("--overwrite", action="store_true",
                       help="replace an export of another model, adapter or precision in --output_path")

    s = command("generate-adapter", "one ONNX base + one .onnx_adapter per LoRA adapter", _generate_adapter)
    _common(s, model=False)
    s.add_argument("--base_model_path", required=True, help="the model the adapters were trained on")
    s.add_argument("--adapter_paths", type=comma_list, required=True, help="comma-separated adapter folders")
    s.add_argument("--output_path", "-o", required=True)
    s.add_argument("--precision", choices=["fp32", "int4"], default="fp32")
    s.add_argument("--overwrite", action="store_true",
                   help="replace a multi-adapter base of another model or precision in --output_path")

    s = command("chat", "chat with an exported ONNX model (streaming)", _chat)
    s.add_argument("--model_path", required=True)
    s.add_argument("--adapter", default=None,
                   help="with a generate-adapter folder: the adapter to chat with (none: the base model)")
    s.add_argument("--max_new_tokens", type=positive_int, default=128)
    s.add_argument("--log_level", type=int, choices=range(5), default=3)

    s = command("run", "run finetune (or another command) with settings from a YAML/JSON file", _run)
    s.add_argument("--config", required=True, help="run.yaml or run.json")
    return p


def main(argv=None) -> int:
    from .adapters import AdapterError
    from .data import DataError
    from .models import ModelNotFoundError

    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "log_level", None) is not None:
            set_log_level(args.log_level)
        return args.func(args)
    except (CLIError, DataError, ModelNotFoundError, AdapterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
