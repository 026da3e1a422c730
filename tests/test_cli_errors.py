"""Every bad input to the command line ends in one message that names the file, line, field or
flag and says what to do, with exit code 2, and leaves no output folder behind (tiny models)."""

import json
from pathlib import Path

import pytest

from labkit.cli import main as cli
from conftest import TONE_LABELS, build_tokenizer


@pytest.fixture(autouse=True)
def _offline_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def good_data(tmp_path):
    rows = [{"phrase": f"message {i} about {t}", "tone": t} for i in range(6) for t in TONE_LABELS]
    path = tmp_path / "good.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture()
def adapter(tmp_path, tiny_folder):
    """A LoRA adapter of the tiny model, saved without training (nothing to learn here)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_folder)
    folder = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(folder)
    return folder


def fails(argv, capsys, *expected, out=None):
    """Run the CLI; assert exit code 2, each expected text in the one error line, no output folder."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]
    if out is not None:
        assert not Path(out).exists(), f"{out} was left behind"
    return lines[0]


def finetune(tiny_folder, data, out, *extra):
    return ["finetune", "-m", tiny_folder, "--data_name", data, "--text_template", "{phrase} -> {tone}",
            "--max_steps", "1", "-o", out, *extra]


# --- data ---------------------------------------------------------------------------------

def test_malformed_file(tmp_path, tiny_folder, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"phrase": "ok", "tone": "joy"}\n{"phrase": broken\n')
    fails(finetune(tiny_folder, bad, tmp_path / "run"), capsys, "bad.jsonl, line 2", "not valid JSON",
          out=tmp_path / "run")


def test_not_utf8(tmp_path, tiny_folder, capsys):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"phrase,tone\ncaf\xe9,joy\n")
    fails(finetune(tiny_folder, bad, tmp_path / "run"), capsys, "latin1.csv, line 2", "not UTF-8",
          "Re-save the file as UTF-8", out=tmp_path / "run")


def test_missing_field(tmp_path, tiny_folder, capsys):
    path = tmp_path / "nofield.jsonl"
    path.write_text("\n".join([json.dumps({"phrase": f"p{i}", "tone": "joy"}) for i in range(10)]
                              + [json.dumps({"phrase": "no tone here"})]) + "\n")
    fails(finetune(tiny_folder, path, tmp_path / "run"), capsys, "nofield.jsonl:11", "'tone' is missing",
          out=tmp_path / "run")


def test_template_without_fields_and_missing_template(tmp_path, tiny_folder, good_data, capsys):
    fails(["finetune", "-m", tiny_folder, "--data_name", good_data, "-o", tmp_path / "run"], capsys,
          "--text_template is required", "['phrase', 'tone']", out=tmp_path / "run")
    fails(["finetune", "-m", tiny_folder, "--data_name", good_data, "--text_template", "no fields",
           "-o", tmp_path / "run"], capsys, "--text_template 'no fields' uses no {field}")


def test_empty_file(tmp_path, tiny_folder, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    fails(finetune(tiny_folder, path, tmp_path / "run"), capsys, "empty.jsonl: the file is empty",
          out=tmp_path / "run")


def test_too_few_examples(tmp_path, tiny_folder, capsys):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"phrase": "only me", "tone": "joy"}) + "\n")
    fails(finetune(tiny_folder, one, tmp_path / "run"), capsys, "one.jsonl: only 1 example(s)",
          out=tmp_path / "run")


def test_too_few_examples_in_a_slice(tmp_path, tiny_folder, good_data, capsys):
    fails(finetune(tiny_folder, good_data, tmp_path / "run", "--train_split", "train[:3]"), capsys,
          "3 training example(s)", "at least 8", out=tmp_path / "run")


def test_over_long_example(tmp_path, tiny_folder, capsys):
    rows = [{"phrase": f"short {i}", "tone": TONE_LABELS[i % 5]} for i in range(20)]
    rows[7]["phrase"] = "the cat sat on the mat " * 40
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    fails(finetune(tiny_folder, path, tmp_path / "run", "--max_seq_len", "64"), capsys,
          "long.jsonl:8", "longer than max_length=64", "--max_seq_len", out=tmp_path / "run")


def test_label_in_test_never_seen_in_training(tmp_path, tiny_folder, capsys):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(
        json.dumps({"phrase": f"m{i}", "tone": t}) for i in range(6) for t in ("joy", "fear")) + "\n")
    (folder / "test.jsonl").write_text(json.dumps({"phrase": "x", "tone": "joy"}) + "\n"
                                       + json.dumps({"phrase": "y", "tone": "anger"}) + "\n")
    fails(["evaluate", "-m", tiny_folder, "--data_name", folder, "--text_template", "{phrase} -> {tone}"],
          capsys, "test.jsonl:2", "tone='anger'", "never occurs in the training split")


def test_bad_split_specs(tmp_path, tiny_folder, good_data, capsys):
    fails(finetune(tiny_folder, good_data, tmp_path / "run", "--eval_split", "train[4096:4224]"), capsys,
          "--eval_split 'train[4096:4224]' selects no examples", out=tmp_path / "run")
    fails(finetune(tiny_folder, good_data, tmp_path / "run", "--train_split", "trian[:10]"), capsys,
          "--train_split 'trian[:10]'", "no split 'trian'", out=tmp_path / "run")


def test_unknown_hub_dataset_offline(tmp_path, tiny_folder, capsys):
    fails(finetune(tiny_folder, "someorg/somedata", tmp_path / "run"), capsys,
          "--data_name someorg/somedata", "hub is not reachable", out=tmp_path / "run")


def test_data_name_and_data_files_conflict(tmp_path, tiny_folder, good_data, capsys):
    fails(["finetune", "-m", tiny_folder, "--data_name", "tone", "--data_files", good_data], capsys,
          "pass one of them")


# --- numeric flags ----------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,text", [
    ("--max_steps", "-5", "argument --max_steps: must be a whole number greater than 0, got '-5'"),
    ("--max_steps", "0", "argument --max_steps"),
    ("--per_device_train_batch_size", "0", "argument --per_device_train_batch_size"),
    ("--gradient_accumulation_steps", "1.5", "argument --gradient_accumulation_steps"),
    ("--learning_rate", "5", "argument --learning_rate: '5' is far too large"),
    ("--learning_rate", "-1e-4", "argument --learning_rate"),
    ("--lora_r", "0", "argument --lora_r"),
    ("--lora_dropout", "1.5", "argument --lora_dropout"),
    ("--max_seq_len", "abc", "argument --max_seq_len"),
    ("--eval_steps", "0", "argument --eval_steps"),
    ("--gradient_checkpointing", "maybe", "argument --gradient_checkpointing: must be true or false"),
    ("--method", "dora", "argument --method: invalid choice: 'dora'"),
])
def test_invalid_numeric_flags(tmp_path, tiny_folder, good_data, capsys, flag, value, text):
    fails(finetune(tiny_folder, good_data, tmp_path / "run", flag, value), capsys, text,
          out=tmp_path / "run")


# --- models -------------------------------------------------------------------------------------

def test_missing_model_path(tmp_path, good_data, capsys):
    fails(finetune(tmp_path / "nowhere", good_data, tmp_path / "run"), capsys,
          "--model_name_or_path", "nowhere", "no such folder", out=tmp_path / "run")


def test_wrong_model_path(tmp_path, good_data, adapter, capsys):
    fails(finetune(adapter, good_data, tmp_path / "run"), capsys, "not a model folder (no config.json)",
          "pass it as --adapter_path", out=tmp_path / "run")


def test_unknown_hub_model_offline(tmp_path, good_data, capsys):
    fails(finetune("someorg/nomodel", good_data, tmp_path / "run"), capsys,
          "--model_name_or_path someorg/nomodel", "hub is not", out=tmp_path / "run")


def test_corrupt_model_weights(tmp_path, tiny_folder, good_data, capsys):
    weights = tiny_folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    fails(finetune(tiny_folder, good_data, tmp_path / "run"), capsys, "model.safetensors",
          "corrupt or incomplete", out=tmp_path / "run")


# --- adapters ------------------------------------------------------------------------------

def evaluate(tiny_folder, data, adapter):
    return ["evaluate", "-m", tiny_folder, "--data_name", data, "--text_template", "{phrase} -> {tone}",
            "--adapter_path", adapter]


def test_missing_adapter(tmp_path, tiny_folder, good_data, capsys):
    fails(evaluate(tiny_folder, good_data, tmp_path / "no-adapter"), capsys,
          "--adapter_path", "no-adapter: no such folder")


def test_corrupt_adapter(tmp_path, tiny_folder, good_data, adapter, capsys):
    (adapter / "adapter_model.safetensors").write_bytes(b"not a safetensors file at all")
    fails(evaluate(tiny_folder, good_data, adapter), capsys, "adapter_model.safetensors",
          "corrupt or incomplete")
    fails(["export", "-m", tiny_folder, "--adapter_path", adapter, "-o", tmp_path / "onnx"], capsys,
          "adapter_model.safetensors", out=tmp_path / "onnx")


def test_corrupt_adapter_config(tmp_path, tiny_folder, good_data, adapter, capsys):
    (adapter / "adapter_config.json").write_text("{ not json")
    fails(evaluate(tiny_folder, good_data, adapter), capsys, "adapter_config.json: corrupt adapter config")


def test_adapter_for_another_base(tmp_path, good_data, adapter, capsys):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    torch.manual_seed(0)
    other = tmp_path / "other-base"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
                     ).save_pretrained(other)
    tok.save_pretrained(other)
    fails(evaluate(other, good_data, adapter), capsys, "trained for another base")
    fails(["export", "-m", other, "--adapter_path", adapter, "--precision", "fp32", "-o", tmp_path / "onnx"],
          capsys, "trained for another base", out=tmp_path / "onnx")


# --- exports -------------------------------------------------------------------------------

def test_chat_on_a_folder_that_is_not_an_export(tmp_path, tiny_folder, capsys):
    fails(["chat", "--model_path", tiny_folder], capsys, "not an ONNX export (no genai_config.json)")
    fails(["chat", "--model_path", tmp_path / "nothing"], capsys, "no such folder")


def test_chat_on_a_broken_export(tmp_path, capsys):
    pytest.importorskip("onnxruntime_genai")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "genai_config.json").write_text("{}")
    fails(["chat", "--model_path", broken], capsys, "onnxruntime-genai could not load it")


def test_export_flags_that_disagree(tmp_path, tiny_folder, capsys):
    fails(["auto-opt", "-m", tiny_folder, "--device", "cuda", "--provider", "CPUExecutionProvider",
           "-o", tmp_path / "onnx"], capsys, "disagree", out=tmp_path / "onnx")
    fails(["auto-opt", "-m", tiny_folder, "--precision", "int8"], capsys, "argument --precision")


def test_generate_adapter_errors(tmp_path, tiny_folder, capsys):
    fails(["generate-adapter", "--base_model_path", tiny_folder, "--adapter_paths", tmp_path / "nope",
           "--output_path", tmp_path / "multi"], capsys, "--adapter_paths", "no such folder",
          out=tmp_path / "multi")
    fails(["generate-adapter", "--base_model_path", tiny_folder, "--adapter_paths", ",",
           "--output_path", tmp_path / "multi"], capsys, "argument --adapter_paths")
    fails(["generate-adapter", "--adapter_paths", "a"], capsys, "--base_model_path")


# --- run files -------------------------------------------------------------------------------

def test_run_file_unknown_key(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("data_name: tone\nmax_step: 10\n")
    fails(["run", "--config", path], capsys, "run.yaml: unknown setting 'max_step'", "Did you mean 'max_steps'")


def test_run_file_bad_value_and_bad_yaml(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("data_name: tone\nmax_steps: -5\n")
    fails(["run", "--config", path], capsys, "run.yaml:", "--max_steps", "-5")
    path.write_text("data_name: tone\nmax_steps: [1\n")
    fails(["run", "--config", path], capsys, "run.yaml, line", "not valid YAML")
    path = tmp_path / "run.json"
    path.write_text('{"data_name": "tone",\n "max_steps": }')
    fails(["run", "--config", path], capsys, "run.json, line 2", "not valid JSON")


def test_fp16_on_a_cpu_is_refused(tmp_path, tiny_folder, good_data, capsys, monkeypatch):
    import labkit.env

    monkeypatch.setattr(labkit.env, "device", lambda: "cpu")
    fails(finetune(tiny_folder, good_data, tmp_path / "run", "--torch_dtype", "float16"), capsys,
          "--torch_dtype float16", "needs a CUDA GPU", out=tmp_path / "run")


# --- data safety: a learner's own file and output folder -----------------------------------------

def test_labels_that_differ_only_by_case_or_spaces(tmp_path, tiny_folder, capsys):
    rows = [{"phrase": f"message {i} about {t}", "tone": t} for i in range(6) for t in TONE_LABELS]
    rows += [{"phrase": f"another {i}", "tone": v} for i, v in enumerate(["Joy", "Joy", "joy ", "Anger"])]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    line = fails(finetune(tiny_folder, data, tmp_path / "out"), capsys,
                 "mixed.jsonl", "tone", "differ only by case or spaces", "'joy' x6", "'Joy' x2", "'joy ' x1",
                 "--normalize_labels true", out=tmp_path / "out")
    assert "'anger' x6, 'Anger' x1" in line
    # with the flag: one label per spelling group, written the most frequent way, and training goes on
    code = cli.main([str(a) for a in finetune(tiny_folder, data, tmp_path / "out", "--normalize_labels", "true")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "--normalize_labels: 5 spellings of 2 label(s)" in out.err + out.out
    assert "labels ['joy', 'anger', 'sadness', 'fear', 'neutral']" in out.out


def test_a_file_whose_examples_share_one_text_says_so(tmp_path, tiny_folder, capsys):
    data = tmp_path / "copies.csv"
    data.write_text("phrase,tone\n" + "My invoice is wrong,anger\n" * 20 + "App crashes!,fear\n" * 20)
    fails(finetune(tiny_folder, data, tmp_path / "out"), capsys,
          "copies.csv", "40 examples hold only 2 distinct text(s)", "Remove the duplicates", out=tmp_path / "out")


def test_a_second_finetune_into_the_same_folder_refuses_to_replace_another_run(tmp_path, tiny_folder, good_data, capsys):
    out = tmp_path / "out"
    assert cli.main([str(a) for a in finetune(tiny_folder, good_data, out)]) == 0
    first = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    capsys.readouterr()
    line = fails(finetune(tiny_folder, good_data, out, "--learning_rate", "0.0005"), capsys,
                 f"--output_path {out} holds a finished lora run", "1 steps", "learning rate 0.001",
                 "--overwrite")
    assert "training examples" in line
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == first     # untouched
    # the same command again is the same run: fine
    assert cli.main([str(a) for a in finetune(tiny_folder, good_data, out)]) == 0
    # --overwrite replaces it on purpose
    assert cli.main([str(a) for a in finetune(tiny_folder, good_data, out, "--learning_rate", "0.0005",
                                              "--overwrite")]) == 0
    assert json.loads((out / "adapter" / "labkit_run.json").read_text())["config"]["learning_rate"] == 0.0005
