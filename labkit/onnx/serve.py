"""Run an exported model: an onnxruntime-genai session on this machine's cores, chat and
stream with it (:class:`GenAIModel`), score the next token, and compare its greedy answers with
PyTorch's (:func:`parity`). :mod:`labkit.onnx.build` builds the folders this module runs."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from labkit.onnx.adapter_files import check_onnx_adapter, find_adapter_files, read_base

INSTALL_HINT = "pip install onnxruntime-genai onnx-ir onnxscript"


def import_og():
    """Import onnxruntime_genai, or explain how to install it."""
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        raise ImportError(f"onnxruntime-genai is needed for ONNX export/inference: {INSTALL_HINT}") from e
    return og


def session_config(path, threads: int | None = None):
    """An ``onnxruntime_genai.Config`` for the model folder ``path`` that computes on
    ``threads`` CPU threads (default: every core this process may use).

    Left alone, onnxruntime chose fewer threads than cores on the course's 2-core machine, and
    a 128-token prompt took 244 ms with the int4 model instead of 153 ms with both cores
    (bench/inference.py). The setting is made at load time, not written into the export's
    genai_config.json, so an export copied to another machine uses that machine's cores."""
    from labkit.env import cpu_cores

    og = import_og()
    config = og.Config(str(path))
    options = {"model": {"decoder": {"session_options": {"intra_op_num_threads": threads or cpu_cores()}}}}
    config.overlay(json.dumps(options))
    return config


def min_cache_length(path) -> int:
    """The smallest KV-cache length (``max_length``) an export runs with: 0, or for a model with
    local-attention layers (Gemma 2's sliding window) its window, which onnxruntime's attention
    kernel needs room for whatever the answer's length (capped at the model's context length)."""
    config = json.loads((Path(path) / "genai_config.json").read_text())["model"]
    window = config["decoder"].get("sliding_window", {}).get("window_size", 0)
    return min(window, config.get("context_length") or window)


class GenAIModel:
    """Chat with, stream from and score with an onnxruntime-genai model folder.

    >>> m = GenAIModel(export_onnx(model_dir))
    >>> m.generate([{"role": "user", "content": "Hi!"}], max_new_tokens=32)
    """

    def __init__(self, path, threads: int | None = None):
        og = import_og()
        self.path = Path(path)
        if not (self.path / "genai_config.json").is_file():
            raise FileNotFoundError(f"No genai_config.json in {self.path}: build the folder with export_onnx() first.")
        self._og = og
        self.model = og.Model(session_config(self.path, threads))  # threads: default every core
        self.tokenizer = og.Tokenizer(self.model)
        self.min_cache = min_cache_length(self.path)

    def __repr__(self):
        return f"GenAIModel({str(self.path)!r})"

    def token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with the onnxruntime-genai tokenizer."""
        return [int(t) for t in self.tokenizer.encode(text)]

    def prompt_text(self, prompt_or_messages, chat=True) -> str:
        """The text fed to the model: the chat template applied to messages, or the raw prompt.

        A string is wrapped as one user message when ``chat`` is True. If the model has
        no chat template, a string is used as is.
        """
        if isinstance(prompt_or_messages, str):
            if not chat:
                return prompt_or_messages
            messages = [{"role": "user", "content": prompt_or_messages}]
        else:
            messages = list(prompt_or_messages)
        try:
            return self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        except RuntimeError as e:  # "Empty chat template." or a template the runtime cannot render
            if isinstance(prompt_or_messages, str) and "Empty chat template" in str(e):
                return prompt_or_messages
            from transformers import AutoTokenizer  # fall back to transformers' jinja renderer

            return AutoTokenizer.from_pretrained(self.path).apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )

    def _generator(self, input_ids, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0, top_k=50,
                   adapter=None):
        params = self._og.GeneratorParams(self.model)
        # the KV cache holds prompt + answer, and at least a local-attention window (min_cache):
        # the loops below stop after max_new_tokens themselves
        search = dict(max_length=max(len(input_ids) + max_new_tokens, self.min_cache), do_sample=do_sample)
        if do_sample:  # each sampled answer draws its own seed from the course's seed (LABKIT_SEED)
            search.update(temperature=temperature, top_p=top_p, top_k=top_k, random_seed=self._next_seed())
        params.set_search_options(**search)
        generator = self._og.Generator(self.model, params)
        self._before_prompt(generator, adapter)
        generator.append_tokens(list(input_ids))
        return generator

    def _next_seed(self) -> int:
        """A fresh sampling seed, drawn from a stream seeded once with :func:`labkit.env.seed`: ten
        samples differ from each other, and the same ten come back on a re-run."""
        if not hasattr(self, "_seeds"):
            import random

            from labkit import env

            self._seeds = random.Random(env.seed())
        return self._seeds.randrange(2**31)

    def _before_prompt(self, generator, adapter) -> None:
        """Set up a request's generator before its prompt is processed: a plain export has no
        adapters (:class:`labkit.onnx.serve.MultiAdapterModel` sets the request's adapter here)."""
        if adapter is not None:
            raise ValueError(f"{self.path} is a plain export with no adapters; adapter={adapter!r} needs a "
                             "multi-adapter base (labkit.onnx.serve.MultiAdapterModel).")

    def stream(self, prompt_or_messages, max_new_tokens=64, do_sample=False, temperature=0.7, top_p=0.9, chat=True,
               adapter=None):
        """Yield the answer piece by piece as it is generated (stops at EOS or max_new_tokens)."""
        ids = self.token_ids(self.prompt_text(prompt_or_messages, chat=chat))
        generator = self._generator(ids, max_new_tokens, do_sample, temperature, top_p, adapter=adapter)
        decoder = self.tokenizer.create_stream()
        for _ in range(max_new_tokens):
            if generator.is_done():   # end of text
                break
            generator.generate_next_token()
            yield decoder.decode(int(generator.get_next_tokens()[0]))

    def generate(
        self, prompt_or_messages, max_new_tokens=64, do_sample=False, temperature=0.7, top_p=0.9, chat=True,
        adapter=None,
    ) -> str:
        """Answer to a prompt string or a list of chat messages (greedy unless ``do_sample``)."""
        return "".join(self.stream(prompt_or_messages, max_new_tokens, do_sample, temperature, top_p, chat,
                                   adapter=adapter))

    def greedy_ids(self, input_ids, max_new_tokens=16, adapter=None) -> list[int]:
        """Greedy continuation of ``input_ids`` as token ids (stops early at EOS)."""
        generator = self._generator(input_ids, max_new_tokens, adapter=adapter)
        new = []
        while len(new) < max_new_tokens and not generator.is_done():
            generator.generate_next_token()
            new.append(int(generator.get_next_tokens()[0]))
        return new

    def logits(self, prompt, all_positions=False, adapter=None):
        """Logits (float32 numpy) for a prompt string (no chat template) or a list of token ids.

        Returns the last position, shape ``[vocab]``, or every position, ``[seq, vocab]``
        (only for an export made with ``prune_lm_head=False``).
        """
        ids = self.token_ids(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        generator = self._generator(ids, 1, adapter=adapter)
        if all_positions:
            every = generator.get_output("logits")[0].copy()  # [1, seq, vocab] after the prompt
            if len(ids) > 1 and every.shape[0] == 1:
                raise ValueError(f"{self.path} computes logits only at the last position (exported with "
                                 "prune_lm_head=True, the default): export with prune_lm_head=False for every position.")
            return every
        return generator.get_logits()[0, -1].copy()  # [1, 1, vocab]


# --------------------------------------------------------------------------- parity


def torch_greedy(model, input_ids, max_new_tokens, eos_ids):
    """Last-position logits of ``input_ids`` (a float32 numpy array on the CPU) and the greedy
    continuation, stopping at EOS: ``model.generate`` with an explicit greedy config (a model's own
    generation config may add a repetition penalty, which the ONNX side does not apply) and its raw
    logits. The inputs go to the model's device."""
    import torch
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    eos = sorted(eos_ids) or None
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                              pad_token_id=eos[0] if eos else 0, output_logits=True, return_dict_in_generate=True)
    ids = torch.tensor([input_ids], device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return out.logits[0][0].float().cpu().numpy(), out.sequences[0, len(input_ids):].tolist()


def greedy_match(reference: list, other: list) -> float:
    """The share of ``reference``'s greedy tokens that ``other`` reproduces *before the first
    difference*: after outputs diverge, each side continues a different text, so later tokens
    that happen to agree say nothing. 1.0 only for identical outputs."""
    same = 0
    for a, b in zip(reference, other):
        if a != b:
            break
        same += 1
    return same / max(len(reference), len(other), 1)


def parity(torch_model, tokenizer, onnx_path, prompts, max_new_tokens=16) -> dict:
    """Compare a PyTorch model (fp32, e.g. a PeftModel) with its ONNX export on the same token ids.

    For each prompt (tokenised with the HF ``tokenizer``, no chat template) it reports the
    max abs difference of the last-position logits and :func:`greedy_match`, the share of
    greedy tokens the two sides agree on before their first difference, over
    ``max_new_tokens`` steps (both decode greedily and stop at EOS). The PyTorch model may sit
    on any device. ``same_tokenizer`` says whether onnxruntime-genai's
    tokenizer gives the same ids as the HF one.

    Returns ``{"prompts": [...per prompt...], "max_abs_diff": ..., "greedy_match": ...,
    "all_greedy_identical": ...}``.
    """
    import numpy as np
    import torch

    if next(torch_model.parameters()).dtype != torch.float32:
        warnings.warn("parity() expects a float32 PyTorch model; differences will include its rounding.")
    onnx = onnx_path if isinstance(onnx_path, GenAIModel) else GenAIModel(onnx_path)
    eos = torch_model.config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    was_training = torch_model.training
    torch_model.eval()
    rows = []
    try:
        with torch.no_grad():
            for prompt in prompts:
                ids = tokenizer(prompt)["input_ids"]
                ref_logits, ref_tokens = torch_greedy(torch_model, ids, max_new_tokens, eos_ids)
                onnx_tokens = onnx.greedy_ids(ids, max_new_tokens)
                rows.append({
                    "prompt": prompt,
                    "n_tokens": len(ids),
                    "max_abs_diff": float(np.abs(ref_logits - onnx.logits(ids)).max()),
                    "greedy_match": greedy_match(ref_tokens, onnx_tokens),
                    "torch_tokens": ref_tokens,
                    "onnx_tokens": onnx_tokens,
                    "same_tokenizer": onnx.token_ids(prompt) == list(ids),
                })
    finally:
        torch_model.train(was_training)
    return {
        "prompts": rows,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "greedy_match": sum(r["greedy_match"] for r in rows) / len(rows),
        "all_greedy_identical": all(r["torch_tokens"] == r["onnx_tokens"] for r in rows),
    }


# --------------------------------------------------------------------------- many adapters on one base


_ACTIVE = object()  # "the adapter set with set_adapter()"


class MultiAdapterModel(GenAIModel):
    """A multi-adapter base with its adapters: chat, stream and score with any of them per request.

    >>> m = MultiAdapterModel(generate_adapter(base, [tone_dir, recipes_dir], out))
    >>> m.adapters                      # loaded from out/*.onnx_adapter, each checked first
    >>> m.generate(prompt, adapter="tone")     # this request only
    >>> m.set_adapter("recipes"); m.generate(prompt)   # the default for later requests
    >>> m.generate(prompt, adapter=None)       # the plain base model

    Every method of :class:`labkit.onnx.serve.GenAIModel` that runs the model (``generate``,
    ``stream``, ``greedy_ids``, ``logits``) takes ``adapter=``. An adapter is applied to a
    request when its generator is created, so requests with different adapters can be
    interleaved (e.g. two streams).
    """

    def __init__(self, path, adapters=None):
        self.base = read_base(path)
        super().__init__(path)
        self.og_adapters = self._og.Adapters(self.model)
        self.adapters: dict[str, Path] = {}
        self.active: str | None = None
        files = find_adapter_files(self.path) if adapters is None else adapters
        for name, file in files.items():
            self.load_adapter(name, file)

    def __repr__(self):
        return f"MultiAdapterModel({str(self.path)!r}, adapters={list(self.adapters)})"

    def load_adapter(self, name: str, file) -> dict:
        """Check ``file`` against this base (:func:`labkit.onnx.adapter_files.check_onnx_adapter`), then load it as ``name``."""
        info = check_onnx_adapter(file, self.base)
        if name in self.adapters:
            self.unload_adapter(name)
        self.og_adapters.load(str(file), name)
        self.adapters[name] = Path(file)
        return info

    def unload_adapter(self, name: str) -> None:
        """Free an adapter's memory; later requests cannot use it."""
        self._known(name)
        self.og_adapters.unload(name)
        del self.adapters[name]
        if self.active == name:
            self.active = None

    def set_adapter(self, name: str | None) -> None:
        """The adapter requests use when they do not pass ``adapter=`` (None: the base model)."""
        self.active = self._known(name)

    def _known(self, name):
        if name is not None and name not in self.adapters:
            raise KeyError(f"No adapter {name!r} loaded; loaded: {list(self.adapters)} (load_adapter() adds one).")
        return name

    def _resolve(self, adapter) -> str | None:
        """The adapter a request asked for: ``adapter=`` if given, else the one set with set_adapter()."""
        return self._known(self.active if adapter is _ACTIVE else adapter)

    def _before_prompt(self, generator, adapter) -> None:
        """The request's adapter, passed down with the request, is set on its own generator
        before the prompt is processed."""
        if adapter is not None:
            generator.set_active_adapter(self.og_adapters, adapter)

    def stream(self, prompt_or_messages, *args, adapter=_ACTIVE, **kwargs):
        """GenAIModel.stream with ``adapter=`` (a loaded adapter's name, or None for the base).
        The adapter is chosen when the call is made, not when the stream is first read."""
        return super().stream(prompt_or_messages, *args, adapter=self._resolve(adapter), **kwargs)

    def generate(self, prompt_or_messages, *args, adapter=_ACTIVE, **kwargs) -> str:
        """GenAIModel.generate with ``adapter=``."""
        return "".join(self.stream(prompt_or_messages, *args, adapter=adapter, **kwargs))

    def greedy_ids(self, input_ids, max_new_tokens=16, adapter=_ACTIVE) -> list[int]:
        """GenAIModel.greedy_ids with ``adapter=``."""
        return super().greedy_ids(input_ids, max_new_tokens, adapter=self._resolve(adapter))

    def logits(self, prompt, all_positions=False, adapter=_ACTIVE):
        """GenAIModel.logits with ``adapter=``."""
        return super().logits(prompt, all_positions, adapter=self._resolve(adapter))

    def classify(self, prompts_ids, labels, label_ids, adapter=_ACTIVE) -> list[str]:
        """Label scoring: for each prompt (a list of token ids), the label whose first token
        (``label_ids``, see ``labkit.evaluate.label_token_ids``) has the highest logit at the
        last position. One forward pass per prompt, no generation."""
        import numpy as np

        return [labels[int(np.argmax(self.logits(ids, adapter=adapter)[label_ids]))] for ids in prompts_ids]


def sample_from_export(model: GenAIModel, tokenizer, prompts, k: int = 4, max_new_tokens: int = 40,
                       temperature: float = 1.0, batch_size: int = 32, seed: int = 0) -> dict:
    """``k`` sampled answers per prompt from an export, batched: what
    :func:`labkit.preferences.sample_completions` does with PyTorch, with the same prompt tokens
    (``tokenizer``'s), temperature, no top-p and no top-k, and the same return value.

    A batch holds prompts of one length only: onnxruntime-genai treats every pad token in the
    input as padding, and SmolLM2 pads with ``<|im_end|>``, which its prompts also contain. So
    the ``k`` copies of a prompt, and prompts of equal length, share a batch, unpadded."""
    from labkit.evaluate import prompt_ids

    by_length: dict[int, list] = {}
    for j, p in enumerate(prompts):
        ids = prompt_ids(tokenizer, p)
        by_length.setdefault(len(ids), []).extend([(j, ids)] * k)
    answers: list[list[str]] = [[] for _ in prompts]
    new_tokens, start, batches = 0, time.perf_counter(), 0
    for width, group in sorted(by_length.items()):
        for i in range(0, len(group), batch_size):
            batch = group[i: i + batch_size]
            outs = _sample_rows(model, [ids for _, ids in batch], max_new_tokens, temperature, len(tokenizer),
                                seed + batches)
            for (j, _), out in zip(batch, outs):
                if tokenizer.eos_token_id in out:
                    out = out[: out.index(tokenizer.eos_token_id) + 1]
                new_tokens += len(out)
                answers[j].append(tokenizer.decode(out, skip_special_tokens=True))
            batches += 1
    return {"completions": answers, "new_tokens": new_tokens, "seconds": time.perf_counter() - start}


def _sample_rows(model: GenAIModel, rows: list[list[int]], max_new_tokens: int, temperature: float, top_k: int,
                 seed: int) -> list[list[int]]:
    """One batch of equal-length prompts sampled together: each row's new token ids (up to
    ``max_new_tokens``, the end-of-sequence token and what follows it included)."""
    import numpy as np

    width = len(rows[0])
    params = model._og.GeneratorParams(model.model)
    params.set_search_options(batch_size=len(rows), max_length=max(width + max_new_tokens, model.min_cache),
                              do_sample=True, temperature=temperature, top_p=1.0, top_k=top_k, random_seed=seed)
    generator = model._og.Generator(model.model, params)
    generator.append_tokens(np.array(rows, dtype=np.int32))
    for _ in range(max_new_tokens):
        if generator.is_done():
            break
        generator.generate_next_token()
    return [[int(t) for t in generator.get_sequence(r)][width: width + max_new_tokens] for r in range(len(rows))]


def adapter_switch_us(model: MultiAdapterModel, names, repeats: int = 200, max_length: int = 64) -> list[float]:
    """What switching adapters costs per request, in microseconds: for each of ``repeats`` fresh
    requests (an onnxruntime-genai generator whose KV cache holds ``max_length`` tokens) the time
    of ``set_active_adapter`` alone, cycling through ``names`` (adapters loaded in ``model``).
    Returns one time per request (read the median: the first ones include a warm-up)."""
    og = model._og
    names = [model._known(name) for name in names]
    times = []
    for i in range(repeats):
        params = og.GeneratorParams(model.model)
        params.set_search_options(max_length=max_length)
        generator = og.Generator(model.model, params)
        start = time.perf_counter()
        generator.set_active_adapter(model.og_adapters, names[i % len(names)])
        times.append(1e6 * (time.perf_counter() - start))
        del generator
    return times


def generate_exactly(model: GenAIModel, prompt_ids, new_tokens: int, adapter: str | None = None) -> list[int]:
    """One greedy request of fixed size: ``prompt_ids`` in one pass, then exactly ``new_tokens``
    new token ids (end-of-text does not stop it), with ``adapter`` active (a loaded adapter of a
    :class:`MultiAdapterModel`; None: no adapter). Every model then does the same work, which a
    timing comparison needs (``labkit.course.timing.compare_times``, lesson 07); an answer cut
    short by end-of-text would make a model look faster."""
    og = model._og
    ids = [int(t) for t in prompt_ids]
    total = len(ids) + new_tokens
    params = og.GeneratorParams(model.model)
    params.set_search_options(max_length=max(total, model.min_cache), min_length=total, do_sample=False)
    generator = og.Generator(model.model, params)
    if isinstance(model, MultiAdapterModel):
        adapter = model._known(adapter)   # a clear KeyError for an adapter that is not loaded
    model._before_prompt(generator, adapter)
    generator.append_tokens(ids)
    new = []
    for _ in range(new_tokens):
        generator.generate_next_token()
        new.append(int(generator.get_next_tokens()[0]))
    return new


def request_without_checks(model: GenAIModel, adapter_file, prompt_ids) -> str | None:
    """What happens when labkit's load-time checks are skipped: ``adapter_file`` is loaded with
    onnxruntime-genai's own ``Adapters.load`` (which only parses it) and one request runs with it
    on ``model``. Returns None if the request ran, or onnxruntime-genai's error message if it
    failed (for an adapter the base has no inputs for: ``Invalid input name ...``)."""
    og = model._og
    raw = og.Adapters(model.model)
    raw.load(str(adapter_file), "unchecked")
    params = og.GeneratorParams(model.model)
    params.set_search_options(max_length=len(prompt_ids) + 1)
    generator = og.Generator(model.model, params)
    generator.set_active_adapter(raw, "unchecked")
    try:
        generator.append_tokens([int(t) for t in prompt_ids])
        return None
    except Exception as e:  # onnxruntime-genai raises a plain RuntimeError
        return str(e)
