"""Tests for labkit.evaluate on a tiny random Llama (tests/conftest.py) and a tiny SQLite db."""

import hashlib
import math
import sqlite3
import time

import numpy as np
import pytest
import torch

from labkit import evaluate

LABELS = ["joy", "anger", "sadness", "fear", "neutral"]
PROMPTS = [  # different lengths, so a batch is left-padded
    "x ->",
    "Finally caught the northern lights ->",
    "it sucks eating dinner alone every night ->",
    "The league schedule has us playing every other Saturday through March, said the coach ->",
    "hello ->",
]


# --- label scoring --------------------------------------------------------------------------

@torch.no_grad()
def reference_scores(model, tokenizer, prompts, labels):
    """One prompt at a time, no padding: log_softmax over the labels' first-token logits."""
    ids = [tokenizer(" " + label, add_special_tokens=False)["input_ids"][0] for label in labels]
    out = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        logits = model(**enc).logits[0, -1, ids]
        out.append(torch.log_softmax(logits.float(), dim=-1).numpy())
    return np.stack(out)


def test_prompts_really_need_padding(tiny_tokenizer):
    lengths = {len(tiny_tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS}
    assert len(lengths) == len(PROMPTS)


@pytest.mark.parametrize("batch_size", [16, 2])
def test_score_labels_matches_reference(tiny_model, tiny_tokenizer, batch_size):
    expected = reference_scores(tiny_model, tiny_tokenizer, PROMPTS, LABELS)
    scores = evaluate.score_labels(tiny_model, tiny_tokenizer, PROMPTS, LABELS, batch_size=batch_size)
    assert scores.shape == (len(PROMPTS), len(LABELS))
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0, atol=1e-5)
    assert tiny_tokenizer.padding_side == "right"  # restored


def test_classify_is_argmax(tiny_model, tiny_tokenizer):
    expected = reference_scores(tiny_model, tiny_tokenizer, PROMPTS, LABELS)
    predicted = evaluate.classify(tiny_model, tiny_tokenizer, PROMPTS, LABELS)
    assert predicted == [LABELS[i] for i in expected.argmax(axis=1)]


def test_label_token_ids(tiny_tokenizer):
    ids = evaluate.label_token_ids(tiny_tokenizer, LABELS)
    assert len(set(ids)) == len(LABELS)
    assert ids[0] == tiny_tokenizer(" joy", add_special_tokens=False)["input_ids"][0]
    with pytest.raises(ValueError, match=r"\['very happy', 'very sad'\] start with the same token"):
        evaluate.label_token_ids(tiny_tokenizer, ["joy", "very happy", "very sad"])


def test_generate_batched_equals_one_by_one(tiny_model, tiny_tokenizer):
    batched = evaluate.generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=4, batch_size=8)
    single = [evaluate.generate(tiny_model, tiny_tokenizer, [p], max_new_tokens=4)[0] for p in PROMPTS]
    assert batched == single
    assert len(batched) == len(PROMPTS) and all(isinstance(t, str) for t in batched)


# --- classification report ------------------------------------------------------------------

def test_classification_report():
    labels = ["a", "b", "c", "d"]
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    rep = evaluate.classification_report(y_true, y_pred, labels)
    assert rep["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_array_equal(rep["confusion_matrix"], [[2, 1, 0, 0], [0, 1, 1, 0],
                                                            [0, 0, 1, 0], [0, 0, 0, 0]])
    pc = rep["per_class"]
    assert pc["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert pc["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert pc["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert pc["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert rep["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3 + 0.0) / 4)
    assert rep["correct"] == [True, True, False, True, False, True]
    assert rep["labels"] == labels


def test_classification_report_perfect():
    rep = evaluate.classification_report(["x", "y"], ["x", "y"], ["x", "y"])
    assert rep["accuracy"] == 1.0 and rep["macro_f1"] == 1.0


# --- extraction -----------------------------------------------------------------------------

def test_parse_json_list():
    assert evaluate.parse_json_list(' ["Eggs", " milk "]\nRecipe: next') == ["eggs", "milk"]
    assert evaluate.parse_json_list('Sure! You need ["flour"] and love.') == ["flour"]
    assert evaluate.parse_json_list("no list here") is None
    assert evaluate.parse_json_list('["sugar", "salt"') is None
    assert evaluate.parse_json_list("[not json]") is None


def test_extraction_scores():
    outputs = [' ["eggs", "milk"]',
               'Sure! You need ["Eggs", " flour "] and love.',
               "no idea, sorry",
               '["sugar", "salt"',
               '["butter"]']
    golds = [["eggs", "milk"], ["eggs", "milk"], ["eggs"], ["sugar", "salt"], ["Butter "]]
    s = evaluate.extraction_scores(outputs, golds)
    assert s["valid_json"] == pytest.approx(3 / 5)
    assert s["f1s"] == pytest.approx([1.0, 0.5, 0.0, 0.0, 1.0])
    assert s["item_f1"] == pytest.approx(2.5 / 5)
    assert s["exact_match"] == pytest.approx(2 / 5)  # F1 1.0 <=> exact match


def test_item_f1():
    assert evaluate.item_f1(None, ["a"]) == 0.0
    assert evaluate.item_f1([], []) == 1.0
    assert evaluate.item_f1(["a", "b", "c"], ["a"]) == pytest.approx(0.5)
    assert evaluate.item_f1(["x"], ["a"]) == 0.0


# --- SQL ------------------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
        INSERT INTO customers VALUES (1, 'Ana', 'Lisbon'), (2, 'Ben', 'Paris'), (3, 'Chloe', 'Paris');
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
        INSERT INTO orders VALUES (1, 1, 10.5), (2, 2, 20.25), (3, 2, 4.0);
    """)
    con.commit()
    con.close()
    return path


def test_execution_match_equivalent_queries(db):
    gold = "SELECT name, city FROM customers WHERE city = 'Paris' ORDER BY name"
    assert evaluate.execution_match(
        "select c.name, c.city from customers as c where c.city IN ('Paris') order by c.id desc",
        gold, db) == {"match": True, "error": None}
    assert evaluate.execution_match(
        "SELECT c.name, SUM(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id",
        "SELECT (SELECT name FROM customers WHERE id = customer_id), SUM(total) FROM orders "
        "GROUP BY customer_id", db)["match"]


def test_execution_match_column_order_matters(db):
    r = evaluate.execution_match("SELECT city, name FROM customers", "SELECT name, city FROM customers", db)
    assert r == {"match": False, "error": None}


def test_execution_match_broken_query(db):
    r = evaluate.execution_match("SELEC * FRM x", "SELECT name FROM customers", db)
    assert r["match"] is False
    assert "syntax error" in r["error"]


def test_execution_match_different_rows(db):
    r = evaluate.execution_match("SELECT name FROM customers WHERE city = 'Lisbon'",
                                 "SELECT name FROM customers", db)
    assert r == {"match": False, "error": None}
    with pytest.raises(ValueError, match="gold query fails"):
        evaluate.execution_match("SELECT 1", "SELECT nope FROM customers", db)


def test_sql_scores(db):
    s = evaluate.sql_scores(["SELECT name FROM customers", "SELEC", "SELECT id FROM customers"],
                            ["SELECT name FROM customers"] * 3, db)
    assert s["matches"] == [True, False, False]
    assert s["execution_accuracy"] == pytest.approx(1 / 3)
    assert s["runs"] == pytest.approx(2 / 3)


def test_run_sql_times_out(db):
    runaway = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
               "SELECT COUNT(*) FROM c")
    start = time.monotonic()
    rows, err = evaluate.run_sql(db, runaway, timeout_s=0.5)
    elapsed = time.monotonic() - start
    assert rows is None and "timed out" in err
    assert elapsed < 2.0


def test_run_sql_is_read_only(db):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    rows, err = evaluate.run_sql(db, "DELETE FROM customers")
    assert rows is None and "readonly" in err.replace("read-only", "readonly")
    rows, err = evaluate.run_sql(db, "DROP TABLE orders")
    assert rows is None and err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert evaluate.run_sql(db, "SELECT COUNT(*) FROM customers") == ([(3,)], None)


def test_run_sql_on_bundled_db():
    from labkit.data import database_path

    rows, err = evaluate.run_sql(database_path("sql"), "SELECT COUNT(*) FROM customers")
    assert err is None and rows[0][0] > 0


# --- intervals and comparisons ----------------------------------------------------------------

def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    small = rng.random(30) < 0.7
    large = rng.random(3000) < 0.7
    lo_s, hi_s = evaluate.bootstrap_ci(small)
    lo_l, hi_l = evaluate.bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3
    assert evaluate.bootstrap_ci(small) == (lo_s, hi_s)  # seeded


def test_compare():
    df = evaluate.compare({"base": [1, 0, 0, 1], "tuned": [1, 1, 1, 0]},
                          extra={"loss": {"base": 2.5, "tuned": 1.25}})
    assert list(df.index) == ["base", "tuned"] and df.index.name == "model"
    assert list(df.columns) == ["accuracy", "95% CI low", "95% CI high", "n", "loss"]
    assert df.loc["tuned", "accuracy"] == pytest.approx(0.75)
    assert df.loc["base", "n"] == 4 and df.loc["tuned", "loss"] == 1.25
    assert (df["95% CI low"] <= df["accuracy"]).all() and (df["accuracy"] <= df["95% CI high"]).all()
    assert "item_f1" in evaluate.compare({"m": [0.5, 1.0]}, metric="item_f1").columns


# --- loss and perplexity ----------------------------------------------------------------------

PAIRS = [{"prompt": "it sucks eating dinner alone ->", "completion": " sadness"},
         {"prompt": "Recipe: toss the eggs with milk\nIngredients:", "completion": ' ["eggs", "milk"]'},
         {"prompt": "x ->", "completion": " joy"}]


@torch.no_grad()
def reference_loss(model, tokenizer, pairs):
    """Mean cross-entropy over all completion tokens of all pairs (token-weighted)."""
    total, count = 0.0, 0
    for p in pairs:
        n_prompt = len(tokenizer(p["prompt"], add_special_tokens=False)["input_ids"])
        # training (TRL) appends EOS to the completion: the model also learns to stop
        ids = tokenizer(p["prompt"] + p["completion"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
        for pos in range(n_prompt, len(ids)):
            total -= float(logp[pos - 1, ids[pos]])
            count += 1
    return total / count


def test_completion_loss_and_perplexity(tiny_model, tiny_tokenizer):
    loss = evaluate.completion_loss(tiny_model, tiny_tokenizer, PAIRS, batch_size=2)
    assert loss == pytest.approx(reference_loss(tiny_model, tiny_tokenizer, PAIRS), rel=1e-4)
    assert 0 < loss < 20
    ppl = evaluate.perplexity(tiny_model, tiny_tokenizer, PAIRS, batch_size=2)
    assert ppl == pytest.approx(math.exp(loss), rel=1e-6)


def test_example_losses_are_each_examples_own_loss_in_order(tiny_model, tiny_tokenizer):
    per_example = evaluate.example_losses(tiny_model, tiny_tokenizer, PAIRS, batch_size=2)
    assert len(per_example) == len(PAIRS)
    for pair, loss in zip(PAIRS, per_example):            # batching and length-sorting change nothing
        assert loss == pytest.approx(reference_loss(tiny_model, tiny_tokenizer, [pair]), rel=1e-4)


def test_completion_loss_is_the_loss_trl_trains_on(tiny_model, tiny_tokenizer, tmp_path):
    """Same tokens, same masking, same EOS, same number as the SFTTrainer's eval_loss."""
    from datasets import Dataset
    from trl import SFTTrainer

    from labkit import train

    pairs = PAIRS + [{"prompt": "x -", "completion": "> joy"}]  # " -" and ">" merge into " ->"
    args = train.sft_config(train.TrainConfig(batch_size=8), tmp_path, has_eval=True)
    trainer = SFTTrainer(model=tiny_model, args=args, processing_class=tiny_tokenizer,
                         train_dataset=Dataset.from_list(pairs), eval_dataset=Dataset.from_list(pairs))
    for row, pair in zip(trainer.eval_dataset, pairs):
        ids, labels = evaluate.completion_tokens(tiny_tokenizer, pair)
        assert (row["input_ids"], row["labels"]) == (ids, labels)
        assert ids[-1] == tiny_tokenizer.eos_token_id
    merged = evaluate.completion_tokens(tiny_tokenizer, pairs[-1])
    n_prompt = len(tiny_tokenizer(pairs[-1]["prompt"])["input_ids"])
    assert merged[1].count(-100) < n_prompt  # the merged token is learned, as in training
    loss = evaluate.completion_loss(tiny_model, tiny_tokenizer, pairs, batch_size=3)  # two batches
    assert loss == pytest.approx(trainer.evaluate()["eval_loss"], rel=1e-4)  # one eval batch of 16
    assert not tiny_model.training


def test_parse_json_list_with_brackets_inside_strings():
    assert evaluate.parse_json_list('["salt [to taste]", "eggs"] done') == ["salt [to taste]", "eggs"]
    assert evaluate.parse_json_list('Note [1]: ["flour"]') == ["1"]  # the first list wins
    assert evaluate.parse_json_list('[not json] but ["milk"]') == ["milk"]


def test_extract_sql_ignores_prose():
    assert evaluate.extract_sql("a query with a join") == "a query with a join"
    assert evaluate.extract_sql("You can select the names") == "You can select the names"
    assert evaluate.extract_sql("You can select the names like this:\nSELECT name FROM customers;") == \
        "SELECT name FROM customers"
    assert evaluate.extract_sql("Use a query with a join: SELECT o.id FROM orders o JOIN c ON 1;") == \
        "SELECT o.id FROM orders o JOIN c ON 1"
    assert evaluate.extract_sql("WITH big AS (SELECT * FROM t) SELECT count(*) FROM big;\n\nDone.") == \
        "WITH big AS (SELECT * FROM t) SELECT count(*) FROM big"
    assert evaluate.extract_sql("Here it is:\n```\nselect name\nfrom customers\n```") == "select name\nfrom customers"


def test_shared_prefix_cache_gives_the_same_logits(tiny_model, tiny_tokenizer):
    """A few-shot prefix run once and cached must score exactly like the full prompts."""
    from labkit import evaluate

    prefix = "very happy -> joy\nvery sad -> sadness\n"
    prompts = [prefix + q for q in ["the cat sat ->", "Recipe: eggs ->", "it sucks eating dinner alone ->"]]
    full = evaluate.last_token_logits(tiny_model, tiny_tokenizer, prompts, batch_size=2)
    cached = evaluate.last_token_logits(tiny_model, tiny_tokenizer, prompts, batch_size=2, shared_prefix=prefix)
    assert torch.allclose(full, cached, atol=1e-4)


def test_shared_prefix_must_be_a_prefix(tiny_model, tiny_tokenizer):
    import pytest as _pytest

    from labkit import evaluate

    with _pytest.raises(ValueError, match="prefix of every prompt"):
        evaluate.last_token_logits(tiny_model, tiny_tokenizer, ["abc ->"], shared_prefix="xyz")


def test_extract_sql_from_chatty_output():
    from labkit import evaluate

    assert evaluate.extract_sql("Sure! Here it is:\n```sql\nSELECT name FROM t WHERE x = 1;\n```") == \
        "SELECT name FROM t WHERE x = 1"
    assert evaluate.extract_sql("select 1") == "select 1"
    assert evaluate.extract_sql("no query here") == "no query here"


# --- paired comparisons, interval widths, overlap metrics, review sheets (lesson 04) -----------

def test_paired_bootstrap_sees_a_real_difference_and_a_null_one():
    rng = np.random.default_rng(1)
    a = rng.random(200) < 0.6
    b = a.copy()
    b[np.flatnonzero(~a)[:30]] = True            # b fixes 30 of a's mistakes and breaks none
    real = evaluate.paired_bootstrap(a, b)
    assert real["difference"] == pytest.approx(30 / 200) and real["real"] and real["ci_low"] > 0
    same = evaluate.paired_bootstrap(a, a)
    assert same["difference"] == 0 and not same["real"]
    with pytest.raises(ValueError, match="same examples"):
        evaluate.paired_bootstrap(a, b[:-1])


def test_mcnemar_counts_disagreements_and_matches_the_exact_binomial():
    a = [True] * 10 + [False] * 10 + [True] * 5
    b = [True] * 10 + [True] * 10 + [False] * 5
    result = evaluate.mcnemar(a, b)
    assert (result["a_only"], result["b_only"]) == (5, 10)
    # two-sided exact binomial: 2 * P(X <= 5), X ~ Bin(15, 1/2)
    from math import comb
    assert result["p_value"] == pytest.approx(2 * sum(comb(15, i) for i in range(6)) / 2 ** 15)
    assert evaluate.mcnemar(a, a)["p_value"] == 1.0


@pytest.mark.parametrize("accuracy", [0.5, 0.7, 0.86, 0.95])
def test_wilson_width_scales_like_one_over_sqrt_n_at_any_accuracy(accuracy):
    # the Wilson width is a formula in n: this checks the formula (lesson 04 measures the spread itself: subset_spread)
    for seed in range(3):
        values = (np.random.default_rng(seed).random(138) < accuracy).astype(float)
        widths = evaluate.interval_widths(values, [10, 20, 40, 80, 138], repeats=100, seed=seed)
        slope = evaluate.scaling_exponent({n: w["wilson"] for n, w in widths.items()})
        assert -0.65 < slope < -0.35, (accuracy, seed, slope)
        assert all(w["wilson"] > 0 for w in widths.values())


def test_percentile_bootstrap_collapses_on_a_perfect_small_sample_and_wilson_does_not():
    assert evaluate.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    lo, hi = evaluate.wilson_ci(10, 10)
    assert hi == 1.0 and 0.65 < lo < 0.75
    lo, hi = evaluate.wilson_ci(50, 100)                       # large n: close to p +- 1.96 sqrt(p(1-p)/n)
    assert hi - lo == pytest.approx(2 * 1.96 * 0.05, rel=0.02)
    widths = evaluate.interval_widths(np.r_[np.ones(19), 0.0], [10], repeats=50, seed=0)
    assert widths[10]["collapsed"] > 0.3                       # half the subsets of 10 miss the one wrong answer
    with pytest.raises(ValueError, match="n >= 1"):
        evaluate.wilson_ci(0, 0)


def test_scaling_exponent_reads_the_power_law():
    assert evaluate.scaling_exponent({n: 3 / n ** 0.5 for n in (10, 40, 160)}) == pytest.approx(-0.5)


def test_labkit_seed_moves_every_resample(monkeypatch):
    values = (np.random.default_rng(0).random(60) < 0.6).astype(float)
    monkeypatch.delenv("LABKIT_SEED", raising=False)
    first = evaluate.bootstrap_ci(values)
    assert evaluate.bootstrap_ci(values) == first == evaluate.bootstrap_ci(values, seed=0)
    monkeypatch.setenv("LABKIT_SEED", "1")
    assert evaluate.bootstrap_ci(values) == evaluate.bootstrap_ci(values, seed=1) != first


def test_overlap_metrics_reward_word_overlap_not_correctness():
    gold = "SELECT name FROM products WHERE price > 100"
    scores = evaluate.overlap_scores([gold, gold.replace(">", "<"), "nothing alike"], [gold] * 3)
    assert scores["rougeL"][0] == pytest.approx(1.0) and scores["bleu"][0] == pytest.approx(1.0)
    assert scores["rougeL"][1] > 0.8 and scores["bleu"][1] > 0.5      # wrong query, high overlap
    assert scores["rougeL"][2] == 0 and scores["bleu"][2] < 0.1


def test_string_match_ignores_case_spaces_and_semicolon_only():
    assert evaluate.string_match("select  name from t;", "SELECT name FROM t")
    assert not evaluate.string_match("SELECT t.name FROM t", "SELECT name FROM t")


def test_review_sheet_writes_csv_and_html(tmp_path):
    import pandas as pd

    rows = [{"input": "a <b>", "gold": "x", "base": "y", "fine-tuned": "x"}]
    paths = evaluate.review_sheet(rows, tmp_path / "sheet")
    table = pd.read_csv(paths["csv"])
    assert list(table.columns) == ["input", "gold", "base", "fine-tuned", "rating (1-5)"]
    assert "a &lt;b&gt;" in paths["html"].read_text()      # escaped, not interpreted


@pytest.mark.parametrize("add_bos", [False, True], ids=["no BOS (SmolLM2)", "BOS first (Llama 3, Mistral)"])
def test_evaluation_sees_the_tokens_training_sees(add_bos, tmp_path):
    # TRL tokenises each training pair itself; labkit's label scoring, generation and completion loss
    # must see the same ids, BOS included where the tokenizer adds one
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from conftest import build_model, build_tokenizer
    from labkit import train

    tok = build_tokenizer(add_bos=add_bos)
    assert (tok("x")["input_ids"][0] == tok.bos_token_id) == add_bos
    model = build_model(tok)
    cfg = train.TrainConfig(max_steps=1, batch_size=4, dtype="float32")
    # and prompts a chat template wrote, which start with the BOS: training and evaluation keep one
    pairs = PAIRS + [{**p, "prompt": tok.bos_token + p["prompt"]} for p in PAIRS[:3]]
    trainer = SFTTrainer(model=train.add_lora(build_model(tok), cfg), args=train.sft_config(cfg, tmp_path, has_eval=False),
                         processing_class=tok, train_dataset=Dataset.from_list(train.training_examples(pairs, tok)))
    for pair, row in zip(pairs, trainer.train_dataset):
        ids, labels = evaluate.completion_tokens(tok, pair)
        assert ids == row["input_ids"] and labels == row["labels"]
        assert row["input_ids"][:2].count(tok.bos_token_id) == (1 if add_bos or pair not in PAIRS else 0)
        n_prompt = next(i for i, label in enumerate(row["labels"]) if label != -100)
        assert evaluate.prompt_ids(tok, pair["prompt"]) == row["input_ids"][:n_prompt]
    prompt = PAIRS[0]["prompt"]
    trained_view = torch.tensor([evaluate.prompt_ids(tok, prompt)])
    expected = model(input_ids=trained_view).logits[0, -1]
    assert torch.allclose(evaluate.last_token_logits(model, tok, [prompt, PAIRS[1]["prompt"]])[0], expected, atol=1e-5)
    if add_bos:   # a text that already starts with the BOS (a chat template wrote it) gets no second one
        assert evaluate.prompt_ids(tok, tok.bos_token + prompt) == evaluate.prompt_ids(tok, prompt)


# --- the hand-written statistics (they teach) agree with scipy's ------------------------------

@pytest.mark.parametrize("a_only, b_only", [(0, 0), (3, 9), (12, 5), (40, 61), (1, 0)])
def test_mcnemar_is_scipys_exact_binomial_test(a_only, b_only):
    from scipy.stats import binomtest

    a = [True] * a_only + [False] * b_only + [True] * 7
    b = [False] * a_only + [True] * b_only + [True] * 7
    p = evaluate.mcnemar(a, b)["p_value"]
    want = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    assert p == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (7, 12), (121, 138), (50, 100)])
def test_wilson_ci_is_scipys_wilson_interval(k, n):
    from scipy.stats import binomtest

    want = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert evaluate.wilson_ci(k, n) == pytest.approx((want.low, want.high), abs=1e-9)


def test_bootstrap_ci_agrees_with_scipys_percentile_bootstrap():
    from scipy.stats import bootstrap

    values = np.array([1.0] * 83 + [0.0] * 37)
    ours = evaluate.bootstrap_ci(values, n_boot=20000, seed=0)
    theirs = bootstrap((values,), np.mean, n_resamples=20000, method="percentile", random_state=0).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.01)   # two Monte Carlo estimates of one interval


# --- a collapse to one label is named, a healthy imbalanced classifier is not -----------------

def _report(golds, preds, labels=("a", "b", "c")):
    return evaluate.classification_report(golds, preds, list(labels)), preds


def test_one_label_for_everything_is_a_collapse():
    golds = ["a"] * 59 + ["b"] * 28 + ["c"] * 13
    why = evaluate.collapse(*_report(golds, ["a"] * 100))
    assert why and "'a' for 100% of the examples (59% of them are 'a')" in why


def test_a_good_classifier_of_an_imbalanced_set_has_not_collapsed():
    golds = ["a"] * 90 + ["b"] * 10
    preds = ["a"] * 89 + ["b"] + ["b"] * 9 + ["a"]          # 98% right, 'a' answered 90% of the time
    assert evaluate.collapse(*_report(golds, preds, ("a", "b"))) is None


def test_macro_f1_no_better_than_the_majority_is_a_collapse():
    golds = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    preds = ["b"] * 50 + ["c"] * 30 + ["a"] * 20               # every answer wrong, spread over the labels
    why = evaluate.collapse(*_report(golds, preds))
    assert why and "no better than always answering 'a'" in why
    assert evaluate.majority_baseline(golds, ["a", "b", "c"]) == {
        "label": "a", "accuracy": 0.5, "macro_f1": pytest.approx(2 * 0.5 / 1.5 / 3)}


def test_one_true_label_cannot_collapse():
    assert evaluate.collapse(*_report(["a"] * 10, ["a"] * 10)) is None


def test_degenerate_answers_are_empty_or_loop():
    assert evaluate.degenerate("") and evaluate.degenerate("  \n")
    assert evaluate.degenerate("the the the the the the the the the")
    assert not evaluate.degenerate("eggs, milk, flour")
    assert not evaluate.degenerate("the number is 4 exactly, as the question asked for it")


def test_parse_items_accepts_json_bullets_numbers_and_commas():
    from labkit.evaluate import extraction_scores, parse_items

    assert parse_items('Sure: ["Flour", "salt"]') == ["flour", "salt"]
    assert parse_items("Ingredients:\n- flour\n- Salt.\n") == ["flour", "salt"]
    assert parse_items("1. eggs\n2) milk") == ["eggs", "milk"]
    assert parse_items("You need: flour, sugar, butter.") == ["flour", "sugar", "butter"]
    assert parse_items("I cannot tell.") is None
    strict = extraction_scores(["- flour\n- salt"], [["flour", "salt"]])
    lenient = extraction_scores(["- flour\n- salt"], [["flour", "salt"]], parse=parse_items)
    assert strict["item_f1"] == 0.0 and lenient["item_f1"] == 1.0 and lenient["valid_json"] == 0.0


def test_subset_spread_falls_like_one_over_sqrt_n_on_disjoint_subsets():
    # lesson 04 claims the fitted exponent lies in [-0.75, -0.25] on its 138 test results, whatever accuracy a seed gives
    for seed in range(20):
        rng = np.random.default_rng(seed)
        values = (rng.random(138) < rng.uniform(0.7, 0.95)).astype(float)
        spread = evaluate.subset_spread(values, [5, 10, 20, 40, 69], seed=seed)
        slope = evaluate.scaling_exponent({n: s["std"] for n, s in spread.items()})
        assert -0.75 < slope < -0.25, (seed, slope)
        p = values.mean()
        assert spread[5]["std"] == pytest.approx(np.sqrt(p * (1 - p) / 5), rel=0.25)
    assert [s["subsets"] for s in spread.values()] == [27, 13, 6, 3, 2]
    assert evaluate.subset_spread(values, [10], seed=1) == evaluate.subset_spread(values, [10], seed=1)


def test_subset_spread_needs_two_subsets_and_is_zero_without_variation():
    assert evaluate.subset_spread(np.ones(30), [5, 15], seed=0)[15] == {"std": 0.0, "subsets": 2}
    with pytest.raises(ValueError, match="fewer than two disjoint subsets"):
        evaluate.subset_spread(np.ones(30), [16])


def test_question_values_are_numbers_dates_and_names_but_not_the_first_word():
    assert evaluate.question_values("Orders from Japan in 2023?") == {"Japan", "2023"}
    assert evaluate.question_values("Which orders shipped on 2024-03-01 to Paris") == {"2024-03-01", "Paris"}
    assert evaluate.question_values("list all customers") == set()


def test_nearest_train_queries_prefers_shared_values_then_shared_words():
    train_rows = [{"question": "How many customers live in Paris?", "query": "Q-paris"},
                  {"question": "How many customers live in Lisbon?", "query": "Q-lisbon"},
                  {"question": "Show the total of every order", "query": "Q-totals"}]
    preds = evaluate.nearest_train_queries(train_rows, ["Count the customers from Lisbon", "every order total, please"])
    assert preds == ["Q-lisbon", "Q-totals"]


def test_seen_unseen_sql_scores_split_execution_by_leak(db):
    train_rows = [{"question": "all names", "query": "SELECT name FROM customers"}]
    test_rows = [{"question": "names?", "query": "SELECT name FROM customers"},           # seen in train
                 {"question": "Paris names?", "query": "SELECT name FROM customers WHERE city = 'Paris'"},
                 {"question": "Lisbon names?", "query": "SELECT name FROM customers WHERE city = 'Lisbon'"}]
    preds = ["select name from customers",                                            # string match too
             "SELECT c.name FROM customers c WHERE c.city = 'Paris'",                  # same rows, other words
             "SELECT name FROM customers WHERE id = 1"]                                # a wrong query, the same rows
    scores = evaluate.seen_unseen_sql_scores(preds, test_rows, train_rows, db)
    assert scores == {"test examples": 3, "gold query also in train": 1, "execution accuracy": 1.0,
                      "string match": pytest.approx(1 / 3), "execution, seen queries": 1.0,
                      "execution, unseen queries": 1.0}
    assert math.isnan(evaluate.seen_unseen_sql_scores(preds[1:], test_rows[1:], [], db)["execution, seen queries"])
