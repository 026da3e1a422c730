"""Data parallelism, measured: what one gradient exchange costs.

    torchrun --standalone --nproc_per_node 2 -m labkit.course.parallel 4884480

Under data parallelism every process holds the whole model, computes gradients on its share
of the batch, and then the processes *average* their gradients (an all-reduce) before each
optimizer step, so every copy takes the same step. The all-reduce is the price of adding
processes. This module times it for a gradient of N float32 numbers (with LoRA: the trainable
parameters) on the backend training would use: gloo between CPU processes, NCCL between GPUs.
The main process prints one JSON line.

It also holds the few lines that launch a command on N processes of this machine and read back
what it wrote (:func:`run_finetune`, :func:`time_allreduce`): lesson 02's appendix runs the same
``labkit finetune`` on one process and on two and compares the losses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from labkit.course.memory import release_freed_memory


def allreduce_seconds(n_floats: int, repeats: int = 10) -> float:
    """Median wall time of one all-reduce (sum) of ``n_floats`` float32 numbers across the
    processes of the current process group."""
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    grad = torch.ones(n_floats, dtype=torch.float32, device=device)
    dist.all_reduce(grad)  # warm-up: the first call sets up the connections
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(grad)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def launch_command(processes: int, module: str, args=()) -> list[str]:
    """The command that runs ``python -m module args...`` on ``processes`` processes of this machine.

    One process: this Python itself. More: torchrun with ``--standalone --nproc_per_node N``, which
    starts N copies of the same program and tells each its rank and the world size (the process
    group is then set up by the program: here by transformers/accelerate, or :func:`main`). torchrun
    is started as ``python -m torch.distributed.run``, the same program as the ``torchrun`` script,
    so that it is found wherever this Python is."""
    if processes == 1:
        return [sys.executable, "-m", module, *map(str, args)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", module, *map(str, args)]


def as_typed(command: list[str]) -> str:
    """``command`` as you would type it in a shell: ``python -m ...`` or ``torchrun ...``."""
    text = " ".join(command)
    return (text.replace(f"{sys.executable} -m torch.distributed.run", "torchrun", 1)
                .replace(sys.executable, "python", 1))


def finetune_command(processes: int, finetune_args, output_path) -> list[str]:
    """The command that runs ``labkit finetune finetune_args... --output_path output_path`` on
    ``processes`` processes (:func:`launch_command`)."""
    return launch_command(processes, "labkit.cli", ["finetune", *finetune_args, "--output_path", output_path])


def run_finetune(processes: int, finetune_args, output_path) -> dict:
    """Run :func:`finetune_command` to the end and read back what its main process saved.

    Returns ``<output_path>/adapter/labkit_run.json`` (``"result"``: steps, train_seconds, ...;
    ``"history"``: the trainer's log, one entry per logged step) with one key added,
    ``"printed"``: the lines of its output that state the global batch. Raises RuntimeError with
    the end of its error output if the run fails."""
    release_freed_memory()   # the processes started here need memory of their own
    done = subprocess.run(finetune_command(processes, finetune_args, output_path), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"labkit finetune on {processes} process(es) failed:\n{done.stderr[-3000:]}")
    run = json.loads((Path(output_path) / "adapter" / "labkit_run.json").read_text())
    run["printed"] = [line for line in done.stdout.splitlines() if "global batch" in line]
    return run


def time_allreduce(n_floats: int, processes: int = 2) -> dict:
    """Run this module on ``processes`` processes (``torchrun ... -m labkit.course.parallel n_floats``) and
    return the JSON line its main process prints: ``processes``, ``backend``, ``floats``,
    ``megabytes`` and ``allreduce_seconds`` (the median of 10, :func:`allreduce_seconds`)."""
    release_freed_memory()
    done = subprocess.run(launch_command(processes, "labkit.course.parallel", [n_floats]), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"timing the all-reduce on {processes} processes failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    """`torchrun ... -m labkit.course.parallel N`: time an all-reduce of N floats on every process."""
    import argparse

    parser = argparse.ArgumentParser(prog="torchrun --standalone --nproc_per_node N -m labkit.course.parallel",
                                     description="Time one all-reduce of a gradient of N float32 numbers.")
    parser.add_argument("n_floats", type=int, help="gradient size, e.g. a model's trainable parameter count")
    n_floats = parser.parse_args(argv).n_floats
    if n_floats < 1:
        parser.error(f"n_floats must be a whole number greater than 0, got {n_floats}")
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(dist.get_rank() % torch.cuda.device_count())
    seconds = allreduce_seconds(n_floats)
    if dist.get_rank() == 0:
        print(json.dumps({"processes": dist.get_world_size(), "backend": dist.get_backend(),
                          "floats": n_floats, "megabytes": 4 * n_floats / 1e6,
                          "allreduce_seconds": seconds}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
