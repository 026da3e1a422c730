"""The reports a command ends with, so that no run ends at "Saved": for a classification task the
validation (or test) accuracy and macro-F1 against always answering the majority label, the recall of
each label, the checkpoint kept and a warning with what to try when the answers have collapsed; for a
generation task the validation loss against the base model's and the share of empty or looping answers.
``labkit finetune``, ``labkit search`` and ``labkit evaluate`` print them (lesson 08 shows one)."""

from __future__ import annotations

from labkit.cli.flags import CLIError
from labkit.data import Task


def label_shares(pairs, task: Task) -> str:
    """Each label's share of ``pairs``, as text: "negative 26%, neutral 54%, positive 20%"."""
    from collections import Counter

    counts = Counter(p["completion"].strip() for p in pairs)
    return ", ".join(f"{label} {counts[label] / len(pairs):.0%}" for label in task.labels)


def gold_labels(task: Task, records) -> list[str]:
    """The true label of each of ``records``, as label scoring compares them (stripped text)."""
    return [str(r[task.target]).strip() for r in records]


def label_predictions(model, tok, task: Task, records, batch_size=None) -> tuple[list[str], list[str]]:
    """The true labels of ``records`` and the model's label-scored answers for them."""
    from labkit import evaluate

    golds = gold_labels(task, records)
    prompts, prefix = evaluate.label_scoring_setup(tok, task, [p["prompt"] for p in task.pairs(records)])
    try:
        return golds, evaluate.classify(model, tok, prompts, task.labels, prefix, batch_size=batch_size or 16)
    except ValueError as e:  # two labels start with the same token
        raise CLIError(f"{e} Or evaluate by generation: --task_name generation.") from None


COLLAPSE_ADVICE = """What to try, one at a time, then `labkit evaluate` again:
  - if you turned them off, the defaults that guard against this: --balance_classes true --load_best_model_at_end true;
  - more training: a longer --time_budget (e.g. 10), or --max_steps twice the steps above;
  - a smaller, steadier step, if the training loss jumps: --learning_rate 5e-4;
  - more examples of the rare labels in the file (balancing repeats them; it cannot invent new ones)."""


def say_if_collapsed(report: dict, preds) -> bool:
    """Print a warning, with what to try, when the answers have collapsed (:func:`labkit.evaluate.collapse`)."""
    from labkit import evaluate

    why = evaluate.collapse(report, preds)
    if why:
        print(f"WARNING: the model's answers have collapsed: {why}. It has not learned to tell the labels apart.\n"
              + COLLAPSE_ADVICE)
    return why is not None


def validation_report(model, tok, task: Task, records, kept_step: int, steps: int, preds=None) -> dict:
    """What ``labkit finetune`` ends with on a classification task: accuracy and macro-F1 against
    always answering the majority label, recall per class, the checkpoint kept, and a warning when
    the answers have collapsed. Never just "Saved". ``preds``: the model's answers to ``records`` if
    they were scored already (during training, at the kept step); else they are scored here."""
    from labkit import evaluate

    if preds is None:
        golds, preds = label_predictions(model, tok, task, records)
    else:
        golds = gold_labels(task, records)
    report = evaluate.classification_report(golds, preds, task.labels)
    base = evaluate.majority_baseline(golds, task.labels)
    recall = ", ".join(f"{label} {c['recall']:.2f}" if c["support"] else f"{label} (no example)"
                       for label, c in report["per_class"].items())
    print(f"validation ({len(golds)} examples, the checkpoint of step {kept_step} of {steps}):\n"
          f"  accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}; always answering "
          f"{base['label']!r}: accuracy {base['accuracy']:.3f}, macro-F1 {base['macro_f1']:.3f}\n"
          f"  recall per class: {recall}")
    report["collapsed"] = say_if_collapsed(report, preds)
    return report


GENERATED_FOR_REPORT = 8   # validation answers generated for a generation task's report (generation is slow on a CPU)


def generation_report(base, trained, tok, pairs) -> dict:
    """What ``labkit finetune`` ends with on a generation task: the validation loss of the trained
    model against the base model's (on the answer tokens), and the share of empty or looping answers
    among the first :data:`GENERATED_FOR_REPORT` validation prompts (:func:`labkit.evaluate.degenerate`)."""
    from labkit import evaluate

    before, after = (evaluate.completion_loss(m, tok, pairs) for m in (base, trained))
    answers = evaluate.generate(trained, tok, [p["prompt"] for p in pairs[:GENERATED_FOR_REPORT]], max_new_tokens=48)
    bad = sum(evaluate.degenerate(a) for a in answers)
    print(f"validation ({len(pairs)} examples): loss on the answers {after:.3f}, the base model's {before:.3f}; "
          f"{bad} of {len(answers)} generated answers empty or looping")
    if after >= before:
        print("WARNING: the fine-tuned model predicts the validation answers no better than the base model did. "
              "Check the data and template, then try more --max_steps or another --learning_rate.")
    if bad > len(answers) / 2:
        print("WARNING: most generated answers are empty or loop. Look at them with `labkit evaluate`; "
              "a learning rate that is too high, or answers that were cut off in training, do this.")
    return {"loss": after, "base_loss": before, "degenerate": bad / max(len(answers), 1)}


def confusion_table(report: dict) -> str:
    """The confusion matrix as text: rows are the true labels, columns the predictions."""
    import pandas as pd

    labels = report["labels"]
    matrix = pd.DataFrame(report["confusion_matrix"], index=labels, columns=labels).astype(int)
    matrix.index.name = "true \\ predicted"
    return f"accuracy {report['accuracy']:.3f}   macro-F1 {report['macro_f1']:.3f}\n\n{matrix.to_string()}"
