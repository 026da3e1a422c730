"""The ``labkit`` command line. Flag names follow Microsoft Olive's CLI, so the commands
from the EdgeAI for Beginners fine-tuning module work here:

    labkit doctor                                   # is this machine ready for the course?
    labkit prepare                                  # convert the offline base model once
    labkit finetune --data_files tone --text_template "{phrase} -> {tone}" --method lora --max_steps 50
    labkit evaluate --adapter_path runs/x/adapter --data_files tone
    labkit export --adapter_path runs/x/adapter --precision int4 --output_path out/tone-int4
    labkit chat --model_path out/tone-int4
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

# Rough minutes per lesson in the quick profile on a 2-core laptop (measured; see README).
QUICK_MINUTES_PER_LESSON = 5


def _doctor(args) -> int:
    from . import env, models

    problems, rows = [], []

    def check(name, ok, detail, fix=""):
        rows.append((("ok" if ok else "FAIL"), name, detail))
        if not ok:
            problems.append(f"{name}: {fix or detail}")

    report = env.env_report()
    check("python", sys.version_info >= (3, 10), report["python"], "use Python 3.10 or newer")
    for pkg in ("torch", "transformers", "peft", "trl", "datasets"):
        check(pkg, report[pkg] != "not installed", report[pkg], f"pip install {pkg} (or `make lab`)")
    check("bitsandbytes (QLoRA)", report["bitsandbytes"] != "not installed", report["bitsandbytes"],
          "pip install bitsandbytes  (only lesson 03 needs it)")
    check("onnxruntime-genai (ONNX)", report["onnxruntime-genai"] != "not installed",
          report["onnxruntime-genai"], "pip install onnxruntime-genai onnx-ir onnxscript (lesson 06)")
    check("device", True, f"{report['device']} ({report['gpu']}), {report['cpu_threads']} CPU threads, "
          f"train dtype {report['train_dtype']}")
    check("memory", report["memory_available_gb"] >= 4,
          f"{report['memory_available_gb']} GB free of {report['memory_total_gb']} GB",
          "close other programs: the course needs about 4 GB free")
    home = models.labkit_home()
    home.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(home).free / 1e9
    check("disk", free_gb >= 5, f"{free_gb:.0f} GB free at {home}", "free 5 GB (model, adapters, exports)")
    try:
        gguf = models.find_gguf()
        check("base model package", True, f"{gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB)")
    except models.ModelNotFoundError as e:
        check("base model package", False, "missing", str(e))
    converted = models.converted_model_dir()
    if models.is_complete(converted):
        try:
            start = time.perf_counter()
            model, tok = models.load_base()
            ids = tok("The capital of France is", return_tensors="pt")
            model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
            check("base model loads", True, f"{converted} ({time.perf_counter() - start:.1f} s incl. 3 tokens)")
        except Exception as e:  # report, do not crash: this is a diagnosis tool
            check("base model loads", False, f"{type(e).__name__}: {e}",
                  f"delete {converted} and run `labkit prepare` to convert it again")
    else:
        check("base model converted", False, f"not yet at {converted}", "run `labkit prepare` (about a minute)")
    check("profile", True, f"{report['profile']} (set LABKIT_PROFILE=quick|full to choose)")
    minutes = 8 * QUICK_MINUTES_PER_LESSON if report["profile"] == "quick" else 8 * 3
    check("estimated course run time", True, f"about {minutes} minutes for all lessons ({report['profile']})")

    width = max(len(r[1]) for r in rows)
    for status, name, detail in rows:
        print(f"[{status:>4}] {name:<{width}}  {detail}")
    print()
    if problems:
        print("NOT READY. Fix these, then run `labkit doctor` again:")
        for p in problems:
            print("  -", p)
        return 1
    print("READY: this machine can run the course.")
    return 0


def _prepare(args) -> int:
    from . import models

    path = models.base_model_path(args.model_name_or_path)
    print(f"Base model ready: {path}")
    return 0


def _pairs_for(data_files: str, template: str | None, split: str, limit: int | None = None):
    from . import data

    if data_files in data.bundled_names():
        ds = data.load_dataset(data_files)
        records = list(ds[split])[:limit]
        return data.task_pairs(data_files, records, template), data.dataset_info(data_files)
    if not template:
        raise SystemExit("--text_template is required for your own data files, e.g. '{phrase} -> {tone}'")
    target = data.template_fields(template)[-1]
    ds = data.load_dataset(data_files, fields=data.template_fields(template))
    records = list(ds[split])[:limit]
    return data.to_prompt_completion(records, template, target), {"target_field": target, "task": "text"}


def _finetune(args) -> int:
    from . import models, train

    model, tok = models.load_base(args.model_name_or_path,
                                  quantization="nf4" if args.method == "qlora" else None)
    train_pairs, _ = _pairs_for(args.data_files, args.text_template, "train", args.max_samples)
    eval_pairs, _ = _pairs_for(args.data_files, args.text_template, "validation", args.max_eval_samples)
    cfg = train.TrainConfig(method=args.method, max_steps=args.max_steps, learning_rate=args.learning_rate,
                            batch_size=args.per_device_train_batch_size, r=args.lora_r,
                            lora_alpha=args.lora_alpha, max_length=args.max_seq_len)
    result = train.finetune(model, tok, train_pairs, eval_pairs, cfg, output_dir=args.output_path,
                            live_plot=False)
    print(f"Saved to {result.adapter_dir} after {result.train_seconds:.0f} s")
    return 0


def _evaluate(args) -> int:
    from . import evaluate, models

    model, tok = models.load_base(args.model_name_or_path)
    if args.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter_path).eval()
    pairs, info = _pairs_for(args.data_files, args.text_template, args.split, args.max_samples)
    prompts = [p["prompt"] for p in pairs]
    if info.get("task") == "classification":
        golds = [p["completion"].strip() for p in pairs]
        preds = evaluate.classify(model, tok, prompts, info["labels"])
        result = evaluate.classification_report(golds, preds, info["labels"])
        out = {k: result[k] for k in ("accuracy", "macro_f1")}
    else:
        outputs = evaluate.generate(model, tok, prompts, max_new_tokens=args.max_new_tokens)
        if info.get("task") == "extraction":
            golds = [json.loads(p["completion"]) for p in pairs]
            out = {k: v for k, v in evaluate.extraction_scores(outputs, golds).items() if k != "f1s"}
        elif info.get("task") == "sql":
            from .data import database_path

            golds = [p["completion"].strip() for p in pairs]
            out = {k: v for k, v in evaluate.sql_scores(outputs, golds, database_path()).items()
                   if k != "matches"}
        else:
            out = {"exact_match": sum(o.strip() == p["completion"].strip()
                                      for o, p in zip(outputs, pairs)) / len(pairs)}
    print(json.dumps({"n": len(pairs), **out}, indent=2))
    return 0


def _export(args) -> int:
    from . import export, models

    base = models.base_model_path(args.model_name_or_path)
    out = export.export_onnx(base, adapter_dir=args.adapter_path, precision=args.precision,
                             device=args.device, out=args.output_path)
    print(f"ONNX model ready: {out} ({export.folder_size_mb(out):.0f} MB)")
    return 0


def _chat(args) -> int:
    from .export import GenAIModel

    model = GenAIModel(args.model_path)
    print(f"Chatting with {args.model_path}. Empty line to quit.")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        print("model> ", end="", flush=True)
        for piece in model.stream([{"role": "user", "content": line}], max_new_tokens=args.max_new_tokens):
            print(piece, end="", flush=True)
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labkit", description="Fine-Tuning Lab command line.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="check this machine for the course").set_defaults(func=_doctor)

    s = sub.add_parser("prepare", help="convert the offline base model once")
    s.add_argument("--model_name_or_path", "-m", default=None)
    s.set_defaults(func=_prepare)

    s = sub.add_parser("finetune", help="fine-tune with LoRA, QLoRA or all weights")
    s.add_argument("--model_name_or_path", "-m", default=None, help="default: SmolLM2-135M-Instruct (offline)")
    s.add_argument("--data_files", "-d", required=True, help="a bundled dataset name or .jsonl/.json/.csv")
    s.add_argument("--text_template", default=None, help='e.g. "{phrase} -> {tone}" (last field = answer)')
    s.add_argument("--method", choices=["lora", "qlora", "full"], default="lora")
    s.add_argument("--max_steps", type=int, default=50)
    s.add_argument("--learning_rate", type=float, default=1e-3)
    s.add_argument("--per_device_train_batch_size", type=int, default=8)
    s.add_argument("--lora_r", type=int, default=16)
    s.add_argument("--lora_alpha", type=int, default=32)
    s.add_argument("--max_seq_len", type=int, default=256)
    s.add_argument("--max_samples", type=int, default=None, help="use at most this many training examples")
    s.add_argument("--max_eval_samples", type=int, default=64)
    s.add_argument("--output_path", "-o", default=None)
    s.set_defaults(func=_finetune)

    s = sub.add_parser("evaluate", help="score a model (and adapter) on a dataset split")
    s.add_argument("--model_name_or_path", "-m", default=None)
    s.add_argument("--adapter_path", default=None)
    s.add_argument("--data_files", "-d", required=True)
    s.add_argument("--text_template", default=None)
    s.add_argument("--split", default="test", choices=["train", "validation", "test"])
    s.add_argument("--max_samples", type=int, default=None)
    s.add_argument("--max_new_tokens", type=int, default=64)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("export", help="export to ONNX for onnxruntime-genai (like `olive auto-opt`)")
    s.add_argument("--model_name_or_path", "-m", default=None)
    s.add_argument("--adapter_path", default=None, help="a LoRA adapter to merge before export")
    s.add_argument("--precision", choices=["fp32", "fp16", "int4"], default="int4")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--output_path", "-o", default=None)
    s.set_defaults(func=_export)

    s = sub.add_parser("chat", help="chat with an exported ONNX model (streaming)")
    s.add_argument("--model_path", required=True)
    s.add_argument("--max_new_tokens", type=int, default=128)
    s.set_defaults(func=_chat)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DataError
    from .models import ModelNotFoundError

    try:
        return args.func(args)
    except (DataError, ModelNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
