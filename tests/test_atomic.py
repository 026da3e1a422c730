"""labkit.cache: a folder appears complete or not at all, old folders survive failed builds,
and two processes building the same folder take turns instead of deleting each other's work."""

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from labkit import cache


def entries(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.endswith(".lock"))


def fake_conversion(target, name, n_files=5, pause=0.05):
    """A slow 'conversion': files written one by one, the marker last."""
    with cache.atomic_dir(target) as tmp:
        for i in range(n_files):
            (tmp / f"part-{i}.bin").write_text(f"{name} {i}")
            time.sleep(pause)
        (tmp / "done.json").write_text(name)


def test_a_build_appears_complete_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "model"
    fake_conversion(target, "a", pause=0)
    assert entries(target) == ["done.json"] + [f"part-{i}.bin" for i in range(5)]
    assert entries(tmp_path) == ["model"]


def test_a_failed_build_keeps_the_old_folder_and_cleans_up(tmp_path):
    target = tmp_path / "model"
    fake_conversion(target, "old", pause=0)
    with pytest.raises(RuntimeError, match="disk full"):
        with cache.atomic_dir(target) as tmp:
            (tmp / "part-0.bin").write_text("new")
            raise RuntimeError("disk full")
    assert (target / "done.json").read_text() == "old"
    assert entries(tmp_path) == ["model"]
    with pytest.raises(KeyboardInterrupt):  # the learner pressed stop
        with cache.atomic_dir(target) as tmp:
            raise KeyboardInterrupt
    assert (target / "done.json").read_text() == "old" and entries(tmp_path) == ["model"]


def test_the_old_folder_is_deleted_only_after_the_new_one_is_in_place(tmp_path, monkeypatch):
    target = tmp_path / "model"
    fake_conversion(target, "old", pause=0)
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".model.partial-"):
            assert any(p.name.startswith(".model.old-") for p in tmp_path.iterdir())  # old kept aside
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        fake_conversion(target, "new", pause=0)
    assert (target / "done.json").read_text() == "old"  # put back
    assert entries(tmp_path) == ["model"]


def test_leftovers_of_a_killed_build_are_removed_by_the_next(tmp_path):
    target = tmp_path / "model"
    (tmp_path / ".model.partial-dead1").mkdir()  # what a killed process leaves behind
    (tmp_path / ".model.partial-dead1" / "part-0.bin").write_text("x")
    fake_conversion(target, "a", pause=0)
    assert entries(tmp_path) == ["model"]


def _convert_in_a_process(target, name):
    fake_conversion(Path(target), name)


def test_two_processes_building_the_same_folder_take_turns(tmp_path):
    target = tmp_path / "model"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_convert_in_a_process, args=(str(target), name)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    winner = (target / "done.json").read_text()
    # the folder is one process's complete build, never a mix or a half
    assert [(target / f"part-{i}.bin").read_text() for i in range(5)] == [f"{winner} {i}" for i in range(5)]
    assert entries(tmp_path) == ["model"]


def test_the_lock_is_reentrant_and_excludes_other_threads(tmp_path):
    import threading

    target, order = tmp_path / "model", []

    trying = threading.Event()

    def other_thread():
        trying.set()
        with cache.locked(target):
            order.append("other")

    with cache.locked(target):
        with cache.locked(target):  # the same thread again: no deadlock
            other = threading.Thread(target=other_thread)
            other.start()
            assert trying.wait(5)
            other.join(0.2)
            assert other.is_alive() and order == []   # it waits for the lock, however long it is given
            order.append("first")
    other.join(5)
    assert order == ["first", "other"]


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "pointer.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with cache.atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and entries(tmp_path) == ["pointer.json"]
    with cache.atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and entries(tmp_path) == ["pointer.json"]
