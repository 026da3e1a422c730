"""A run's identity and its folder: the fingerprint of everything that decides what a run
produces, the checkpoints in ``output_dir``, resuming from them, and refusing to train into a
folder that holds another run. :func:`labkit.train.finetune` uses all of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .env import world_size

if TYPE_CHECKING:
    from .train import TrainConfig


def fingerprint(cfg: TrainConfig, train_pairs, model_name: str, eval_pairs=None, tokenizer=None,
                callbacks=(), base_weights: str | None = None) -> str:
    """A short hash of everything that decides what a run produces: equal inputs, equal run.

    The config, the training and validation pairs (validation drives early stopping and the
    restored checkpoint), the base model's name and weights (:func:`labkit.models.weights_fingerprint`
    of its folder), the tokenizer's vocabulary, special tokens and
    chat template, the callbacks that add metrics (``changes_the_run``), the resolved dtype, the number of processes (the global
    batch), and the versions of torch, transformers, TRL and PEFT. ``reuse=`` and resuming
    accept a run only when all of them match."""
    from importlib.metadata import version

    parts = {
        "config": dataclasses.asdict(cfg),
        "train": list(train_pairs),
        "eval": list(eval_pairs or []),
        "model": model_name,
        "base_weights": base_weights,
        "tokenizer": _tokenizer_identity(tokenizer),
        # callbacks that only watch (progress, plots) do not count; those that add metrics do
        "callbacks": sorted(type(c).__name__ for c in callbacks if getattr(c, "changes_the_run", False)),
        "dtype": str(cfg.train_dtype()),
        "world_size": world_size(),
        "versions": {pkg: version(pkg) for pkg in ("torch", "transformers", "trl", "peft")},
    }
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _tokenizer_identity(tokenizer) -> str | None:
    """A hash of what makes a tokenizer tokenise the way it does: vocabulary, special tokens,
    chat template."""
    if tokenizer is None:
        return None
    vocab = tokenizer.get_vocab()
    text = json.dumps({"vocab": sorted(vocab.items()), "special": tokenizer.special_tokens_map,
                       "chat_template": getattr(tokenizer, "chat_template", None)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


RUN_FINGERPRINT = "labkit_fingerprint.txt"  # in output_dir: which run its checkpoints belong to


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest *complete* ``checkpoint-N`` folder in ``output_dir``, if any.

    The trainer writes ``trainer_state.json`` last when it saves a checkpoint, so a folder
    without it is a save that was interrupted (a killed process) and is skipped."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    complete = [p for p in output_dir.glob("checkpoint-*")
                if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    if not complete:
        return None
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1])))


class RunConflictError(ValueError):
    """The output folder holds another run, which training there would replace."""


def refuse_another_run(output_dir: Path, fp: str) -> None:
    """Raise :class:`RunConflictError` if ``output_dir`` holds a run with another fingerprint:
    a finished adapter, or checkpoints of an unfinished run. The same run (same fingerprint)
    is fine: it resumes, or trains again into the same place."""
    output_dir = Path(output_dir)
    run_file = output_dir / "adapter" / "labkit_run.json"
    marker = output_dir / RUN_FINGERPRINT
    if run_file.is_file():
        try:
            info = json.loads(run_file.read_text())
        except (ValueError, UnicodeDecodeError):
            info = {}
        if info.get("fingerprint") != fp:
            cfg, result = info.get("config", {}), info.get("result", {})
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run_file.stat().st_mtime))
            held = (f"a finished {cfg.get('method', '?')} run of {info.get('base_model', '?')} from {when}: "
                    f"{result.get('steps', '?')} steps, learning rate {cfg.get('learning_rate', '?')}, "
                    f"{result.get('train_examples', '?')} training examples")
            raise RunConflictError(f"{output_dir} holds {held}, with other settings or data than this run. "
                                   "Training here would replace its adapter. Choose another output folder, or "
                                   "replace it on purpose (--overwrite / overwrite=True).")
    checkpoint = last_checkpoint(output_dir)
    if checkpoint and marker.is_file() and marker.read_text().strip() != fp:
        raise RunConflictError(f"{output_dir} holds an unfinished run with other settings or data "
                               f"({Path(checkpoint).name}). Training here would delete its checkpoints. Choose "
                               "another output folder, or replace it on purpose (--overwrite / overwrite=True).")


def resumable_checkpoint(output_dir: Path, fp: str, verbose: bool = True) -> str | None:
    """The checkpoint to resume from: the newest complete one, *if* ``output_dir`` belongs
    to the same run (same fingerprint). Checkpoints of another run (other data, another
    learning rate, ...) are removed, so that this run starts from step 0 and never stamps
    old weights with a new fingerprint."""
    output_dir = Path(output_dir)
    marker = output_dir / RUN_FINGERPRINT
    old = marker.read_text().strip() if marker.is_file() else None
    checkpoints = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
    if checkpoints and old != fp:
        if verbose:
            print(f"{output_dir} holds checkpoints of a different run (config, data or base model "
                  "changed): starting from step 0.")
        for c in checkpoints:
            shutil.rmtree(c, ignore_errors=True)
        return None
    return last_checkpoint(output_dir)
