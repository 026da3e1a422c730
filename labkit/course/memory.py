"""Watching memory while something runs (lesson 03 compares QLoRA's and LoRA's), and handing
freed memory back before starting other processes."""

from __future__ import annotations

import ctypes
import gc
import threading
import time


def release_freed_memory() -> None:
    """Hand memory this process has freed back to the operating system: Python's garbage, then
    glibc's ``malloc_trim`` (elsewhere, only the garbage). A notebook that has trained keeps
    gigabytes of freed memory for reuse; a process started next to it (lesson 02's torchrun,
    lesson 07's fresh servers) then has to find memory elsewhere. On this course's CI machine a
    training subprocess ran at half speed beside a kernel that held 5 GB, at full speed after this."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows)
        pass


class PeakRSS:
    """Peak growth of this process's resident memory (RSS) while a ``with`` block runs.

    A thread samples the RSS every ``interval`` seconds; ``growth_mb`` is peak minus start.
    On entry, freed memory is handed back to the operating system (glibc's ``malloc_trim``),
    so that memory freed by an earlier run does not hide this run's growth. On a GPU, also
    read ``torch.cuda.max_memory_allocated()``: GPU memory is what runs out there.

    >>> with PeakRSS() as mem:
    ...     result = train.finetune(...)
    >>> mem.growth_mb
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.start = self.peak = 0

    def __enter__(self):
        import psutil

        release_freed_memory()   # without glibc the growth is a lower bound
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def sample(self) -> None:
        """Read the RSS now (the thread reads it every ``interval``; call this to be sure that a moment,
        such as the peak of a short allocation, is measured)."""
        self.peak = max(self.peak, self._process.memory_info().rss)

    def _sample(self):
        while self._running:
            self.sample()
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        """Peak RSS minus RSS at the start, in MB (1e6 bytes)."""
        return (self.peak - self.start) / 1e6


def fresh_process_rss_mb(code: str) -> float:
    """Resident memory (MB) of a new Python process after it ran ``code``: what a server that
    does only that would hold.

    Measured in a separate process because inside a long-running one (a notebook) memory freed
    by earlier cells is reused without growing the RSS, so "RSS after minus RSS before" can
    show a fraction of what loading a model really takes."""
    import subprocess
    import sys

    script = f"{code}\nimport psutil\nprint('RSS_MB', psutil.Process().memory_info().rss / 1e6)"
    release_freed_memory()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the measured code failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.rsplit("RSS_MB", 1)[1])


def serving_rss_mb(model_dirs, prompt_ids) -> float:
    """Resident memory (MB) of a server that loads the onnxruntime-genai models in ``model_dirs``
    and answers one request per task: measured in a fresh process (:func:`fresh_process_rss_mb`).

    A folder with ``.onnx_adapter`` files (a multi-adapter base, lesson 07) is loaded once as a
    :class:`labkit.onnx.serve.MultiAdapterModel` with every adapter in it, and answers one request
    with each adapter; any other folder (e.g. a merged export) is loaded as a
    :class:`labkit.onnx.serve.GenAIModel` and answers one request. A request is one forward pass
    over ``prompt_ids`` (the logits at the last position): it makes onnxruntime allocate what
    serving needs, beyond the weights."""
    folders = [str(d) for d in model_dirs]
    ids = [int(t) for t in prompt_ids]
    code = (
        "from labkit.onnx.adapter_files import find_adapter_files\nfrom labkit.onnx.serve import MultiAdapterModel\n"
        "from labkit.onnx.serve import GenAIModel\n"
        "loaded = []\n"
        f"for folder in {folders!r}:\n"
        "    if find_adapter_files(folder):\n"
        "        model = MultiAdapterModel(folder)\n"
        "        for name in model.adapters:\n"
        f"            model.logits({ids!r}, adapter=name)\n"
        "    else:\n"
        "        model = GenAIModel(folder)\n"
        f"        model.logits({ids!r})\n"
        "    loaded.append(model)\n"
    )
    return fresh_process_rss_mb(code)


# --- before a run: how much memory will training take? ------------------------------------

