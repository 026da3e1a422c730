"""Tests for labkit.data: loading, checking, splitting and templating (tiny files in tmp_path)."""

import json
from collections import Counter

import pytest

from labkit import data
from labkit.data import DataError


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tone_records(n_per_label=50, labels=("joy", "anger", "sadness", "fear")):
    return [{"phrase": f"{label} phrase number {i}", "tone": label}
            for label in labels for i in range(n_per_label)]


# --- bad input: every error names the file, the line, the field and the fix ----------------

def test_malformed_json_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['{"phrase": "hi", "tone": "joy"}',
                                                '{"phrase": "oops", "tone": }'])
    with pytest.raises(DataError) as e:
        data.read_records(path)
    msg = str(e.value)
    assert "bad.jsonl" in msg and "line 2" in msg
    assert "fix or delete this line" in msg


def test_non_object_line(tmp_path):
    path = write_lines(tmp_path / "list.jsonl", ['{"phrase": "hi", "tone": "joy"}', '["hi", "joy"]'])
    with pytest.raises(DataError) as e:
        data.read_records(path)
    msg = str(e.value)
    assert "list.jsonl" in msg and "line 2" in msg and "JSON object" in msg and "list" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(DataError) as e:
        data.read_records(path)
    assert "empty.jsonl" in str(e.value) and "empty" in str(e.value) and "Add examples" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        data.read_records(tmp_path / "nope.jsonl")


def test_wrong_encoding(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"phrase": "ok", "tone": "joy"}\n{"phrase": "caf\xe9", "tone": "joy"}\n')
    with pytest.raises(DataError) as e:
        data.read_records(path)
    msg = str(e.value)
    assert "latin1.jsonl" in msg and "line 2" in msg and "0xe9" in msg and "UTF-8" in msg


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"phrase": "caf\xc3\xa9", "tone": "joy"}\n')
    assert data.strip_source(data.read_records(path)) == [{"phrase": "café", "tone": "joy"}]


def test_missing_field_in_template(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", ['{"phrase": "hi", "tone": "joy"}',
                                              '{"text": "hello", "tone": "joy"}'])
    records = data.read_records(path)
    with pytest.raises(DataError) as e:
        data.to_prompt_completion(records, "{phrase} -> {tone}", "tone")
    msg = str(e.value)
    assert "t.jsonl:2" in msg and "{phrase}" in msg
    assert "Fields that exist: text, tone" in msg


def test_missing_and_empty_field_check(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", ['{"phrase": "hi", "tone": "joy"}',
                                              '{"phrase": "  ", "tone": "joy"}',
                                              '{"text": "hi", "tone": "joy"}'])
    records = data.read_records(path)
    with pytest.raises(DataError, match=r"t\.jsonl:2: field 'phrase' is empty"):
        data.check_fields(records, ["phrase", "tone"])
    with pytest.raises(DataError) as e:
        data.check_fields(records[2:], ["phrase", "tone"])
    msg = str(e.value)
    assert "t.jsonl:3" in msg and "'phrase' is missing" in msg and "Fields that exist: text, tone" in msg


def test_template_target_field_missing():
    with pytest.raises(DataError, match=r"no \{label\}.*\['phrase', 'tone'\]"):
        data.split_template("{phrase} -> {tone}", "label")


def test_label_outside_label_set(tmp_path):
    lines = [json.dumps(r) for r in tone_records(5)]
    lines.insert(7, json.dumps({"phrase": "what a day", "tone": "happy"}))
    path = write_lines(tmp_path / "labels.jsonl", lines)
    with pytest.raises(DataError) as e:
        data.load_dataset(path, label_field="tone", labels=["joy", "anger", "sadness", "fear"])
    msg = str(e.value)
    assert "labels.jsonl:8" in msg and "tone='happy'" in msg
    assert "['anger', 'fear', 'joy', 'sadness']" in msg and "add it to the label set" in msg


def test_example_longer_than_max_length(tiny_tokenizer):
    pairs = [{"prompt": "the cat sat ->", "completion": " joy"},
             {"prompt": "the cat sat on the mat " * 20 + "->", "completion": " joy"},
             {"prompt": "the cat sat on the mat " * 30 + "->", "completion": " fear"}]
    stats = data.check_lengths(pairs[:1], tiny_tokenizer, max_length=64)
    assert 0 < stats["max"] <= 64 and stats["mean"] == stats["max"]
    with pytest.raises(DataError) as e:
        data.check_lengths(pairs, tiny_tokenizer, max_length=64)
    msg = str(e.value)
    assert "longer than max_length=64 (2 of 3 examples are" in msg
    assert msg.startswith("example #1: ") and "Raise max_length" in msg


def test_too_long_error_names_file_and_line(tmp_path, tiny_tokenizer):
    lines = [json.dumps({"phrase": "short", "tone": "joy"}),
             json.dumps({"phrase": "the cat sat on the mat " * 30, "tone": "fear"})]
    records = data.read_records(write_lines(tmp_path / "long.jsonl", lines))
    pairs = data.to_prompt_completion(records, "{phrase} -> {tone}", "tone")
    with pytest.raises(DataError, match=r"long.jsonl:2: \d+ tokens, longer than max_length=32"):
        data.check_lengths(pairs, tiny_tokenizer, max_length=32, records=records)


def test_csv_too_many_values(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("phrase,tone\nhello,joy\nhello, world,joy\n")
    with pytest.raises(DataError) as e:
        data.read_records(path)
    msg = str(e.value)
    assert "t.csv" in msg and "line 3" in msg and "['phrase', 'tone']" in msg and "Quote values" in msg


def test_csv_quoted_multiline_value(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('phrase,tone\n"two\nlines",joy\nnext,fear\n', newline="")
    records = data.read_records(path)
    assert data.strip_source(records) == [{"phrase": "two\nlines", "tone": "joy"},
                                          {"phrase": "next", "tone": "fear"}]
    assert records[1]["_source"].endswith("t.csv:4")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello\n")
    with pytest.raises(DataError, match=r"t\.txt: unsupported file type '\.txt'"):
        data.read_records(path)


def test_unknown_bundled_name():
    with pytest.raises(DataError) as e:
        data.load_dataset("tones")
    msg = str(e.value)
    assert "'tones'" in msg and "tone" in msg and "recipes" in msg and "sql" in msg
    with pytest.raises(DataError, match="No bundled dataset 'tones'"):
        data.dataset_info("tones")


def test_unknown_split_name(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [json.dumps(r) for r in tone_records(5)])
    with pytest.raises(DataError, match="Unknown split names \\['dev'\\]"):
        data.load_dataset({"train": path, "dev": path})


# --- nothing half-written is left behind ---------------------------------------------------

def test_write_jsonl_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.jsonl"
    records = [{"a": 1}, {"a": 2}, {"a": object()}, {"a": 4}]
    with pytest.raises(TypeError):
        data.write_jsonl(records, target)
    assert list(tmp_path.iterdir()) == []


def test_write_jsonl_failure_keeps_old_content(tmp_path):
    target = tmp_path / "out.jsonl"
    data.write_jsonl([{"a": "old"}], target)
    old = target.read_bytes()
    with pytest.raises(TypeError):
        data.write_jsonl(({"a": i} if i != 2 else {"a": object()} for i in range(5)), target)
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_write_jsonl_round_trip(tmp_path):
    # U+2028/U+0085 are legal unescaped in JSON strings (write_jsonl writes them raw):
    # they must not be taken for line breaks when the file is read back.
    records = [{"phrase": "café ☕", "tone": "joy"}, {"phrase": "a\u2028b\x85c\nd", "tone": "fear"},
               {"phrase": "x", "items": ["eggs", "milk"]}]
    path = data.write_jsonl(records, tmp_path / "sub" / "r.jsonl")
    back = data.read_records(path)
    assert data.strip_source(back) == records
    assert [r["_source"].rsplit(":", 1)[1] for r in back] == ["1", "2", "3"]


# --- templates ------------------------------------------------------------------------------

def test_split_template():
    assert data.split_template("{phrase} -> {tone}", "tone") == ("{phrase} ->", " {tone}")
    assert data.split_template("Recipe: {recipe}\nIngredients: {ingredients}", "ingredients") == (
        "Recipe: {recipe}\nIngredients:", " {ingredients}")
    assert data.template_fields("{schema}\n-- {question}\nSQL: {query}") == ["schema", "question", "query"]


def test_render_list_value_as_json():
    out = data.render("Recipe: {recipe}\nIngredients: {ingredients}",
                      {"recipe": "Fry it.", "ingredients": ["eggs", "crème fraîche"]})
    assert out == 'Recipe: Fry it.\nIngredients: ["eggs", "crème fraîche"]'
    assert json.loads(out.split("Ingredients: ")[1]) == ["eggs", "crème fraîche"]
    assert data.render("{n} items", {"n": 3}) == "3 items"


def test_to_prompt_completion():
    records = [{"phrase": "I won!", "tone": "joy", "_source": "f:1"},
               {"phrase": "It broke again.", "tone": "anger"}]
    assert data.to_prompt_completion(records, "{phrase} -> {tone}", "tone") == [
        {"prompt": "I won! ->", "completion": " joy"},
        {"prompt": "It broke again. ->", "completion": " anger"}]


def test_to_chat():
    records = [{"recipe": "Fry eggs.", "ingredients": ["eggs"]}]
    out = data.to_chat(records, "List the ingredients: {recipe}", "ingredients", system="Answer in JSON.")
    assert out == [{"prompt": [{"role": "system", "content": "Answer in JSON."},
                               {"role": "user", "content": "List the ingredients: Fry eggs."}],
                    "completion": [{"role": "assistant", "content": '["eggs"]'}]}]
    no_system = data.to_chat(records, "{recipe}", "ingredients")
    assert [m["role"] for m in no_system[0]["prompt"]] == ["user"]


def test_task_pairs_sql_has_schema():
    pairs = data.task_pairs("sql", [{"question": "How many customers?",
                                     "query": "SELECT COUNT(*) FROM customers"}])
    assert "CREATE TABLE" in pairs[0]["prompt"]
    assert pairs[0]["prompt"].endswith("-- How many customers?\nSQL:")
    assert pairs[0]["completion"] == " SELECT COUNT(*) FROM customers"


# --- splitting ------------------------------------------------------------------------------

def test_stratified_split_keeps_label_proportions():
    labels = {"joy": 200, "anger": 100, "sadness": 60, "fear": 40}
    records = [{"phrase": f"{label} example {i}", "tone": label}
               for label, n in labels.items() for i in range(n)]
    splits = data.stratified_split(records, "tone", seed=0)
    sizes = {s: len(v) for s, v in splits.items()}
    assert sum(sizes.values()) == len(records)
    assert sizes == {"train": 320, "validation": 40, "test": 40}
    total = len(records)
    for split, rows in splits.items():
        counts = Counter(r["tone"] for r in rows)
        for label, n in labels.items():
            assert abs(counts[label] / len(rows) - n / total) < 0.03, (split, label)


def test_stratified_split_is_deterministic():
    records = tone_records(30)
    a = data.stratified_split(records, "tone", seed=3)
    b = data.stratified_split(records, "tone", seed=3)
    c = data.stratified_split(records, "tone", seed=4)
    assert a == b
    assert a != c
    assert sorted(r["phrase"] for s in a.values() for r in s) == sorted(r["phrase"] for r in records)


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        data.stratified_split(tone_records(5), "tone", fractions=(0.8, 0.1, 0.2))


def test_near_duplicates_share_a_split():
    records = []
    for i in range(60):
        base = f"the parcel number {i} arrived late again"
        records += [{"phrase": base, "tone": "anger"},
                    {"phrase": base.upper() + "!!!", "tone": "anger"},
                    {"phrase": "  " + base.replace(" ", "   ") + ".", "tone": "anger"}]
    records += tone_records(20, labels=("joy",))
    for seed in range(3):
        splits = data.stratified_split(records, "tone", seed=seed)
        where = {}
        for split, rows in splits.items():
            for r in rows:
                where.setdefault(data.normalize_text(r["phrase"]), set()).add(split)
        assert all(len(s) == 1 for s in where.values())
        for held_out in ("validation", "test"):
            assert data.find_leaks(splits["train"], splits[held_out], "phrase") == []


def test_normalize_text():
    assert data.normalize_text("  Hello,   WORLD!! ") == "hello world"
    assert data.normalize_text("Hello world") == data.normalize_text("hello, world.")


def test_find_leaks():
    train = [{"q": "How many customers?"}]
    test = [{"q": "how many CUSTOMERS"}, {"q": "How many orders?"}]
    assert data.find_leaks(train, test, "q") == ["how many CUSTOMERS"]


# --- load_dataset on your own files ----------------------------------------------------------

def test_load_user_jsonl_splits_80_10_10(tmp_path):
    path = write_lines(tmp_path / "mine.jsonl", [json.dumps(r) for r in tone_records(50)])
    ds = data.load_dataset(path, label_field="tone", labels=["joy", "anger", "sadness", "fear"])
    sizes = {s: len(ds[s]) for s in data.SPLITS}
    assert sizes == {"train": 160, "validation": 20, "test": 20}
    assert set(ds["train"].column_names) == {"phrase", "tone"}  # no _source
    for s in data.SPLITS:
        assert set(Counter(ds[s]["tone"]).values()) == {sizes[s] // 4}
    # a str path works the same
    assert data.load_dataset(str(path))["test"].num_rows == 20


def test_load_user_dict_of_files(tmp_path):
    records = tone_records(50)
    train = write_lines(tmp_path / "train.jsonl", [json.dumps(r) for r in records[::2]])
    test = write_lines(tmp_path / "test.jsonl", [json.dumps(r) for r in records[1::2]])
    ds = data.load_dataset({"train": train, "test": test}, label_field="tone")
    assert ds["test"].num_rows == 100
    # validation is carved out of train; nothing of train is lost on the way
    assert ds["train"].num_rows + ds["validation"].num_rows == 100
    assert 8 <= ds["validation"].num_rows <= 12
    assert sorted(list(ds["train"]["phrase"]) + list(ds["validation"]["phrase"])) == sorted(
        r["phrase"] for r in records[::2])
    with pytest.raises(DataError, match="needs at least a 'train' file"):
        data.load_dataset({"test": test})


def test_load_user_csv(tmp_path):
    path = tmp_path / "mine.csv"
    rows = ["phrase,tone"] + [f'"{r["phrase"]}, really",{r["tone"]}' for r in tone_records(30)]
    path.write_text("\n".join(rows) + "\n")
    ds = data.load_dataset(path, label_field="tone", fields=["phrase", "tone"])
    assert {s: len(ds[s]) for s in data.SPLITS} == {"train": 96, "validation": 12, "test": 12}
    assert ds["train"][0]["phrase"].endswith(", really")


def test_load_user_json_list(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(tone_records(10)))
    ds = data.load_dataset(path, label_field="tone")
    assert sum(ds[s].num_rows for s in data.SPLITS) == 40


def test_load_user_file_missing_field(tmp_path):
    lines = [json.dumps(r) for r in tone_records(5)] + [json.dumps({"phrase": "hi"})]
    path = write_lines(tmp_path / "mine.jsonl", lines)
    with pytest.raises(DataError) as e:
        data.load_dataset(path, fields=["phrase", "tone"])
    msg = str(e.value)
    assert "mine.jsonl:21" in msg and "'tone' is missing" in msg and "Fields that exist: phrase" in msg


def test_crlf_files(tmp_path):
    jsonl = tmp_path / "win.jsonl"
    jsonl.write_bytes(b'{"phrase": "hi", "tone": "joy"}\r\n\r\n{"phrase": "yo", "tone": "fear"}\r\n')
    records = data.read_records(jsonl)
    assert data.strip_source(records) == [{"phrase": "hi", "tone": "joy"}, {"phrase": "yo", "tone": "fear"}]
    assert records[1]["_source"].endswith(":3")
    csv_path = tmp_path / "win.csv"
    csv_path.write_bytes(b"phrase,tone\r\nhi,joy\r\nyo,fear\r\n")
    assert data.strip_source(data.read_records(csv_path))[1] == {"phrase": "yo", "tone": "fear"}


def test_stratified_split_of_a_small_labelled_set_has_validation_and_test():
    # 5 labels x 4 examples: rounding each label's 10% (0.4) would give no validation at all
    records = tone_records(4, labels=("joy", "anger", "sadness", "fear", "neutral"))
    splits = data.stratified_split(records, "tone")
    assert {s: len(v) for s, v in splits.items()} == {"train": 16, "validation": 2, "test": 2}
    assert {r["tone"] for r in splits["train"]} == {"joy", "anger", "sadness", "fear", "neutral"}


def test_every_label_keeps_a_training_example():
    records = tone_records(9, labels=("joy",)) + [{"phrase": "alone", "tone": "rare"}]
    splits = data.stratified_split(records, "tone")
    assert "rare" in {r["tone"] for r in splits["train"]}


def test_labels_in_test_never_seen_in_training(tmp_path):
    train = write_lines(tmp_path / "train.jsonl", [json.dumps(r) for r in tone_records(5, ("joy", "fear"))])
    test = write_lines(tmp_path / "test.jsonl", [json.dumps({"phrase": "hm", "tone": "joy"}),
                                                 json.dumps({"phrase": "grr", "tone": "anger"})])
    with pytest.raises(DataError) as e:
        data.load_dataset({"train": train, "test": test}, label_field="tone")
    msg = str(e.value)
    assert "test.jsonl:2" in msg and "tone='anger'" in msg and "never occurs in the training split" in msg


def test_too_few_examples_in_a_file(tmp_path):
    path = write_lines(tmp_path / "one.jsonl", [json.dumps({"phrase": "hi", "tone": "joy"})])
    with pytest.raises(DataError, match=r"one.jsonl: only 1 example\(s\).*at least 10"):
        data.load_dataset(path)


def test_folder_with_split_files(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    write_lines(folder / "train.jsonl", [json.dumps(r) for r in tone_records(10)])
    write_lines(folder / "test.jsonl", [json.dumps(r) for r in tone_records(2)])
    ds = data.load_dataset(folder, label_field="tone")
    assert ds["test"].num_rows == 8 and ds["train"].num_rows + ds["validation"].num_rows == 40
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="needs a train.jsonl"):
        data.load_dataset(tmp_path / "empty")


def test_select_split_uses_the_datasets_slice_syntax():
    splits = {"train": list(range(100)), "validation": list(range(10))}
    assert data.select_split(splits, "train[:5]") == [0, 1, 2, 3, 4]
    assert data.select_split(splits, "train[90:200]") == list(range(90, 100))
    assert data.select_split(splits, "train[:10%]") == list(range(10))
    assert len(data.select_split(splits, "train[:2]+validation")) == 12
    with pytest.raises(DataError, match="no split 'test'"):
        data.select_split(splits, "test[:5]", "--eval_split")
    with pytest.raises(DataError, match="selects no examples"):
        data.select_split(splits, "train[4096:4224]", "--eval_split")
    with pytest.raises(DataError, match="is not a split spec"):
        data.select_split(splits, "train[:x]", "--train_split")


def test_detect_labels():
    records = tone_records(5)
    assert data.detect_labels(records, "tone") == ["joy", "anger", "sadness", "fear"]
    assert data.detect_labels(records, "phrase") is None            # every answer different
    long = [{"a": "a whole sentence of free text"} for _ in range(10)]
    assert data.detect_labels(long, "a") is None                     # not short labels


def test_stratified_sample_keeps_each_label_share():
    records = [{"t": i, "y": "a"} for i in range(600)] + [{"t": i, "y": "b"} for i in range(300)] + \
              [{"t": i, "y": "c"} for i in range(100)]
    sample = data.stratified_sample(records, "y", 200, seed=1)
    assert [sum(r["y"] == y for r in sample) for y in "abc"] == [120, 60, 20]
    assert len({(r["y"], r["t"]) for r in sample}) == 200                 # no example twice
    assert data.stratified_sample(records[:50], "y", 200) == records[:50]  # fewer than asked: all of them
    rare = records[:199] + records[-1:]                                    # 1 "c" in 200: still one of it in 20
    assert sum(r["y"] == "c" for r in data.stratified_sample(rare, "y", 20)) == 1


def test_balance_labels_draws_rare_labels_by_the_square_root_of_their_count():
    records = [{"t": i, "y": "a"} for i in range(900)] + [{"t": i, "y": "b"} for i in range(100)]
    drawn = data.balance_labels(records, "y", seed=0)
    counts = {y: sum(r["y"] == y for r in drawn) for y in "ab"}
    assert counts == {"a": 900, "b": 300}                                   # 900 * sqrt(100 / 900)
    assert {r["t"] for r in drawn if r["y"] == "b"} == set(range(100))      # every rare example, 3 times each
    assert data.balance_labels(records, "y", power=1.0) != records and \
        sorted(data.balance_labels(records, "y", power=1.0), key=lambda r: (r["y"], r["t"])) == records
    assert {y: sum(r["y"] == y for r in data.balance_labels(records, "y", power=0.0)) for y in "ab"} == \
        {"a": 900, "b": 900}
