"""Data for fine-tuning: load it, check it, split it, and turn it into prompt/completion pairs.

The bundled tasks live in ``labkit/datasets/<name>/`` (train/validation/test JSONL plus a
datasheet); your own data can be JSON, JSONL or CSV. Every problem found in a file is
reported with the file, the line and the field, and what to do about it.

Templates follow Microsoft Olive's ``--text_template`` style: ``"{phrase} -> {tone}"``.
The part before the target field is the *prompt*, the rest the *completion*; training
computes the loss on the completion only.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
import re
import socket
import string
import sys
from collections import Counter, defaultdict
from pathlib import Path

DATASETS_DIR = Path(__file__).parent / "datasets"
SPLITS = ("train", "validation", "test")
_FIELD = re.compile(r"\{(\w+)\}")


class DataError(ValueError):
    """A problem in a data file; the message names the file, line and field, and the fix."""


# --- reading files ----------------------------------------------------------------------

def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the path (relative paths start at "
                        f"{Path.cwd()}).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start}). Re-save the file as UTF-8.") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty. Add examples, one JSON object per line.")
    return text


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read a .jsonl, .json or .csv file into a list of dicts.

    Each record remembers where it came from in ``_source`` (``"file:line"``) so that later
    checks can point at it; :func:`strip_source` removes it.
    """
    path = Path(path)
    text = _read_text(path)
    suffix = path.suffix.lower()
    records: list[dict] = []
    if suffix == ".jsonl":
        # split on "\n" only: str.splitlines() also breaks on U+2028, U+0085 etc., which are
        # legal unescaped inside JSON strings (and which write_jsonl writes as they are)
        for i, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {i}: not valid JSON ({e.msg} at column {e.colno}). "
                                "Each line must be one JSON object; fix or delete this line.") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}, line {i}: expected a JSON object like "
                                f'{{"field": "value"}}, got {type(obj).__name__}.')
            records.append({**obj, "_source": f"{path}:{i}"})
    elif suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}).") from None
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise DataError(f"{path}: expected a JSON list of objects "
                            '([{"field": "value"}, ...]).')
        records = [{**r, "_source": f"{path}:item {i}"} for i, r in enumerate(obj, start=1)]
    elif suffix == ".csv":
        # newline="" keeps line breaks inside quoted values; reader.line_num is the file line
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            i = reader.line_num
            if None in row:
                raise DataError(f"{path}, line {i}: more values than header columns "
                                f"({reader.fieldnames}). Quote values that contain commas.")
            records.append({**row, "_source": f"{path}:{i}"})
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .csv.")
    if not records:
        raise DataError(f"{path}: no examples found. Add at least one example.")
    return records


def strip_source(records: list[dict]) -> list[dict]:
    """The records without the ``_source`` bookkeeping field."""
    return [{k: v for k, v in r.items() if k != "_source"} for r in records]


def write_jsonl(records, path: str | os.PathLike) -> Path:
    """Write records as JSONL atomically (a temporary file renamed into place)."""
    from labkit.cache import atomic_file

    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


# --- checking -----------------------------------------------------------------------------

def _where(record: dict) -> str:
    return record.get("_source", "an example")


def check_fields(records: list[dict], fields) -> None:
    """Every record has every field in ``fields`` with a non-empty value."""
    for r in records:
        for f in fields:
            if f not in r:
                have = ", ".join(k for k in r if k != "_source")
                raise DataError(f"{_where(r)}: field {f!r} is missing. Fields that exist: {have}. "
                                "Rename the field in the data or in the template.")
            if r[f] is None or (isinstance(r[f], str) and not r[f].strip()):
                raise DataError(f"{_where(r)}: field {f!r} is empty. Fill it in or drop the example.")


def check_labels(records: list[dict], field: str, labels) -> None:
    """Every record's ``field`` is one of the declared ``labels``."""
    allowed = set(labels)
    for r in records:
        if r.get(field) not in allowed:
            raise DataError(f"{_where(r)}: {field}={r.get(field)!r} is not one of the declared labels "
                            f"{sorted(allowed)}. Fix the label or add it to the label set.")


def normalize_text(text: str) -> str:
    """Lowercase, drop punctuation and collapse whitespace: two texts that are equal after
    this are near-duplicates (used by the leakage check)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def find_leaks(train: list[dict], test: list[dict], field: str) -> list[str]:
    """Texts of ``test[field]`` whose normalised form also appears in ``train``."""
    seen = {normalize_text(str(r[field])) for r in train}
    return [str(r[field]) for r in test if normalize_text(str(r[field])) in seen]


# --- splitting ----------------------------------------------------------------------------

def _held_out_counts(sizes: list[int], fractions) -> list[tuple[int, int]]:
    """(validation, test) counts per stratum: each stratum's share, rounded. When that
    rounding leaves a held-out split empty (a small labelled set: 5 labels x 4 examples
    rounds 0.4 to 0 five times), the shares are rounded cumulatively instead, so the totals
    are the overall share. Every stratum keeps at least one training example."""
    counts = [(round(n * fractions[1]), round(n * fractions[2])) for n in sizes]
    total = sum(sizes)
    if ((fractions[1] and not sum(c[0] for c in counts) and round(total * fractions[1]))
            or (fractions[2] and not sum(c[1] for c in counts) and round(total * fractions[2]))):
        counts, seen, before = [], 0, (0, 0)
        for n in sizes:
            seen += n
            after = (round(seen * fractions[1]), round(seen * fractions[2]))
            counts.append((after[0] - before[0], after[1] - before[1]))
            before = after
    capped = []
    for n, (n_val, n_test) in zip(sizes, counts):
        n_test = min(n_test, max(n - 1, 0))
        capped.append((min(n_val, max(n - 1 - n_test, 0)), n_test))
    return capped


def _text_key(record: dict, label_field: str | None) -> str:
    """What makes two examples copies of each other: every field but the label, normalised."""
    return normalize_text(" ".join(str(v) for k, v in sorted(record.items()) if k not in ("_source", label_field)))


def label_variants(records: list[dict], field: str) -> dict[str, dict[str, int]]:
    """Labels written more than one way, differing only by case or surrounding whitespace
    (``"joy"``, ``"Joy"``, ``"joy "``): ``{label: {spelling: count}}``. Left alone they would
    train as different classes."""
    spellings: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        value = r.get(field)
        if isinstance(value, str):
            spellings[value.strip().casefold()][value] += 1
    return {key: dict(c.most_common()) for key, c in spellings.items() if len(c) > 1}


def label_spellings(records: list[dict], field: str) -> dict[str, str]:
    """For each label (case and surrounding whitespace ignored), its most frequent spelling, stripped."""
    counts = Counter(r.get(field) for r in records if isinstance(r.get(field), str))
    best: dict[str, str] = {}
    for value, _ in counts.most_common():
        best.setdefault(value.strip().casefold(), value.strip())
    return best


def normalize_labels(records: list[dict], field: str, spellings: dict[str, str] | None = None) -> list[dict]:
    """The records with every label written one way (:func:`label_spellings` of ``records``
    unless ``spellings`` is given, e.g. computed over all splits at once)."""
    spellings = spellings or label_spellings(records, field)
    return [{**r, field: spellings[r[field].strip().casefold()]} if isinstance(r.get(field), str) else r
            for r in records]


def stratified_split(records: list[dict], label_field: str | None = None,
                     fractions=(0.8, 0.1, 0.1), seed: int = 0,
                     group_field: str | None = None) -> dict[str, list[dict]]:
    """Split into train/validation/test. With ``label_field``, each label is split in the
    same proportions (stratified), so every split has the same label balance.

    Near-duplicates (equal after :func:`normalize_text` of the whole record) always land in
    the same split, so the test split never holds a copy of a training example. With
    ``group_field``, all records with the same (normalised) value of that field land in one
    split: e.g. ``"query"`` for text-to-SQL, so no test answer was seen in training.
    """
    if abs(sum(fractions) - 1) > 1e-6 or len(fractions) != 3:
        raise ValueError(f"fractions must be 3 numbers that sum to 1, got {fractions}")
    groups: dict[str, list[dict]] = defaultdict(list)  # near-duplicate groups
    for r in records:
        key = normalize_text(str(r[group_field])) if group_field else _text_key(r, label_field)
        groups[key].append(r)
    strata: dict[object, list[list[dict]]] = defaultdict(list)
    for group in groups.values():
        strata[group[0].get(label_field) if label_field else None].append(group)
    rng = random.Random(seed)
    out = {s: [] for s in SPLITS}
    keys = sorted(strata, key=str)
    counts = _held_out_counts([len(strata[k]) for k in keys], fractions)
    for key, (n_val, n_test) in zip(keys, counts):
        items = strata[key]
        rng.shuffle(items)
        cut = {"test": items[:n_test], "validation": items[n_test:n_test + n_val],
               "train": items[n_test + n_val:]}
        for split, gs in cut.items():
            out[split].extend(r for g in gs for r in g)
    for split in SPLITS:
        rng.shuffle(out[split])
    return out


def _label_groups(records: list[dict], label_field: str) -> list[list[dict]]:
    """``records`` grouped by their ``label_field``, in the order of the labels' text (their order within a group kept)."""
    by_label: dict[object, list[dict]] = defaultdict(list)
    for r in records:
        by_label[r.get(label_field)].append(r)
    return [by_label[label] for label in sorted(by_label, key=str)]


def stratified_sample(records: list[dict], label_field: str, n: int, seed: int = 0) -> list[dict]:
    """About ``n`` of ``records``, shuffled, each label keeping its share (rounded; a label too rare to
    round to one example still gets one). All of ``records`` when it holds ``n`` or fewer."""
    if len(records) <= n:
        return list(records)
    rng = random.Random(seed)
    picked = []
    for group in _label_groups(records, label_field):
        picked += rng.sample(group, max(1, round(n * len(group) / len(records))))
    rng.shuffle(picked)
    return picked


def balance_labels(records: list[dict], label_field: str, power: float = 0.5, seed: int = 0) -> list[dict]:
    """Training records re-drawn so that rare labels are seen more often: each label's count ``c``
    becomes ``M · (c / M) ** power`` (``M``: the most frequent label's count), its examples repeated
    in turn. ``power`` 1 keeps the data as it is, 0 gives every label ``M`` examples; 0.5 (the
    square root) lifts a 12% label to 21% of a 60/28/12 set without repeating it 5 times over."""
    groups = _label_groups(records, label_field)
    most = max(len(group) for group in groups)
    rng = random.Random(seed)
    out = []
    for group in groups:
        target = round(most * (len(group) / most) ** power)
        whole, rest = divmod(target, len(group))
        out += group * whole + rng.sample(group, rest)
    rng.shuffle(out)
    return out


# --- datasets -----------------------------------------------------------------------------

def bundled_names() -> list[str]:
    """Names of the datasets that ship with labkit."""
    return sorted(p.name for p in DATASETS_DIR.iterdir() if (p / "meta.json").is_file())


def dataset_info(name: str) -> dict:
    """The metadata of a bundled dataset: task type, fields, labels, default template."""
    path = DATASETS_DIR / name / "meta.json"
    if not path.is_file():
        raise DataError(f"No bundled dataset {name!r}. Bundled: {bundled_names()}.")
    return json.loads(path.read_text())


MIN_EXAMPLES = 10            # a file split 80/10/10 needs this many for one validation and one test example
MAX_LABELS = 20              # a target with at most this many distinct answers can be a label set
SPLIT_FILE_SUFFIXES = (".jsonl", ".json", ".csv")


def _folder_splits(folder: Path) -> dict[str, list[dict]]:
    """The records of a folder holding ``train.jsonl`` (and optionally ``validation``/``test``;
    .jsonl, .json or .csv)."""
    found = {}
    for split in SPLITS:
        files = [folder / f"{split}{suffix}" for suffix in SPLIT_FILE_SUFFIXES
                 if (folder / f"{split}{suffix}").is_file()]
        if len(files) > 1:
            raise DataError(f"{folder}: both {files[0].name} and {files[1].name} exist; keep one.")
        if files:
            found[split] = read_records(files[0])
    if "train" not in found:
        raise DataError(f"{folder}: a data folder needs a train.jsonl (or train.json / train.csv), "
                        "optionally with validation.* and test.*; none found.")
    return found


def read_splits(name_or_path) -> tuple[dict[str, list[dict]], dict]:
    """The records of a data source *as the source splits them*, and its metadata.

    - a bundled name (``"tone"``): its train/validation/test files and its ``meta.json``;
    - one .jsonl/.json/.csv file: everything is ``"train"`` (as ``datasets``' json and csv
      loaders do); :func:`make_splits` carves validation and test out of it;
    - a folder with ``train.jsonl`` (and maybe ``validation.jsonl``, ``test.jsonl``);
    - a dict ``{"train": path, "validation": path, "test": path}``.

    Records keep their ``_source`` (file:line) so that every later check can point at it.
    """
    if isinstance(name_or_path, str) and (DATASETS_DIR / name_or_path / "meta.json").is_file():
        info = dataset_info(name_or_path)
        return {s: read_records(DATASETS_DIR / name_or_path / f"{s}.jsonl") for s in SPLITS}, info
    if isinstance(name_or_path, dict):
        unknown = set(name_or_path) - set(SPLITS)
        if unknown:
            raise DataError(f"Unknown split names {sorted(unknown)}; use {list(SPLITS)}.")
        if "train" not in name_or_path:
            raise DataError("data_files needs at least a 'train' file.")
        return {s: read_records(p) for s, p in name_or_path.items()}, {}
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _folder_splits(path), {}
    if not path.exists() and not path.suffix:
        raise DataError(f"{name_or_path!r} is neither a bundled dataset ({bundled_names()}) "
                        "nor a file or folder. Pass a bundled name or a path to .jsonl/.json/.csv.")
    return {"train": read_records(path)}, {}


def make_splits(splits: dict[str, list[dict]], label_field: str | None = None,
                fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[dict]]:
    """Complete a source's splits to train/validation/test: a missing validation or test
    split is carved out of train (stratified by ``label_field``); the share of a split you
    gave stays in train. A single file needs at least :data:`MIN_EXAMPLES` examples."""
    missing = [s for s in SPLITS if s not in splits]
    if not missing:
        return dict(splits)
    train = splits["train"]
    if len(missing) == 2 and len(train) < MIN_EXAMPLES:
        where = train[0]["_source"].rsplit(":", 1)[0] if train and "_source" in train[0] else "the data"
        raise DataError(f"{where}: only {len(train)} example(s); labkit holds out 10% for validation and "
                        f"10% for test, so it needs at least {MIN_EXAMPLES} (a few hundred to learn a task "
                        "well). Add examples.")
    carve = [fractions[i] if SPLITS[i] in missing else 0.0 for i in (1, 2)]
    carved = stratified_split(train, label_field, (1 - sum(carve), *carve), seed)
    empty = [s for s in missing if not carved[s]]
    if empty and len(train) >= MIN_EXAMPLES:
        distinct = len({_text_key(r, label_field) for r in train})
        where = train[0]["_source"].rsplit(":", 1)[0] if "_source" in train[0] else "the data"
        raise DataError(f"{where}: the {len(train)} examples hold only {distinct} distinct text(s) (equal after "
                        "lower-casing and removing punctuation). Copies of one text always stay in one split, so "
                        f"that no {empty[0]} example is a copy of a training one; that leaves the {' and '.join(empty)} "
                        f"split empty. Remove the duplicates and add distinct examples (at least {MIN_EXAMPLES}).")
    out = {**splits, "train": carved["train"]}
    for s in missing:
        out[s] = carved[s]
    return out


def select_split(splits: dict[str, list[dict]], spec: str, flag: str = "split") -> list[dict]:
    """Examples chosen by a ``datasets`` split spec: ``"train"``, ``"train[:4096]"``,
    ``"train[4096:4224]"``, ``"train[:10%]"``, ``"train[:100]+validation"``."""
    from datasets import ReadInstruction

    try:
        instructions = ReadInstruction.from_spec(spec)
    except (ValueError, AssertionError) as e:
        raise DataError(f"{flag} {spec!r} is not a split spec ({e}). Use the datasets slice syntax, "
                        "e.g. 'train', 'train[:4096]', 'train[4096:4224]', 'train[:10%]'.") from None
    unknown = [n for n in _spec_names(spec) if n not in splits]
    if unknown:
        raise DataError(f"{flag} {spec!r}: the data has no split {unknown[0]!r}; it has "
                        f"{sorted(splits)}.")
    sizes = {name: len(records) for name, records in splits.items()}
    chosen = []
    for part in instructions.to_absolute(sizes):
        chosen.extend(splits[part.splitname][part.from_:part.to])
    if not chosen:
        raise DataError(f"{flag} {spec!r} selects no examples: the split sizes are {sizes}. "
                        "Pick a range inside them.")
    return chosen


def _spec_names(spec: str) -> list[str]:
    return [part.split("[", 1)[0].strip() for part in spec.split("+")]


def detect_labels(records: list[dict], field: str, max_labels: int = MAX_LABELS) -> list[str] | None:
    """The label set if ``field`` looks like a classification target, else None.

    A classification target has few distinct answers (at most ``max_labels``), each a short
    string (at most three words), and on average at least two examples per answer. Labels
    come back in order of first appearance."""
    values = [r.get(field) for r in records]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        return None
    distinct = list(dict.fromkeys(v.strip() for v in values))
    if len(distinct) > max_labels or len(distinct) * 2 > len(values):
        return None
    if any(len(v.split()) > 3 for v in distinct):
        return None
    return distinct


def check_unseen_labels(splits: dict[str, list[dict]], field: str) -> None:
    """Every label in validation/test also occurs in train: a model cannot learn a label it
    never saw, and label scoring would never predict it."""
    seen = {str(r.get(field)).strip() for r in splits.get("train", [])}
    for split in ("validation", "test"):
        for r in splits.get(split, []):
            if str(r.get(field)).strip() not in seen:
                raise DataError(f"{_where(r)}: {field}={r.get(field)!r} (in the {split} split) never "
                                f"occurs in the training split, whose labels are {sorted(seen)}. Add "
                                "training examples with this label, or drop this example.")


def load_dataset(name_or_path, *, label_field: str | None = None, labels=None, fields=None,
                 fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """Load a bundled dataset by name, or your own file(s), as a ``datasets.DatasetDict``
    with ``train``, ``validation`` and ``test`` splits.

    - ``"tone"``, ``"recipes"``, ``"sql"``: the bundled tasks (fixed splits).
    - a path to one .jsonl/.json/.csv file: split 80/10/10, stratified by ``label_field``
      (if given), so every split has the same label balance.
    - a folder with ``train.jsonl`` (+ ``validation``/``test``), or a dict
      ``{"train": path, "validation": path, "test": path}``: your own splits; a missing
      validation or test split is carved out of train.

    ``fields`` (required fields) and ``labels`` (allowed values of ``label_field``) are
    checked on every record, with errors that name the file and line. With ``label_field``,
    a label that occurs in validation or test but never in train is an error.
    Use :func:`detect_labels` to see whether a field of your data looks like labels.
    """
    from datasets import Dataset, DatasetDict

    raw, info = read_splits(name_or_path)
    label_field = label_field or info.get("label_field")
    labels = labels or info.get("labels")
    fields = fields or info.get("fields")
    splits = make_splits(raw, label_field, fractions, seed)
    for records in splits.values():
        if fields:
            check_fields(records, fields)
        if labels and label_field:
            check_labels(records, label_field, labels)
    if label_field:
        check_fields(splits["train"], [label_field])
        check_unseen_labels(splits, label_field)
    return DatasetDict({s: Dataset.from_list(strip_source(splits[s])) for s in SPLITS})


# --- templates ----------------------------------------------------------------------------

def template_fields(template: str) -> list[str]:
    """The ``{field}`` names used by a text template, in order."""
    return _FIELD.findall(template)


def _value(example: dict, field: str, template: str) -> str:
    if field not in example:
        have = ", ".join(k for k in example if k != "_source")
        raise DataError(f"{_where(example)}: the template {template!r} uses {{{field}}}, which this "
                        f"example does not have. Fields that exist: {have}.")
    v = example[field]
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def render(template: str, example: dict) -> str:
    """Fill a ``{field}`` template from an example. Non-string values (lists, numbers)
    are written as JSON, so a list of ingredients becomes ``["eggs", "milk"]``."""
    return _FIELD.sub(lambda m: _value(example, m.group(1), template), template)


def split_template(template: str, target_field: str) -> tuple[str, str]:
    """Split ``"{phrase} -> {tone}"`` into a prompt template ``"{phrase} ->"`` and a
    completion template ``" {tone}"``.

    The space before the target moves into the completion: BPE tokenizers attach a leading
    space to the next word (``" joy"`` is one token), so the answer starts with that token.
    """
    marker = "{" + target_field + "}"
    if marker not in template:
        raise DataError(f"The template {template!r} has no {marker}: the target field must appear "
                        f"in it. Fields in the template: {template_fields(template)}.")
    prompt, rest = template.split(marker, 1)
    stripped = prompt.rstrip()
    return stripped, prompt[len(stripped):] + marker + rest


def to_prompt_completion(records, template: str, target_field: str) -> list[dict]:
    """Turn examples into ``{"prompt", "completion"}`` pairs with a text template."""
    prompt_t, completion_t = split_template(template, target_field)
    return [{"prompt": render(prompt_t, r), "completion": render(completion_t, r)} for r in records]


def to_chat(records, user_template: str, target_field: str, system: str | None = None) -> list[dict]:
    """Turn examples into conversational prompt/completion pairs (lists of chat messages);
    the trainer applies the model's chat template and trains on the assistant turn only."""
    out = []
    for r in records:
        prompt = ([{"role": "system", "content": system}] if system else [])
        prompt.append({"role": "user", "content": render(user_template, r)})
        answer = _value(r, target_field, user_template)
        out.append({"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]})
    return out


def pair_length(tokenizer, pair: dict) -> int:
    """Tokens of one prompt/completion pair as training sees it: a text pair with the tokenizer's
    special tokens and the end-of-sequence token; a conversational pair (lists of messages, see
    :func:`to_chat`) through the model's chat template."""
    if isinstance(pair["prompt"], list):
        out = tokenizer.apply_chat_template(pair["prompt"] + pair["completion"], tokenize=True)
        return len(out["input_ids"] if hasattr(out, "keys") else out)
    return len(tokenizer(pair["prompt"] + pair["completion"])["input_ids"]) + 1


def check_lengths(pairs: list[dict], tokenizer, max_length: int, records: list[dict] | None = None) -> dict:
    """Token lengths of prompt+completion (with the special tokens training adds: the
    tokenizer's own and the end-of-sequence token); raises a :class:`DataError` if any pair
    is longer than ``max_length``: truncation would cut off the answer the model is meant to
    learn. ``records`` (the examples the pairs came from) lets the message name file and line."""
    if not pairs:
        raise DataError("No examples to check: the split is empty.")
    lengths = [pair_length(tokenizer, p) for p in pairs]
    too_long = [i for i, n in enumerate(lengths) if n > max_length]
    if too_long:
        first = too_long[0]
        where = _where(records[first]) if records else f"example #{first}"
        raise DataError(f"{where}: {lengths[first]} tokens, longer than max_length={max_length} "
                        f"({len(too_long)} of {len(pairs)} examples are; the longest has {max(lengths)} "
                        "tokens). Training would cut off their answers. Raise max_length "
                        f"(--max_seq_len {max(lengths)}) or shorten or drop those examples.")
    return {"max": max(lengths), "mean": sum(lengths) / len(lengths)}


def task_context(name: str) -> dict:
    """Extra template fields a bundled task needs besides each example's own fields
    (for ``sql``: ``{schema}``, the CREATE TABLE statements of its database)."""
    info = dataset_info(name)
    context = {}
    if info.get("schema_file"):
        context["schema"] = (DATASETS_DIR / name / info["schema_file"]).read_text().strip()
    return context


def task_pairs(name: str, records, template: str | None = None) -> list[dict]:
    """Prompt/completion pairs for a bundled task, with its default template (or yours)."""
    info = dataset_info(name)
    context = task_context(name)
    return to_prompt_completion([{**context, **r} for r in records], template or info["template"],
                                info["target_field"])


def database_path(name: str = "sql") -> Path:
    """The SQLite database that ships with a bundled SQL task."""
    return DATASETS_DIR / name / dataset_info(name)["database"]


# --- your own data as a task -------------------------------------------------------------
# Your own data as a task: what ``labkit finetune`` and ``labkit evaluate`` read, and what a
# notebook can read the same way.
#
#     task = tasks.load_task("tickets.csv", "{text} -> {label}")
#     task.kind, task.labels                  # "classification", ["billing", "bug", ...]
#     train_pairs = task.pairs(task.split("train", "train"))
#
# :func:`load_task` reads a bundled dataset, a ``.jsonl``/``.json``/``.csv`` file, a folder with
# ``train.jsonl``, or a Hugging Face dataset id (where the hub is reachable); checks that the
# template's fields are in every record; refuses labels that differ only by case or spaces (or
# writes each one way); and decides what the task asks: classification (with its labels),
# extraction, sql or free text. Every problem is a :class:`labkit.data.DataError` that names the
# file, the line or the field and says what to do.
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
    """Whether ``text`` reads like a hub id (``owner/name``) and is not a local path."""
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

        if "[" in spec or "+" in spec:
            return select_split(self.raw, spec, flag)
        if self.made is None:
            field = self.target if self.kind == "classification" else None
            self.made = make_splits(self.raw, field)
        return select_split(self.made, spec, flag)

    def pairs(self, records) -> list[dict]:

        return to_prompt_completion(records, self.template, self.target)


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

    if not hub_reachable():
        raise DataError(f"--data_name {dataset_id}: not a bundled dataset ({bundled_names()}) nor "
                             "a local file or folder, and the Hugging Face hub is not reachable (offline?). "
                             "Pass a bundled name or a local .jsonl/.json/.csv file.")
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as e:
        raise DataError(f"--data_name {dataset_id}: could not load it from the Hugging Face hub "
                             f"({type(e).__name__}: {str(e)[:160]}). Check the id.") from None
    return {split: [{**r, "_source": f"{dataset_id}/{split}: row {i}"} for i, r in enumerate(ds)]
            for split, ds in loaded.items()}, {}


def load_task(source: str, text_template: str | None = None, task_name: str | None = None,
              normalize_labels: bool = False) -> Task:
    """Read and check ``source`` (a bundled name, a file or folder, a hub dataset id) as a task,
    before any model is loaded. ``text_template`` (``"{text} -> {label}"``, the answer last) is
    needed for your own data; ``task_name`` ("classification", "generation") overrides what the
    data suggests; ``normalize_labels`` writes labels that differ only by case or spaces one way."""

    if (source not in bundled_names() and not Path(source).expanduser().exists()
            and looks_like_hub_id(source)):
        raw, info = hub_splits(source)
    else:
        raw, info = read_splits(source)
    if info.get("name"):  # a bundled task: extra template fields (the sql task's {schema})
        context = task_context(info["name"])
        raw = {s: [{**context, **r} for r in records] for s, records in raw.items()}
    template = unescape(text_template) if text_template else info.get("template")
    fields_in_data = sorted({k for records in raw.values() for r in records[:50] for k in r} - {"_source"})
    if not template:
        raise DataError(f"--text_template is required for your own data: write it with your fields, "
                        f"the answer last, e.g. \"{{{fields_in_data[0]}}} -> {{{fields_in_data[-1]}}}\". "
                        f"Fields in {source}: {fields_in_data}.")
    fields = template_fields(template)
    if not fields:
        raise DataError(f"--text_template {template!r} uses no {{field}}: name your data's fields in it, "
                        f"e.g. \"{{{fields_in_data[0]}}} -> {{{fields_in_data[-1]}}}\".")
    target = info["target_field"] if info.get("target_field") in fields else fields[-1]
    for records in raw.values():
        check_fields(records, fields)
    raw = _one_spelling_per_label(raw, target, source, task_name, normalize_labels)
    kind, labels = _task_kind(task_name, info, raw, target)
    return Task(source=source, raw=raw, template=template, target=target, kind=kind, labels=labels)


def _one_spelling_per_label(raw: dict, target: str, source: str, task_name: str | None,
                            normalize: bool) -> dict:
    """Labels that differ only by case or surrounding whitespace ("joy", "Joy", "joy ") would
    train as different classes: an error naming them, or with --normalize_labels each written
    as its most frequent spelling."""

    every = [r for records in raw.values() for r in records]
    variants = label_variants(every, target)
    if not variants:
        return raw
    spellings = label_spellings(every, target)
    if not normalize:
        if task_name not in ("classification", None) or \
                detect_labels(normalize_labels(every, target, spellings), target, max_labels=1000) is None:
            return raw  # free text, not labels
        shown = "; ".join(", ".join(f"{v!r} x{n}" for v, n in spelled.items()) for spelled in list(variants.values())[:4])
        raise DataError(f"{source}: {target} has labels that differ only by case or spaces: {shown}"
                        f"{' ...' if len(variants) > 4 else ''}. They would train as different classes. Fix the file, "
                        "or pass --normalize_labels true to write each as its most frequent spelling "
                        f"({', '.join(repr(spellings[k]) for k in list(variants)[:4])}).")
    note(f"--normalize_labels: {sum(len(v) for v in variants.values())} spellings of {len(variants)} label(s) in "
         f"{target} written one way: " + ", ".join(repr(spellings[k]) for k in variants) + ".")
    return {split: normalize_labels(records, target, spellings) for split, records in raw.items()}


def _task_kind(task_name: str | None, info: dict, raw: dict, target: str) -> tuple[str, list | None]:
    """classification (with its labels), extraction, sql or text. ``--task_name`` decides;
    else a bundled task's datasheet; else your data: few distinct short answers = labels."""

    all_records = [r for records in raw.values() for r in records]
    wanted = task_name
    if wanted == "classification":
        labels = detect_labels(all_records, target, max_labels=1000)
        if labels is None or len(labels) < 2:
            raise DataError(f"--task_name classification: the answer field {target!r} must hold at least "
                            "two distinct short labels, each used at least twice on average.")
        return "classification", labels
    if wanted in ("generation", "text-generation"):
        return "text", None
    if info.get("task"):
        return info["task"], info.get("labels") if info["task"] == "classification" else None
    labels = detect_labels(all_records, target)
    if labels and len(labels) >= 2:
        return "classification", labels
    return "text", None


def check_labels_seen(task: Task, train: list[dict], others: dict) -> None:
    """Labels of the evaluation examples all occur in training (classification only)."""

    if task.kind == "classification":
        check_unseen_labels({"train": train, **others}, task.target)
