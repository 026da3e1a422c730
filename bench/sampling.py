"""Sampling lesson 09's preference pairs: PyTorch or the int4 export, which is faster, and are the pairs as good?

    python bench/sampling.py [--prompts 16] [--k 4] [--max-new-tokens 40] [--batch 16] [--repeats 5] [--dpo]
                             [--grpo [PxG ...]]

Both sides sample ``k`` answers to each of lesson 09's training recipes from lesson 02's recipes
adapter, batched, at temperature 1.0 with neither top-p nor top-k:
- **PyTorch**: ``labkit.preferences.sample_completions`` (the fp32 base with the LoRA adapter, as
  lesson 09 samples);
- **int4 ONNX**: the adapter merged into an int4 export (lesson 06's ``export_onnx``), sampled
  with onnxruntime-genai (:func:`labkit.onnx.serve.sample_from_export`).
The int4 model is not the policy DPO trains (its weights are rounded to 4 bits), so its pairs are
nearly, not exactly, on-policy. The table gives generated tokens per second (the median of
``--repeats`` interleaved rounds, ``labkit.course.timing.compare_times``, with its range), the
share of prompts that gave a pair (best and worst sample differ in item F1), and the mean F1 of the
chosen and rejected answers. ``--dpo`` also trains lesson 09's DPO run on each pair set and scores
both on the test recipes (paired bootstrap of item F1 against each other and against SFT).
``--grpo 2x4 1x8 4x2`` runs lesson 09's GRPO with P prompts x G answers per step (alone: the
lesson's setting) and reports the seconds, the share spent in ``generate`` (TRL's own profiling
blocks, recorded here), answers scored per second, and the mean reward of the first and last
step (a handful of steps: not a time-to-reward, which needs longer runs).
"""

import argparse
import time

import numpy as np
import pandas as pd

from labkit import data, env, evaluate, models, train
from labkit.course import lessons, timing
from labkit.course.lesson_times import machine_kind
from labkit.onnx import build, serve
from labkit.preferences import preference_pairs, sample_completions


def f1_score(answer: str, gold) -> float:
    """Lesson 09's verifier: item F1 of the answer's first-line JSON list against the gold items."""
    return evaluate.item_f1(evaluate.parse_json_list(answer.strip().split("\n")[0]), gold)


def summary(name: str, sampled: dict, prompts, golds) -> tuple[dict, list]:
    """One table row for a sampler's output, and the pairs it gives."""
    pairs = preference_pairs(prompts, sampled["completions"], f1_score, golds)
    return {"sampler": name, "seconds": round(sampled["seconds"], 1), "tokens": sampled["new_tokens"],
            "tokens/s": round(sampled["new_tokens"] / sampled["seconds"], 1),
            "prompts with a pair": f"{len(pairs)}/{len(prompts)}",
            "chosen F1": round(float(np.mean([p["chosen_score"] for p in pairs])), 3) if pairs else None,
            "rejected F1": round(float(np.mean([p["rejected_score"] for p in pairs])), 3) if pairs else None}, pairs


def dpo_scores(base, tok, pairs, sft, s, name: str, test_prompts, test_golds) -> np.ndarray:
    """Lesson 09's DPO run on ``pairs``; item F1 of its greedy answers to the test recipes."""
    cfg = train.TrainConfig(max_steps=s["dpo_steps"], batch_size=s["dpo_batch"], learning_rate=s["dpo_learning_rate"],
                            warmup_steps=0, logging_steps=1, eval_steps=None, lr_scheduler_type="constant")
    run = train.dpo(base, tok, pairs, sft.adapter_dir, cfg, beta=s["betas"][0],
                    output_dir=f"/tmp/labkit-bench-sampling/dpo-{name}", verbose=False)
    return test_f1(run.model, tok, test_prompts, test_golds, s)


def test_f1(model, tok, prompts, golds, s) -> np.ndarray:
    """Item F1 of greedy answers to the test recipes."""
    outs = evaluate.generate(model, tok, prompts, max_new_tokens=s["max_new_tokens"], batch_size=32)
    return np.array([f1_score(o, g) for o, g in zip(outs, golds)])


def grpo_generation_share(base, tok, sft, s, prompts, golds, n_prompts: int, generations: int) -> dict:
    """Lesson 09's GRPO run (task reward only) with ``n_prompts`` prompts x ``generations`` answers
    per step: seconds, answers scored per second, the share of the training time that TRL's
    ``generate`` blocks took (read from TRL's own profiling contexts), and the mean reward of the
    first and last step."""
    from trl.extras import profiling

    spent: dict[str, float] = {}
    original = profiling.ProfilingContext._log_metrics

    def record(self, duration):
        spent[self.name] = spent.get(self.name, 0.0) + duration
        original(self, duration)

    def task_reward(completions, ingredients, **_):
        return [f1_score(c, g) for c, g in zip(completions, ingredients)]

    cfg = train.TrainConfig(max_steps=s["grpo_steps"], batch_size=n_prompts, learning_rate=s["grpo_learning_rate"],
                            warmup_steps=0, logging_steps=1, eval_steps=None, lr_scheduler_type="constant")
    profiling.ProfilingContext._log_metrics = record
    try:
        run = train.grpo(base, tok, [{"prompt": p, "ingredients": g} for p, g in zip(prompts, golds)], [task_reward],
                         sft.adapter_dir, cfg, output_dir=f"/tmp/labkit-bench-sampling/grpo-{n_prompts}x{generations}",
                         num_generations=generations, max_completion_length=s["max_new_tokens"], beta=s["kl_beta"],
                         temperature=s["temperature"], verbose=False)
    finally:
        profiling.ProfilingContext._log_metrics = original
    generate = sum(v for k, v in spent.items() if "generate" in k)
    rewards = [h["reward"] for h in run.history if "reward" in h]
    answers = run.steps * n_prompts * generations
    return {"prompts x answers per step": f"{n_prompts} x {generations}", "steps": run.steps,
            "train s": round(run.train_seconds, 1), "answers/s": round(answers / run.train_seconds, 2),
            "generate s": round(generate, 1), "generate share": f"{generate / run.train_seconds:.0%}",
            "reward, first step": round(rewards[0], 3), "reward, last step": round(rewards[-1], 3)}


def compare_samplers(sft, tok, genai, prompts, golds, a) -> dict:
    """Sample with both samplers (their pairs), time them in interleaved rounds, print the table.
    Returns each sampler's pairs."""
    kw = dict(k=a.k, max_new_tokens=a.max_new_tokens, temperature=1.0, batch_size=a.batch, seed=env.seed())
    samplers = {"PyTorch fp32 + LoRA": lambda: sample_completions(sft.model, tok, prompts, **kw),
                "int4 ONNX, merged": lambda: serve.sample_from_export(genai, tok, prompts, **kw)}
    runs = {name: sample() for name, sample in samplers.items()}      # the pairs; also each one's warm-up
    times = timing.compare_times(samplers, repeats=a.repeats, warmup=0)
    rows, pair_sets = [], {}
    for name, sampled in runs.items():
        row, pair_sets[name] = summary(name, sampled, prompts, golds)
        t, n = times.loc[name], sampled["new_tokens"]
        row["seconds"] = round(t["median s"], 1)
        row["tokens/s"] = f"{n / t['median s']:.1f} [{n / t['max s']:.1f}, {n / t['min s']:.1f}]"
        rows.append(row)
    print(f"\n{len(prompts)} prompts x {a.k} samples, up to {a.max_new_tokens} new tokens, batches of up to {a.batch}, "
          f"median of {a.repeats} interleaved rounds [range], on {machine_kind()}")
    print(pd.DataFrame(rows).to_markdown(index=False))
    return pair_sets


def compare_dpo(base, tok, sft, s, pair_sets, ds) -> None:
    """Lesson 09's DPO trained on each sampler's pairs, scored on the test recipes against SFT and each other."""
    test = list(ds["test"])[: s["test_examples"]]
    test_prompts = [q["prompt"] for q in data.task_pairs("recipes", test)]
    test_golds = [r["ingredients"] for r in test]
    sft_f1 = test_f1(sft.model, tok, test_prompts, test_golds, s)
    f1 = {name: dpo_scores(base, tok, pairs, sft, s, name.split()[0], test_prompts, test_golds)
          for name, pairs in pair_sets.items()}
    print(f"\nDPO on each pair set, {len(test)} test recipes, item F1 (SFT: {sft_f1.mean():.3f}):")
    for name, scores in f1.items():
        b = evaluate.paired_bootstrap(sft_f1, scores)
        print(f"  {name}: {scores.mean():.3f}, vs SFT {b['difference']:+.3f} [{b['ci_low']:+.3f}, {b['ci_high']:+.3f}]")
    torch_f1, int4_f1 = f1.values()
    b = evaluate.paired_bootstrap(torch_f1, int4_f1)
    print(f"  int4 pairs - PyTorch pairs: {b['difference']:+.3f}, paired 95% [{b['ci_low']:+.3f}, {b['ci_high']:+.3f}]")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--batch", type=int, default=16, help="sequences per batch, both samplers")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds per sampler")
    p.add_argument("--dpo", action="store_true", help="train DPO on each pair set and compare on the test recipes")
    p.add_argument("--grpo", nargs="*", metavar="PxG", default=None,
                   help="GRPO runs with P prompts x G answers per step (default: lesson 09's): seconds, the share "
                        "spent generating, answers scored per second")
    a = p.parse_args()

    s = env.settings("preferences")
    base, tok = models.load_base()
    sft = lessons.lesson_adapter("recipes", base, tok)
    start = time.perf_counter()
    export = build.export_onnx(models.base_model_path(), adapter_dir=sft.adapter_dir, precision="int4", verbose=False)
    print(f"int4 export of the adapter merged: {export} ({time.perf_counter() - start:.0f} s, reused if built before)")
    ds = data.load_dataset("recipes")
    pool = list(ds["train"])[-a.prompts:]
    prompts = [q["prompt"] for q in data.task_pairs("recipes", pool)]
    golds = [r["ingredients"] for r in pool]
    pair_sets = compare_samplers(sft, tok, serve.GenAIModel(export), prompts, golds, a)
    if a.dpo:
        compare_dpo(base, tok, sft, s, pair_sets, ds)
    if a.grpo is not None:
        settings = a.grpo or [f"{s['grpo_prompts']}x{s['generations']}"]
        rows = [grpo_generation_share(base, tok, sft, s, prompts, golds, *map(int, x.split("x"))) for x in settings]
        print(f"\nGRPO, {s['grpo_steps']} steps each, answers up to {s['max_new_tokens']} tokens "
              "(TRL's transformers.generate path; generate's time from TRL's profiling blocks):")
        print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
