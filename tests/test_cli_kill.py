"""kill -9 in the middle of the command line's work, then the same command again (subprocesses on
a tiny model): training resumes from the last complete checkpoint and finishes; an export is
rebuilt, and a half-built folder is never used."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TONE_LABELS, build_model

ROOT = Path(__file__).resolve().parents[1]


def labkit(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "labkit.cli", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def wait_for(condition, proc, timeout=120.0, every=0.02):
    """Poll until ``condition()``; fail if the process ends first or time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the command ended before it could be killed:\n{proc.stdout.read()[-2000:]}")
        time.sleep(every)
    proc.kill()
    pytest.fail("timed out waiting for the command to reach the point to kill it")


def kill9(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture()
def env(tmp_path):
    return {**os.environ, "LABKIT_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def long_tiny_run(tmp_path, tiny_tokenizer):
    """A tiny model folder, a tone file and a 400-step finetune command on them (checkpoints every 10 steps)."""
    model_dir = tmp_path / "tiny"
    build_model(tiny_tokenizer).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = tmp_path / "tone.jsonl"
    data.write_text("\n".join(json.dumps({"phrase": f"message {i}", "tone": t})
                              for i in range(8) for t in TONE_LABELS) + "\n")
    out = tmp_path / "run"
    args = ["finetune", "-m", model_dir, "--data_name", data, "--text_template", "{phrase} -> {tone}",
            "--max_steps", "400", "--save_steps", "10", "--eval_steps", "100", "--logging_steps", "50",
            "--per_device_train_batch_size", "2", "--lora_r", "2", "-o", out]
    return model_dir, out, args


@pytest.mark.slow
def test_kill_mid_training_then_rerun_resumes_and_finishes(tmp_path, tiny_tokenizer, env):
    model_dir, out, args = long_tiny_run(tmp_path, tiny_tokenizer)
    first = labkit(args, env)
    wait_for(lambda: any((c / "trainer_state.json").is_file() for c in out.glob("checkpoint-*")), first)
    kill9(first)
    assert not (out / "adapter").exists()          # no finished-looking adapter after a kill
    again = labkit(args, env)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output[-3000:]
    assert "Resuming from" in output and "checkpoint-" in output
    run = json.loads((out / "adapter" / "labkit_run.json").read_text())
    assert run["result"]["steps"] == 400
    assert (out / "model" / "labkit_base.json").is_file()


@pytest.mark.slow
def test_ctrl_c_mid_training_says_what_was_kept_and_how_to_resume(tmp_path, tiny_tokenizer, env):
    model_dir, out, args = long_tiny_run(tmp_path, tiny_tokenizer)
    proc = labkit(args, env)
    wait_for(lambda: any((c / "trainer_state.json").is_file() for c in out.glob("checkpoint-*")), proc)
    proc.send_signal(signal.SIGINT)                  # what Ctrl-C in a terminal sends
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output[-2000:]
    assert "interrupted: kept" in output and "checkpoint-" in output, output[-2000:]
    assert "run the same command again to resume" in output and f"labkit finetune -m {model_dir}" in output


@pytest.mark.slow
def test_kill_mid_export_then_rerun_rebuilds(tmp_path, env):
    pytest.importorskip("onnxruntime_genai")
    from test_export import make_tiny_model

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    base = make_tiny_model(tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)  # bigger than the unit tests' model, so that the build lasts long enough to kill
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1024,
                                 num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=2)).save_pretrained(base)
    out = tmp_path / "exports" / "tiny-fp32"
    args = ["export", "-m", base, "--precision", "fp32", "-o", out]
    first = labkit(args, env)
    wait_for(lambda: any(out.parent.glob(f".{out.name}.work-*/*")), first, every=0.002)
    kill9(first)
    assert not out.exists()                         # the half-built folder has a temporary name
    again = labkit(args, env)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output[-3000:]
    assert (out / "genai_config.json").is_file() and (out / "labkit_export.json").is_file()
    assert "ONNX model ready" in output
