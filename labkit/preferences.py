"""Preference pairs: made on-policy from a verifier, or read from your own file and checked.

Preference tuning (DPO, :func:`labkit.train.dpo`) learns from pairs: a prompt, a *chosen* answer
and a *rejected* one. Two ways to get them:

- **on-policy, from a verifier**: sample ``k`` answers per prompt from the model you will tune
  (:func:`sample_completions`), score each with a program that checks the answer (item F1 against
  the gold list, SQL execution, a unit test), and keep the best as *chosen* and the worst as
  *rejected* (:func:`preference_pairs`). A prompt whose answers all score the same gives no pair.
- **your own file** (what ``labkit dpo`` reads): a JSONL/JSON/CSV file with ``prompt``, ``chosen``
  and ``rejected`` fields, checked by :func:`read_pairs` before anything trains.

Why a module of its own rather than :mod:`labkit.data`: making pairs *samples from a model and
scores its answers* (generation, a verifier), which reading data never does; the pair-file checks
live next to it so that one module says what a preference pair is.
"""

from __future__ import annotations

import time
import os

import torch

from labkit.data import DataError, pair_length, read_records

PAIR_FIELDS = ("prompt", "chosen", "rejected")


@torch.no_grad()
def sample_completions(model, tokenizer, prompts, k: int = 4, max_new_tokens: int = 40, temperature: float = 1.0,
                       batch_size: int = 32, seed: int = 0) -> dict:
    """``k`` sampled answers per prompt (at ``temperature``), in batches of ``batch_size`` sequences.

    Generation on a CPU is slow one sequence at a time and much faster batched: the ``k`` copies of
    each prompt go into one left-padded batch. Returns ``{"completions": [[k answers] per prompt],
    "new_tokens": answer tokens generated (up to the end-of-sequence token), "seconds": ...}``."""
    from labkit.evaluate import prompt_ids

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [prompt_ids(tokenizer, p) for p in prompts for _ in range(k)]
    texts, new_tokens, start = [], 0, time.perf_counter()
    torch.manual_seed(seed)
    for i in range(0, len(rows), batch_size):
        batch = rows[i: i + batch_size]
        width = max(len(r) for r in batch)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in batch], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=device)
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=True,
                             temperature=temperature, top_p=1.0, top_k=0, pad_token_id=pad)[:, width:]
        for row in out:
            ended = (row == tokenizer.eos_token_id).nonzero()
            new_tokens += int(ended[0]) + 1 if len(ended) else len(row)
            texts.append(tokenizer.decode(row, skip_special_tokens=True))
    groups = [texts[j * k: (j + 1) * k] for j in range(len(prompts))]
    return {"completions": groups, "new_tokens": new_tokens, "seconds": time.perf_counter() - start}


def preference_pairs(prompts, completions, score, references=None) -> list[dict]:
    """Chosen/rejected pairs from ``k`` scored answers per prompt.

    ``completions[i]`` holds prompt ``i``'s answers; ``score(answer, reference)`` is the verifier
    (``references[i]`` is prompt ``i``'s gold answer, or None). The best-scoring answer becomes
    *chosen*, the worst *rejected*; a prompt whose best and worst answers score the same (a tie:
    all right, all wrong, or all equally partial) gives no pair, because it says nothing about what
    is better. Each pair keeps both scores (``chosen_score``, ``rejected_score``)."""
    pairs = []
    for i, (prompt, answers) in enumerate(zip(prompts, completions)):
        reference = references[i] if references is not None else None
        scores = [float(score(a, reference)) for a in answers]
        best = max(range(len(answers)), key=lambda j: scores[j])
        worst = min(range(len(answers)), key=lambda j: scores[j])
        if scores[best] > scores[worst]:
            pairs.append({"prompt": prompt, "chosen": answers[best], "rejected": answers[worst],
                          "chosen_score": scores[best], "rejected_score": scores[worst]})
    return pairs


def check_pairs(records: list[dict], tokenizer=None, max_length: int | None = None) -> list[dict]:
    """Check preference records and return them as ``{"prompt", "chosen", "rejected"}`` pairs.

    A :class:`labkit.data.DataError` naming the file, line and field for: a missing field, an
    empty prompt or answer, a chosen answer identical to the rejected one (nothing to prefer), and
    (with ``tokenizer`` and ``max_length``) a prompt plus answer longer than ``max_length`` tokens,
    which training would cut off."""
    if not records:
        raise DataError("No preference pairs: the file has no examples.")
    pairs = []
    for r in records:
        where = r.get("_source", "an example")
        for f in PAIR_FIELDS:
            if f not in r:
                have = ", ".join(k for k in r if k != "_source")
                raise DataError(f"{where}: field {f!r} is missing (fields: {have}). A preference pair needs "
                                "prompt, chosen and rejected.")
            if r[f] is None or not str(r[f]).strip():
                raise DataError(f"{where}: field {f!r} is empty. Fill it in or drop the pair.")
        if str(r["chosen"]).strip() == str(r["rejected"]).strip():
            raise DataError(f"{where}: 'chosen' and 'rejected' are the same text; a pair needs two different "
                            "answers. Drop the pair or write the worse answer.")
        pair = {f: str(r[f]) for f in PAIR_FIELDS}
        if tokenizer is not None and max_length:
            for f in ("chosen", "rejected"):
                n = pair_length(tokenizer, {"prompt": pair["prompt"], "completion": pair[f]})
                if n > max_length:
                    raise DataError(f"{where}: prompt + {f!r} is {n} tokens, longer than max_length={max_length}; "
                                    f"training would cut it off. Raise --max_seq_len (to {n}) or shorten the pair.")
        pairs.append(pair)
    return pairs


def read_pairs(path: str | os.PathLike, tokenizer=None, max_length: int | None = None) -> list[dict]:
    """A learner's preference file (``.jsonl``, ``.json`` or ``.csv`` with ``prompt``, ``chosen``,
    ``rejected``), read and checked by :func:`check_pairs`."""
    return check_pairs(read_records(path), tokenizer, max_length)
