"""Lesson 05's runner: train variants of one overfitting LoRA run and collect their curves.

- :class:`ExampleLossWatcher` keeps each validation example's loss at every evaluation, so the
  best evaluation and the last one can be compared *paired*, example by example;
- :func:`train_variant` trains one variant (the overfit settings, changed by a fix) and returns
  its curves (validation loss, and accuracy when watched, per evaluation) and the per-example
  validation losses of the model it ends with;
- :func:`best_vs_final` is the paired bootstrap of those per-example losses (best against final);
- :func:`curves_table` puts the variants' validation-loss curves side by side.

The fixes themselves (dropout, weight decay, rank, data, early stopping) stay in the lesson: they
are one ``TrainConfig`` argument each."""

from __future__ import annotations

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from labkit import evaluate, train


class ExampleLossWatcher(TrainerCallback):
    """A trainer callback that scores every validation pair at each evaluation
    (:func:`labkit.evaluate.example_losses`) and keeps the losses by step in ``losses``.

    It only watches: the run trains exactly as it would without it."""

    changes_the_run = False

    def __init__(self, tokenizer, pairs, batch_size: int = 16):
        self.tokenizer, self.pairs, self.batch_size = tokenizer, list(pairs), batch_size
        self.losses: dict[int, np.ndarray] = {}

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self.losses[state.global_step] = evaluate.example_losses(model, self.tokenizer, self.pairs,
                                                                  self.batch_size)


def train_variant(base, tokenizer, train_pairs, val_pairs, config: train.TrainConfig, output_dir,
                  val_gold, labels, watch: bool = False) -> dict:
    """Train one variant from scratch (never resumed) and return what the lesson compares:

    ``result`` (the :class:`labkit.train.TrainResult`), ``evals`` (one dict per evaluation:
    ``step``, ``eval_loss`` and, when watched, ``eval_accuracy``), ``best`` (the evaluation with
    the lowest validation loss) and ``final_losses`` (each validation example's loss under the
    model the run returns: the restored best one after early stopping). ``watch=True`` also
    label-scores the validation prompts and keeps every example's loss at each evaluation
    (``example_losses``: step -> losses, for :func:`best_vs_final`), and draws the live plot."""
    watcher = ExampleLossWatcher(tokenizer, val_pairs)
    accuracy = train.ValidationAccuracy(tokenizer, [p["prompt"] for p in val_pairs], val_gold, labels)
    result = train.finetune(base, tokenizer, train_pairs, val_pairs, config, output_dir=output_dir, resume=False,
                            live_plot=watch, callbacks=[accuracy, watcher] if watch else [], verbose=False)
    evals = [{"step": h["step"], "eval_loss": h["eval_loss"], "eval_accuracy": h.get("eval_accuracy")}
             for h in result.history if "eval_loss" in h]
    if not evals:
        raise ValueError("train_variant needs evaluations: give the config eval_steps and val_pairs.")
    shipped = result.best_step or result.steps
    final = watcher.losses.get(shipped)
    if final is None:
        final = evaluate.example_losses(result.model, tokenizer, val_pairs)
    return {"result": result, "evals": evals, "best": min(evals, key=lambda e: e["eval_loss"]),
            "example_losses": dict(watcher.losses), "final_losses": final}


def best_vs_final(variant: dict, seed: int | None = None) -> dict:
    """How much worse the last evaluation is than the best one, paired over the validation
    examples: :func:`labkit.evaluate.paired_bootstrap` of the best step's per-example losses
    against the last step's (``difference`` > 0: the final checkpoint's loss is higher), plus
    ``best_step`` and ``final_step``. Where the best evaluation is the last, the difference is 0."""
    losses = variant["example_losses"]
    if not losses:
        raise ValueError("best_vs_final needs the losses at every evaluation: train the variant with watch=True.")
    best_step, final_step = variant["best"]["step"], max(losses)
    out = evaluate.paired_bootstrap(losses[best_step], losses[final_step], seed=seed)
    return {**out, "best_step": best_step, "final_step": final_step}


def curves_table(variants: dict, key: str = "eval_loss") -> pd.DataFrame:
    """The variants' curves side by side: one row per evaluation step, one column per variant
    (``key``: ``"eval_loss"`` or ``"eval_accuracy"``); a variant that stopped early has no values
    after its last step."""
    return pd.DataFrame({name: pd.Series({e["step"]: e[key] for e in v["evals"]}, dtype=float)
                         for name, v in variants.items()}).rename_axis("step")
