"""Two machines for real: torchrun's c10d rendezvous and `accelerate launch` across a network,
on two test hosts that tests/two_hosts.sh makes on this machine (network namespaces labkit-a and
labkit-b, 10.77.0.1 and 10.77.0.2, joined by a veth pair). One process on each host, gloo, the
tests' tiny model, the run of tests/test_distributed.py: global batch 8 = 4 per host x 2 hosts.

What differs from two processes on one machine, and is tested here: the rendezvous over the
network (host a serves it, host b finds it by address), gloo's traffic over the veth pair, and a
node that dies mid-run, restarted by torchrun (--max-restarts) from the last checkpoint. The two
hosts share this machine's disk, so both see the checkpoints: on real machines the output folder
must be shared storage as well (docs/advanced.md)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TONE_LABELS

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "ddp_worker.py"
HOSTS = {"a": "10.77.0.1", "b": "10.77.0.2"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_hosts():
    """The two test hosts: used if they exist, else made (as root) and removed afterwards."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True) if shutil.which("ip") else None
    if listed and {"labkit-a", "labkit-b"} <= {line.split()[0] for line in listed.stdout.splitlines() if line}:
        yield HOSTS
        return
    if os.geteuid() != 0 or not shutil.which("ip"):
        message = "two test hosts need root and iproute2 (bash tests/two_hosts.sh up)"
        if os.environ.get("LABKIT_REQUIRE_TWO_HOSTS"):
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(["bash", ROOT / "tests" / "two_hosts.sh", "up"], check=True)
    yield HOSTS
    subprocess.run(["bash", ROOT / "tests" / "two_hosts.sh", "down"], check=True)


def on_host(host: str, cmd: list, tmp_path: Path) -> subprocess.Popen:
    """Start ``cmd`` on test host ``host``; its output goes to tmp_path/host-<host>.log."""
    env = {**os.environ, "LABKIT_HOME": str(tmp_path / f"home-{host}"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": f"veth-{host}"}
    log = open(tmp_path / f"host-{host}.log", "w")
    return subprocess.Popen(["ip", "netns", "exec", f"labkit-{host}", *map(str, cmd)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)


def stop(nodes: dict) -> None:
    """Kill every host's command with its workers: no run outlives its test."""
    for node in nodes.values():
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()


def finish(nodes: dict, tmp_path: Path, timeout: float = 300) -> dict:
    """Wait for every host's command; fail with the logs of a host that failed. Returns the logs."""
    deadline = time.monotonic() + timeout
    try:
        for node in nodes.values():
            node.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stop(nodes)
    logs = {host: (tmp_path / f"host-{host}.log").read_text() for host in nodes}
    codes = {host: node.returncode for host, node in nodes.items()}
    assert set(codes.values()) == {0}, f"exit codes {codes}\n" + "\n".join(
        f"--- host {host}'s log, last lines:\n{log[-3000:]}" for host, log in logs.items())
    return logs


def torchrun(host: str, port: int, args: list, max_restarts: int = 0) -> list:
    """torchrun for one node of two, one process, meeting at host a's c10d rendezvous. Host a
    serves it (is_host: torchrun cannot tell that 10.77.0.1 is its own address inside a namespace)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", 2, "--nproc_per_node", 1,
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"{HOSTS['a']}:{port}", "--rdzv_id", f"labkit-{port}",
            "--rdzv_conf", f"is_host={int(host == 'a')}",
            "--local_addr", HOSTS[host], "--max_restarts", max_restarts, "--monitor_interval", 1, WORKER, *args]


def test_two_hosts_train_like_one_process_and_a_killed_node_resumes_from_the_last_checkpoint(
        two_hosts, one_process_run, tmp_path):
    """torchrun's c10d rendezvous on the two hosts, one process each, checkpoints every 2 steps;
    host b's worker is killed after the checkpoint of step 4 and torchrun restarts both. Every step,
    before and after the kill, is the one-process run's. Restarts to spare (3): when both agents see
    the failure at once, each may count it, and a restart resumes from the newest checkpoint anyway."""
    out = tmp_path / "run"
    args = [out, 4, "--save-steps", 2, "--stall-after", 4]
    nodes = {host: on_host(host, torchrun(host, 29420, args, max_restarts=3), tmp_path) for host in two_hosts}
    stalled, saved = out / "stalled.pid", out / "checkpoint-4" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not (stalled.is_file() and saved.is_file()) and time.monotonic() < deadline:
        if any(node.poll() is not None for node in nodes.values()):
            break
        time.sleep(0.5)
    if not (stalled.is_file() and saved.is_file()):
        stop(nodes)
        pytest.fail("the run never reached its checkpoint of step 4:\n" + (tmp_path / "host-a.log").read_text()[-3000:])
    time.sleep(1)
    os.kill(int(stalled.read_text()), signal.SIGKILL)         # host b's worker dies after step 4
    logs = finish(nodes, tmp_path)
    assert f"Resuming from {out / 'checkpoint-4'}" in logs["a"], logs["a"][-3000:]   # not from step 0
    result = json.loads((out / "result.json").read_text())
    assert (result["world_size"], result["global_batch"], result["steps"]) == (2, 8, 8)
    assert result["losses"][-1] < result["losses"][0]                                # it learned
    # steps 1-4 (two hosts) and 5-8 (after the restart) are the one-process run's: the checkpoint
    # kept step 4's weights, optimizer state and place in the data, and the final adapter is the same
    assert result["losses"] == pytest.approx(one_process_run["losses"], rel=1e-4)
    assert result["lora_abs_sum"] == pytest.approx(one_process_run["lora_abs_sum"], rel=1e-4)
    assert result["trained_tokens"] == one_process_run["trained_tokens"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert "LORA fine-tuning on" in logs["a"] and "LORA fine-tuning on" not in logs["b"]  # host a's process is rank 0


def test_labkit_finetune_runs_on_two_machines_under_accelerate_launch(two_hosts, tmp_path, tiny_folder):
    rows = [{"phrase": f"message number {i} about {label}", "tone": label} for i in range(8) for label in TONE_LABELS]
    data_file = tmp_path / "tone.jsonl"
    data_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "ft"
    config = ROOT / "configs" / "accelerate" / "cpu_2machines.yaml"
    finetune = ["-m", "labkit.cli", "finetune", "-m", tiny_folder, "--data_name", data_file, "--text_template",
                "{phrase} -> {tone}", "--max_steps", 3, "--per_device_train_batch_size", 2, "-o", out]
    accelerate = Path(sys.executable).parent / "accelerate"
    nodes = {host: on_host(host, [accelerate, "launch", "--config_file", config, "--machine_rank", rank,
                                  "--main_process_port", 29430, *finetune], tmp_path)
             for rank, host in enumerate(two_hosts)}
    logs = finish(nodes, tmp_path)
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "model").is_dir()
    assert json.loads((out / "adapter" / "labkit_run.json").read_text())["result"]["steps"] == 3
    # the main process (host a) says each thing once, with the global batch; host b's says nothing
    for line in ("Saved to", "classification task: 30 training", "defaults for a classification task:"):
        assert logs["a"].count(line) == 1 and line not in logs["b"], (line, logs["a"][-3000:])
    assert "global batch 4 = 2 per process x 2 processes" in logs["a"], logs["a"][-3000:]
