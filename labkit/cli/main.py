"""The ``labkit`` command line. Flag names follow Microsoft Olive's CLI, so the commands from
the EdgeAI for Beginners fine-tuning module work with ``labkit`` in place of ``olive``:

    labkit doctor                                   # is this machine ready for the course?
    labkit prepare                                  # convert the offline base model once
    labkit finetune --data_name tone --text_template "{phrase} -> {tone}" --method lora --max_steps 50 --output_path models/ft
    labkit evaluate --adapter_path models/ft/adapter --data_name tone
    labkit auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter --precision int4 --output_path models/onnx
    labkit generate-adapter --base_model_path <base> --adapter_paths a/adapter,b/adapter --output_path models/multi
    labkit chat --model_path models/onnx
    labkit run --config run.yaml                    # the same settings as a YAML/JSON file
    labkit search --config search.yaml              # hyperparameter search (Optuna) over those settings
    labkit dpo --data_files pairs.jsonl --adapter_path models/ft/adapter --output_path models/ft-dpo   # preference tuning

Every bad input ends in one message that names the file, line, field or flag and says what to
do, with exit code 2, and before anything is written: an output folder is either complete or
absent. ``finetune`` writes ``<output_path>/adapter`` (the LoRA adapter) and
``<output_path>/model`` (a small pointer to the base model, so that Olive's
``auto-opt --model_name_or_path <output_path>/model`` works without a 500 MB copy).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from labkit.cache import atomic_file
from labkit.cli.flags import (
    EXAMPLES,
    PROVIDERS,
    CLIError,
    Parser,
    comma_list,
    check_hardware_flags,
    common_flags,
    MAX_PASSES,
    MIN_STEPS,
    EVALUATIONS_PER_RUN,
    fill_step_defaults,
    data_flags,
    dpo_flags,
    export_flags,
    fill_task_defaults,
    finetune_flags,
    model_from_flags,
    task_from_flags,
    parse_run_config,
    positive_float,
    positive_int,
    read_run_config,
    train_config,
    training_records,
)
from labkit.cli.report import (
    confusion_table,
    generation_report,
    gold_labels,
    label_predictions,
    label_shares,
    say_if_collapsed,
    validation_report,
)
from labkit.data import Task, check_labels_seen
from labkit.models import BASE_POINTER, resolve_model
from labkit.onnx.adapter_files import check_peft_adapter


# --- small helpers -------------------------------------------------------------------------

def set_log_level(level: int) -> None:
    """Olive's --log_level: 0 debug, 1 info, 2 warning, 3 error, 4 critical."""
    import logging

    py_level = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL][level]
    logging.basicConfig(level=py_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(py_level)
    try:
        import transformers

        transformers.utils.logging.set_verbosity(py_level)
    except ImportError:
        pass


# --- commands ------------------------------------------------------------------------------

def _doctor(args) -> int:
    from labkit.course.doctor import doctor

    return doctor(args.slot)


def _prepare(args) -> int:
    path = resolve_model(args.model_name_or_path)
    print(f"Base model ready: {path}")
    return 0


def _finetune(args) -> int:
    from labkit import data, train

    task = task_from_flags(args)   # data before the model: cheap checks first
    chosen = fill_task_defaults(args, task.kind)
    train_records, eval_records = training_records(args, task)
    base = resolve_model(args.model_name_or_path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=args.trust_remote_code)
    train_pairs, eval_pairs = task.pairs(train_records), task.pairs(eval_records)
    data.check_lengths(train_pairs, tokenizer, args.max_seq_len, train_records)
    data.check_lengths(eval_pairs, tokenizer, args.max_seq_len, eval_records)
    cfg = train_config(args, task.kind)
    model, tok = model_from_flags(args, cfg, check_hardware_flags(args))
    n_examples = len(train_pairs)
    if task.kind == "classification" and args.balance_classes:
        train_pairs = task.pairs(data.balance_labels(train_records, task.target, seed=cfg.seed))
    if train.is_main_process():
        print(f"{task.kind} task: {n_examples} training and {len(eval_pairs)} validation "
              f"examples from {task.source}" + (f", labels {task.labels}" if task.labels else ""))
        if len(train_pairs) != n_examples:
            print(f"balanced classes: {label_shares(train_pairs, task)} of the training draws "
                  "(--balance_classes false keeps the file's shares)")
    if args.max_steps is None:   # a time budget: time this machine, then choose the steps
        args.max_steps = steps_for_budget(args, model, tok, task, train_pairs, eval_records, n_examples, args.started)
        chosen.update(fill_step_defaults(args))
        cfg = train_config(args, task.kind)
    if train.is_main_process() and chosen:
        shown = {k: v for k, v in chosen.items() if not isinstance(v, bool)}
        print(f"defaults for a {task.kind} task: " + ", ".join(f"--{k} {v:g}" for k, v in shown.items())
              + "".join(f", --{k} {str(v).lower()}" for k, v in chosen.items() if isinstance(v, bool)))
    callbacks = [validation_scorer(tok, task, eval_records)] if task.kind == "classification" and eval_records else []
    try:
        result = train.finetune(model, tok, train_pairs, eval_pairs, cfg, output_dir=args.output_path,
                                live_plot=False, overwrite=args.overwrite, callbacks=callbacks)
    except train.RunConflictError as e:
        raise CLIError(f"--output_path {e}") from None
    except KeyboardInterrupt:
        _say_what_was_kept(args, cfg)
        raise
    if not train.is_main_process():  # data parallel: the main process writes and reports
        return 0
    _write_base_pointer(args, base, result)
    if task.kind == "classification" and eval_records:
        kept = result.best_step if cfg.restores_best and result.best_step else result.steps
        scored = callbacks[0].predictions.get(kept) if callbacks else None   # that checkpoint's answers, if scored
        validation_report(result.model, tok, task, eval_records, kept, result.steps, scored)
    elif eval_pairs:   # finetune trained a copy: `model` is still the base
        generation_report(model, result.model, tok, eval_pairs)
    if args.time_budget:
        print(f"the whole command took {minutes_since(args.started):.1f} min of its {args.time_budget:g}-min time budget")
    return 0


def _write_base_pointer(args, base: str, result) -> None:
    """Write ``<output_path>/model``'s pointer to the base model (what ``auto-opt`` reads instead of a copy of
    it; a full fine-tune's own weights are the base) and say where the run was saved."""
    pointer = {"base_model": base, "adapter": str(result.adapter_dir),
               "note": "labkit writes this pointer instead of a copy of the base model"}
    if args.method == "full":
        pointer["base_model"] = str(result.adapter_dir)
    with atomic_file(Path(result.output_dir) / "model" / BASE_POINTER) as tmp:
        tmp.write_text(json.dumps(pointer, indent=2))
    print(f"Saved to {result.adapter_dir} after {result.steps} steps in {result.train_seconds:.0f} s "
          f"(base model pointer: {Path(result.output_dir) / 'model'})")


def validation_scorer(tok, task: Task, eval_records):
    """The callback that label-scores the validation examples at every evaluation, so that the checkpoint
    kept is the one with the best validation macro-F1 (:class:`labkit.train.ValidationAccuracy`)."""
    from labkit import evaluate, train

    prompts, prefix = evaluate.label_scoring_setup(tok, task, [p["prompt"] for p in task.pairs(eval_records)])
    return train.ValidationAccuracy(tok, prompts, gold_labels(task, eval_records),
                                    task.labels, prefix)


SECONDS_KEPT_BACK = 25   # of a time budget: checkpoints, restoring the best one, saving the adapter, the report


def process_start() -> float:
    """When this process started, on :func:`time.perf_counter`'s clock: a time budget counts from the
    moment the learner pressed Enter, Python's start-up and imports included."""
    import psutil

    return time.perf_counter() - (time.time() - psutil.Process().create_time())


def minutes_since(started: float) -> float:
    """Minutes from ``started`` (:func:`time.perf_counter`'s clock) until now."""
    return (time.perf_counter() - started) / 60


def seconds_per_evaluation(model, tok, task: Task, eval_records) -> float:
    """Seconds one evaluation of ``eval_records`` takes, timed on up to 64 of them (after a warm-up) and
    scaled: the validation loss is one forward pass over each example (timed as one), and for a
    classification task the label scoring :func:`validation_scorer` adds (timed as it runs)."""
    from labkit import evaluate

    sample = eval_records[:64]
    if not sample:
        return 0.0
    texts = [p["prompt"] + p["completion"] for p in task.pairs(sample)]
    evaluate.last_token_logits(model, tok, texts[:8])   # warm-up: the first batches are slower
    start = time.perf_counter()
    evaluate.last_token_logits(model, tok, texts)
    if task.kind == "classification":
        scorer = validation_scorer(tok, task, sample)
        evaluate.classify(model, tok, scorer.prompts, scorer.labels, scorer.prefix)
    return (time.perf_counter() - start) * len(eval_records) / len(sample)


def steps_for_budget(args, model, tok, task: Task, train_pairs, eval_records, n_examples: int, started: float) -> int:
    """The steps that fit in ``--time_budget`` minutes from ``started``: a few steps and one evaluation are
    timed on this machine (:func:`labkit.train.seconds_per_step`), then what is left after
    :data:`EVALUATIONS_PER_RUN` evaluations and the final report is divided into steps, at least
    :data:`MIN_STEPS` and at most :data:`MAX_PASSES` passes over the ``n_examples`` training examples,
    rounded down to a multiple of :data:`EVALUATIONS_PER_RUN`. Says what it chose and why."""
    import math

    from labkit import train

    if train.world_size() > 1:
        raise CLIError("--time_budget times one process; under torchrun pass --max_steps, the same on every process.")
    step = train.seconds_per_step(model, tok, train_pairs, train_config(args, task.kind))
    evaluation = seconds_per_evaluation(model, tok, task, eval_records)
    left = args.time_budget * 60 - (time.perf_counter() - started) - (EVALUATIONS_PER_RUN + 1) * evaluation
    fit = math.floor((left - SECONDS_KEPT_BACK) / step)
    passes = math.ceil(MAX_PASSES * n_examples / (args.per_device_train_batch_size * args.gradient_accumulation_steps))
    steps = max(MIN_STEPS, min(fit, passes))
    why = (f"at least {MIN_STEPS} steps" + (", over the budget" if fit < MIN_STEPS else "") if steps > min(fit, passes)
           else f"{MAX_PASSES} passes over the {n_examples} training examples" if steps == passes else "what fits")
    steps -= steps % EVALUATIONS_PER_RUN   # the last evaluation falls on the last step
    total = time.perf_counter() - started + steps * step + (EVALUATIONS_PER_RUN + 1) * evaluation + SECONDS_KEPT_BACK
    print(f"time budget {args.time_budget:g} min: a step takes {step:.2f} s here and an evaluation {evaluation:.0f} s, "
          f"so {steps} steps ({why}); done within about {total / 60:.1f} min. --max_steps N sets the steps yourself.")
    return steps


def _say_what_was_kept(args, cfg) -> None:
    """After Ctrl-C during training: what is on disk, and the command that resumes."""
    import shlex

    from labkit import train

    if not train.is_main_process():
        return
    command = "labkit " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "the same labkit finetune command"
    checkpoint = train.last_checkpoint(Path(args.output_path)) if args.output_path else None
    if checkpoint:
        print(f"interrupted: kept {checkpoint} (step {checkpoint.rsplit('-', 1)[-1]}); run the same command again "
              f"to resume from it:\n  {command}", file=sys.stderr)
    else:
        where = "" if args.output_path else " (no --output_path: pass one to be able to resume)"
        print(f"interrupted before the first checkpoint (one is saved every {cfg.save_steps} steps): nothing kept"
              f"{where}. Run the command again to start over:\n  {command}", file=sys.stderr)


def _load_adapter(model, adapter: Path):
    """Wrap ``model`` with the PEFT adapter in ``adapter`` (checked beforehand)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter)).eval()
    except (RuntimeError, ValueError, KeyError) as e:  # size mismatch, missing target modules
        raise CLIError(f"--adapter_path {adapter}: does not fit this base model "
                       f"({type(e).__name__}: {str(e).strip().splitlines()[0][:160]}). Pass the base "
                       "it was trained on.") from None


def _evaluate(args) -> int:
    from labkit import evaluate, models

    task = task_from_flags(args)
    records = task.split(args.split, "--split")[: args.max_samples]
    if task.kind == "classification":
        check_labels_seen(task, task.split("train", "--split"), {"test": records})
    base = resolve_model(args.model_name_or_path)
    adapter = check_peft_adapter(args.adapter_path, base, "--adapter_path") if args.adapter_path else None
    model, tok = models.load_base(base, trust_remote_code=args.trust_remote_code)
    if adapter:
        model = _load_adapter(model, adapter)
    pairs = task.pairs(records)
    prompts = [p["prompt"] for p in pairs]
    if task.kind == "classification":
        golds, preds = label_predictions(model, tok, task, records, args.per_device_eval_batch_size)
        report = evaluate.classification_report(golds, preds, task.labels)
        print(confusion_table(report))
        say_if_collapsed(report, preds)
        out = {"task": "classification", "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
               "labels": task.labels, "confusion_matrix": report["confusion_matrix"].tolist()}
    else:
        outputs = evaluate.generate(model, tok, prompts, max_new_tokens=args.max_new_tokens)
        if task.kind == "extraction":
            golds = [json.loads(p["completion"]) for p in pairs]
            out = {k: v for k, v in evaluate.extraction_scores(outputs, golds).items() if k != "f1s"}
        elif task.kind == "sql":
            from labkit.data import database_path

            golds = [p["completion"].strip() for p in pairs]
            out = {k: v for k, v in evaluate.sql_scores(outputs, golds, database_path()).items()
                   if k != "matches"}
        else:
            out = {"exact_match": sum(o.strip() == p["completion"].strip()
                                      for o, p in zip(outputs, pairs)) / len(pairs)}
        out = {"task": task.kind, **out}
    print(json.dumps({"n": len(pairs), **out}))  # one line: easy to read back (json.loads)
    return 0


def _dpo(args) -> int:
    """``labkit dpo``: check the pairs file (fields, empty or identical answers, lengths) and the
    adapter before loading anything, then train with DPO (:func:`labkit.train.dpo`)."""
    from transformers import AutoTokenizer

    from labkit import env, models, train
    from labkit.preferences import read_pairs

    base = resolve_model(args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=args.trust_remote_code)
    pairs = read_pairs(args.data_files, tokenizer, args.max_seq_len)
    adapter = Path(args.adapter_path) if args.adapter_path else None
    if adapter is not None:
        check_peft_adapter(adapter, base, flag="--adapter_path")
    cfg = train.TrainConfig(r=args.lora_r, lora_alpha=args.lora_alpha, learning_rate=args.learning_rate,
                            max_steps=args.max_steps, batch_size=args.per_device_train_batch_size,
                            max_length=args.max_seq_len, logging_steps=args.logging_steps, eval_steps=None,
                            seed=env.seed() if args.seed is None else args.seed)
    model, tokenizer = models.load_base(base, trust_remote_code=args.trust_remote_code)
    print(f"DPO on {len(pairs)} pairs from {args.data_files}, beta {args.beta:g}, starting from "
          f"{adapter or 'a new LoRA adapter'}")
    try:
        result = train.dpo(model, tokenizer, pairs, adapter, cfg, beta=args.beta, output_dir=args.output_path,
                           overwrite=args.overwrite)
    except train.RunConflictError as e:
        raise CLIError(f"--output_path {e}") from None
    margins = [h["rewards/margins"] for h in result.history if "rewards/margins" in h]
    print(f"Saved to {result.adapter_dir} after {result.steps} steps in {result.train_seconds:.0f} s"
          + (f"; implicit reward margin {margins[0]:+.3f} -> {margins[-1]:+.3f}" if margins else ""))
    return 0


def _export(args) -> int:
    from labkit.onnx import build

    device = args.device
    if args.provider:
        provider_device = PROVIDERS[args.provider]
        if args.device and args.device != provider_device:
            raise CLIError(f"--device {args.device} and --provider {args.provider} disagree: "
                           f"{args.provider} runs on {provider_device}.")
        device = provider_device
    device = device or "cpu"
    if args.precision == "fp16" and device == "cpu":
        raise CLIError("--precision fp16 does not run on the CPU execution provider: use int4 or fp32.")
    base = resolve_model(args.model_name_or_path)
    if not Path(base).is_dir():
        raise CLIError(f"--model_name_or_path {args.model_name_or_path}: export needs a local model "
                       "folder (the ONNX builder reads its files); save the model with save_pretrained().")
    adapter = check_peft_adapter(args.adapter_path, base, "--adapter_path") if args.adapter_path else None
    out = Path(args.output_path).expanduser() if args.output_path else None
    if out is not None and out.exists() and not out.is_dir():
        raise CLIError(f"--output_path {out}: is a file; pass a folder.")
    try:
        built = build.export_onnx(base, adapter_dir=adapter, precision=args.precision, device=device,
                                   out=out, overwrite=args.overwrite)
    except FileExistsError as e:
        raise CLIError(f"--output_path: {e}") from None
    print(f"ONNX model ready: {built} ({build.folder_size_mb(built):.0f} MB)")
    return 0


def check_onnx_folder(path) -> Path:
    """A folder built by ``labkit export`` (or Olive): it has a genai_config.json."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CLIError(f"--model_path {path}: no such folder. Build one with `labkit export`.")
    if not (folder / "genai_config.json").is_file():
        raise CLIError(f"--model_path {path}: not an ONNX export (no genai_config.json). Build one with "
                       "`labkit export --output_path FOLDER` and pass that folder.")
    return folder


def _chat(args) -> int:
    folder = check_onnx_folder(args.model_path)
    model, adapter = _chat_model(folder, args.adapter)
    print(f"Chatting with {folder}" + (f" (adapter {adapter!r})" if adapter else "") + ". Empty line to quit.")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        print("model> ", end="", flush=True)
        kwargs = {"adapter": adapter} if adapter is not None else {}
        for piece in model.stream([{"role": "user", "content": line}], max_new_tokens=args.max_new_tokens, **kwargs):
            print(piece, end="", flush=True)
        print()
    return 0


def _chat_model(folder: Path, wanted: str | None):
    """The model to chat with, and the adapter to use: a plain export, or a multi-adapter base
    with every .onnx_adapter loaded (and checked) now, so a damaged one is named before the chat."""
    from labkit.onnx import adapter_files, serve

    try:
        adapter_files.read_base(folder)
        multi = True
    except adapter_files.AdapterError:
        multi = False
    try:
        model = serve.MultiAdapterModel(folder) if multi else serve.GenAIModel(folder)
    except adapter_files.AdapterError:
        raise  # a damaged or mismatched .onnx_adapter: its own message names the file
    except Exception as e:  # onnxruntime-genai: a broken or half-copied export
        raise CLIError(f"--model_path {folder}: onnxruntime-genai could not load it "
                       f"({type(e).__name__}: {str(e).strip()[:160]}). Build it again with `labkit export`.") from None
    if not multi:
        if wanted not in (None, "none"):
            raise CLIError(f"--adapter {wanted}: {folder} is a plain export (one model, no adapters); "
                           "--adapter is for a `labkit generate-adapter` folder.")
        return model, None
    names = sorted(model.adapters)
    if wanted is None:
        raise CLIError(f"--model_path {folder} serves {len(names)} adapters: {names}. Pass --adapter NAME "
                       "(or --adapter none for the base model alone).")
    if wanted == "none":
        return model, None
    if wanted not in names:
        raise CLIError(f"--adapter {wanted}: no such adapter in {folder}; it has {names} (or none).")
    return model, wanted


def _generate_adapter(args) -> int:
    base = resolve_model(args.base_model_path, "--base_model_path")
    if not Path(base).is_dir():
        raise CLIError(f"--base_model_path {args.base_model_path}: needs a local model folder.")
    adapters = [check_peft_adapter(p, base, "--adapter_paths") for p in args.adapter_paths]
    from labkit.onnx.build import generate_adapter

    try:
        out = generate_adapter(base, adapters, args.output_path, precision=args.precision, overwrite=args.overwrite)
    except FileExistsError as e:
        raise CLIError(f"--output_path: {e}") from None
    print(f"Multi-adapter model ready: {out} (adapters: "
          f"{', '.join(p.name for p in sorted(Path(out).glob('*.onnx_adapter')))})")
    return 0


def _run(args) -> int:
    path = Path(args.config).expanduser()
    config = read_run_config(path)
    command = config.pop("command", "finetune")
    sub = args.subparsers.get(command) if command in RUNNABLE else None
    if sub is None:
        raise CLIError(f"{path}: command {command!r} cannot be run from a file; use one of {list(RUNNABLE)}.")
    argv, run_args = parse_run_config(config, sub, path)
    print(f"labkit {command} " + " ".join(argv))
    run_args.started = args.started
    return run_args.func(run_args)


def _search(args) -> int:
    from labkit.cli.search import search_command

    return search_command(args)


RUNNABLE = ("finetune", "evaluate", "auto-opt", "export", "generate-adapter")


def build_parser() -> argparse.ArgumentParser:
    """The `labkit` parser: one subcommand per command, Olive's flag names."""
    p = Parser(prog="labkit", description="Fine-Tuning Lab command line (Olive's flag names).",
                epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    subparsers = {}

    def command(name, help, func, **kw):
        s = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[kw.pop("example", name)],
                           formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        s.set_defaults(func=func, subparsers=subparsers)
        subparsers[name] = s
        return s

    s = command("doctor", "check this machine for the course and predict each lesson's minutes", _doctor)
    s.add_argument("--slot", type=positive_float, default=15.0, metavar="MINUTES",
                   help="the minutes the workshop gives each lesson; a lesson predicted over it is flagged (default 15)")

    s = command("prepare", "convert the offline base model once", _prepare)
    s.add_argument("--model_name_or_path", "-m", default=None)

    finetune_flags(command("finetune", "fine-tune with LoRA, QLoRA or all weights", _finetune))

    s = command("evaluate", "score a model (and adapter) on a dataset split", _evaluate)
    common_flags(s)
    data_flags(s)
    s.add_argument("--adapter_path", default=None)
    s.add_argument("--split", default="test", help='"test" (default), "validation", or a slice like "train[4096:4224]"')
    s.add_argument("--max_samples", type=positive_int, default=None)
    s.add_argument("--max_new_tokens", type=positive_int, default=64)
    s.add_argument("--per_device_eval_batch_size", type=positive_int, default=16)

    for name, help in (("export", "export to ONNX for onnxruntime-genai"),
                       ("auto-opt", "export to ONNX for onnxruntime-genai (Olive's name for export)")):
        export_flags(command(name, help, _export, example="export"))

    s = command("generate-adapter", "one ONNX base + one .onnx_adapter per LoRA adapter", _generate_adapter)
    common_flags(s, model=False)
    s.add_argument("--base_model_path", required=True, help="the model the adapters were trained on")
    s.add_argument("--adapter_paths", type=comma_list, required=True, help="comma-separated adapter folders")
    s.add_argument("--output_path", "-o", required=True)
    s.add_argument("--precision", choices=["fp32", "int4"], default="fp32")
    s.add_argument("--overwrite", action="store_true",
                   help="replace a multi-adapter base of another model or precision in --output_path")

    s = command("chat", "chat with an exported ONNX model (streaming)", _chat)
    s.add_argument("--model_path", required=True)
    s.add_argument("--adapter", default=None,
                   help="with a generate-adapter folder: the adapter to chat with (none: the base model)")
    s.add_argument("--max_new_tokens", type=positive_int, default=128)
    s.add_argument("--log_level", type=int, choices=range(5), default=3)

    s = command("search", "hyperparameter search (Optuna) over finetune's settings, from a YAML/JSON file", _search)
    s.add_argument("--config", required=True, help="search.yaml: finetune's settings plus a search: mapping")

    dpo_flags(command("dpo", "preference tuning (DPO) with LoRA on a file of prompt/chosen/rejected pairs", _dpo))

    s = command("run", "run finetune (or another command) with settings from a YAML/JSON file", _run)
    s.add_argument("--config", required=True, help="run.yaml or run.json")
    return p


def main(argv=None) -> int:
    """Run the `labkit` command; a bad input ends in one clear message and exit code 2, never a traceback."""
    from labkit.onnx.adapter_files import AdapterError
    from labkit.data import DataError
    from labkit.models import ModelNotFoundError

    try:
        args = build_parser().parse_args(argv)
        # a time budget counts from the moment the learner pressed Enter (Python's start-up and imports included),
        # or, called from Python with a list of flags, from the call
        args.started = process_start() if argv is None else time.perf_counter()
        if getattr(args, "log_level", None) is not None:
            set_log_level(args.log_level)
        return args.func(args)
    except (CLIError, DataError, ModelNotFoundError, AdapterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
