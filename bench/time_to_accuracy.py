"""Fewer, fatter steps: does a bigger batch reach lesson 01's accuracy in less time on a CPU?

    python bench/time_to_accuracy.py [--seeds 0 1] [--batches 8,16,32] [--dtypes float32] [--compile]

Trains lesson 01's tone LoRA (one pass over the training set, as the lesson does) with each
batch size: the same epoch in fewer steps, the learning rate scaled with the square root of
the batch (``--lr_rule sqrt``; ``linear`` and ``none`` too), warm-up and schedule as the
recipe's. Scores the 138 test messages after each run. Prints per setting and seed: steps,
training seconds, s/step, test accuracy, its paired difference (lesson 04's paired bootstrap)
from the recipe's run (batch 8, fp32, same seed: lesson 01's accuracy, so keep 8 in
``--batches``) and the training time relative to that run. A CPU training step on short messages is bound by
per-operation overhead, not arithmetic (``bench/train_throughput.py``), so a step of 32
messages costs much less than 4 steps of 8: this measures whether the accuracy comes along.

``--compile`` trains every run with ``torch.compile`` (TrainingArguments' ``torch_compile``,
inductor); its compile time counts against the run, as it would for a learner.
"""

import argparse
import dataclasses
import math

from labkit import env, evaluate, models, train
from labkit.course import lessons
from tone_test import correct, tone_test


def lr_for(batch: int, base_batch: int, base_lr: float, rule: str) -> float:
    """The learning rate for ``batch``, scaled from the recipe's (``sqrt``, ``linear`` or ``none``)."""
    factor = {"sqrt": math.sqrt(batch / base_batch), "linear": batch / base_batch, "none": 1.0}[rule]
    return base_lr * factor


def compile_training() -> None:
    """Make labkit's trainer settings ask for ``torch.compile`` (inductor): set after the
    SFTConfig is built, so both the switch and its backend are set by hand."""
    plain = train.sft_config

    def compiled(*args, **kwargs):
        config = plain(*args, **kwargs)
        config.torch_compile, config.torch_compile_backend = True, "inductor"
        return config

    train.sft_config = compiled


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--batches", default="8,16,32")
    p.add_argument("--dtypes", default="float32")
    p.add_argument("--lr_rule", default="sqrt", choices=["sqrt", "linear", "none"])
    p.add_argument("--compile", action="store_true", help="torch.compile every run (compile time counted)")
    a = p.parse_args()
    if a.compile:
        compile_training()

    config, pairs = lessons.tone_recipe()
    tone = tone_test()
    base, tok = models.load_base()
    epoch_examples = config.max_steps * config.batch_size
    rows = []
    for seed in a.seeds:
        for dtype in a.dtypes.split(","):
            for batch in [int(b) for b in a.batches.split(",")]:
                steps = max(1, round(epoch_examples / batch))
                cfg = dataclasses.replace(
                    config, seed=seed, dtype=dtype, batch_size=batch, max_steps=steps, save_steps=steps,
                    warmup_steps=max(0, round(config.warmup_steps * config.batch_size / batch)),
                    learning_rate=lr_for(batch, config.batch_size, config.learning_rate, a.lr_rule))
                result = train.finetune(base, tok, pairs, None, cfg, output_dir="/tmp/labkit-bench-tta",
                                        resume=False, live_plot=False, verbose=False)
                rows.append({"seed": seed, "dtype": dtype, "batch": batch, "steps": steps, "lr": cfg.learning_rate,
                             "seconds": result.train_seconds, "correct": correct(result.model, tok, tone)})
                r = rows[-1]
                print(f"seed {seed} {dtype} batch {batch}: {steps} steps, lr {r['lr']:.2g}, {r['seconds']:.0f} s, "
                      f"accuracy {r['correct'].mean():.3f}", flush=True)
                del result

    print(f"\nLesson 01's tone LoRA, one pass over {len(pairs)} examples; learning rate scaled by {a.lr_rule}(batch/"
          f"{config.batch_size}); {len(tone['prompts'])} test messages; {'torch.compile; ' if a.compile else ''}"
          f"CPU: {env.cpu_capability()}\n")
    print("| seed | dtype | batch | steps | lr | train s | s/step | test acc | vs recipe (paired 95%) | time vs recipe |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = next(x for x in rows if x["seed"] == r["seed"] and x["dtype"] == "float32"
                   and x["batch"] == config.batch_size)
        d = evaluate.paired_bootstrap(ref["correct"], r["correct"], seed=r["seed"])
        print(f"| {r['seed']} | {r['dtype']} | {r['batch']} | {r['steps']} | {r['lr']:.2g} | {r['seconds']:.0f} "
              f"| {r['seconds'] / r['steps']:.2f} | {r['correct'].mean():.3f} "
              f"| {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] | {r['seconds'] / ref['seconds']:.2f}x |")


if __name__ == "__main__":
    main()
