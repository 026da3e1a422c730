"""Data parallelism, measured: what one gradient exchange costs.

    torchrun --standalone --nproc_per_node 2 -m labkit.parallel 4884480

Under data parallelism every process holds the whole model, computes gradients on its share
of the batch, and then the processes *average* their gradients (an all-reduce) before each
optimizer step, so every copy takes the same step. The all-reduce is the price of adding
processes. This module times it for a gradient of N float32 numbers (with LoRA: the trainable
parameters) on the backend training would use: gloo between CPU processes, NCCL between GPUs.
The main process prints one JSON line.
"""

from __future__ import annotations

import json
import time

import torch
import torch.distributed as dist


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


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="torchrun --standalone --nproc_per_node N -m labkit.parallel",
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
