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
    release_freed_memory()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the measured code failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.rsplit("RSS_MB", 1)[1])


def serving_rss_mb(model_dirs, prompt_ids) -> float:
    """Resident memory (MB) of a server that loads the onnxruntime-genai models in ``model_dirs``
    and answers one request per task: measured in a fresh process (:func:`fresh_process_rss_mb`).

    A folder with ``.onnx_adapter`` files (a multi-adapter base, lesson 07) is loaded once as a
    :class:`labkit.adapters.MultiAdapterModel` with every adapter in it, and answers one request
    with each adapter; any other folder (e.g. a merged export) is loaded as a
    :class:`labkit.export.GenAIModel` and answers one request. A request is one forward pass
    over ``prompt_ids`` (the logits at the last position): it makes onnxruntime allocate what
    serving needs, beyond the weights."""
    folders = [str(d) for d in model_dirs]
    ids = [int(t) for t in prompt_ids]
    code = (
        "from labkit.adapters import MultiAdapterModel, find_adapter_files\n"
        "from labkit.export import GenAIModel\n"
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

def training_memory_gb(model_config, cfg, seq_len: int | None = None, dev: str | None = None) -> dict:
    """An estimate, in GB, of the memory a training run needs on ``dev``, term by term.

    ``model_config`` is the model's config (``model.config``; nothing is loaded), ``cfg`` the
    :class:`labkit.train.TrainConfig`; sequences are ``seq_len`` tokens (default
    ``cfg.max_length``, the longest allowed). The terms, so that you can see what to change:

    - ``weights``: every parameter in the weights dtype (NF4 for QLoRA: ~0.5 byte + scales);
    - ``trainable``: LoRA's parameters (counted on every linear layer: an upper bound when
      ``target_modules`` names fewer), or all for ``method="full"``, in fp32, their gradients
      and the optimizer state (AdamW: 8 bytes per parameter; 8-bit AdamW: 2);
    - ``activations``: what the backward pass needs, per layer and token ~(8·hidden +
      4·intermediate) values in the training dtype; with gradient checkpointing only each
      layer's input is kept, plus one layer's activations while it is recomputed;
    - ``logits``: the output layer's fp32 logits and their gradient at every position (an
      upper bound: labkit and TRL compute them on answer tokens only).

    Frameworks add workspace and fragmentation on top: keep the total well under the device."""
    from . import env

    dev = dev or env.device()
    seq_len = seq_len or cfg.max_length
    h, n_layers = model_config.hidden_size, model_config.num_hidden_layers
    inter = getattr(model_config, "intermediate_size", 4 * h)
    vocab = model_config.vocab_size
    kv = getattr(model_config, "num_key_value_heads", model_config.num_attention_heads)
    head_dim = getattr(model_config, "head_dim", None) or h // model_config.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter  # q, o, k, v, gate, up, down
    embeddings = vocab * h * (1 if getattr(model_config, "tie_word_embeddings", False) else 2)
    n_params = n_layers * per_layer + embeddings

    weight_bytes = 0.5 + 0.5 / 64 * 4 if cfg.method == "qlora" else env.weights_dtype(dev).itemsize
    if cfg.method == "full":
        n_trainable = n_params
    else:  # LoRA on every linear layer of the blocks: r x (d_in + d_out) each
        sizes = [(h, h), (h, h), (h, kv * head_dim), (h, kv * head_dim), (h, inter), (h, inter), (inter, h)]
        n_trainable = n_layers * sum(cfg.r * (a + b) for a, b in sizes)
    optimizer_bytes = 2 if "8bit" in cfg.optimizer(dev) else 8
    act_bytes = cfg.train_dtype(dev).itemsize
    tokens = cfg.batch_size * seq_len
    full_layer = (8 * h + 4 * inter) * act_bytes * tokens
    if cfg.uses_gradient_checkpointing(dev):
        activations = n_layers * h * act_bytes * tokens + full_layer
    else:
        activations = n_layers * full_layer
    terms = {
        "weights": n_params * weight_bytes,
        "trainable": n_trainable * (4 + 4 + optimizer_bytes),
        "activations": activations,
        "logits": 2 * tokens * vocab * 4,
    }
    gb = {k: v / 1e9 for k, v in terms.items()}
    gb["total"] = sum(gb.values())
    return gb
