"""Build the fixed train/validation/test splits of the bundled datasets.

Reads ``<name>_source.jsonl`` (written by hand for ``tone``, by ``make_recipes.py`` and
``make_sql.py`` for the others), splits 80/10/10 (stratified by label for ``tone``; by gold query
for ``sql``, so that no test query was seen in training), keeps near-duplicates in one split, and writes ``../<name>/{train,validation,test}.jsonl``.

    python labkit/datasets/build/make_splits.py
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from labkit.data import find_leaks, read_records, stratified_split, strip_source, write_jsonl  # noqa: E402

META = {
    "tone": {
        "task": "classification", "fields": ["phrase", "tone"], "input_field": "phrase",
        "label_field": "tone", "target_field": "tone",
        "labels": ["joy", "anger", "sadness", "fear", "neutral"],
        "template": "{phrase} -> {tone}",
    },
    "recipes": {
        "task": "extraction", "fields": ["recipe", "ingredients"], "input_field": "recipe",
        "label_field": None, "target_field": "ingredients",
        "template": "Recipe: {recipe}\nIngredients: {ingredients}",
    },
    "sql": {
        "task": "sql", "fields": ["question", "query"], "input_field": "question",
        "label_field": None, "target_field": "query", "database": "shop.sqlite",
        "schema_file": "schema.sql",
        "template": "{schema}\n-- {question}\nSQL: {query}",
        # split by gold query: with a split by question, 187 of 329 test questions had a gold
        # query that also answers a training question verbatim (lesson 04 measures the effect)
        "group_field": "query",
    },
}


def build(name: str) -> None:
    meta = META[name]
    records = strip_source(read_records(HERE / f"{name}_source.jsonl"))
    splits = stratified_split(records, meta["label_field"], (0.8, 0.1, 0.1), seed=0,
                              group_field=meta.get("group_field"))
    for held_out in ("validation", "test"):
        for field in {meta["input_field"], meta.get("group_field") or meta["input_field"]}:
            leaks = find_leaks(splits["train"], splits[held_out], field)
            assert not leaks, f"{name}: {len(leaks)} {held_out} {field}s also in train, e.g. {leaks[:3]}"
    out = HERE.parent / name
    for split, rows in splits.items():
        write_jsonl(rows, out / f"{split}.jsonl")
    sizes = {s: len(r) for s, r in splits.items()}
    (out / "meta.json").write_text(json.dumps({"name": name, **meta, "sizes": sizes}, indent=2) + "\n")
    print(name, sizes)


if __name__ == "__main__":
    for name in sys.argv[1:] or META:
        if (HERE / f"{name}_source.jsonl").is_file():
            build(name)
        else:
            print(f"skip {name}: no {name}_source.jsonl")
