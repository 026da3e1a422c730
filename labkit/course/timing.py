"""How fast a model answers: time to first token and decode speed, measured one way for PyTorch
and for onnxruntime-genai (lessons 06 and 07; ``bench/inference.py`` measures the same way, each
backend in its own process).

What is measured, on one prompt of fixed token ids (the same ids for every backend), with greedy
decoding of exactly ``new_tokens`` tokens (end-of-text is ignored, so every run does the same work):

* **time to first token (TTFT)**: processing the whole prompt and picking the first new token;
  **prompt tokens/s** = prompt length / TTFT;
* **decode tokens/s**: the ``new_tokens - 1`` tokens after the first, one at a time, each
  reading the KV cache, divided by the time they took.

Each measurement runs the generation ``runs + 1`` times: the first run is a warm-up (it allocates
buffers, picks kernels) and is dropped; TTFT and decode time are the **medians** of the other
``runs`` (2 by default: small, so that a lesson stays quick; more runs, steadier numbers).

Training steps are timed the same way: :class:`StepTimer` drops the first step (warm-up) and
reports the seconds and the trained tokens of the steps after it.
"""

from __future__ import annotations

import statistics
import time

from transformers import TrainerCallback

FILLER = "The quick brown fox jumps over the lazy dog while the farmer counts his sheep. "


def filler_ids(tokenizer, n: int = 128) -> list[int]:
    """``n`` token ids of plain English text (:data:`FILLER` repeated), for a prompt of known length."""
    ids = tokenizer(FILLER, add_special_tokens=False)["input_ids"]
    return (ids * (n // len(ids) + 1))[:n]


def summarize(times, prompt_tokens: int, new_tokens: int) -> dict:
    """The table row for ``times``, one ``(ttft_seconds, decode_seconds)`` per run with the
    warm-up first: the warm-up is dropped, the rest are reduced to their medians.

    Returns ``{"TTFT (ms)", "prompt (tok/s)", "decode (tok/s)"}``."""
    measured = list(times)[1:]
    if not measured:
        raise ValueError("need the warm-up run and at least one measured run")
    ttft = statistics.median(t for t, _ in measured)
    decode = statistics.median(d for _, d in measured)
    return {"TTFT (ms)": 1e3 * ttft, "prompt (tok/s)": prompt_tokens / ttft,
            "decode (tok/s)": (new_tokens - 1) / decode if new_tokens > 1 else float("nan")}


def torch_speed(model, prompt_ids, new_tokens: int, runs: int = 2) -> dict:
    """TTFT and decode speed of a PyTorch causal LM with ``model.generate`` (see the module
    docstring). A run generates 1 token (its time is the TTFT), then ``new_tokens`` tokens from
    the same prompt; the decode time is the difference."""
    import torch

    x = torch.tensor([list(prompt_ids)], device=model.device)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id

    def seconds_to_generate(k):
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=k, min_new_tokens=k,
                           do_sample=False, pad_token_id=pad)
        return time.perf_counter() - start

    times = []
    for _ in range(runs + 1):
        ttft = seconds_to_generate(1)
        times.append((ttft, seconds_to_generate(new_tokens) - ttft))
    return summarize(times, len(prompt_ids), new_tokens)


def genai_speed(model, prompt_ids, new_tokens: int, runs: int = 2, adapter: str | None = None) -> dict:
    """TTFT and decode speed of an onnxruntime-genai model (a :class:`labkit.onnx.serve.GenAIModel`,
    or a :class:`labkit.onnx.serve.MultiAdapterModel` with ``adapter``: one of its loaded adapters,
    active for the request; None: the base alone). See the module docstring.

    The clock starts after the request is set up (the adapter included): TTFT is
    ``append_tokens(prompt)`` plus the first ``generate_next_token()``, decode is every later
    ``generate_next_token()``."""
    from labkit.onnx.serve import import_og

    og = import_og()
    prompt_ids = [int(t) for t in prompt_ids]
    total = len(prompt_ids) + new_tokens
    capacity = max(total, getattr(model, "min_cache", 0))   # a local-attention window needs room (runtime.min_cache_length)
    times = []
    for _ in range(runs + 1):
        params = og.GeneratorParams(model.model)
        params.set_search_options(max_length=capacity, min_length=total, do_sample=False)
        generator = og.Generator(model.model, params)
        if adapter is not None:
            generator.set_active_adapter(model.og_adapters, adapter)
        start = time.perf_counter()
        generator.append_tokens(prompt_ids)   # the prompt, in one pass
        generator.generate_next_token()       # the first new token
        first = time.perf_counter()
        for _ in range(new_tokens - 1):        # exactly new_tokens in all (min_length: end-of-text cannot stop it)
            generator.generate_next_token()
        times.append((first - start, time.perf_counter() - first))
    return summarize(times, len(prompt_ids), new_tokens)


def compare_times(candidates: dict, repeats: int = 5, warmup: int = 1):
    """Time several ways of doing the same work fairly: ``candidates`` maps a name to a
    function of no arguments. Rounds are interleaved (A, B, C, A, B, C, ...) so that a busy
    moment on the machine hits every candidate alike; ``warmup`` rounds are dropped. Returns a
    DataFrame with the median, min and max seconds per candidate over ``repeats`` rounds and
    each median relative to the first candidate's: a ratio to quote only when the ranges do
    not overlap."""
    import pandas as pd

    seconds = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            if round_ >= warmup:
                seconds[name].append(time.perf_counter() - start)
    first = statistics.median(next(iter(seconds.values())))
    return pd.DataFrame({name: {"median s": statistics.median(v), "min s": min(v), "max s": max(v),
                                "median / first": statistics.median(v) / first}
                         for name, v in seconds.items()}).T


class StepTimer(TrainerCallback):
    """A trainer callback that times the training steps after the first, which also pays for
    warm-up (allocations, kernel choices): ``seconds``, ``steps`` and trained (non-padding)
    ``tokens`` after it, ``seconds_per_step`` and ``tokens_per_second``."""

    def __init__(self):
        self.t0 = self.tokens0 = None
        self.seconds, self.steps, self.tokens = 0.0, 0, 0

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self.t0 is None:
            self.t0, self.tokens0 = now, state.num_input_tokens_seen
        else:
            self.steps += 1
            self.seconds, self.tokens = now - self.t0, state.num_input_tokens_seen - self.tokens0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else float("nan")

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")
