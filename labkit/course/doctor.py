"""``labkit doctor``: is this machine ready for the course, and how long will each lesson take
here? Checks the packages, the device, memory, disk and the base model; measures the matmul
peak; predicts each lesson's minutes from the recorded times (:mod:`labkit.course.lesson_times`)."""

from __future__ import annotations

import shutil
import sys
import time

from labkit.course import lesson_times

QUICK_MINUTES_PER_LESSON = 5    # rough minutes per lesson in the quick profile on a 2-core laptop, when none is recorded


def _doctor_peaks(report: dict) -> tuple[dict, str]:
    """This machine's matmul peaks for doctor (about two seconds on a CPU; none on a GPU) and
    the line that reports them."""
    from labkit import env

    if report["device"] == "cuda":
        return {}, "not measured: the lessons run on the GPU here, so the CPU lesson times do not apply"
    peaks = lesson_times.machine_peaks()
    native = "native" if env.native_bf16() else "emulated: no native bf16 on this CPU, a bf16 step is much slower"
    return peaks, (f"fp32 {peaks['fp32_gflops']:.0f} GFLOP/s, bf16 {peaks['bf16_gflops']:.1f} GFLOP/s ({native}); "
                   f"measured on {report['cpu_threads']} threads")


def print_prediction(rows: list[dict], slot: float, kind_here: str, peak_here: float | None) -> None:
    """Print :func:`labkit.course.lesson_times.predict_times`' rows as doctor's table: lesson, recorded minutes
    and on which machine, predicted minutes here, and a flag for a lesson over the ``slot``."""
    from labkit.course.lesson_times import kind_machine, kind_profile

    def where(kind):
        return kind_machine(kind) if kind else "-"

    def minutes(value):
        return f"{value:.1f}" if value is not None else "-"

    peak = f"fp32 matmul peak {peak_here:.0f} GFLOP/s" if peak_here else "no CPU peak measured"
    print(f"Lesson times on this machine ({where(kind_here)}, {kind_profile(kind_here)} profile, {peak}), "
          f"against a {slot:g}-minute slot:")
    width = max([len(where(r["reference"])) for r in rows] + [len("recorded on")])
    print(f"  lesson  {'recorded':>8}  {'recorded on':<{width}}  {'predicted here':>14}  notes")
    notes = {r["note"] for r in rows}
    shared = notes.pop() if len(rows) > 1 and len(notes) == 1 else ""   # one note for all: said once, below
    for r in rows:
        flags = ([f"⚠ over the {slot:g}-min slot"] if r["over_slot"] else []) + \
                ([r["note"]] if r["note"] and not shared else [])
        print(f"  {r['lesson']:<6}  {minutes(r['recorded']):>8}  {where(r['reference']):<{width}}  "
              f"{minutes(r['minutes']):>14}  {'; '.join(flags)}".rstrip())
    known = [r for r in rows if r["minutes"] is not None]
    total = sum(r["minutes"] for r in known)
    missing = f"  ({len(rows) - len(known)} lessons not predicted)" if len(known) < len(rows) else ""
    print(f"  {'all':<6}  {minutes(sum(r['recorded'] for r in known)) if known else '-':>8}  {'':<{width}}  "
          f"{minutes(total) if known else '-':>14}{missing}")
    if shared:
        print(f"  every lesson: {shared}")
    over = [r["lesson"] for r in rows if r["over_slot"]]
    if over:
        print(f"  ⚠ {len(over)} lesson(s) predicted over the {slot:g}-minute slot: {', '.join(over)}. "
              "Plan more time for them, run them on a faster machine, or demo them.")
    if any(r["scaled"] for r in rows):
        print("  predicted = recorded minutes x (recorded machine's fp32 peak / this machine's): the lessons "
              "train in fp32, so a rough guide (other programs running, or a laptop on battery, make it slower).")
    print()


def readiness(report: dict) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The checks of this machine (``report`` is :func:`labkit.env.env_report`): the rows
    ``(status, name, detail)`` doctor prints, and the problems to fix (empty when ready)."""
    from labkit.cache import labkit_home

    problems, rows = [], []

    def check(name, ok, detail, fix=""):
        rows.append((("ok" if ok else "FAIL"), name, detail))
        if not ok:
            problems.append(f"{name}: {fix or detail}")

    check("python", sys.version_info >= (3, 10), report["python"], "use Python 3.10 or newer")
    for pkg in ("torch", "transformers", "peft", "trl", "datasets"):
        check(pkg, report[pkg] != "not installed", report[pkg], f"pip install {pkg} (or `make lab`)")
    check("bitsandbytes (QLoRA)", report["bitsandbytes"] != "not installed", report["bitsandbytes"],
          "pip install bitsandbytes  (only lesson 03 needs it)")
    check("onnxruntime-genai (ONNX)", report["onnxruntime-genai"] != "not installed",
          report["onnxruntime-genai"], "pip install onnxruntime-genai onnx-ir onnxscript (lesson 06)")
    check("device", True, f"{report['device']} ({report['gpu']}), CPU {report['cpu']}, "
          f"{report['cpu_threads']} threads, train dtype {report['train_dtype']}, output layer on answer "
          f"tokens only: {report['device'] == 'cpu'}")
    check("memory", report["memory_available_gb"] >= 4,
          f"{report['memory_available_gb']} GB free of {report['memory_total_gb']} GB",
          "close other programs: the course needs about 4 GB free")
    home = labkit_home()
    home.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(home).free / 1e9
    check("disk", free_gb >= 5, f"{free_gb:.0f} GB free at {home}", "free 5 GB (model, adapters, exports)")
    _check_base_model(check)
    check("profile", True, f"{report['profile']} (set LABKIT_PROFILE=quick|full to choose)")
    return rows, problems


def _check_base_model(check) -> None:
    """The base model's package is installed, and the converted model loads and generates."""
    from labkit import models

    try:
        gguf = models.find_gguf()
        check("base model package", True, f"{gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB)")
    except models.ModelNotFoundError as e:
        check("base model package", False, "missing", str(e))
    converted = models.converted_model_dir()
    if not models.is_complete(converted):
        check("base model converted", False, f"not yet at {converted}", "run `labkit prepare` (about a minute)")
        return
    try:
        start = time.perf_counter()
        model, tok = models.load_base()
        ids = tok("The capital of France is", return_tensors="pt")
        model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
        check("base model loads", True, f"{converted} ({time.perf_counter() - start:.1f} s incl. 3 tokens)")
    except Exception as e:  # report, do not crash: this is a diagnosis tool
        check("base model loads", False, f"{type(e).__name__}: {e}",
              f"delete {converted} and run `labkit prepare` to convert it again")


def doctor(slot: float) -> int:
    """``labkit doctor``: check this machine for the course (:func:`readiness`), print the
    per-lesson time prediction for a ``slot`` of minutes; 0 when ready, 1 with the fixes to make."""
    from labkit import env

    report = env.env_report()
    rows, problems = readiness(report)
    peaks, peak_line = _doctor_peaks(report)
    rows.append(("ok", "matmul peak", peak_line))
    kind_here = lesson_times.machine_kind()
    predicted = lesson_times.predict_times(peaks.get("fp32_gflops"), kind_here=kind_here, slot=slot)
    known = [r["minutes"] for r in predicted if r["minutes"] is not None]
    if known:
        estimate = f"about {sum(known):.0f} minutes for {len(known)} lessons ({report['profile']}; per lesson below)"
    else:
        minutes = 8 * QUICK_MINUTES_PER_LESSON if report["profile"] == "quick" else 8 * 3
        estimate = f"about {minutes} minutes for all lessons ({report['profile']})"
    rows.append(("ok", "estimated course run time", estimate))

    width = max(len(r[1]) for r in rows)
    for status, name, detail in rows:
        print(f"[{status:>4}] {name:<{width}}  {detail}")
    print()
    print_prediction(predicted, slot, kind_here, peaks.get("fp32_gflops"))
    if problems:
        print("NOT READY. Fix these, then run `labkit doctor` again:")
        for p in problems:
            print("  -", p)
        return 1
    print("READY: this machine can run the course.")
    return 0
