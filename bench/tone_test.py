"""Lesson 01's tone test split as the bench scripts score it (imported by them: run them as
``python bench/<script>.py``, which puts this folder on the import path).

:func:`tone_test` gives the 138 test prompts, their gold labels and the label set;
:func:`correct` label-scores a PyTorch model on them (lesson 01's classifier: one forward pass
per message, the most likely label) and returns 0/1 per message, ready for lesson 04's paired
tests (``labkit.evaluate.paired_bootstrap``, ``mcnemar``).
"""

import numpy as np

from labkit import data, evaluate


def tone_test() -> dict:
    """``{"prompts", "gold", "labels"}`` of the tone test split (labels as its datasheet lists them)."""
    test = list(data.load_dataset("tone")["test"])
    return {"prompts": [pair["prompt"] for pair in data.task_pairs("tone", test)],
            "gold": [r["tone"] for r in test], "labels": data.dataset_info("tone")["labels"]}


def correct(model, tokenizer, tone: dict) -> np.ndarray:
    """1.0 where ``model`` label-scores a test message right, 0.0 where not."""
    predicted = evaluate.classify(model, tokenizer, tone["prompts"], tone["labels"])
    return np.array([p == g for p, g in zip(predicted, tone["gold"])], dtype=float)
