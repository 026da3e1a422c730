"""Measure the baselines stated in the datasheets, with labkit, on each test split.

    python labkit/datasets/build/baselines.py [tone recipes sql] [--limit N]

- tone: majority-class accuracy, and the base model's zero-shot accuracy by label scoring
  (with the task template "{phrase} ->" and with an instruction in the chat template).
- recipes: the base model's zero-shot (instruction in the chat template), greedy decoding.
- sql: the base model's zero-shot (schema + question in the chat template), greedy, by execution.
Writes ``../<name>/baselines.json``.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from labkit import data, evaluate, models  # noqa: E402


def chat(tokenizer, system, user):
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


def tone(model, tok, test):
    labels = data.dataset_info("tone")["labels"]
    gold = [r["tone"] for r in test]
    majority = Counter(r["tone"] for r in data.load_dataset("tone")["train"]).most_common(1)[0][0]
    template = [p["prompt"] for p in data.task_pairs("tone", test)]
    system = f"Classify the tone of the message as one of: {', '.join(labels)}. Answer with one word."
    chats = [chat(tok, system, r["phrase"]) for r in test]
    return {
        "majority_class": majority,
        "majority_accuracy": sum(g == majority for g in gold) / len(gold),
        "zero_shot_template_accuracy": evaluate.classification_report(
            gold, evaluate.classify(model, tok, template, labels), labels)["accuracy"],
        "zero_shot_chat_accuracy": evaluate.classification_report(
            gold, evaluate.classify(model, tok, chats, labels, prefix=""), labels)["accuracy"],
    }


def recipes(model, tok, test):
    system = "List the ingredients of the recipe as a JSON list of generic names, e.g. [\"eggs\", \"milk\"]."
    prompts = [chat(tok, system, r["recipe"]) for r in test]
    outputs = evaluate.generate(model, tok, prompts, max_new_tokens=48)
    scores = evaluate.extraction_scores(outputs, [r["ingredients"] for r in test])
    return {f"zero_shot_{k}": v for k, v in scores.items() if k != "f1s"}


def sql(model, tok, test):
    schema = data.task_context("sql")["schema"]
    system = f"Write one SQLite query that answers the question. Schema:\n{schema}\nAnswer with SQL only."
    prompts = [chat(tok, system, r["question"]) for r in test]
    outputs = [evaluate.extract_sql(o) for o in evaluate.generate(model, tok, prompts, max_new_tokens=64)]
    scores = evaluate.sql_scores(outputs, [r["query"] for r in test], data.database_path("sql"))
    return {f"zero_shot_{k}": v for k, v in scores.items() if k != "matches"}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("names", nargs="*", default=["tone", "recipes", "sql"])
    p.add_argument("--limit", type=int, default=None, help="score only the first N test examples")
    args = p.parse_args()
    model, tok = models.load_base()
    for name in args.names:
        test = list(data.load_dataset(name)["test"])[: args.limit]
        result = {"n_test_scored": len(test), **globals()[name](model, tok, test)}
        result = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
        (HERE.parent / name / "baselines.json").write_text(json.dumps(result, indent=2) + "\n")
        print(name, result, flush=True)
