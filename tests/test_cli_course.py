"""The command line (on a tiny local model) and the course runner's bookkeeping."""

import json

import pytest

from labkit import cli, course
from conftest import TONE_LABELS, build_model


@pytest.fixture()
def tiny_folder(tmp_path, tiny_tokenizer):
    folder = tmp_path / "tiny"
    build_model(tiny_tokenizer).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def test_finetune_then_evaluate_on_your_own_file(tmp_path, tiny_folder, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    rows = [{"phrase": f"message number {i}", "tone": TONE_LABELS[i % 5]} for i in range(30)]
    data_file = tmp_path / "mine.jsonl"
    data_file.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_files", str(data_file),
                     "--text_template", "{phrase} -> {tone}", "--max_steps", "2",
                     "--per_device_train_batch_size", "4", "--lora_r", "4", "-o", str(out)])
    assert code == 0
    assert (out / "adapter" / "adapter_config.json").is_file()
    code = cli.main(["evaluate", "-m", str(tiny_folder), "--adapter_path", str(out / "adapter"),
                     "--data_files", str(data_file), "--text_template", "{phrase} -> {tone}",
                     "--max_new_tokens", "2"])
    assert code == 0
    assert '"exact_match"' in capsys.readouterr().out


def test_bad_data_is_a_clear_error_not_a_traceback(tmp_path, tiny_folder, capsys):
    data_file = tmp_path / "bad.jsonl"
    data_file.write_text('{"phrase": "ok", "tone": "joy"}\n{"phrase": broken\n')
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_files", str(data_file),
                     "--text_template", "{phrase} -> {tone}", "-o", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.jsonl, line 2" in err
    assert not (tmp_path / "run" / "adapter").exists()


def test_doctor_says_what_to_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "empty-home"))
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT READY" in out and "labkit prepare" in out


def test_record_writes_metrics_only_under_the_course_runner(tmp_path, monkeypatch):
    monkeypatch.delenv(course.METRICS_ENV, raising=False)
    assert course.record(accuracy=0.912345) == {"accuracy": 0.9123}
    target = tmp_path / "m.json"
    monkeypatch.setenv(course.METRICS_ENV, str(target))
    course.record(accuracy=0.9)
    course.record(seconds=12)
    assert json.loads(target.read_text()) == {"accuracy": 0.9, "seconds": 12.0}


def test_summary_table():
    md = course.to_markdown([
        {"notebook": "00_setup.ipynb", "passed": True, "seconds": 30, "metrics": {"tokens_per_s": 25.0}, "error": None},
        {"notebook": "01_x.ipynb", "passed": False, "seconds": 90, "metrics": {}, "error": "AssertionError"},
    ])
    assert "| 00_setup.ipynb | passed | 0.5 min | tokens_per_s=25.0 |" in md
    assert "FAILED (AssertionError)" in md
