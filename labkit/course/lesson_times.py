"""How long each lesson takes, per kind of machine: ``labkit/lesson_times.json`` as ``make course
--save-times`` measured it, shown at the top of every lesson (:func:`lesson_time`) and scaled to
another machine by its matmul peak (:func:`predict_times`, what ``labkit doctor`` prints)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


TIMES_FILE = Path(__file__).parents[1] / "lesson_times.json"  # measured lesson times, per machine kind


def machine_kind() -> str:
    """The machine a lesson time was measured on, in words: "2 CPU cores (AVX2, no native bf16),
    quick profile" or "Tesla T4, full profile"."""
    import torch

    from labkit import env

    where = (torch.cuda.get_device_name(0) if env.device() == "cuda"
             else f"{env.cpu_cores()} CPU cores ({env.cpu_capability()})")
    return f"{where}, {env.profile()} profile"


def machine_peaks() -> dict:
    """This machine's matmul peaks in GFLOP/s, as stored with its lesson times:
    ``{"fp32_gflops": 62.0, "bf16_gflops": 0.9}`` on a CPU (about two seconds), ``{}`` on a CUDA
    GPU (GPU lesson times are used as measured, never scaled from a CPU peak)."""
    import torch

    from labkit import env

    if env.device() == "cuda":
        return {}
    return {"fp32_gflops": round(env.matmul_peak(torch.float32), 1),
            "bf16_gflops": round(env.matmul_peak(torch.bfloat16), 1)}


def read_times(path: Path = TIMES_FILE) -> dict:
    """``lesson_times.json``'s content (``{lesson: {machine kind: entry}}``), or ``{}`` when there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def save_times(rows: list[dict], path: Path = TIMES_FILE, peaks: dict | None = None) -> dict:
    """Record each passed lesson's wall time for this machine kind in ``path`` (what
    :func:`lesson_time` shows at the top of each lesson), with the machine's matmul peaks
    (``peaks``, measured by :func:`machine_peaks` when not given) so that :func:`predict_times`
    can scale the minutes to another machine. ``make course`` calls it with ``--save-times``;
    one entry per machine kind, the newest measurement replacing the older."""
    times = read_times(path)
    kind, day = machine_kind(), time.strftime("%Y-%m-%d")
    peaks = machine_peaks() if peaks is None else peaks
    for r in rows:
        if r["passed"]:
            lesson = r["notebook"][:2]
            times[lesson] = {**times.get(lesson, {}),
                             kind: {"minutes": round(r["seconds"] / 60, 1), "date": day, **peaks}}
    path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    return times


def kind_machine(kind: str) -> str:
    """The machine named in a machine kind: ``"2 CPU cores (AVX2, ...), quick profile"`` -> ``"2 CPU cores (AVX2, ...)"``."""
    return kind.rsplit(", ", 1)[0]


def kind_profile(kind: str) -> str:
    """The profile named at the end of a machine kind: ``"..., quick profile"`` -> ``"quick"``."""
    return kind.rsplit(", ", 1)[-1].removesuffix(" profile")


def is_gpu_kind(kind: str) -> bool:
    """Whether a machine kind (see :func:`machine_kind`) is a GPU: a CPU kind names its "CPU cores"."""
    return "CPU cores" not in kind


def reference_entry(entries: dict, kind_here: str, peak_here: float | None = None) -> tuple[str, dict] | None:
    """The recorded measurement of one lesson to predict this machine from, as ``(kind, entry)``;
    ``None`` when no entry fits. ``entries`` maps machine kinds to ``{"minutes", "date",
    "fp32_gflops"?}`` (one lesson of ``lesson_times.json``).

    Only entries of the same profile and the same side (CPU or GPU) as ``kind_here`` count. Among
    them: the same machine kind first; then one with a recorded fp32 peak (it can be scaled),
    the nearest in peak to ``peak_here`` (by ratio); then, without peaks, the same CPU
    capability, then the same number of cores."""
    profile, gpu = kind_profile(kind_here), is_gpu_kind(kind_here)
    here_where = kind_machine(kind_here)

    def nearness(item):
        kind, entry = item
        peak = entry.get("fp32_gflops")
        scalable = bool(peak) and bool(peak_here)
        where = kind_machine(kind)
        distance = abs(math.log(peak / peak_here)) if scalable else 0.0
        same_capability = where.partition("(")[2] == here_where.partition("(")[2]
        same_cores = where.split(" ", 1)[0] == here_where.split(" ", 1)[0]
        return (kind != kind_here, not scalable, distance, not same_capability, not same_cores, kind)

    fits = [(k, e) for k, e in entries.items() if kind_profile(k) == profile and is_gpu_kind(k) == gpu]
    return min(fits, key=nearness) if fits else None


def predict_times(peak_here: float | None, times: dict | Path | None = None, *,
                  kind_here: str | None = None, slot: float | None = None) -> list[dict]:
    """Each lesson's expected minutes on this machine, from the minutes ``make course`` recorded.

    The model is simple and says so: a lesson's time scales with the fp32 matmul speed,
    ``predicted = recorded minutes x (recorded machine's fp32 peak / peak_here)`` (the course
    trains in fp32 on a CPU, and training dominates the lessons). The recorded entry is chosen by
    :func:`reference_entry`. Where that entry has no peak (or ``peak_here`` is ``None``, as on a
    GPU), its minutes are given as measured, with ``scaled`` false and a note that says so.

    ``times`` is ``lesson_times.json``'s content or path (default: the package's file); ``kind_here``
    defaults to :func:`machine_kind`. Returns one dict per lesson: ``lesson``, ``reference``
    (machine kind or ``None``), ``recorded``, ``reference_gflops``, ``minutes`` (the expectation
    here, ``None`` when nothing fits), ``scaled``, ``note`` and ``over_slot`` (``minutes > slot``)."""
    times = TIMES_FILE if times is None else times
    if isinstance(times, (str, Path)):
        times = read_times(times)
    kind_here = machine_kind() if kind_here is None else kind_here
    rows = []
    for lesson in sorted(times):
        found = reference_entry(times[lesson], kind_here, peak_here)
        row = {"lesson": lesson, "reference": None, "recorded": None, "reference_gflops": None,
               "minutes": None, "scaled": False, "note": "", "over_slot": False}
        if found is None:
            row["note"] = (f"not measured on a GPU ({kind_profile(kind_here)} profile): the CPU times do not apply"
                           if is_gpu_kind(kind_here) else
                           f"not measured on a CPU in the {kind_profile(kind_here)} profile")
        else:
            kind, entry = found
            peak = entry.get("fp32_gflops")
            row.update(reference=kind, recorded=entry["minutes"], reference_gflops=peak)
            if peak and peak_here:
                row.update(minutes=round(entry["minutes"] * peak / peak_here, 1), scaled=True,
                           note=f"scaled by the fp32 peaks {peak:g} / {peak_here:.0f} GFLOP/s")
            else:
                row["minutes"] = entry["minutes"]
                row["note"] = ("as measured on that GPU (GPU times are not scaled)" if is_gpu_kind(kind)
                               else "as measured, not scaled: no matmul peak recorded for that machine"
                               if not peak else "as measured, not scaled: no peak measured here")
        row["over_slot"] = slot is not None and row["minutes"] is not None and row["minutes"] > slot
        rows.append(row)
    return rows


def lesson_time(lesson: str, path: Path = TIMES_FILE):
    """How long lesson ``lesson`` ("01") takes, as ``make course`` measured it on each kind of machine
    (shown at the top of every lesson)."""
    from IPython.display import Markdown

    measured = read_times(path).get(lesson, {})
    if not measured:
        return Markdown("**Time:** not measured yet (`make course` records it).")
    parts = [f"about **{m['minutes']:g} min** on {kind} ({m['date']})" for kind, m in measured.items()]
    gpu = "" if any("CPU" not in kind for kind in measured) else " Not yet measured on a GPU."
    return Markdown("**Time:** " + "; ".join(parts) + f", measured by `make course`.{gpu}")
