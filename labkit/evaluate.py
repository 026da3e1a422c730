"""Measuring what a model does: label scoring, generation metrics, SQL execution, intervals.

Classification by *label scoring*: instead of generating text and parsing it, run the
prompt once and compare the scores the model gives to each label's first token at the
answer position. One forward pass, no parsing failures, and the same numbers every time.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sqlite3
import statistics
import time
from collections import Counter

import numpy as np
import torch


# --- label scoring ------------------------------------------------------------------------

def label_token_ids(tokenizer, labels, prefix: str = " ") -> list[int]:
    """The first token id of ``prefix + label`` for each label. Labels must start with
    different tokens, or label scoring could not tell them apart."""
    ids = [tokenizer(prefix + label, add_special_tokens=False)["input_ids"][0] for label in labels]
    if len(set(ids)) != len(ids):
        clash = [l for l, i in zip(labels, ids) if ids.count(i) > 1]
        raise ValueError(f"Labels {clash} start with the same token after {prefix!r}; rename them so "
                         "each starts with a different word.")
    return ids


def prompt_ids(tokenizer, text: str) -> list[int]:
    """The token ids of a prompt as training sees them: the tokenizer's own special tokens
    included (Llama 3 and Mistral tokenizers put a BOS first; SmolLM2's adds none), as TRL
    tokenises a prompt. A text that already starts with the BOS (a chat template writes its own)
    does not get a second one."""
    ids = tokenizer(text)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos and text.startswith(tokenizer.bos_token):
        ids = ids[1:]
    return ids


def _left_padded(rows: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists left-padded to one width: (input_ids, attention_mask)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def _batches(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _by_length(lengths):
    """Indices that sort items longest first (batches of similar length waste little padding)."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


@torch.no_grad()
def last_token_logits(model, tokenizer, prompts, batch_size: int = 16, shared_prefix: str = "") -> torch.Tensor:
    """Logits at the last position of each prompt, shape (len(prompts), vocab).

    Prompts are batched by length and left-padded, so the last position is always the
    answer position, and only that position goes through the output layer.
    With ``shared_prefix`` (text every prompt starts with, such as the instructions and
    examples of a few-shot prompt), the prefix is run once and its key/value cache reused
    for every prompt: the same logits, at the cost of the prompts' own tokens only.
    """
    prompts = list(prompts)
    device = next(model.parameters()).device
    if shared_prefix:
        prefix_ids, suffixes = _split_prefix(tokenizer, prompts, shared_prefix)
        cache = model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True).past_key_values
    else:
        prefix_ids, cache = [], None
        suffixes = [prompt_ids(tokenizer, p) for p in prompts]
    n = len(prefix_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = _by_length([len(s) for s in suffixes])
    rows = [None] * len(prompts)
    for batch in _batches(order, batch_size):
        width = max(len(suffixes[i]) for i in batch)
        ids = torch.tensor([[pad] * (width - len(suffixes[i])) + suffixes[i] for i in batch], device=device)
        mask = torch.tensor([[1] * n + [0] * (width - len(suffixes[i])) + [1] * len(suffixes[i]) for i in batch],
                            device=device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, n:]
        kwargs = {}
        if cache is not None:
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(batch))
            kwargs = dict(past_key_values=batch_cache, use_cache=True)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=1, **kwargs).logits
        for i, row in zip(batch, logits[:, -1, :].float().cpu()):
            rows[i] = row
    return torch.stack(rows)


def _split_prefix(tokenizer, prompts, prefix):
    """The prefix's token ids and each prompt's remaining ids; the prefix must end on a token boundary."""
    prefix_ids = prompt_ids(tokenizer, prefix)
    n = len(prefix_ids)
    suffixes = []
    for p in prompts:
        ids = prompt_ids(tokenizer, p)
        if not p.startswith(prefix) or ids[:n] != prefix_ids or len(ids) == n:
            raise ValueError("shared_prefix must be a prefix of every prompt, ending on a token boundary; "
                             f"it is not for: {p[:80]!r}...")
        suffixes.append(ids[n:])
    return prefix_ids, suffixes


def score_labels(model, tokenizer, prompts, labels, prefix: str = " ", batch_size: int = 16,
                 shared_prefix: str = "") -> np.ndarray:
    """Log-probabilities of each label (restricted to the label set), shape (n, n_labels).
    ``prefix`` goes before each label (a space after ``->``, nothing after a chat template's
    assistant header); ``shared_prefix`` is passed on to :func:`last_token_logits`."""
    ids = label_token_ids(tokenizer, labels, prefix)
    logits = last_token_logits(model, tokenizer, prompts, batch_size, shared_prefix)[:, ids]
    return torch.log_softmax(logits, dim=-1).numpy()


def classify(model, tokenizer, prompts, labels, prefix: str = " ", batch_size: int = 16,
             shared_prefix: str = "") -> list[str]:
    """The highest-scoring label for each prompt."""
    scores = score_labels(model, tokenizer, prompts, labels, prefix, batch_size, shared_prefix)
    return [labels[i] for i in scores.argmax(axis=1)]


def label_scoring_setup(tokenizer, task, prompts: list[str]) -> tuple[list[str], str]:
    """Prompts and prefix for label scoring. The text between prompt and label (``" "`` in
    ``"{phrase} -> {tone}"``, ``"\\n"`` after a chat template's assistant header) goes before
    the label when it merges with the label's first token (``" joy"``), else into the prompt
    (a newline is its own token, and the label's first token follows it). ``task`` is a
    :class:`labkit.data.Task`."""
    from labkit import data

    _, completion_t = data.split_template(task.template, task.target)
    prefix = completion_t.split("{" + task.target + "}", 1)[0]
    if prefix:
        alone = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        if all(tokenizer(prefix + label, add_special_tokens=False)["input_ids"][:len(alone)] == alone
               for label in task.labels):
            return [p + prefix for p in prompts], ""
    return prompts, prefix


def classification_report(y_true, y_pred, labels) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    index = {l: i for i, l in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred):
        cm[index[t], index[p]] += 1
    per_class = {}
    for i, l in enumerate(labels):
        tp, fp, fn = cm[i, i], cm[:, i].sum() - cm[i, i], cm[i, :].sum() - cm[i, i]
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[l] = {"precision": prec, "recall": rec, "f1": f1, "support": int(cm[i].sum())}
    return {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": cm,
        "labels": list(labels),
        "correct": [t == p for t, p in zip(y_true, y_pred)],
    }


def majority_baseline(y_true, labels) -> dict:
    """What always answering the most frequent true label scores: its accuracy (that label's share)
    and its macro-F1 (that label's F1, ``2·share / (1 + share)``, averaged with zeros for the rest)."""
    counts = {label: sum(t == label for t in y_true) for label in labels}
    label = max(counts, key=counts.get)
    share = counts[label] / max(len(y_true), 1)
    return {"label": label, "accuracy": share, "macro_f1": 2 * share / (1 + share) / len(labels)}


COLLAPSE_SHARE = 0.9   # one label for at least this share of the answers: see collapse()


def collapse(report: dict, y_pred) -> str | None:
    """Why a classifier's answers have collapsed, in words, or None when they have not:

    - one label for (nearly) every example: at least :data:`COLLAPSE_SHARE` of the answers, and it
      took over at least half of the examples whose true label is another one (a good model of a
      90/10 set answers the majority 90% of the time, and that is no collapse);
    - or a macro-F1 no better than always answering the majority label.

    ``report`` is :func:`classification_report` of the same answers. Needs two labels or more among
    the true labels (with one, there is nothing to tell apart)."""
    support = {label: c["support"] for label, c in report["per_class"].items()}
    n = sum(support.values())
    if sum(count > 0 for count in support.values()) < 2:
        return None
    answers = list(y_pred)
    top = max(report["labels"], key=answers.count)
    share, true_share = answers.count(top) / n, support[top] / n
    if share >= COLLAPSE_SHARE and share - true_share >= (1 - true_share) / 2:
        return f"it answers {top!r} for {share:.0%} of the examples ({true_share:.0%} of them are {top!r})"
    truth = [label for label, count in support.items() for _ in range(count)]
    baseline = majority_baseline(truth, report["labels"])
    if report["macro_f1"] <= baseline["macro_f1"]:
        return (f"its macro-F1 {report['macro_f1']:.3f} is no better than always answering {baseline['label']!r} "
                f"({baseline['macro_f1']:.3f})")
    return None


def degenerate(answer: str) -> bool:
    """An answer that says nothing: empty, or a loop (eight words or more, under a third of them
    distinct, as in "the the the ...")."""
    words = answer.split()
    return not words or (len(words) >= 8 and len(set(words)) < len(words) / 3)


# --- generation ---------------------------------------------------------------------------

@torch.no_grad()
def generate(model, tokenizer, prompts, max_new_tokens: int = 64, batch_size: int = 8,
             stop: str | None = None) -> list[str]:
    """Greedy completions for a list of text prompts (batched by length, left-padded)."""
    prompts = list(prompts)
    device = next(model.parameters()).device
    outputs = [""] * len(prompts)
    encoded = [prompt_ids(tokenizer, p) for p in prompts]      # as training tokenised them
    order = _by_length([len(e) for e in encoded])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for batch in _batches(order, batch_size):
        ids, mask = _left_padded([encoded[i] for i in batch], pad, device)
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad)
        for i, row in zip(batch, out[:, ids.shape[1]:]):
            text = tokenizer.decode(row, skip_special_tokens=True)
            outputs[i] = text.split(stop)[0] if stop else text
    return outputs


def parse_json_list(text: str):
    """The first JSON list in ``text`` as a Python list of strings, or None if there is none.

    Each ``[`` is tried in turn with a real JSON parser, so brackets inside strings
    (``["salt [to taste]"]``) do not end the list early."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\[", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, list):
            return [str(v).strip().lower() for v in value]
    return None


_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", re.M)


def parse_items(text: str):
    """A lenient list parser, for the fairest prompt baseline: the first JSON list in ``text``
    (:func:`parse_json_list`) if there is one, else its bulleted or numbered lines
    (``- flour``, ``2. salt``), else its comma-separated items after a colon; None if none of
    these is there. A base model that lists the right items without JSON still gets credit."""
    parsed = parse_json_list(text)
    if parsed is not None:
        return parsed
    bullets = _LIST_ITEM.findall(text)
    if bullets:
        return [b.strip(" .").lower() for b in bullets]
    line = text.strip().splitlines()[0] if text.strip() else ""
    tail = line.split(":", 1)[1] if ":" in line else line
    items = [t.strip(" .").lower() for t in tail.split(",") if t.strip(" .")]
    return items if len(items) > 1 else None


def item_f1(pred: list | None, gold: list) -> float:
    """F1 between two lists of items treated as sets (order ignored); 0 for unparseable."""
    if pred is None:
        return 0.0
    p, g = set(pred), {str(x).strip().lower() for x in gold}
    if not p and not g:
        return 1.0
    tp = len(p & g)
    if tp == 0:
        return 0.0
    prec, rec = tp / len(p), tp / len(g)
    return 2 * prec * rec / (prec + rec)


def extraction_scores(outputs, golds, parse=parse_json_list) -> dict:
    """For the recipes task: share of outputs that are valid JSON lists, exact match (same
    set of items) and mean item-level F1, plus per-example F1s for intervals. ``parse`` reads
    the items out of an output: strict JSON by default, :func:`parse_items` to also accept
    bulleted, numbered or comma-separated lists (``valid_json`` still counts JSON lists only)."""
    parsed = [parse(o) for o in outputs]
    f1s = [item_f1(p, g) for p, g in zip(parsed, golds)]
    exact = [p is not None and set(p) == {str(x).strip().lower() for x in g} for p, g in zip(parsed, golds)]
    return {"valid_json": float(np.mean([parse_json_list(o) is not None for o in outputs])),
            "exact_match": float(np.mean(exact)), "item_f1": float(np.mean(f1s)), "f1s": f1s}


# --- SQL by execution ---------------------------------------------------------------------

_SQL_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)(?:```|$)", re.S | re.I)
# A statement starts with SELECT at the start of a line (or after a colon), or with SELECT in
# capitals anywhere, or with a real common table expression (WITH name AS ( ...). So "You can
# select the names" and "a query with a join" are prose, not SQL.
_SQL_START = re.compile(
    r"(?:^|(?<=\n)|(?<=:))[ \t]*(?P<a>select\b)"
    r"|(?-i:\b(?P<b>SELECT)\b)"
    r"|\b(?P<c>with\s+(?:recursive\s+)?[\w\"]+\s*(?:\([^)]*\)\s*)?as\s*\()",
    re.I)
_SQL_END = re.compile(r"```|;|\n\s*\n")


def extract_sql(text: str) -> str:
    """The SQL query in a model's output: the contents of a code fence if there is one, else the
    first ``SELECT``/``WITH`` statement (chat models wrap queries in prose); the statement ends
    at ``;``, a blank line or a fence. The stripped text if no statement is found."""
    fence = _SQL_FENCE.search(text)
    if fence and re.search(r"\b(select|with)\b", fence.group(1), re.I):
        text = fence.group(1)
    match = _SQL_START.search(text)
    if not match:
        return text.strip()
    start = match.start(match.lastgroup)
    end = _SQL_END.search(text, start)
    return text[start:end.start() if end else len(text)].strip()


def run_sql(db_path, query: str, timeout_s: float = 2.0):
    """Run a read-only query with a time limit; returns (rows, None) or (None, error text)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    deadline = time.monotonic() + timeout_s
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        return con.execute(query).fetchall(), None
    except sqlite3.Error as e:
        msg = "timed out" if "interrupted" in str(e) else str(e)
        return None, f"{type(e).__name__}: {msg}"
    except Exception as e:  # e.g. a query that is not a string of SQL at all
        return None, f"{type(e).__name__}: {e}"
    finally:
        con.close()


def _canonical(rows):
    """Rows as a sorted multiset, floats rounded, so order and float noise do not matter."""
    norm = [tuple(round(v, 4) if isinstance(v, float) else v for v in r) for r in rows]
    return sorted(Counter(norm).items(), key=repr)


def execution_match(pred: str, gold: str, db_path, timeout_s: float = 2.0) -> dict:
    """Whether the predicted query returns the same rows as the gold query."""
    gold_rows, gold_err = run_sql(db_path, gold, timeout_s)
    if gold_err:
        raise ValueError(f"The gold query fails ({gold_err}): {gold}")
    rows, err = run_sql(db_path, pred, timeout_s)
    return {"match": err is None and _canonical(rows) == _canonical(gold_rows), "error": err}


def sql_scores(preds, golds, db_path, timeout_s: float = 2.0) -> dict:
    """Execution accuracy and the share of predictions that run at all."""
    results = [execution_match(p, g, db_path, timeout_s) for p, g in zip(preds, golds)]
    return {"execution_accuracy": float(np.mean([r["match"] for r in results])),
            "runs": float(np.mean([r["error"] is None for r in results])),
            "matches": [r["match"] for r in results]}


_QUESTION_VALUE = re.compile(r"\d[\d-]*|(?<!^)\b[A-Z][a-z]+")


def question_values(question: str) -> set[str]:
    """The numbers, dates and capitalised names inside a question (not its first word): the slots
    a query is filled with, ``"Orders from Japan in 2023?"`` -> ``{"Japan", "2023"}``."""
    return set(_QUESTION_VALUE.findall(question))


def nearest_train_queries(train_records, questions) -> list[str]:
    """A look-up "model" for text-to-SQL: for each question, the gold ``query`` of the most similar
    ``question`` in ``train_records`` -- the same values first (:func:`question_values`: one more
    shared value beats any wording), then the most words in common (Jaccard). It can only be right
    when an answer is already in the training split: a baseline and a detector of leakage."""
    def words(text):
        return set(re.findall(r"[a-z0-9]+", text.lower()))

    keys = [(question_values(r["question"]), words(r["question"]), r["query"]) for r in train_records]
    preds = []
    for q in questions:
        v, w = question_values(q), words(q)
        preds.append(max(keys, key=lambda k: (len(v & k[0]) - len(v ^ k[0]), len(w & k[1]) / len(w | k[1])))[2])
    return preds


def seen_unseen_sql_scores(preds, test_records, train_records, db_path) -> dict:
    """Execution accuracy and string match of ``preds`` against the ``query`` of each of
    ``test_records``, and execution accuracy apart on the test queries that also appear verbatim
    in ``train_records`` (*seen*) and on the rest (*unseen*; NaN where there are none). A large
    seen/unseen gap means the score mixes memorised answers with generalisation: leakage."""
    golds = [r["query"] for r in test_records]
    execution = np.array(sql_scores(preds, golds, db_path)["matches"], dtype=bool)
    string = np.array([string_match(p, g) for p, g in zip(preds, golds)])
    seen = np.isin(golds, [r["query"] for r in train_records])
    rate = lambda mask: float(execution[mask].mean()) if mask.any() else float("nan")  # noqa: E731
    return {"test examples": len(golds), "gold query also in train": int(seen.sum()),
            "execution accuracy": float(execution.mean()), "string match": float(string.mean()),
            "execution, seen queries": rate(seen), "execution, unseen queries": rate(~seen)}


# --- perplexity, intervals, comparisons ------------------------------------------------------

# Kept by hand (TRL's collator builds whole batches, lesson 05 needs one loss per example); the tests check
# it equals TRL's own tokenisation and masking, with and without a BOS-adding tokenizer.
def completion_tokens(tokenizer, pair) -> tuple[list[int], list[int]]:
    """Token ids and labels of one ``{"prompt", "completion"}`` pair, built the way TRL's
    ``SFTTrainer`` (trl 1.16) builds a training example with ``completion_only_loss``:

    - the EOS token is appended to the completion (unless it ends with it already): the model
      learns to stop;
    - the prompt and prompt + completion are tokenised as given (special tokens included; a prompt
      that starts with the BOS gets no second one, as :func:`labkit.train.training_examples` hands it to TRL);
    - labels are the ids with the prompt masked (-100) up to where the two tokenisations
      diverge (a token that merges across the boundary belongs to the completion).
    """
    completion = pair["completion"]
    eos = tokenizer.eos_token
    if eos and not completion.endswith(eos):
        completion += eos
    prompt = prompt_ids(tokenizer, pair["prompt"])                  # one BOS, as training sees it
    ids = prompt_ids(tokenizer, pair["prompt"] + completion)
    n_prompt = 0
    while n_prompt < min(len(prompt), len(ids)) and prompt[n_prompt] == ids[n_prompt]:
        n_prompt += 1
    return ids, [-100] * n_prompt + ids[n_prompt:]


@torch.no_grad()
def example_losses(model, tokenizer, pairs, batch_size: int = 8) -> np.ndarray:
    """Each example's mean cross-entropy per completion token, in the order of ``pairs``: the
    training loss (:func:`completion_tokens`: EOS included, prompt masked as TRL masks it), one
    number per example, so two models can be compared *paired* (lesson 05)."""
    totals, counts = _loss_sums(model, tokenizer, pairs, batch_size)
    return totals / np.maximum(counts, 1)


def completion_loss(model, tokenizer, pairs, batch_size: int = 8) -> float:
    """Mean cross-entropy per completion token: the loss training minimises, on the same tokens
    (:func:`completion_tokens`: EOS included, prompt masked as TRL masks it).

    Every completion token counts once, whatever the batch (TRL's ``eval_loss`` averages per
    evaluation batch, so the two agree exactly when the examples fit in one batch)."""
    totals, counts = _loss_sums(model, tokenizer, pairs, batch_size)
    return float(totals.sum() / max(counts.sum(), 1))


def _loss_sums(model, tokenizer, pairs, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per example: the summed cross-entropy over its completion tokens, and how many there are."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = [completion_tokens(tokenizer, p) for p in pairs]
    order = _by_length([len(ids) for ids, _ in examples])
    totals, counts = np.zeros(len(examples)), np.zeros(len(examples))
    try:
        for batch in _batches(order, batch_size):
            width = max(len(examples[i][0]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # right padding: positions before it are unchanged
                example_ids, example_labels = examples[i]
                ids[row, :len(example_ids)] = torch.tensor(example_ids)
                labels[row, :len(example_labels)] = torch.tensor(example_labels)
                mask[row, :len(example_ids)] = 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            target = labels[:, 1:].to(device)  # the token at position t is predicted at t - 1
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), target, ignore_index=-100, reduction="none")
            for row, i in enumerate(batch):
                totals[i] = float(loss[row].sum())
                counts[i] = int((target[row] != -100).sum())
    finally:
        model.train(was_training)
    return totals, counts


def perplexity(model, tokenizer, pairs, batch_size: int = 8) -> float:
    """exp(mean completion loss): how surprised the model is by the reference answers."""
    return math.exp(completion_loss(model, tokenizer, pairs, batch_size))


def _seed(seed: int | None) -> int:
    """``seed``, or the course's seed (``$LABKIT_SEED``, see :func:`labkit.env.seed`) when None."""
    from labkit import env

    return env.seed() if seed is None else seed


# bootstrap_ci, paired_bootstrap, mcnemar and wilson_ci are written out, not imported from scipy: reading them
# is lesson 04 (tests/test_evaluate.py checks them against scipy.stats).
def bootstrap_ci(values, n_boot: int = 2000, alpha: float = 0.05, seed: int | None = None) -> tuple[float, float]:
    """A percentile bootstrap confidence interval for the mean of per-example ``values``.

    Good from a few dozen examples up. On a handful it is too narrow: it can only resample the
    values it saw, so 10 answers that happen to be all right give the interval [1, 1]
    (:func:`wilson_ci` does not collapse; lesson 04 shows both)."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(_seed(seed))
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def compare(per_example: dict, metric: str = "accuracy", extra: dict | None = None):
    """A before/after table: for each model, the mean of its per-example scores with a 95%
    bootstrap interval, plus any ``extra`` columns (``{column: {model: value}}``)."""
    import pandas as pd

    rows = []
    for name, values in per_example.items():
        lo, hi = bootstrap_ci(values)
        row = {"model": name, metric: float(np.mean(values)), "95% CI low": lo, "95% CI high": hi,
               "n": len(values)}
        for col, by_model in (extra or {}).items():
            row[col] = by_model.get(name)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# --- is a difference real? paired comparisons and interval widths --------------------------

def paired_bootstrap(a, b, n_boot: int = 2000, alpha: float = 0.05, seed: int | None = None) -> dict:
    """Compare two models scored on the *same* examples (per-example scores ``a`` and ``b``).

    Resamples examples (not models), so both models see the same resampled test set each
    time: the interval is for ``mean(b) - mean(a)``. ``real`` is True when the interval
    excludes 0 (the difference would survive drawing another test set like this one)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same examples: got {len(a)} and {len(b)} scores.")
    rng = np.random.default_rng(_seed(seed))
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    diffs = b[idx].mean(axis=1) - a[idx].mean(axis=1)
    lo, hi = float(np.quantile(diffs, alpha / 2)), float(np.quantile(diffs, 1 - alpha / 2))
    return {"difference": float(b.mean() - a.mean()), "ci_low": lo, "ci_high": hi,
            "real": bool(lo > 0 or hi < 0)}


def mcnemar(a_correct, b_correct) -> dict:
    """McNemar's exact test for two classifiers on the same examples.

    Only the examples where they *disagree* carry information: ``a_only`` (a right, b wrong)
    and ``b_only``. If the models were equally good, each disagreement would go either way
    with probability 1/2; ``p_value`` is the two-sided binomial probability of a split at
    least this lopsided."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs the same examples: got {len(a)} and {len(b)} results.")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(min(1.0, 2 * tail))}


def wilson_ci(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval for a proportion (``successes`` of ``n``): the interval of every
    true accuracy p that a z-test would not reject. Unlike the percentile bootstrap it never
    collapses to a point: 10 right out of 10 gives about [0.72, 1]."""
    if n <= 0:
        raise ValueError(f"wilson_ci needs n >= 1 examples, got n={n}.")
    z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def interval_widths(correct, sizes, repeats: int = 200, seed: int | None = None) -> dict:
    """What the 95% interval of an accuracy looks like when only ``n`` of the per-example 0/1
    results ``correct`` are scored, for each ``n`` in ``sizes``: ``repeats`` random subsets of
    each size, each with a percentile bootstrap and a Wilson interval.

    Returns ``{n: {"bootstrap": mean width, "wilson": mean width, "collapsed": share of subsets
    whose bootstrap interval has width 0}}``."""
    v = np.asarray(correct, dtype=float)
    rng = np.random.default_rng(_seed(seed))
    out = {}
    for n in sizes:
        boot, wilson, collapsed = [], [], 0
        for _ in range(repeats):
            sub = v[rng.choice(len(v), size=int(n), replace=False)]
            lo, hi = bootstrap_ci(sub, n_boot=500, seed=int(rng.integers(2**31)))
            boot.append(hi - lo)
            collapsed += hi - lo == 0
            lo, hi = wilson_ci(int(sub.sum()), len(sub))
            wilson.append(hi - lo)
        out[int(n)] = {"bootstrap": float(np.mean(boot)), "wilson": float(np.mean(wilson)),
                       "collapsed": collapsed / repeats}
    return out


def subset_spread(correct, sizes, shuffles: int = 50, seed: int | None = None) -> dict:
    """How much an accuracy moves from one test set to another, measured on the data rather than
    computed from a formula. For each ``n`` in ``sizes``: shuffle the per-example 0/1 results
    ``correct``, cut them into ``len(correct) // n`` *disjoint* subsets of ``n`` (separate small
    test sets that share no example), and take the variance of their accuracies; average that
    variance over ``shuffles`` shuffles, so that the spread is not itself a noisy estimate.

    Returns ``{n: {"std": the spread (square root of the mean variance), "subsets": disjoint
    subsets per shuffle}}``. Each ``n`` must leave at least two subsets."""
    v = np.asarray(correct, dtype=float)
    rng = np.random.default_rng(_seed(seed))
    out = {}
    for n in map(int, sizes):
        k = len(v) // n
        if k < 2:
            raise ValueError(f"subset_spread: n={n} leaves fewer than two disjoint subsets of {len(v)} results; "
                             f"use n <= {len(v) // 2}.")
        variances = [v[rng.permutation(len(v))[: k * n]].reshape(k, n).mean(axis=1).var(ddof=1)
                     for _ in range(shuffles)]
        out[n] = {"std": float(np.sqrt(np.mean(variances))), "subsets": k}
    return out


def scaling_exponent(widths: dict) -> float:
    """The slope of log(width) against log(n) for ``{n: width}``: -0.5 when the width falls
    like 1/sqrt(n) (four times the data, half the interval)."""
    n = np.array(sorted(widths), dtype=float)
    return float(np.polyfit(np.log(n), np.log([widths[int(k)] for k in n]), 1)[0])


# --- overlap metrics (from their standard libraries) and string match -------------------------

def overlap_scores(predictions, references) -> dict:
    """ROUGE-1 and ROUGE-L F-measures (Google's ``rouge-score``) and BLEU (``sacrebleu``), per
    example and on average. Overlap metrics count shared words; they do not know whether the
    answer is *right* (see lesson 04)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
    rouge = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
    bleu = [sacrebleu.sentence_bleu(pred, [ref]).score / 100 for pred, ref in zip(predictions, references)]
    return {"rouge1": [r["rouge1"].fmeasure for r in rouge], "rougeL": [r["rougeL"].fmeasure for r in rouge],
            "bleu": bleu,
            "corpus_bleu": sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100}


def string_match(pred: str, gold: str) -> bool:
    """Exact match after collapsing whitespace and case: what "string match" means for SQL."""
    norm = lambda s: " ".join(s.strip().rstrip(";").split()).lower()  # noqa: E731
    return norm(pred) == norm(gold)


# --- human review --------------------------------------------------------------------------

def review_sheet(rows: list[dict], path) -> dict:
    """Write a side-by-side sheet for human rating: ``path``.csv and ``path``.html, one row per
    example (``rows``: dicts such as input / gold / base / fine-tuned) plus an empty
    ``rating`` column to fill in. Returns the two paths."""
    from pathlib import Path

    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table["rating (1-5)"] = ""
    csv_path, html_path = path.with_suffix(".csv"), path.with_suffix(".html")
    table.to_csv(csv_path, index=False)
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'><title>Review sheet</title><style>"
        "table{border-collapse:collapse;font:14px sans-serif}td,th{border:1px solid #ccc;padding:6px;"
        "vertical-align:top;max-width:28em}</style>"
        + table.to_html(index=False, escape=True) + "\n", encoding="utf-8")
    return {"csv": csv_path, "html": html_path}
