"""The command line on tiny local models: the source material's Olive commands with `labkit` in
place of `olive`, your own data end to end, and the course runner (`make course`) end to end."""

import csv
import json
import re
from pathlib import Path

import pytest

from labkit import models
from labkit.cli import main as cli
from labkit.course import claims, lesson_times, runner
from conftest import TONE_LABELS

SUBCOMMANDS = ["doctor", "prepare", "finetune", "evaluate", "export", "auto-opt", "generate-adapter", "chat", "run"]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tone_rows(n_per_label=8):
    return [{"phrase": f"message number {i} about {label}", "tone": label}
            for i in range(n_per_label) for label in TONE_LABELS]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# --- your own data, end to end ------------------------------------------------------------

def test_own_csv_classification_end_to_end(tmp_path, tiny_folder, capsys):
    # the README's worked example: a CSV with a label column -> detected as classification,
    # split stratified, trained, scored by label scoring with accuracy, macro-F1, confusion matrix
    data_file = write_csv(tmp_path / "tickets.csv", tone_rows(10))
    out = tmp_path / "adapters" / "mine"
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_name", str(data_file),
                     "--text_template", "{phrase} -> {tone}", "--max_steps", "2",
                     "--per_device_train_batch_size", "4", "--lora_r", "4", "--output_path", str(out)])
    assert code == 0
    captured = capsys.readouterr().out
    assert "classification task: 40 training and 5 validation examples" in captured  # 80/10/10 of 50
    # the flags left unset take a classification task's defaults, and finetune says which
    assert ("defaults for a classification task: --learning_rate 0.001, --eval_steps 1, --warmup_steps 5, "
            "--load_best_model_at_end true, --balance_classes true") in captured
    assert json.loads((out / "adapter" / "labkit_run.json").read_text())["config"]["learning_rate"] == 0.001
    assert (out / "adapter" / "adapter_config.json").is_file()
    pointer = json.loads((out / "model" / models.BASE_POINTER).read_text())
    assert pointer["base_model"] == str(tiny_folder)
    code = cli.main(["evaluate", "-m", str(out / "model"), "--adapter_path", str(out / "adapter"),
                     "--data_name", str(data_file), "--text_template", "{phrase} -> {tone}"])
    assert code == 0
    printed = capsys.readouterr().out
    result = last_json(printed)
    assert result["task"] == "classification" and result["n"] == 5  # one test example per label
    assert result["labels"] == TONE_LABELS
    assert [sum(row) for row in result["confusion_matrix"]] == [1] * 5  # stratified: one of each
    correct = sum(result["confusion_matrix"][i][i] for i in range(5))
    assert result["accuracy"] == correct / 5 and 0 <= result["macro_f1"] <= 1
    assert "true \\ predicted" in printed


@pytest.mark.parametrize("bad, collapses", [(60, False), (10, True)])
def test_finetune_ends_with_a_validation_report_that_names_a_collapse(tmp_path, tiny_folder, capsys, bad, collapses):
    # "good"/"bad" written in the text: a tiny model learns it from 60 of each; with 10 "bad" in 120, drawn as they
    # come and ending on the last step, it learns to answer "good" for everything, and finetune must say so
    rows = [{"text": f"item {i} is good", "label": "good"} for i in range(120 - bad)]
    rows += [{"text": f"item {i} is bad", "label": "bad"} for i in range(bad)]
    data_file = write_csv(tmp_path / "items.csv", rows)
    as_they_come = ["--balance_classes", "false", "--load_best_model_at_end", "false"] if collapses else []
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_name", str(data_file), "--text_template",
                     "{text} -> {label}", "--max_steps", "30", "--learning_rate", "5e-3", *as_they_come,
                     "--per_device_train_batch_size", "8", "--lora_r", "4", "--output_path", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"validation \(12 examples, the checkpoint of step \d+ of 30\)", out)
    assert re.search(r"always answering 'good': accuracy [0-9.]+, macro-F1 [0-9.]+", out)
    assert re.search(r"recall per class: good [0-9.]+, bad [0-9.]+", out)   # both labels are in the validation split
    assert ("WARNING: the model's answers have collapsed" in out) == collapses, out[-800:]
    if collapses:
        assert "What to try" in out


def test_the_defaults_keep_a_rare_label_that_the_last_step_loses(tmp_path, tiny_folder, capsys):
    # the collapsing data above at finetune's defaults for a classification task: the rare label drawn more often
    # and the checkpoint with the best validation macro-F1 kept; no collapse, and the report names the kept step
    rows = [{"text": f"item {i} is good", "label": "good"} for i in range(110)]
    rows += [{"text": f"item {i} is bad", "label": "bad"} for i in range(10)]
    data_file = write_csv(tmp_path / "items.csv", rows)
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_name", str(data_file), "--text_template",
                     "{text} -> {label}", "--max_steps", "30", "--learning_rate", "5e-3",
                     "--per_device_train_batch_size", "8", "--lora_r", "4", "--output_path", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and "balanced classes: good 77%, bad 23% of the training draws" in out   # 8 bad: 88 * sqrt(8/88) = 27
    run = json.loads((tmp_path / "run" / "adapter" / "labkit_run.json").read_text())
    assert run["config"]["metric_for_best_model"] == "eval_macro_f1" and run["config"]["load_best_model_at_end"]
    kept = int(re.search(r"the checkpoint of step (\d+) of 30", out).group(1))
    assert kept == run["result"]["best_step"]
    assert "WARNING: the model's answers have collapsed" not in out, out[-800:]


def test_unset_training_flags_follow_the_task():
    from labkit.cli.flags import CLIError, fill_task_defaults

    parse = cli.build_parser().parse_args
    args = parse(["finetune"])
    # a classification task trains for a time budget: its steps are chosen once this machine is timed
    assert fill_task_defaults(args, "classification") == {"learning_rate": 1e-3, "time_budget": 5.0,
                                                           "load_best_model_at_end": True, "balance_classes": True}
    assert (args.max_steps, args.eval_steps, args.warmup_steps) == (None, None, None)
    assert fill_task_defaults(parse(["finetune"]), "generation") == {"max_steps": 50, "learning_rate": 1e-3,
                                                                     "eval_steps": 12, "warmup_steps": 5}
    # what the learner set stays; the evaluations and the warm-up follow the steps they chose
    args = parse(["finetune", "--max_steps", "200", "--learning_rate", "1e-4", "--balance_classes", "false"])
    assert fill_task_defaults(args, "classification") == {"load_best_model_at_end": True, "eval_steps": 50,
                                                          "warmup_steps": 20}
    assert (args.max_steps, args.learning_rate, args.balance_classes) == (200, 1e-4, False)
    assert "time_budget" not in fill_task_defaults(parse(["finetune", "--time_budget", "2"]), "generation")
    with pytest.raises(CLIError, match="--max_steps 8 and --time_budget 2: pass one"):
        fill_task_defaults(parse(["finetune", "--max_steps", "8", "--time_budget", "2"]), "classification")
    # a full fine-tune moves every weight: its own learning rate, never LoRA's (2e-3 wrecks the model)
    assert fill_task_defaults(parse(["finetune", "--method", "full"]), "classification")["learning_rate"] == 5e-5
    assert fill_task_defaults(parse(["finetune", "--method", "full"]), "generation")["learning_rate"] == 5e-5


@pytest.mark.parametrize("step, evaluation, steps, why", [
    (1.0, 5.0, 208, "what fits"),                    # 300 s - 40 s gone - 25 s of evaluations - 25 s kept back
    (0.1, 0.0, 748, "3 passes over the 2000"),       # more would fit: 3 passes (750 steps) are enough
    (20.0, 5.0, 20, "at least 20 steps"),            # a slow machine still trains 20 steps, and says so
])
def test_a_time_budget_chooses_the_steps_that_fit(monkeypatch, capsys, step, evaluation, steps, why):
    import time

    from labkit import train

    monkeypatch.setattr(train, "seconds_per_step", lambda *a, **k: step)
    monkeypatch.setattr(cli, "seconds_per_evaluation", lambda *a, **k: evaluation)
    args = cli.build_parser().parse_args(["finetune", "--time_budget", "5"])
    chosen = cli.steps_for_budget(args, None, None, type("T", (), {"kind": "classification"})(), [], [], 2000,
                                  time.perf_counter() - 40)   # 40 s gone on loading
    assert chosen % 4 == 0                           # a multiple of the 4 evaluations: the last one is the last step
    assert chosen in (steps, steps - 4) if why == "what fits" else chosen == steps   # the clock runs on meanwhile
    out = capsys.readouterr().out
    assert f"time budget 5 min: a step takes {step:.2f} s here" in out and why in out, out


def test_a_time_budget_ends_within_it_on_a_tiny_model(tmp_path, tiny_folder, capsys):
    # the real timing path: a tiny model is fast, so 3 passes over its 40 examples (15 steps) lift to 20
    data_file = write_csv(tmp_path / "tickets.csv", tone_rows(10))
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_name", str(data_file), "--text_template",
                     "{phrase} -> {tone}", "--time_budget", "1", "--lora_r", "4", "-o", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and "time budget 1 min: a step takes" in out and "so 20 steps (at least 20 steps" in out, out
    assert "Saved to" in out and "after 20 steps" in out
    # called from Python, the budget counts from the call (not from pytest's start); it ends saying what it took
    took = re.search(r"the whole command took ([0-9.]+) min of its 1-min time budget", out)
    assert took and float(took.group(1)) <= 1.0, out[-400:]


def test_own_jsonl_generation_is_scored_by_exact_match(tmp_path, tiny_folder, capsys):
    rows = [{"q": f"say the number {i}", "a": f"the number is {i} exactly"} for i in range(20)]
    data_file = write_jsonl(tmp_path / "gen.jsonl", rows)
    out = tmp_path / "gen-run"
    assert cli.main(["finetune", "-m", str(tiny_folder), "--data_files", str(data_file),
                     "--text_template", "{q}: {a}", "--max_steps", "1", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "text task" in printed
    # the run ends with a report: validation loss against the base model's, and the empty or looping answers
    assert re.search(r"validation \(2 examples\): loss on the answers [0-9.]+, the base model's [0-9.]+; "
                     r"\d of 2 generated answers empty or looping", printed), printed[-600:]
    assert cli.main(["evaluate", "-m", str(tiny_folder), "--adapter_path", str(out / "adapter"),
                     "--data_files", str(data_file), "--text_template", "{q}: {a}", "--max_new_tokens", "2"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["task"] == "text" and "exact_match" in result and result["n"] == 2


# --- the source material's commands ---------------------------------------------------------

def test_olive_chat_template_command(tmp_path, tiny_folder, capsys):
    # olive finetune --model_name_or_path <model> --trust_remote_code --output_path models/ft --data_name <data>
    #   --text_template "<|im_start|>user\n{phrase}<|im_end|>\n<|im_start|>assistant\n{tone}" --method lora
    #   --max_steps 100 --log_level 1
    data_file = write_jsonl(tmp_path / "tone.jsonl", tone_rows(4))
    out = tmp_path / "models" / "ft"
    template = r"<|im_start|>user\n{phrase}<|im_end|>\n<|im_start|>assistant\n{tone}"
    code = cli.main(["finetune", "--model_name_or_path", str(tiny_folder), "--trust_remote_code",
                     "--output_path", str(out), "--data_name", str(data_file), "--text_template", template,
                     "--method", "lora", "--max_steps", "2", "--log_level", "1"])
    assert code == 0
    run = json.loads((out / "adapter" / "labkit_run.json").read_text())
    assert run["result"]["steps"] == 2
    # the template's \n became real newlines: the task's label scoring still tells labels apart
    code = cli.main(["evaluate", "-m", str(out / "model"), "--adapter_path", str(out / "adapter"),
                     "--data_name", str(data_file), "--text_template", template])
    assert code == 0
    assert last_json(capsys.readouterr().out)["task"] == "classification"


def test_olive_split_slices_and_batch_flags(tmp_path, tiny_folder, capsys):
    # olive finetune --method qlora ... --data_name json --data_files FILE --train_split "train[:4096]"
    #   --eval_split "train[4096:4224]" --text_template "### Question: {prompt} \n### Answer: {response}"
    #   --per_device_train_batch_size 16 --per_device_eval_batch_size 16 --max_steps 150 --logging_steps 50
    rows = [{"prompt": f"what is {i} plus one", "response": f"{i + 1}"} for i in range(48)]
    data_file = write_jsonl(tmp_path / "qa.jsonl", rows)
    out = tmp_path / "adapters" / "x"
    code = cli.main(["finetune", "--method", "lora", "--model_name_or_path", str(tiny_folder),
                     "--data_name", "json", "--data_files", str(data_file),
                     "--train_split", "train[:40]", "--eval_split", "train[40:48]",
                     "--text_template", r"### Question: {prompt} \n### Answer: {response}",
                     "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "16",
                     "--max_steps", "2", "--logging_steps", "1", "--output_path", str(out)])
    assert code == 0
    assert "40 training and 8 validation examples" in capsys.readouterr().out  # all of --eval_split


def test_olive_qlora_command_on_cpu(tmp_path, tiny_folder, capsys):
    pytest.importorskip("bitsandbytes")
    data_file = write_jsonl(tmp_path / "tone.jsonl", tone_rows(4))
    out = tmp_path / "q"
    code = cli.main(["finetune", "--method", "qlora", "-m", str(tiny_folder), "--data_name", str(data_file),
                     "--text_template", "{phrase} -> {tone}", "--gradient_checkpointing", "true",
                     "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "2",
                     "--max_steps", "1", "-o", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "note: --gradient_checkpointing true on a CPU" in err and "note: --method qlora on a CPU" in err
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_olive_logging_and_tensorboard_flags(tmp_path, tiny_folder):
    pytest.importorskip("tensorboard")
    data_file = write_jsonl(tmp_path / "tone.jsonl", tone_rows(4))
    out, logs = tmp_path / "tb-run", tmp_path / "logs"
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_name", str(data_file),
                     "--text_template", "{phrase} -> {tone}", "--task_name", "classification",
                     "--logging_steps", "1", "--eval_steps", "2", "--save_steps", "2", "--max_steps", "4",
                     "--logging_dir", str(logs), "--report_to", "tensorboard", "-o", str(out)])
    assert code == 0
    assert list(logs.rglob("events.out.tfevents.*"))
    history = json.loads((out / "adapter" / "labkit_run.json").read_text())["history"]
    assert [h["step"] for h in history if "eval_loss" in h] == [2, 4]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]


def test_run_config_yaml_and_json(tmp_path, tiny_folder, capsys):
    data_file = write_jsonl(tmp_path / "tone.jsonl", tone_rows(4))
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(f"""model_name_or_path: {tiny_folder}
data_name: {data_file}
text_template: "{{phrase}} -> {{tone}}"
method: lora
lora_r: 4
lora_alpha: 8
target_modules: [q_proj, v_proj]
max_steps: 1
learning_rate: 1e-3
trust_remote_code: true
output_path: {tmp_path / 'from-yaml'}
""")
    assert cli.main(["run", "--config", str(yaml_file)]) == 0
    cfg = json.loads((tmp_path / "from-yaml" / "adapter" / "labkit_run.json").read_text())["config"]
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8 and cfg["target_modules"] == ["q_proj", "v_proj"]
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"command": "evaluate", "model_name_or_path": str(tiny_folder),
                                     "adapter_path": str(tmp_path / "from-yaml" / "adapter"),
                                     "data_name": str(data_file), "text_template": "{phrase} -> {tone}"}))
    capsys.readouterr()
    assert cli.main(["run", "--config", str(json_file)]) == 0
    assert last_json(capsys.readouterr().out)["task"] == "classification"


def test_export_auto_opt_and_generate_adapter(tmp_path, capsys):
    pytest.importorskip("onnxruntime_genai")
    from test_export import make_tiny_model

    base = make_tiny_model(tmp_path / "base")
    rows = [{"phrase": f"the cat sat {i}", "tone": t} for i in range(6) for t in ("happy", "sad")]
    data_file = write_jsonl(tmp_path / "cats.jsonl", rows)
    for name, targets in (("classifier", "q_proj,v_proj"), ("generator", "q_proj,k_proj,v_proj,o_proj")):
        assert cli.main(["finetune", "-m", str(base), "--data_name", str(data_file), "--text_template",
                         "{phrase} -> {tone}", "--max_steps", "1", "--target_modules", targets,
                         "-o", str(tmp_path / "adapters" / name)]) == 0
    ft = tmp_path / "adapters" / "classifier"
    # olive auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter --device cpu
    #   --provider CPUExecutionProvider --use_ort_genai --precision int4 --output_path models/onnx --log_level 1
    code = cli.main(["auto-opt", "--model_name_or_path", str(ft / "model"), "--adapter_path", str(ft / "adapter"),
                     "--device", "cpu", "--provider", "CPUExecutionProvider", "--use_ort_genai",
                     "--precision", "int4", "--output_path", str(tmp_path / "onnx"), "--log_level", "1"])
    assert code == 0
    assert (tmp_path / "onnx" / "genai_config.json").is_file()
    # olive generate-adapter --base_model_path models/base --adapter_paths a,b --output_path models/multi-adapter
    code = cli.main(["generate-adapter", "--base_model_path", str(base), "--adapter_paths",
                     f"{ft / 'adapter'},{tmp_path / 'adapters' / 'generator' / 'adapter'}",
                     "--output_path", str(tmp_path / "multi")])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "multi").glob("*.onnx_adapter")) == [
        "classifier.onnx_adapter", "generator.onnx_adapter"]
    # an output folder that holds another export is not replaced without --overwrite
    before = (tmp_path / "onnx" / "labkit_export.json").read_text()
    export_fp32 = ["export", "-m", str(base), "--precision", "fp32", "-o", str(tmp_path / "onnx")]
    assert cli.main(export_fp32) == 2
    err = capsys.readouterr().err
    assert "holds another export" in err and "precision int4" in err and "--overwrite" in err
    assert (tmp_path / "onnx" / "labkit_export.json").read_text() == before
    assert cli.main(["generate-adapter", "--base_model_path", str(base), "--adapter_paths", str(ft / "adapter"),
                     "--output_path", str(tmp_path / "multi"), "--precision", "int4"]) == 2
    assert "holds another export" in capsys.readouterr().err
    assert cli.main([*export_fp32, "--overwrite"]) == 0


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_help_shows_a_working_example(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"labkit {name if name != 'auto-opt' else 'auto-opt'}" in out


def test_doctor_says_what_to_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "empty-home"))
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT READY" in out and "labkit prepare" in out


# --- the course runner (`make course`) ------------------------------------------------------

def _notebook(path: Path, cells: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_course_runner_end_to_end(tmp_path, monkeypatch):
    # the bug: record() wrote course-report/NN.metrics.json relative to the kernel's working
    # directory (notebooks/), where that folder does not exist, so every lesson FAILED
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    _notebook(nb_dir / "00_tiny.ipynb", ["from labkit.course.claims import record",
                                         "import os; here = os.getcwd()",
                                         "record(answer=42, cwd_is_notebooks=here.endswith('notebooks'))"])
    _notebook(nb_dir / "01_broken.ipynb", ["from labkit.course.claims import claim",
                                           "claim('two is three', 2, at_least=3)"])
    monkeypatch.chdir(tmp_path)
    code = runner.main([str(nb_dir), "--out", "course-report"])
    assert code == 1  # one lesson failed
    report = tmp_path / "course-report"
    rows = {r["notebook"]: r for r in json.loads((report / "summary.json").read_text())}
    assert rows["00_tiny.ipynb"]["passed"] and rows["00_tiny.ipynb"]["metrics"] == {"answer": 42.0,
                                                                                     "cwd_is_notebooks": 1.0}
    broken = rows["01_broken.ipynb"]
    assert not broken["passed"] and "✗ two is three: 2 >= 3 (margin -1)" in broken["error"]
    assert "\x1b[" not in broken["error"], broken["error"]       # no terminal colour codes in the summary
    assert broken["metrics"]["claims"]["two is three"] == {"measured": 2.0, "bound": ">= 3", "margin": -1.0}
    md = (report / "summary.md").read_text()
    assert re.search(r"\| 00_tiny.ipynb +\| passed +\|", md) and "answer=42.0" in md
    assert (report / "00_tiny.ipynb").is_file()
    page = (report / "index.html").read_text(encoding="utf-8")   # the one-page report
    assert "00_tiny.ipynb" in page and "✗ two is three" in page and "\x1b" not in page


def test_two_course_runs_are_compared_claim_by_claim(tmp_path, capsys):
    # issue 32: a second `make course` in the same labkit home must record the same claims
    def row(measured, margin, reading):
        return {"notebook": "05_x.ipynb", "passed": margin >= 0,
                "metrics": {"claims": {"fix beats overfit": {"measured": measured, "bound": ">= 0", "margin": margin}},
                            "readings": [reading]}}

    same = [row(0.3, 0.3, "Reading: early stopping restored step 20.")]
    assert runner.compare_runs(same, same) == []
    drifted = [row(0.31, 0.31, "Reading: early stopping restored step 20.")]
    assert runner.compare_runs(same, drifted) == [{"lesson": "05_x.ipynb", "what": "claim: fix beats overfit",
                                                   "first": 0.3, "second": 0.31, "changes_a_claim": False}]
    flipped = [row(-0.1, -0.1, "Reading: early stopping restored step 8.")]
    rows = runner.compare_runs(same, flipped)
    assert [r["what"] for r in rows] == ["passed", "claim: fix beats overfit", "reading 1"]
    assert [r["changes_a_claim"] for r in rows] == [True, True, False]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(same))
    second.write_text(json.dumps(flipped))
    assert runner.main(["--compare", str(first), str(second)]) == 1
    assert "3 differences; 2 change whether a lesson or claim passed." in capsys.readouterr().out
    second.write_text(json.dumps(same))
    assert runner.main(["--compare", str(first), str(second)]) == 0


def test_record_writes_metrics_only_under_the_course_runner(tmp_path, monkeypatch):
    monkeypatch.delenv(claims.METRICS_ENV, raising=False)
    assert claims.record(accuracy=0.912345) == {"accuracy": 0.9123}
    assert claims.record(max_abs_diff=3.7672e-05, steps=139, tokens=123456.78912) == {
        "max_abs_diff": 3.767e-05, "steps": 139.0, "tokens": 123456.7891}
    target = tmp_path / "m.json"
    monkeypatch.setenv(claims.METRICS_ENV, str(target))
    claims.record(accuracy=0.9)
    claims.record(seconds=12)
    assert json.loads(target.read_text()) == {"accuracy": 0.9, "seconds": 12.0}


def test_claim_prints_its_margin_and_fails_with_the_same_line(tmp_path, monkeypatch, capsys):
    target = tmp_path / "m.json"
    monkeypatch.setenv(claims.METRICS_ENV, str(target))
    assert claims.claim("loss falls", 1.5, at_most=2.0) == pytest.approx(0.5)
    assert "✓ loss falls: 1.5 <= 2 (margin 0.5)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="✗ accuracy: 0.4 >= 0.5"):
        claims.claim("accuracy", 0.4, at_least=0.5)
    with pytest.raises(AssertionError):
        claims.claim("not a number", float("nan"), at_least=0)
    recorded = json.loads(target.read_text())["claims"]
    assert set(recorded) == {"loss falls", "accuracy", "not a number"} and recorded["accuracy"]["margin"] == pytest.approx(-0.1)
    assert claims.claim("in the band", 0.9, at_least=0.5, at_most=1.0) == pytest.approx(0.1)
    with pytest.raises(AssertionError, match=r"✗ slope: -0.3 >= -0.65 and <= -0.35 \(margin -0.05\)"):
        claims.claim("slope", -0.3, at_least=-0.65, at_most=-0.35)
    with pytest.raises(ValueError, match="at_least"):
        claims.claim("no bound", 1)


def test_lesson_times_are_recorded_per_machine_kind_and_shown(tmp_path, monkeypatch):
    path = tmp_path / "times.json"
    monkeypatch.setattr(lesson_times, "machine_kind", lambda: "2 CPU cores (AVX2, no native bf16), quick profile")
    monkeypatch.setattr(lesson_times, "machine_peaks", lambda: {"fp32_gflops": 62.0, "bf16_gflops": 0.9})
    lesson_times.save_times([{"notebook": "01_x.ipynb", "passed": True, "seconds": 300},
                       {"notebook": "02_y.ipynb", "passed": False, "seconds": 5}], path)
    monkeypatch.setattr(lesson_times, "machine_kind", lambda: "Tesla T4, full profile")
    lesson_times.save_times([{"notebook": "01_x.ipynb", "passed": True, "seconds": 150}], path, peaks={})
    saved = json.loads(path.read_text())["01"]
    assert saved["2 CPU cores (AVX2, no native bf16), quick profile"]["fp32_gflops"] == 62.0  # the measuring machine's peak
    assert "fp32_gflops" not in saved["Tesla T4, full profile"]
    text = lesson_times.lesson_time("01", path).data
    assert "about **5 min** on 2 CPU cores (AVX2" in text and "about **2.5 min** on Tesla T4, full profile" in text
    assert "Not yet measured on a GPU" not in text
    assert "not measured yet" in lesson_times.lesson_time("02", path).data      # a failed run records nothing


def test_a_lesson_says_how_long_an_earlier_lessons_adapter_takes_before_training_it(monkeypatch, capsys):
    from labkit.course import lessons

    times = {"01": {"2 CPU cores (AVX2, no native bf16), quick profile": {"minutes": 4.7, "date": "2026-12-01"}}}
    monkeypatch.setattr(lesson_times, "read_times", lambda *a: times)
    monkeypatch.setattr(lesson_times, "machine_kind", lambda: "2 CPU cores (AVX2, no native bf16), quick profile")
    lessons.say_it_trains("tone")
    out = capsys.readouterr().out
    assert "Lesson 01's tone adapter is not on disk yet: training it now" in out and "took 4.7 min on 2 CPU" in out
    lessons.say_it_trains("recipes")                        # never measured: it still says that it trains
    assert "Lesson 02's recipes adapter is not on disk yet" in capsys.readouterr().out


def test_summary_table():
    md = runner.to_markdown([
        {"notebook": "00_setup.ipynb", "passed": True, "seconds": 30, "metrics": {"tokens_per_s": 25.0}, "error": None},
        {"notebook": "01_x.ipynb", "passed": False, "seconds": 90, "metrics": {}, "error": "AssertionError"},
    ])
    assert re.search(r"\| 00_setup.ipynb +\| passed +\| 0.5 min +\| tokens_per_s=25.0 +\|", md)
    assert "FAILED (AssertionError)" in md


def test_bf16_on_a_cpu_without_native_bf16_runs_with_a_note(tmp_path, tiny_folder, capsys, monkeypatch):
    import labkit.env

    monkeypatch.setattr(labkit.env, "native_bf16", lambda flags=None: False)
    monkeypatch.setattr(labkit.env, "device", lambda: "cpu")
    before = labkit.env.train_dtype
    data_file = write_jsonl(tmp_path / "tone.jsonl", tone_rows(4))
    code = cli.main(["finetune", "-m", str(tiny_folder), "--data_name", str(data_file), "--text_template",
                     "{phrase} -> {tone}", "--torch_dtype", "bfloat16", "--max_steps", "1", "-o", str(tmp_path / "bf")])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("note: --torch_dtype bfloat16 on a CPU without native bf16") == 1
    assert labkit.env.train_dtype is before  # the hardware rule is back after the run


def test_checks_table_lists_the_claims_and_reading_prints_and_records(tmp_path, monkeypatch, capsys):
    target = tmp_path / "metrics.json"
    monkeypatch.setenv(claims.METRICS_ENV, str(target))
    monkeypatch.setattr(claims, "_CLAIMS", {})
    monkeypatch.setattr(claims, "_READINGS", [])
    claims.claim("loss falls", 1.5, at_most=2.0, quiet=True)
    claims.claim("gain", 0.3, at_least=0.1, quiet=True)
    assert capsys.readouterr().out == ""                      # quiet: shown later, in the table
    table = claims.checks_table().data
    assert "loss falls" in claims.checks_table().to_html()
    assert list(table.index) == ["loss falls", "gain"]
    assert list(table["must be"]) == ["<= 2", ">= 0.1"] and set(table["holds"]) == {"✓"}
    with pytest.raises(AssertionError):
        claims.claim("gain", 0.0, at_least=0.1, quiet=True)  # a failed claim still stops the lesson
    assert claims.checks_table().data.loc["gain", "holds"] == "✗"
    claims.reading("in this run   the loss fell to 1.50")
    assert capsys.readouterr().out == "Reading: in this run the loss fell to 1.50\n"
    claims.reading("in this run the loss fell to 1.50")     # a cell run twice: kept once
    assert json.loads(target.read_text())["readings"] == ["in this run the loss fell to 1.50"]
    html = runner.lesson_html({"notebook": "x.ipynb", "passed": True, "seconds": 60,
                               "metrics": json.loads(target.read_text())}, tmp_path)
    assert "Reading" not in html and "in this run the loss fell to 1.50" in html
