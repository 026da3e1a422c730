"""labkit.course.overfitting on a tiny model: a variant's curves, its per-example losses at every
evaluation, the paired best-vs-final comparison, and the curves side by side."""

import numpy as np
import pytest

from labkit import evaluate, train
from labkit.course import overfitting
from conftest import TONE_LABELS, build_model

PAIRS = [{"prompt": f"message {i} ->", "completion": f" {TONE_LABELS[i % 5]}"} for i in range(20)]
VAL = PAIRS[:6]
GOLD = [p["completion"].strip() for p in VAL]


def config(**overrides):
    base = dict(max_steps=8, batch_size=4, learning_rate=5e-3, r=4, lora_alpha=8, logging_steps=2,
                eval_steps=4, save_steps=4, save_only_model=True, warmup_steps=0)
    return train.TrainConfig(**{**base, **overrides})


def variant(tiny_tokenizer, tmp_path, name="run", watch=True, **overrides):
    model = build_model(tiny_tokenizer)
    return overfitting.train_variant(model, tiny_tokenizer, PAIRS, VAL, config(**overrides), tmp_path / name,
                                     GOLD, TONE_LABELS, watch=watch)


def test_a_watched_variant_keeps_its_curves_and_each_examples_loss_at_every_evaluation(tiny_tokenizer, tmp_path):
    out = variant(tiny_tokenizer, tmp_path)
    assert [e["step"] for e in out["evals"]] == [4, 8]
    assert all(0 <= e["eval_accuracy"] <= 1 for e in out["evals"])
    assert sorted(out["example_losses"]) == [4, 8]
    assert all(len(losses) == len(VAL) for losses in out["example_losses"].values())
    assert out["best"]["eval_loss"] == min(e["eval_loss"] for e in out["evals"])
    # the last evaluation's per-example losses are the final model's own
    final = evaluate.example_losses(out["result"].model, tiny_tokenizer, VAL)
    assert np.allclose(out["example_losses"][8], final, atol=1e-4)
    assert np.allclose(out["final_losses"], final, atol=1e-4)


def test_an_unwatched_variant_scores_the_model_it_ends_with(tiny_tokenizer, tmp_path):
    out = variant(tiny_tokenizer, tmp_path, watch=False)
    assert out["example_losses"] == {} and out["evals"][0]["eval_accuracy"] is None
    final = evaluate.example_losses(out["result"].model, tiny_tokenizer, VAL)
    assert np.allclose(out["final_losses"], final, atol=1e-4)
    with pytest.raises(ValueError, match="watch=True"):
        overfitting.best_vs_final(out)


def test_after_early_stopping_the_final_losses_are_the_restored_checkpoints(tiny_tokenizer, tmp_path):
    out = variant(tiny_tokenizer, tmp_path, max_steps=16, eval_steps=2, save_steps=2, early_stopping_patience=1,
                  learning_rate=5e-2)
    restored = out["result"].best_step
    assert restored == out["best"]["step"]
    shipped = evaluate.example_losses(out["result"].model, tiny_tokenizer, VAL)   # the model the run returned
    assert np.allclose(shipped, out["example_losses"][restored], atol=1e-4)
    assert np.allclose(out["final_losses"], shipped, atol=1e-4)


def test_the_watcher_does_not_change_the_run(tiny_tokenizer, tmp_path):
    out = variant(tiny_tokenizer, tmp_path, "watched")
    plain = train.finetune(build_model(tiny_tokenizer), tiny_tokenizer, PAIRS, VAL, config(), output_dir=tmp_path / "plain",
                           live_plot=False, verbose=False)
    assert [h["loss"] for h in out["result"].history if "loss" in h] == \
           [h["loss"] for h in plain.history if "loss" in h]


def test_best_vs_final_is_the_paired_bootstrap_of_the_two_evaluations():
    losses = {5: np.array([1.0, 1.0, 1.0, 1.0]), 10: np.array([1.5, 2.0, 1.5, 2.0])}
    v = {"example_losses": losses, "best": {"step": 5, "eval_loss": 1.0}}
    out = overfitting.best_vs_final(v, seed=0)
    assert (out["best_step"], out["final_step"]) == (5, 10)
    assert np.isclose(out["difference"], 0.75) and out["ci_low"] >= 0.5 and out["real"]
    same = overfitting.best_vs_final({"example_losses": losses, "best": {"step": 10}}, seed=0)
    assert same["difference"] == 0 and not same["real"]


def test_curves_table_puts_variants_side_by_side_and_leaves_early_stops_empty():
    a = {"evals": [{"step": 5, "eval_loss": 1.0}, {"step": 10, "eval_loss": 1.2}]}
    b = {"evals": [{"step": 5, "eval_loss": 0.9}]}
    table = overfitting.curves_table({"a": a, "b": b})
    assert list(table.columns) == ["a", "b"] and list(table.index) == [5, 10]
    assert table.loc[10, "a"] == 1.2 and np.isnan(table.loc[10, "b"])
