"""Your own data as a task: what ``labkit finetune`` and ``labkit evaluate`` read, and what a
notebook can read the same way.

    task = tasks.load_task("tickets.csv", "{text} -> {label}")
    task.kind, task.labels                  # "classification", ["billing", "bug", ...]
    train_pairs = task.pairs(task.split("train", "train"))

:func:`load_task` reads a bundled dataset, a ``.jsonl``/``.json``/``.csv`` file, a folder with
``train.jsonl``, or a Hugging Face dataset id (where the hub is reachable); checks that the
template's fields are in every record; refuses labels that differ only by case or spaces (or
writes each one way); and decides what the task asks: classification (with its labels),
extraction, sql or free text. Every problem is a :class:`labkit.data.DataError` that names the
file, the line or the field and says what to do.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import sys
from pathlib import Path

from .data import DataError

DATA_BUILDERS = ("json", "csv")     # Olive's `--data_name json --data_files FILE` form


def note(message: str) -> None:
    """One line about a legal but costly setting (stderr, so stdout stays the result); under
    accelerate/torchrun only the main process (rank 0) says it."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"note: {message}", file=sys.stderr)


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


def data_source(name: str | None = None, files: str | None = None) -> str:
    """The data to use, from ``--data_name`` and/or ``--data_files`` (Olive accepts both
    ``--data_name tone`` and ``--data_name json --data_files file.jsonl``)."""
    if name and files and name not in DATA_BUILDERS:
        raise DataError(f"--data_name {name} and --data_files {files}: pass one of them (or Olive's "
                        "form, --data_name json --data_files FILE).")
    source = files or (None if name in DATA_BUILDERS else name)
    if not source:
        raise DataError("no data: pass --data_name with a bundled dataset (tone, recipes, sql), a "
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


def load_task(source: str, text_template: str | None = None, task_name: str | None = None,
              normalize_labels: bool = False) -> Task:
    """Read and check ``source`` (a bundled name, a file or folder, a hub dataset id) as a task,
    before any model is loaded. ``text_template`` (``"{text} -> {label}"``, the answer last) is
    needed for your own data; ``task_name`` ("classification", "generation") overrides what the
    data suggests; ``normalize_labels`` writes labels that differ only by case or spaces one way."""
    from . import data

    if (source not in data.bundled_names() and not Path(source).expanduser().exists()
            and looks_like_hub_id(source)):
        raw, info = hub_splits(source)
    else:
        raw, info = data.read_splits(source)
    if info.get("name"):  # a bundled task: extra template fields (the sql task's {schema})
        context = data.task_context(info["name"])
        raw = {s: [{**context, **r} for r in records] for s, records in raw.items()}
    template = unescape(text_template) if text_template else info.get("template")
    fields_in_data = sorted({k for records in raw.values() for r in records[:50] for k in r} - {"_source"})
    if not template:
        raise DataError(f"--text_template is required for your own data: write it with your fields, "
                        f"the answer last, e.g. \"{{{fields_in_data[0]}}} -> {{{fields_in_data[-1]}}}\". "
                        f"Fields in {source}: {fields_in_data}.")
    fields = data.template_fields(template)
    if not fields:
        raise DataError(f"--text_template {template!r} uses no {{field}}: name your data's fields in it, "
                        f"e.g. \"{{{fields_in_data[0]}}} -> {{{fields_in_data[-1]}}}\".")
    target = info["target_field"] if info.get("target_field") in fields else fields[-1]
    for records in raw.values():
        data.check_fields(records, fields)
    raw = _one_spelling_per_label(raw, target, source, task_name, normalize_labels)
    kind, labels = _task_kind(task_name, info, raw, target)
    return Task(source=source, raw=raw, template=template, target=target, kind=kind, labels=labels)


def _one_spelling_per_label(raw: dict, target: str, source: str, task_name: str | None,
                            normalize_labels: bool) -> dict:
    """Labels that differ only by case or surrounding whitespace ("joy", "Joy", "joy ") would
    train as different classes: an error naming them, or with --normalize_labels each written
    as its most frequent spelling."""
    from . import data

    every = [r for records in raw.values() for r in records]
    variants = data.label_variants(every, target)
    if not variants:
        return raw
    spellings = data.label_spellings(every, target)
    if not normalize_labels:
        if task_name not in ("classification", None) or \
                data.detect_labels(data.normalize_labels(every, target, spellings), target, max_labels=1000) is None:
            return raw  # free text, not labels
        shown = "; ".join(", ".join(f"{v!r} x{n}" for v, n in spelled.items()) for spelled in list(variants.values())[:4])
        raise DataError(f"{source}: {target} has labels that differ only by case or spaces: {shown}"
                        f"{' ...' if len(variants) > 4 else ''}. They would train as different classes. Fix the file, "
                        "or pass --normalize_labels true to write each as its most frequent spelling "
                        f"({', '.join(repr(spellings[k]) for k in list(variants)[:4])}).")
    note(f"--normalize_labels: {sum(len(v) for v in variants.values())} spellings of {len(variants)} label(s) in "
         f"{target} written one way: " + ", ".join(repr(spellings[k]) for k in variants) + ".")
    return {split: data.normalize_labels(records, target, spellings) for split, records in raw.items()}


def _task_kind(task_name: str | None, info: dict, raw: dict, target: str) -> tuple[str, list | None]:
    """classification (with its labels), extraction, sql or text. ``--task_name`` decides;
    else a bundled task's datasheet; else your data: few distinct short answers = labels."""
    from . import data

    all_records = [r for records in raw.values() for r in records]
    wanted = task_name
    if wanted == "classification":
        labels = data.detect_labels(all_records, target, max_labels=1000)
        if labels is None or len(labels) < 2:
            raise DataError(f"--task_name classification: the answer field {target!r} must hold at least "
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
