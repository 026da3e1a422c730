"""The instructor's kit: lesson times predicted for this machine (``labkit doctor``) and the
one-page HTML report of ``make course``. Fast: fake times files and synthetic notebooks, no model."""

import base64
import json
import time

import pytest
import torch

from labkit import env
from labkit.course import doctor
from labkit.cli import main as cli
from labkit.course import lesson_times, runner

AVX2 = "2 CPU cores (AVX2, no native bf16), quick profile"
AVX512 = "2 CPU cores (AVX-512 + native bf16), quick profile"
AMX = "4 CPU cores (AMX + native bf16), quick profile"
T4 = "Tesla T4, full profile"
# a 1x1 PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def entry(minutes, peak=None):
    return {"minutes": minutes, "date": "2026-12-01", **({"fp32_gflops": peak} if peak else {})}


# --- the matmul peak ------------------------------------------------------------------------

def test_matmul_peak_is_positive_and_quick():
    start = time.perf_counter()
    fp32 = env.matmul_peak(torch.float32, n=128, seconds=0.05)
    bf16 = env.matmul_peak(torch.bfloat16, n=128, seconds=0.05)
    assert fp32 > 0 and bf16 > 0
    assert time.perf_counter() - start < 5


# --- predicting the lesson times --------------------------------------------------------------

def test_prediction_scales_the_recorded_minutes_by_the_fp32_peaks():
    times = {"01": {AVX2: entry(6.0, peak=60)}, "02": {AVX2: entry(1.0, peak=60)}}
    rows = lesson_times.predict_times(120, times, kind_here=AVX512, slot=15)
    assert [r["lesson"] for r in rows] == ["01", "02"]
    assert rows[0]["scaled"] and rows[0]["minutes"] == pytest.approx(3.0) and rows[0]["recorded"] == 6.0
    assert rows[0]["reference"] == AVX2 and "60 / 120" in rows[0]["note"]
    slow = lesson_times.predict_times(20, times, kind_here=AVX512, slot=15)  # 3x slower machine: 18 min
    assert slow[0]["minutes"] == pytest.approx(18.0) and slow[0]["over_slot"] and not slow[1]["over_slot"]


def test_an_entry_without_peak_is_given_as_measured_and_says_so():
    rows = lesson_times.predict_times(120, {"05": {AVX2: entry(16.3)}}, kind_here=AVX512, slot=15)
    (row,) = rows
    assert not row["scaled"] and row["minutes"] == 16.3 and "not scaled" in row["note"]
    assert row["over_slot"]                                   # flagged on the minutes as measured
    assert lesson_times.predict_times(None, {"05": {AVX2: entry(6, 60)}}, kind_here=AVX512)[0]["scaled"] is False


def test_the_reference_is_the_same_profile_and_the_nearest_machine():
    lesson = {AVX2: entry(6.0, peak=60), AMX: entry(1.0, peak=300), T4: entry(2.0),
              "2 CPU cores (AVX2, no native bf16), full profile": entry(20.0, peak=60)}
    near_avx2 = lesson_times.predict_times(70, {"01": lesson}, kind_here=AVX512)[0]
    assert near_avx2["reference"] == AVX2 and near_avx2["minutes"] == pytest.approx(6.0 * 60 / 70, abs=0.05)
    near_amx = lesson_times.predict_times(250, {"01": lesson}, kind_here=AVX512)[0]
    assert near_amx["reference"] == AMX
    # the same machine kind wins, even without a peak to scale by
    same = lesson_times.predict_times(250, {"01": {**lesson, AVX512: entry(2.5)}}, kind_here=AVX512)[0]
    assert same["reference"] == AVX512 and same["minutes"] == 2.5 and not same["scaled"]
    # no CPU entry in this profile: nothing predicted
    assert lesson_times.predict_times(100, {"01": {T4: entry(2.0)}}, kind_here=AVX512)[0]["minutes"] is None


def test_on_a_gpu_the_cpu_times_do_not_apply():
    cpu_only = lesson_times.predict_times(None, {"01": {AVX2: entry(6.0, peak=60)}}, kind_here="NVIDIA L4, full profile")
    assert cpu_only[0]["minutes"] is None and "CPU times do not apply" in cpu_only[0]["note"]
    with_gpu = lesson_times.predict_times(None, {"01": {AVX2: entry(6.0, 60), T4: entry(2.0)}}, kind_here="NVIDIA L4, full profile")
    assert with_gpu[0]["reference"] == T4 and with_gpu[0]["minutes"] == 2.0 and not with_gpu[0]["scaled"]


def test_doctor_prints_the_prediction_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "empty-home"))
    times = tmp_path / "times.json"
    times.write_text(json.dumps({"00": {AVX2: entry(1.0, peak=60)}, "05": {AVX2: entry(12.0, peak=60)},
                                 "07": {AVX2: entry(4.0)}}))
    monkeypatch.setattr(lesson_times, "TIMES_FILE", times)
    monkeypatch.setattr(lesson_times, "machine_kind", lambda: AVX512)
    monkeypatch.setattr(lesson_times, "machine_peaks", lambda: {"fp32_gflops": 30.0, "bf16_gflops": 0.5})
    monkeypatch.setattr(env, "device", lambda: "cpu")
    code = cli.main(["doctor", "--slot", "20"])
    out = capsys.readouterr().out
    assert code == 1 and "NOT READY" in out                   # the readiness checks still run
    assert "fp32 30 GFLOP/s" in out and "against a 20-minute slot" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert "2.0" in lines["00"] and "⚠" not in lines["00"]
    assert "24.0" in lines["05"] and "⚠ over the 20-min slot" in lines["05"]
    assert "4.0" in lines["07"] and "not scaled" in lines["07"]
    assert "30.0" in lines["all"]                             # 2 + 24 + 4
    assert "1 lesson(s) predicted over the 20-minute slot: 05" in out


# --- the HTML report ------------------------------------------------------------------------

def executed_notebook(path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    plot = nbformat.v4.new_code_cell("plots.loss_curve(history)")
    plot.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]
    text = nbformat.v4.new_code_cell("print('accuracy')")
    text.outputs = [nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.91\n")]
    nb.cells = [plot, text]
    nbformat.write(nb, path)


def test_html_report_shows_each_lesson_its_claims_and_links_its_executed_page(tmp_path):
    executed_notebook(tmp_path / "01_tone.ipynb")
    rows = [
        {"notebook": "01_tone.ipynb", "passed": True, "seconds": 300, "error": None,
         "metrics": {"accuracy": 0.91, "claims": {"LoRA beats <prompt> & few-shot": {
             "measured": 30.1, "bound": ">= 15", "margin": 15.1}}}},
        {"notebook": "02_lora.ipynb", "passed": False, "seconds": 90,
         "error": "\x1b[0;31mAssertionError\x1b[0m: ✗ loss falls: 2.5 <= 2 (margin -0.5)",
         "metrics": {"claims": {"loss falls": {"measured": 2.5, "bound": "<= 2", "margin": -0.5}}}},
    ]
    path = runner.write_html(rows, tmp_path, machine=AVX2)
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "index.html" and page.startswith("<!DOCTYPE html>")
    assert "01_tone.ipynb" in page and "02_lora.ipynb" in page and "1 of 2 lessons passed" in page
    assert "LoRA beats &lt;prompt&gt; &amp; few-shot" in page and "<prompt>" not in page
    assert "accuracy" in page and "0.91" in page and "✓" in page and "✗" in page
    assert "\x1b" not in page and "AssertionError: ✗ loss falls" in page
    assert "<link" not in page and "<script" not in page      # the front page needs no other file
    assert "href='01_tone.html'" in page and "did not run" in page   # lesson 02's notebook never got written
    lesson = (tmp_path / "01_tone.html").read_text(encoding="utf-8")  # nbconvert's page, figures embedded
    assert f"data:image/png;base64,{PNG}" in lesson and "accuracy 0.91" in lesson


def test_a_note_shared_by_every_lesson_is_printed_once(capsys):
    rows = lesson_times.predict_times(50, {"00": {AVX2: entry(1.0)}, "01": {AVX2: entry(5.0)}}, kind_here=AVX2, slot=15)
    doctor.print_prediction(rows, 15, AVX2, 50)
    out = capsys.readouterr().out
    assert out.count("not scaled") == 1 and "every lesson: as measured, not scaled" in out
