"""Watching memory while something runs (lesson 03 compares QLoRA's and LoRA's)."""

from __future__ import annotations

import ctypes
import gc
import threading
import time


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

        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (macOS, Windows): the growth is then a lower bound
            pass
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, self._process.memory_info().rss)
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
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the measured code failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.rsplit("RSS_MB", 1)[1])
