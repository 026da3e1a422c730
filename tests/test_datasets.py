"""Tests for the bundled datasets (tone, recipes, sql): sizes, balance, targets, no leakage."""

import json
from collections import Counter

import pytest

from labkit import data
from labkit.evaluate import run_sql

NAMES = ["tone", "recipes", "sql"]
MIN_SIZE = {"tone": 1200, "recipes": 1000, "sql": 1000}


@pytest.fixture(scope="module")
def bundled():
    return {name: data.load_dataset(name) for name in NAMES}


def test_bundled_names():
    assert set(NAMES) <= set(data.bundled_names())


@pytest.mark.parametrize("name", NAMES)
def test_load_by_name_and_sizes(bundled, name):
    ds = bundled[name]
    info = data.dataset_info(name)
    sizes = {s: ds[s].num_rows for s in data.SPLITS}
    total = sum(sizes.values())
    assert total >= MIN_SIZE[name]
    assert sizes == info["sizes"]
    for split, share in zip(data.SPLITS, (0.8, 0.1, 0.1)):
        assert abs(sizes[split] / total - share) < 0.02, (split, sizes)
    assert set(info["fields"]) <= set(ds["train"].column_names)


def test_tone_labels_and_balance(bundled):
    ds, labels = bundled["tone"], data.dataset_info("tone")["labels"]
    assert len(labels) >= 4
    for split in data.SPLITS:
        counts = Counter(ds[split]["tone"])
        assert set(counts) == set(labels), split
        assert max(counts.values()) <= 2 * min(counts.values()), (split, counts)


def test_recipes_targets_are_lists_of_strings(bundled):
    for split in data.SPLITS:
        for target in bundled["recipes"][split]["ingredients"]:
            assert isinstance(target, list) and target, target
            assert all(isinstance(x, str) and x.strip() for x in target), target
            assert json.loads(json.dumps(target)) == target


def test_sql_gold_queries_run(bundled):
    db = data.database_path("sql")
    assert db.is_file()
    failures = []
    for split in data.SPLITS:
        for q in bundled["sql"][split]["query"]:
            rows, err = run_sql(db, q)
            if err or not rows:
                failures.append((split, q, err or "no rows"))
    assert not failures, f"{len(failures)} gold queries fail or return no rows, e.g. {failures[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_no_leakage(bundled, name):
    field = data.dataset_info(name)["input_field"]
    train = {data.normalize_text(t) for t in bundled[name]["train"][field]}
    for held_out in ("validation", "test"):
        leaks = [t for t in bundled[name][held_out][field] if data.normalize_text(t) in train]
        assert not leaks, f"{name}: {len(leaks)} {held_out} inputs also in train, e.g. {leaks[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_datasheet_exists(name):
    readme = data.DATASETS_DIR / name / "README.md"
    assert readme.is_file(), f"{readme} is missing: every bundled dataset needs a datasheet"
    assert len(readme.read_text(encoding="utf-8").strip()) > 200


def test_sql_split_by_query_no_test_answer_was_seen_in_training(bundled):
    # split by question, 187 of 329 test questions had a gold query that also answered a
    # training question verbatim; lesson 04 measures the effect. Now split by query.
    ds = bundled["sql"]
    train_queries = {data.normalize_text(q) for q in ds["train"]["query"]}
    for split in ("validation", "test"):
        assert not [q for q in ds[split]["query"] if data.normalize_text(q) in train_queries], split


def test_group_field_keeps_each_group_in_one_split():
    records = [{"question": f"q{i}", "query": f"SELECT {i % 25}"} for i in range(200)]
    splits = data.stratified_split(records, None, (0.8, 0.1, 0.1), seed=0, group_field="query")
    where = {}
    for split, rows in splits.items():
        for r in rows:
            assert where.setdefault(r["query"], split) == split, r
    assert sum(len(rows) for rows in splits.values()) == 200
