"""How much of a training batch is padding? The most that packing (padding-free batches) could save.

    python bench/padding.py [--batch 8] [--seeds 0 1 2]

For each training set the course trains on (lesson 01's tone pairs, lesson 02's recipes pairs,
the learner-style CSV of bench/data/reviews.csv as `labkit finetune` reads it), tokenizes every
example as the trainer sees it (prompt + completion) and forms one epoch of batches the way
labkit's trainer does (``group_by_length``: transformers' length-grouped sampler, seeded) and,
for comparison, at random. Prints the share of the batches' token slots that are padding. A
step's linear layers cost in proportion to the slots, so packed batches (real tokens only)
could save at most that share of the step's arithmetic; attention and per-step overhead do not
shrink with it.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer
from transformers.trainer_pt_utils import get_length_grouped_indices

from labkit import data, models
from labkit.course import lessons

HERE = Path(__file__).resolve().parent


def padding_share(lengths: np.ndarray, order, batch: int) -> float:
    """Padding slots / all slots over the batches of ``order`` (each padded to its longest example)."""
    slots = real = 0
    for start in range(0, len(order), batch):
        chunk = lengths[order[start:start + batch]]
        slots += chunk.max() * len(chunk)
        real += chunk.sum()
    return 1 - real / slots


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()

    tok = AutoTokenizer.from_pretrained(models.base_model_path())
    reviews = data.load_task(str(HERE / "data" / "reviews.csv"), "{text} -> {label}")
    sets = {"tone (lesson 01)": lessons.tone_recipe()[1], "recipes (lesson 02)": lessons.recipes_recipe()[1],
            "reviews.csv (a learner's CSV)": reviews.pairs(reviews.split("train", "train"))}
    print(f"| training set | examples | tokens per example (median, max) | padding, length-grouped batches of {a.batch} "
          f"| padding, random batches of {a.batch} |")
    print("|---|---:|---|---:|---:|")
    for name, pairs in sets.items():
        lengths = np.array([len(tok(x["prompt"] + x["completion"])["input_ids"]) for x in pairs])
        grouped, shuffled = [], []
        for seed in a.seeds:
            generator = torch.Generator().manual_seed(seed)
            grouped.append(padding_share(lengths, get_length_grouped_indices(lengths.tolist(), a.batch,
                                                                             generator=generator), a.batch))
            shuffled.append(padding_share(lengths, np.random.default_rng(seed).permutation(len(lengths)), a.batch))
        print(f"| {name} | {len(lengths)} | {int(np.median(lengths))}, {lengths.max()} | {np.mean(grouped):.1%} "
              f"| {np.mean(shuffled):.1%} |")


if __name__ == "__main__":
    main()
