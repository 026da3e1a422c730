"""Data parallelism on the standard engine: labkit's finetune under torchrun, two CPU processes
(gloo), on the tests' tiny model, and the repo's accelerate configs load. Under `accelerate launch`
and across two hosts: tests/test_multinode.py.

One process with batch 8 and two processes with batch 4 each take the same optimizer steps on the
same examples (global batch 8), so their losses and LoRA weights must agree up to float rounding."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TONE_LABELS

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "ddp_worker.py"
CONFIGS = ROOT / "configs" / "accelerate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cmd, tmp_path, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABKIT_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def torchrun_two(out, tmp_path, *args) -> tuple[dict, subprocess.CompletedProcess]:
    """tests/ddp_worker.py on two processes with batch 4 each (global batch 8): its result and the run."""
    run = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", 2, "--master_port", free_port(),
                  WORKER, out, 4, *args], tmp_path)
    return json.loads((out / "result.json").read_text()), run


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The two-process run (labkit's answer-only loss), its folder and what it printed."""
    tmp = tmp_path_factory.mktemp("two-processes")
    result, run = torchrun_two(tmp / "run", tmp)
    return result, tmp / "run", run.stdout


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(two_processes, one_process_run):
    two_result, two_dir, out = two_processes
    one_result = one_process_run
    assert (two_result["world_size"], two_result["global_batch"]) == (2, 8)
    assert (one_result["world_size"], one_result["global_batch"]) == (1, 8)
    losses1, losses2 = one_result["losses"], two_result["losses"]
    assert len(losses2) == two_result["steps"] == 8 and losses2[-1] < losses2[0]   # it learned
    # the same steps: equal losses and weights up to float rounding (gradients are summed in another order)
    assert losses2 == pytest.approx(losses1, rel=1e-4), (losses1, losses2)
    assert two_result["lora_abs_sum"] == pytest.approx(one_result["lora_abs_sum"], rel=1e-4)
    assert two_result["trained_tokens"] == one_result["trained_tokens"]           # counted over both processes
    # one adapter, written once; the run printed once, with the global batch
    assert (two_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(two_dir.glob(".adapter.partial-*"))  # no half-written copy from a second writer
    assert out.count("LORA fine-tuning on") == 1, out
    assert out.count("data parallel: 2 processes; global batch 8 = 4 per process x 2 processes x 1") == 1, out


@pytest.mark.slow
def test_answer_only_loss_equals_trls_on_two_processes(two_processes, tmp_path):
    """Under data parallelism labkit's answer-only loss (labkit.train) is normalised as TRL's
    own: by the answer tokens of all processes, whose batches hold different numbers of them. Two
    gloo processes, the same run both ways: equal losses and equal LoRA weights."""
    answer_only = two_processes[0]
    full_logits, _ = torchrun_two(tmp_path / "full-logits", tmp_path, "--full-logits")
    assert answer_only["world_size"] == full_logits["world_size"] == 2
    assert answer_only["losses"] == pytest.approx(full_logits["losses"], rel=1e-4)
    assert answer_only["lora_abs_sum"] == pytest.approx(full_logits["lora_abs_sum"], rel=1e-4)


@pytest.mark.parametrize("name, kind", [("cpu_2proc", "MULTI_GPU"), ("cpu_2machines", "MULTI_GPU"),
                                        ("ddp_multi_gpu", "MULTI_GPU"),
                                        ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"),
                                        ("deepspeed_zero3", "DEEPSPEED")])
def test_accelerate_configs_load_with_the_fields_that_matter(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type == kind and config.num_processes >= 2
    assert config.num_machines == (2 if name == "cpu_2machines" else 1)
    assert config.mixed_precision == "no"  # labkit's hardware rule sets the dtype, not the launcher
    if kind == "FSDP":
        fsdp = config.fsdp_config
        assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        from transformers import LlamaForCausalLM

        assert fsdp["fsdp_transformer_layer_cls_to_wrap"] in LlamaForCausalLM._no_split_modules
        assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if kind == "DEEPSPEED":
        ds = config.deepspeed_config
        assert ds["zero_stage"] == int(name[-1])
        assert ds["gradient_accumulation_steps"] == 1 and ds["offload_optimizer_device"] in ("none", "cpu")
        assert ds["zero3_init_flag"] is (ds["zero_stage"] == 3)
    if name.startswith("cpu_2"):  # torchrun-style launch (gloo without CUDA), not MPI; not forced to 1 process
        assert config.use_cpu is False and config.num_processes == 2
    if name == "cpu_2machines":  # one process per machine; the other machine passes --machine_rank 1
        assert (config.machine_rank, config.main_process_ip, config.rdzv_backend) == (0, "10.77.0.1", "static")


# --- labkit.course.parallel's launcher: the commands lesson 02's appendix prints and runs ---

def test_launch_command_is_python_for_one_process_and_torchrun_for_more(tmp_path):
    from labkit.course import parallel

    one = parallel.launch_command(1, "labkit.cli", ["finetune", "--max_steps", 6])
    two = parallel.launch_command(2, "labkit.course.parallel", [1000])
    assert one == [sys.executable, "-m", "labkit.cli", "finetune", "--max_steps", "6"]
    assert two == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "-m", "labkit.course.parallel", "1000"]
    assert parallel.as_typed(one) == "python -m labkit.cli finetune --max_steps 6"
    assert parallel.as_typed(two) == "torchrun --standalone --nproc_per_node 2 -m labkit.course.parallel 1000"
    out = tmp_path / "run"
    assert parallel.as_typed(parallel.finetune_command(2, ["--data_name", "recipes"], out)) == (
        f"torchrun --standalone --nproc_per_node 2 -m labkit.cli finetune --data_name recipes --output_path {out}")


@pytest.mark.slow
def test_run_finetune_reads_back_the_run_and_says_why_one_failed(tmp_path, tiny_folder, monkeypatch):
    from labkit.course import parallel

    for key, value in {"LABKIT_HOME": tmp_path / "home", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}.items():
        monkeypatch.setenv(key, str(value))
    rows = [{"phrase": f"message number {i} about {label}", "tone": label} for i in range(4) for label in TONE_LABELS]
    data_file = tmp_path / "tone.jsonl"
    data_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = ["-m", tiny_folder, "--data_name", data_file, "--text_template", "{phrase} -> {tone}", "--max_steps", 2,
            "--per_device_train_batch_size", 2, "--logging_steps", 1]
    run = parallel.run_finetune(1, [str(a) for a in args], tmp_path / "ft")
    assert run["result"]["steps"] == 2 and run["result"]["train_seconds"] > 0
    assert len([h for h in run["history"] if "loss" in h]) == 2                    # one logged loss per step
    assert run["printed"] == []                # the global batch is stated under data parallelism only
    with pytest.raises(RuntimeError, match="labkit finetune on 1 process"):
        parallel.run_finetune(1, ["-m", str(tiny_folder), "--data_name", str(tmp_path / "missing.jsonl")],
                              tmp_path / "x")


@pytest.mark.slow
def test_time_allreduce_runs_two_processes_and_returns_the_main_ones_numbers(monkeypatch):
    from labkit.course import parallel

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    timing = parallel.time_allreduce(1000, processes=2)
    assert (timing["processes"], timing["backend"], timing["floats"]) == (2, "gloo", 1000)
    assert timing["megabytes"] == pytest.approx(0.004) and 0 < timing["allreduce_seconds"] < 10
