"""Benchmark CPU inference: PyTorch eager (fp32) vs ONNX fp32 vs ONNX int4 (onnxruntime-genai) vs llama.cpp.

    python bench/inference.py --model_dir path/to/model [--adapter_dir path/to/lora]
                              [--prompt_tokens 128] [--new_tokens 64] [--runs 3] [--threads N]
                              [--requests 40]

For each backend it measures, on the same prompt token ids and greedy decoding of exactly
``--new_tokens`` tokens (EOS is ignored):

* time to first token (TTFT): prompt processing + the first token,
* prompt processing speed: prompt tokens / TTFT,
* decode speed: (new_tokens - 1) / time for the tokens after the first,
* model size on disk and peak memory (max RSS of the process).

A second table measures a classifier (lessons 01 and 06: a tone label is one forward pass over a
short prompt, read at the last position): requests per second and median latency, one request
at a time, over ``--requests`` prompts of the tone test split.

The llama.cpp row (``llama-cpp-python``, an optional extra: ``pip install -e ".[bench]"``, which
compiles llama.cpp, minutes on 2 cores) runs the GGUF file the course ships (Q4_1, the *base*
model: no adapter); it is left out with a note when the package is not installed. The ONNX
models are loaded the way labkit loads them (``labkit.onnx.serve.session_config``: every core).

Every backend runs in its own subprocess (this script with ``--worker``), so the memory
numbers do not mix. One warm-up run, then the median of ``--runs`` runs. The ONNX models
are built (and cached) with ``labkit.onnx.build.export_onnx``; with ``--adapter_dir`` the LoRA
adapter is merged into every backend. Prints one Markdown table.
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = [("PyTorch eager fp32", "torch", None), ("ONNX fp32", "onnx", "fp32"), ("ONNX int4", "onnx", "int4"),
            ("llama.cpp Q4_1 GGUF (base)", "llama", None)]
FILLER = "The quick brown fox jumps over the lazy dog while the farmer counts his sheep in the morning sun. "


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    On Linux this reads VmHWM: ``resource.getrusage().ru_maxrss`` would be wrong here,
    since Linux carries the parent's RSS at fork() over into the child's ru_maxrss.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # kB
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # bytes on macOS
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 1e6


def prompt_ids(model_dir, n: int) -> list[int]:
    """``n`` token ids of plain English text (the same ids are fed to every backend)."""
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model_dir)(FILLER, add_special_tokens=False)["input_ids"]
    return (ids * (n // len(ids) + 1))[:n]


# --------------------------------------------------------------------------- workers


def load_torch(model_dir, adapter_dir=None, threads=None):
    """The fp32 PyTorch model (the LoRA adapter merged in, if given), on ``threads`` threads."""
    import torch
    from transformers import AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    return model.eval()


def bench_torch(model_dir, adapter_dir, ids, new_tokens, runs, threads=None):
    """Yield (ttft_s, decode_s) per run for transformers' generate() in fp32."""
    import torch
    from transformers import GenerationConfig

    model = load_torch(model_dir, adapter_dir, threads)
    input_ids = torch.tensor([ids])
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0

    def generate(n):
        config = GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad)
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config)
        return time.perf_counter() - start

    for _ in range(runs + 1):
        ttft = generate(1)
        yield ttft, generate(new_tokens) - ttft


def bench_onnx(path, ids, new_tokens, runs, threads=None):
    """Yield (ttft_s, decode_s) per run for onnxruntime-genai (greedy, EOS ignored via min_length)."""
    import onnxruntime_genai as og

    from labkit.onnx.serve import session_config

    model = og.Model(session_config(path, threads))
    for _ in range(runs + 1):
        params = og.GeneratorParams(model)
        total = len(ids) + new_tokens
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        generator = og.Generator(model, params)
        start = time.perf_counter()
        generator.append_tokens(ids)  # prompt processing
        generator.generate_next_token()  # picks the first token from the prompt's logits
        first = time.perf_counter()
        while not generator.is_done():
            generator.generate_next_token()
        yield first - start, time.perf_counter() - first


def bench_llama(gguf, ids, new_tokens, runs, threads=None):
    """Yield (ttft_s, decode_s) per run for llama.cpp (greedy; its generator ignores EOS)."""
    from llama_cpp import Llama

    from labkit.env import cpu_cores

    llm = Llama(model_path=str(gguf), n_ctx=len(ids) + new_tokens + 8, n_threads=threads or cpu_cores(),
                n_batch=512, verbose=False)
    for _ in range(runs + 1):
        llm.reset()  # no prompt cache between runs: each run processes the whole prompt
        start = time.perf_counter()
        tokens = llm.generate(ids, top_k=1, temp=0.0, reset=True)
        next(tokens)
        first = time.perf_counter()
        for _, _ in zip(range(new_tokens - 1), tokens):
            pass
        yield first - start, time.perf_counter() - first


def classify_requests(kind, path, adapter_dir, prompts, threads=None):
    """Seconds per request of one label-scoring forward pass (last-position logits), one
    prompt at a time, after three warm-up requests."""
    if kind == "torch":
        import torch
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        model = load_torch(path, adapter_dir, threads)

        def request(prompt):
            with torch.no_grad():
                ids = tok(prompt, return_tensors="pt").input_ids
                return model(ids, logits_to_keep=1).logits[0, -1]
    else:
        from labkit.onnx.serve import GenAIModel

        onnx = GenAIModel(path, threads)

        def request(prompt):
            return onnx.logits(prompt)
    for prompt in prompts[:3]:
        request(prompt)
    times = []
    for prompt in prompts:
        start = time.perf_counter()
        request(prompt)
        times.append(time.perf_counter() - start)
    return times


def worker(args):
    """Run one backend and print its numbers as one JSON line."""
    if args.worker in ("torch-classify", "onnx-classify"):
        prompts = json.loads(Path(args.ids_file).read_text())
        path = args.model_dir if args.worker == "torch-classify" else args.onnx_dir
        times = classify_requests(args.worker.split("-")[0], path, args.adapter_dir, prompts, args.threads)
        print(json.dumps({"requests_per_s": len(times) / sum(times), "median_ms": 1e3 * statistics.median(times),
                          "peak_rss_mb": peak_rss_mb()}))
        return
    ids = json.loads(Path(args.ids_file).read_text())
    if args.worker == "torch":
        runs = list(bench_torch(args.model_dir, args.adapter_dir, ids, args.new_tokens, args.runs, args.threads))
    elif args.worker == "llama":
        runs = list(bench_llama(args.onnx_dir, ids, args.new_tokens, args.runs, args.threads))
    else:
        runs = list(bench_onnx(args.onnx_dir, ids, args.new_tokens, args.runs, args.threads))
    ttft = statistics.median(r[0] for r in runs[1:])  # runs[0] is the warm-up
    decode = statistics.median(r[1] for r in runs[1:])
    print(json.dumps({
        "ttft_ms": ttft * 1e3,
        "prompt_tok_s": len(ids) / ttft,
        "decode_tok_s": (args.new_tokens - 1) / decode if args.new_tokens > 1 else float("nan"),
        "peak_rss_mb": peak_rss_mb(),
    }))


# --------------------------------------------------------------------------- main


def run_worker(argv) -> dict:
    """Run this script as a worker subprocess and parse its last output line."""
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {argv[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown_table(rows) -> str:
    head = "| backend | size (MB) | peak RSS (MB) | TTFT (ms) | prompt (tok/s) | decode (tok/s) |"
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['size_mb']:.1f} | {r['peak_rss_mb']:.0f} | {r['ttft_ms']:.1f} "
            f"| {r['prompt_tok_s']:.1f} | {r['decode_tok_s']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", help="HF model folder (default: labkit.models.base_model_path())")
    p.add_argument("--adapter_dir", help="optional PEFT LoRA adapter folder, merged into every backend")
    p.add_argument("--prompt_tokens", type=int, default=128)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, help="CPU threads for every backend (default: each library's own)")
    p.add_argument("--requests", type=int, default=40, help="classifier requests timed (tone test prompts)")
    p.add_argument("--worker", choices=["torch", "onnx", "llama", "torch-classify", "onnx-classify"], help=argparse.SUPPRESS)
    p.add_argument("--onnx_dir", help=argparse.SUPPRESS)
    p.add_argument("--ids_file", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)

    sys.path.insert(0, str(ROOT))
    from labkit.onnx.build import export_onnx, folder_size_mb

    if args.model_dir is None:
        from labkit.models import base_model_path

        args.model_dir = str(base_model_path())
    torch_size = sum(folder_size_mb(f) for f in Path(args.model_dir).glob("*.safetensors"))
    if args.adapter_dir:
        torch_size += sum(folder_size_mb(f) for f in Path(args.adapter_dir).glob("*.safetensors"))

    rows, classify_rows, exports = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps(prompt_ids(args.model_dir, args.prompt_tokens)))
        common = ["--ids_file", str(ids_file), "--new_tokens", str(args.new_tokens), "--runs", str(args.runs)]
        threads = ["--threads", str(args.threads)] if args.threads else []
        for label, kind, precision in BACKENDS:
            if kind == "torch":
                argv = ["--worker", "torch", "--model_dir", args.model_dir, *common]
                argv += ["--adapter_dir", args.adapter_dir] if args.adapter_dir else []
                size = torch_size
            elif kind == "llama":
                try:
                    import llama_cpp  # noqa: F401
                except ImportError:
                    print("llama.cpp row left out: pip install llama-cpp-python (or the bench extra)", file=sys.stderr)
                    continue
                from labkit.models import find_gguf

                gguf = find_gguf()
                argv, size = ["--worker", "llama", "--onnx_dir", str(gguf), *common], gguf.stat().st_size / 1e6
            else:
                with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table
                    exports[label] = out = export_onnx(args.model_dir, args.adapter_dir, precision=precision)
                argv, size = ["--worker", "onnx", "--onnx_dir", str(out), *common], folder_size_mb(out)
            print(f"benchmarking {label} ...", file=sys.stderr, flush=True)
            rows.append({"backend": label, "size_mb": size, **run_worker(argv + threads)})

        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(tone_prompts(args.requests)))
        for label, kind, precision in BACKENDS:
            if kind == "llama":
                continue
            argv = ["--ids_file", str(prompts_file), *threads]
            if kind == "torch":
                argv = ["--worker", "torch-classify", "--model_dir", args.model_dir, *argv]
                argv += ["--adapter_dir", args.adapter_dir] if args.adapter_dir else []
            else:
                argv = ["--worker", "onnx-classify", "--onnx_dir", str(exports[label]), *argv]
            print(f"classifier requests: {label} ...", file=sys.stderr, flush=True)
            classify_rows.append({"backend": label, **run_worker(argv)})

    shown = f", {args.threads} threads" if args.threads else ", every core"
    print(f"\nprompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, median of {args.runs} runs{shown}\n")
    print(markdown_table(rows))
    print(f"\nclassifier: one forward pass per request (tone test prompts, {args.requests} requests, one at a time)\n")
    print("| backend | requests/s | median latency (ms) | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for r in classify_rows:
        print(f"| {r['backend']} | {r['requests_per_s']:.1f} | {r['median_ms']:.1f} | {r['peak_rss_mb']:.0f} |")
    return rows, classify_rows


def tone_prompts(n: int) -> list[str]:
    """The first ``n`` tone test messages as the course's classifier prompts."""
    from labkit import data

    test = list(data.load_dataset("tone")["test"])[:n]
    return [pair["prompt"] for pair in data.task_pairs("tone", test)]


if __name__ == "__main__":
    main()
