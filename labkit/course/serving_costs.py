"""What serving N tasks costs, measured (lesson 07): one multi-adapter base with an ``.onnx_adapter``
file per task, against one merged export per task (lesson 06's way).

- :func:`disk_mb`: the weights each way ships, and what one more task adds;
- :func:`server_memory_mb`: the resident memory of a server process that loads the models and
  answers one request per task, each setup in a fresh process (inside a notebook, memory freed by
  earlier cells is reused without growing the RSS, which would hide most of what loading takes);
- :func:`switch_costs`: what changing the task costs: loading an adapter file, selecting one per
  request, or loading another merged export;
- :func:`serving_modes`: adapter per request against merge on switch, side by side.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from labkit.course.memory import fresh_process_rss_mb, serving_rss_mb
from labkit.onnx.adapter_files import find_adapter_files
from labkit.onnx.build import folder_size_mb
from labkit.onnx.serve import GenAIModel, MultiAdapterModel, adapter_switch_us

MULTI = "1 base + N adapters"
MERGED = "N merged exports"
ONE_MERGED = "1 merged export at a time"
NOTHING = "nothing loaded (Python + onnxruntime-genai)"
ADAPTER_PER_REQUEST = "adapter per request (1 base + N adapters)"
MERGE_ON_SWITCH = "merge on switch (load the task's merged export)"


def disk_mb(multi_dir, merged_dirs) -> dict:
    """Disk (MB) of the weights each way ships: the multi-adapter base's weights (``model.onnx.data``)
    plus its adapter files, against the weights of every merged export in ``merged_dirs``."""
    adapters = find_adapter_files(multi_dir).values()
    return {MULTI: folder_size_mb(Path(multi_dir) / "model.onnx.data") + sum(folder_size_mb(f) for f in adapters),
            MERGED: sum(folder_size_mb(Path(d) / "model.onnx.data") for d in merged_dirs)}


def added_per_task_mb(multi_dir, merged_dirs) -> dict:
    """What one more task adds on disk (MB), the mean over the tasks there: an adapter file next to the
    shared base, or a whole merged export."""
    return {"adapter file": statistics.mean(folder_size_mb(f) for f in find_adapter_files(multi_dir).values()),
            "merged export": statistics.mean(folder_size_mb(Path(d) / "model.onnx.data") for d in merged_dirs)}


def server_memory_mb(multi_dir, merged_dirs, prompt_ids) -> dict:
    """Resident memory (MB) of a fresh server process (:func:`labkit.course.memory.serving_rss_mb`) for
    each setup: nothing loaded; the multi-adapter base, one request per adapter; every merged export,
    one request each; and the first merged export alone (merge on switch holds one at a time)."""
    merged_dirs = list(merged_dirs)
    return {NOTHING: fresh_process_rss_mb("import onnxruntime_genai, labkit.onnx.build"),
            MULTI: serving_rss_mb([multi_dir], prompt_ids),
            MERGED: serving_rss_mb(merged_dirs, prompt_ids),
            ONE_MERGED: serving_rss_mb(merged_dirs[:1], prompt_ids)}


def switch_costs(multi_dir, merged_dirs: dict, prompt_ids, repeats: int = 200) -> dict:
    """What changing the task costs, each followed by its first request (one forward pass over
    ``prompt_ids``):

    - ``"adapter file load (ms)"``: loading each task's ``.onnx_adapter`` into a loaded base;
    - ``"set_active_adapter (µs)"``: the median time to select an adapter for a fresh request
      (:func:`labkit.onnx.serve.adapter_switch_us`, ``repeats`` requests alternating the tasks);
    - ``"merged export load (ms)"``: loading each task's merged export (``merged_dirs``:
      ``{task: folder}``), what a switch costs when merging on switch."""
    model = MultiAdapterModel(multi_dir, adapters={})
    files = find_adapter_files(multi_dir)
    adapter_ms, merged_ms = {}, {}
    for task, file in files.items():
        start = time.perf_counter()
        model.load_adapter(task, file)
        model.logits(prompt_ids, adapter=task)
        adapter_ms[task] = 1e3 * (time.perf_counter() - start)
    switch_us = adapter_switch_us(model, list(files), repeats=repeats)
    for task, folder in merged_dirs.items():
        start = time.perf_counter()
        GenAIModel(folder).logits(prompt_ids)
        merged_ms[task] = 1e3 * (time.perf_counter() - start)
    return {"adapter file load (ms)": adapter_ms, "set_active_adapter (µs)": statistics.median(switch_us),
            "merged export load (ms)": merged_ms}


def serving_modes(switch: dict, request_time_ratio: float, memory: dict, disk: dict):
    """The two ways to serve N tasks side by side, as a pandas DataFrame: what a task switch costs
    (``switch`` from :func:`switch_costs`), a request's time relative to the merged model's
    (``request_time_ratio``, measured by the lesson), the server's memory (``memory`` from
    :func:`server_memory_mb`) and the disk (``disk`` from :func:`disk_mb`)."""
    import pandas as pd

    return pd.DataFrame({
        "switch a task": {ADAPTER_PER_REQUEST: f"{switch['set_active_adapter (µs)']:.0f} µs",
                          MERGE_ON_SWITCH: f"{max(switch['merged export load (ms)'].values()):.0f} ms"},
        "request time vs merged": {ADAPTER_PER_REQUEST: round(request_time_ratio, 2), MERGE_ON_SWITCH: 1.0},
        "server memory (MB)": {ADAPTER_PER_REQUEST: round(memory[MULTI]), MERGE_ON_SWITCH: round(memory[ONE_MERGED])},
        "disk (MB)": {ADAPTER_PER_REQUEST: round(disk[MULTI]), MERGE_ON_SWITCH: round(disk[MERGED])},
    })
