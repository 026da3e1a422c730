"""The machine, the course profile, and the hardware rules every lesson follows.

Two profiles decide how big each lesson's run is:

- ``quick``: what CI and CPU laptops run. Every lesson finishes in a few minutes on
  2 CPU cores and still shows a real, asserted effect.
- ``full``: more data and more steps, for a GPU (Colab T4 and up).

``LABKIT_PROFILE=quick|full`` picks one; unset, a CUDA GPU means ``full`` and anything
else ``quick``. Lessons read their sizes from :data:`PROFILES` through :func:`settings`.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

# One place for every size a lesson uses. Numbers for "quick" were measured to fit the
# lesson's time budget on a 2-core CPU (see bench/ and the notebooks' own timings).
PROFILES: dict[str, dict[str, dict]] = {
    "quick": {
        # one pass over all 1,107 training examples (139 steps of 8): 0.862 test accuracy in 117 s of
        # training on an AVX-512 CPU (bench/bf16_vs_fp32.py --train_examples 1107 --max_steps 139); the
        # previous 480 examples / 60 steps gave 0.81 in 50 s. One pass was ~4.6 min on an AVX2 CPU
        # before the output layer ran on answer tokens only (~1.3x faster since); lesson 01 took 5.1 min
        # there in this session (training 191 s, 139 steps)
        "tone": dict(train_examples=None, max_steps=139, batch_size=8, eval_examples=None,
                     few_shot_k=5, learning_rate=2e-3, r=16),
        "recipes": dict(train_examples=112, max_steps=14, batch_size=8, eval_examples=32,
                        val_examples=12, learning_rate=1e-3, max_new_tokens=40),
        "qlora": dict(train_examples=64, max_steps=6, batch_size=4, eval_examples=24,
                      learning_rate=1e-3),
        "export": dict(eval_examples=None, bench_new_tokens=64),
        # lesson 07: all 138 tone test messages (label scoring is one pass each); recipes are
        # generated, slow on a CPU: 16 test recipes per model
        "multi_adapter": dict(tone_examples=None, recipes_examples=16, bench_new_tokens=64),
        # lesson 05: 16 training examples, ~6 passes, rank 64: the validation loss bottoms out
        # early and turns up; each of the six runs takes ~30-55 s on 2 cores (AVX-512), ~60 s on AVX2
        "overfit": dict(train_examples=16, more_data_examples=64, val_examples=32, max_steps=25,
                        batch_size=4, learning_rate=1e-3, r=64, low_r=4, eval_steps=5, patience=2),
        # lesson 08: each sampler gets 4 short trials (10 steps, scored at steps 5 and 10); the search
        # is a demonstration of the method at lesson size, the full profile gives each sampler 16.
        # Forgetting: rehearsal and the adapter switched off (the full profile adds a lower rank)
        "capstone": dict(trials=4, trial_steps=10, score_every=5, learning_rate=(1e-4, 5e-3), lower_rank=False),
        # lesson 09: on-policy pairs from 16 unseen training recipes (4 samples each), a short DPO run from
        # lesson 02's adapter, two short GRPO runs (task reward, then a partial one), all scored on 24 test
        # recipes; "ci" (read when $CI is set) shrinks every run so that the lesson fits CI's budget
        "preferences": dict(pair_prompts=16, k=4, temperature=1.0, max_new_tokens=40, test_examples=24,
                            dpo_steps=6, dpo_batch=4, dpo_learning_rate=1e-4, betas=(0.1,),
                            grpo_steps=5, grpo_prompts=2, generations=4, grpo_learning_rate=2e-4, kl_beta=0.04,
                            sft_steps=3,
                            ci=dict(pair_prompts=8, test_examples=12, dpo_steps=3, grpo_steps=2, sft_steps=2)),
    },
    "full": {
        "tone": dict(train_examples=None, max_steps=210, batch_size=16, eval_examples=None,
                     few_shot_k=5, learning_rate=1e-3, r=16),
        "recipes": dict(train_examples=None, max_steps=300, batch_size=16, eval_examples=None,
                        val_examples=None, learning_rate=5e-4, max_new_tokens=64),
        "qlora": dict(train_examples=None, max_steps=300, batch_size=16, eval_examples=None,
                      learning_rate=5e-4),
        "export": dict(eval_examples=None, bench_new_tokens=128),
        "multi_adapter": dict(tone_examples=None, recipes_examples=64, bench_new_tokens=128),
        "overfit": dict(train_examples=48, more_data_examples=400, val_examples=None, max_steps=150,
                        batch_size=8, learning_rate=1e-3, r=64, low_r=4, eval_steps=10, patience=3),
        "capstone": dict(trials=16, trial_steps=60, score_every=20, learning_rate=(1e-5, 1e-3), lower_rank=True),
        "preferences": dict(pair_prompts=256, k=8, temperature=1.0, max_new_tokens=64, test_examples=None,
                            dpo_steps=60, dpo_batch=8, dpo_learning_rate=5e-5, betas=(0.1, 0.5),
                            grpo_steps=60, grpo_prompts=4, generations=8, grpo_learning_rate=1e-4, kl_beta=0.04,
                            sft_steps=10, ci=None),   # CI runs the quick profile only
    },
}


def on_colab() -> bool:
    """Whether this Python runs in a Google Colab runtime."""
    return "google.colab" in sys.modules


def profile() -> str:
    """The active profile: ``$LABKIT_PROFILE`` if set, else ``full`` on a CUDA GPU, else ``quick``.
    Colab runs ``quick`` on its GPU too, until the ``full`` profile has been run through on a T4
    (the first cell of each lesson says so; ``LABKIT_PROFILE=full`` asks for it)."""
    name = os.environ.get("LABKIT_PROFILE", "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ValueError(
                f"LABKIT_PROFILE={name!r} is not a profile; use one of {sorted(PROFILES)} "
                "or unset it to pick automatically."
            )
        return name
    return "full" if torch.cuda.is_available() and not on_colab() else "quick"


def seed() -> int:
    """The course's seed: ``$LABKIT_SEED`` (default 0). Every training run (``TrainConfig.seed``),
    every bootstrap resample and every random draw a lesson makes reads it, so one setting
    re-runs the whole course on another draw of the dice (``bench/course_margins.py`` does
    that to measure how much each lesson's checks move between seeds)."""
    raw = os.environ.get("LABKIT_SEED", "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(f"LABKIT_SEED={raw!r} is not a seed; use a whole number >= 0, e.g. LABKIT_SEED=1.")
    return int(raw)


def settings(task: str) -> dict:
    """The sizes (examples, steps, batch size, ...) for ``task`` in the active profile. A task's
    ``ci`` entry, if it has one, replaces those sizes when ``$CI`` is set (CI runs every lesson
    and has a time budget of its own)."""
    table = PROFILES[profile()]
    if task not in table:
        raise KeyError(f"No profile settings for {task!r}; known: {sorted(table)}")
    values = dict(table[task])
    ci = values.pop("ci", None)
    if ci and os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        values.update(ci)
    return values


# --- hardware rules -------------------------------------------------------------------

def device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``. (Apple's MPS is left out:
    several training kernels the course uses are missing or slow there.)"""
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_flags() -> set[str]:
    """The instruction-set flags this CPU reports in ``/proc/cpuinfo`` (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM
            return set(value.split())
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 in hardware: AVX512-BF16 or AMX on x86, the BF16
    extension on ARM. Without it PyTorch emulates bf16 and a training step gets slower."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_capability(flags: set[str] | None = None) -> str:
    """A short name for what the CPU's vector units can do, e.g. ``"AVX-512 + native bf16"``."""
    flags = cpu_flags() if flags is None else flags
    vector = ("AMX" if "amx_bf16" in flags else "AVX-512" if "avx512f" in flags
              else "AVX2" if "avx2" in flags else "NEON" if "asimd" in flags else "baseline")
    return vector + (" + native bf16" if native_bf16(flags) else ", no native bf16")


def weights_dtype(dev: str | None = None) -> torch.dtype:
    """The dtype a model's weights are loaded in: fp32 on CPU (mixed precision, where it is
    used, is autocast over fp32 weights), bf16 on GPUs that support it, fp16 on older GPUs."""
    dev = dev or device()
    if dev == "cpu":
        return torch.float32
    return torch.bfloat16 if gpu_has_native_bf16() else torch.float16


def gpu_has_native_bf16() -> bool:
    """Whether the GPU computes bf16 in hardware: compute capability 8.0 and up (Ampere: A100,
    RTX 30xx, L4, H100). ``torch.cuda.is_bf16_supported()`` also says yes on a T4 (7.5), where
    bf16 is emulated and slow; a T4 trains in fp16."""
    major, _ = torch.cuda.get_device_capability()
    return major >= 8


def train_dtype(dev: str | None = None) -> torch.dtype:
    """The dtype training computes in:

    - CPU: fp32, whatever the CPU. Where the CPU has native bf16 (AVX512-BF16, AMX; see
      :func:`native_bf16`), bf16 trains as well as fp32 but not fast enough to be worth numbers
      that differ by CPU kind: on lesson 01's tone run, 5 paired seeds on an AMX
      CPU (``bench/bf16_vs_fp32.py``, 138 test messages each), bf16 autocast gave -0.4 points
      (95% t-interval over seeds [-5.1, +4.2]) at 1.00x the speed, and the frozen decoder
      stored in bf16 (:func:`labkit.models.store_decoder_in_bf16`) -1.7 points [-6.7, +3.3] at
      1.08x; the rule was 1.3x. bf16 halves the matrix multiplies, but autocast's casts of
      activations and LoRA weights take that back (torch.profiler: docs/benchmarks.md). bf16 is
      a choice (``TrainConfig(dtype="bfloat16")``, ``--torch_dtype bfloat16``), not the
      default. Without native bf16 it is emulated and a step was ~15x slower;
    - GPU: bf16 on Ampere and newer, fp16 on older GPUs (T4)."""
    dev = dev or device()
    if dev == "cpu":
        return torch.float32
    return weights_dtype(dev)


def use_gradient_checkpointing(dev: str | None = None) -> bool:
    """Gradient checkpointing trades compute for memory. Off on CPU (memory is plentiful,
    compute is not); on for GPUs, where memory is what runs out first."""
    return (dev or device()) != "cpu"


def cpu_cores() -> int:
    """The CPU cores this process may use (what ONNX Runtime and llama.cpp are given)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads() -> int:
    """Threads PyTorch uses for CPU math."""
    return torch.get_num_threads()


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 1.0,
                repeats: int = 5) -> float:
    """This CPU's matrix-multiply speed in GFLOP/s for ``dtype``, on PyTorch's current threads.

    Multiplies two ``n`` x ``n`` matrices (1024: big enough to keep the vector units busy, small
    enough to sit in the caches), warmed up, and keeps the best of ``repeats`` timings, about
    ``seconds`` in all. Where one product would eat the budget (bf16 on a CPU without native
    bf16 is ~100x slower than fp32), it measures at a smaller size (down to n/8) instead, so a
    call never takes much more than ``seconds``. ``labkit doctor`` compares the fp32 peak with the
    machine that measured the lesson times (:func:`labkit.course.lesson_times.predict_times`)."""
    import time

    def product_seconds(a, b, count=1):
        start = time.perf_counter()
        for _ in range(count):
            a @ b
        return (time.perf_counter() - start) / count

    def pair(size):
        return torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)

    deadline = time.perf_counter() + seconds
    # probe at n/8 to pick a size whose product fits a repeat's share of the budget
    size = max(n // 8, 16)
    a, b = pair(size)
    product_seconds(a, b)                                    # warm-up: packing buffers, thread start-up
    probe = product_seconds(a, b)
    while size * 2 <= n and probe * 8 * (repeats + 2) <= seconds:
        size, probe = size * 2, probe * 8
    if size != a.shape[0]:
        a, b = pair(size)
        product_seconds(a, b)                                # warm-up at the chosen size
    best = product_seconds(a, b)
    calls = max(1, int(seconds / (repeats + 1) / max(best, 1e-9)))
    for _ in range(repeats):
        if time.perf_counter() >= deadline:
            break
        best = min(best, product_seconds(a, b, calls))
    return 2 * size**3 / best / 1e9


def memory_gb() -> tuple[float, float]:
    """(total, available) system memory in GB."""
    import psutil

    vm = psutil.virtual_memory()
    return vm.total / 1e9, vm.available / 1e9


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def env_report() -> dict:
    """A dict describing this machine and the library versions the course depends on."""
    total, available = memory_gb()
    dev = device()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        **{pkg: _version(pkg) for pkg in
           ("torch", "transformers", "peft", "trl", "datasets", "bitsandbytes", "onnxruntime-genai")},
        "device": dev,
        "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else "none",
        "cpu": cpu_capability(),
        "cpu_threads": cpu_threads(),
        "memory_total_gb": round(total, 1),
        "memory_available_gb": round(available, 1),
        "train_dtype": str(train_dtype(dev)).replace("torch.", ""),
        "gradient_checkpointing": use_gradient_checkpointing(dev),
        "profile": profile(),
        "seed": seed(),
    }
    return report


# --- processes: one, or several under accelerate/torchrun ------------------------------------

def world_size() -> int:
    """How many training processes run together (``accelerate launch`` / ``torchrun`` set
    ``WORLD_SIZE``); 1 in a notebook or a plain ``python`` run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the process that prints and writes files: rank 0, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0
