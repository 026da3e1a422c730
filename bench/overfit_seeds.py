"""Does lesson 05's overfit run overfit on every seed? Its overfit run alone, under several seeds and settings.

    python bench/overfit_seeds.py --seeds 0 1 2                                  # the lesson's settings
    python bench/overfit_seeds.py --seeds 0 1 2 --train 10 --val 80 --steps 40 --lr 1e-3

Trains lesson 05's overfit run (the first examples of each label, constant learning rate after 2 warm-up
steps, rank and evaluation interval from the profile) and prints, per seed, lesson 05's first claim:
the paired 95% lower end of final - best validation loss (``overfitting.best_vs_final``; the lesson
asks >= 0.01), with the validation loss and accuracy at each evaluation and the last training loss.
docs/checks.md has the table this printed.
"""

import argparse
import time

from labkit import data, env, models, train
from labkit.course import overfitting


def first_of_each_label(records, labels, k):
    """The first k records of each label, as lesson 05 takes them."""
    return [r for label in labels for r in [x for x in records if x["tone"] == label][:k]]


def main():
    s = env.settings("overfit")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train", type=int, default=s["train_examples"], help="training examples (default: the profile's)")
    p.add_argument("--val", type=int, default=s["val_examples"], help="validation messages (default: the profile's)")
    p.add_argument("--steps", type=int, default=s["max_steps"])
    p.add_argument("--lr", type=float, default=s["learning_rate"])
    a = p.parse_args()
    ds, labels = data.load_dataset("tone"), data.dataset_info("tone")["labels"]
    train_pairs = data.task_pairs("tone", first_of_each_label(list(ds["train"]), labels, a.train // len(labels)))
    val_set = first_of_each_label(list(ds["validation"]), labels, -(-a.val // len(labels)))
    val_pairs, val_gold = data.task_pairs("tone", val_set), [r["tone"] for r in val_set]
    base, tok = models.load_base()
    for seed in a.seeds:
        cfg = train.TrainConfig(max_steps=a.steps, batch_size=s["batch_size"], learning_rate=a.lr,
                                lr_scheduler_type="constant_with_warmup", warmup_steps=2, r=s["r"], lora_alpha=2 * s["r"],
                                logging_steps=2, eval_steps=s["eval_steps"], save_steps=s["eval_steps"],
                                save_only_model=True, seed=seed)
        start = time.perf_counter()
        v = overfitting.train_variant(base, tok, train_pairs, val_pairs, cfg, f"/tmp/labkit-bench-overfit-{seed}",
                                      val_gold, labels, watch=True)
        rise = overfitting.best_vs_final(v, seed=seed)
        evals = ", ".join(f"{e['step']}: {e['eval_loss']:.3f} / {e['eval_accuracy']:.2f}" for e in v["evals"])
        print(f"{len(train_pairs)} examples, {len(val_pairs)} validation, lr {a.lr:g}, {a.steps} steps, seed {seed}: "
              f"final - best lower end {rise['ci_low']:+.3f} (mean {rise['difference']:+.3f}, best step "
              f"{rise['best_step']}); last training loss {v['result'].losses[-1][1]:.4f}; validation loss / accuracy "
              f"by step {evals}; {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
