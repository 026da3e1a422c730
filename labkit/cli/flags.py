"""The command line's flags and settings files: Olive's flag names, value types whose errors name
their flag, each command's examples, and ``labkit run --config``'s YAML/JSON reading. The
commands themselves are in :mod:`labkit.cli.main`; what finetune reads from its flags (the task, the
TrainConfig, the checked examples) is at the end of this module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labkit.data import Task, check_labels_seen, data_source, note, stratified_sample


DEFAULT_EVAL_SAMPLES = 64           # validation examples of a generation task without --eval_split: quick on a CPU
# A classification task's validation examples without --eval_split: a stratified sample of the validation split this
# large, which picks the checkpoint kept (by macro-F1). The 64 examples used before held 8 of a 12% label, and a
# collapsed checkpoint was kept on them (issue 33: bench/own_data.py).
CLASSIFICATION_EVAL_SAMPLES = 200
# Training flags whose default depends on the task, filled once the data says what the task is (None on the
# parser). A classification task trains for a time budget rather than a step count, so that a larger file gets
# more steps. The old 100 steps at 2e-3, ending on the last checkpoint, collapsed to the majority label on a real
# set of 4,846 financial headlines (issue 33); bench/own_data.py measures these defaults on three imbalanced sets,
# seeds 0-2 (docs/benchmarks.md#your-own-data-at-the-defaults).
TASK_DEFAULTS = {"classification": {"learning_rate": 1e-3},
                 "other": {"max_steps": 50, "learning_rate": 1e-3}}
DEFAULT_TIME_BUDGET = 5.0           # minutes, the whole command: a classification task's default
MAX_PASSES = 3                      # a time budget never trains more passes over the training examples than this
MIN_STEPS = 20                      # nor fewer steps than this, whatever the budget
WARMUP_SHARE = 0.1                  # --warmup_steps default: this share of the steps (at least 5)
FULL_FINETUNE_LEARNING_RATE = 5e-5  # --method full: every weight moves, so LoRA's rates would wreck the model
# --eval_steps default: a validation loss this many times a run. Each evaluation of 64 examples cost about
# 5 s there: 100 steps took 147 s with one every 10 steps, 105 s with 2, 106-113 s with 4.
EVALUATIONS_PER_RUN = 4
PROVIDERS = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
             "DmlExecutionProvider": "dml", "WebGpuExecutionProvider": "webgpu"}


def fill_task_defaults(args, kind: str) -> dict:
    """Set the training flags left unset to the defaults for a ``kind`` task and return the ones set, by
    flag name, for finetune to print: :data:`TASK_DEFAULTS` (a full fine-tune's learning rate:
    :data:`FULL_FINETUNE_LEARNING_RATE`); for a classification task, ``--time_budget``
    :data:`DEFAULT_TIME_BUDGET` unless ``--max_steps`` is set, the best checkpoint kept by validation
    macro-F1 and the rare labels drawn more often (``--balance_classes``). ``--max_steps`` itself, when a
    time budget chooses it, and the flags that follow from it are set later by :func:`fill_step_defaults`."""
    defaults = dict(TASK_DEFAULTS.get(kind, TASK_DEFAULTS["other"]))
    if getattr(args, "method", "lora") == "full":
        defaults["learning_rate"] = FULL_FINETUNE_LEARNING_RATE
    if getattr(args, "time_budget", None) is not None:
        if args.max_steps is not None:
            raise CLIError(f"--max_steps {args.max_steps} and --time_budget {args.time_budget:g}: pass one of them "
                           "(--time_budget chooses the steps that fit in that many minutes).")
        defaults.pop("max_steps", None)
    elif "max_steps" not in defaults and args.max_steps is None:
        defaults["time_budget"] = DEFAULT_TIME_BUDGET
    if kind == "classification":
        defaults.update(load_best_model_at_end=True, balance_classes=True)
    chosen = {name: value for name, value in defaults.items() if getattr(args, name, None) is None}
    for name, value in chosen.items():
        setattr(args, name, value)
    if args.max_steps is not None:
        chosen.update(fill_step_defaults(args))
    return chosen


def fill_step_defaults(args) -> dict:
    """Once ``--max_steps`` is known: ``--eval_steps`` (``--max_steps`` / :data:`EVALUATIONS_PER_RUN`) and
    ``--warmup_steps`` (:data:`WARMUP_SHARE` of the steps, at least 5) where unset; returns the ones set."""
    chosen = {}
    if args.eval_steps is None:
        args.eval_steps = chosen["eval_steps"] = max(1, args.max_steps // EVALUATIONS_PER_RUN)
    if getattr(args, "warmup_steps", 0) is None:
        args.warmup_steps = chosen["warmup_steps"] = max(5, round(WARMUP_SHARE * args.max_steps))
    return chosen


class CLIError(Exception):
    """A bad flag or input on the command line; the message names it. Exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`CLIError` (one message, exit code 2)."""

    def error(self, message):
        raise CLIError(f"{self.prog}: {message} (see `{self.prog} --help`)")


# --- argument types: a bad value names its flag -----------------------------------------------

def _number(text: str, convert, accept, requirement: str):
    """``convert(text)`` if it parses and ``accept`` holds for it, else the flag's error: "must be
    ``requirement``, got ..." (argparse adds the flag's name)."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A flag's value as a whole number > 0 (a typo such as "05" is refused)."""
    # str(text).strip() == str(value): "05" or "+5" is refused, as a typo may hide there
    return _number(text, int, lambda v: v > 0 and str(text).strip() == str(v), "a whole number greater than 0")


def non_negative_int(text: str) -> int:
    """A flag's value as a whole number >= 0."""
    return _number(text, int, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    """A flag's value as a finite number > 0."""
    return _number(text, float, lambda v: 0 < v < float("inf"), "a number greater than 0")


def learning_rate(text: str) -> float:
    """A learning rate: a number > 0 and < 1."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is far too large: use 1e-5..1e-4 for full "
                                         "fine-tuning, 1e-4..2e-3 for LoRA")
    return value


def fraction(text: str) -> float:
    """A share: a number from 0 up to (not including) 1."""
    return _number(text, float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")


def non_negative_float(text: str) -> float:
    """A flag's value as a number >= 0."""
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def boolean(text: str) -> bool:
    """true/false (also 1/0, yes/no, on/off)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def comma_list(text: str) -> list[str]:
    """A comma-separated list with at least one item ("q_proj,v_proj")."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list, got {text!r}")
    return items


# --- run: the same settings from a YAML or JSON file ---------------------------------------

def read_run_config(path: Path) -> dict:
    """A run file: YAML or JSON, one mapping of flag names (without ``--``) to values."""
    if not path.is_file():
        raise CLIError(f"--config {path}: file not found.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            config = json.loads(text)
        else:
            import yaml

            config = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}).") from None
    except Exception as e:  # yaml.YAMLError, with the line in problem_mark
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise CLIError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)}).") from None
    if not isinstance(config, dict):
        raise CLIError(f"{path}: expected a mapping of settings (model_name_or_path: ..., max_steps: ...).")
    return config


def config_to_argv(config: dict, parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """The run file's settings as command-line flags; an unknown key is an error naming it."""
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv = []
    for key, value in config.items():
        if key not in options:
            import difflib

            close = difflib.get_close_matches(str(key).replace("-", "_"), list(options), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CLIError(f"{path}: unknown setting {key!r}.{hint} Known settings: {sorted(options)}.")
        action = options[key]
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise CLIError(f"{path}: {key} must be true or false, got {value!r}.")
            argv += [flag] if value else []
        elif value is not None:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value).lower() \
                if isinstance(value, bool) else str(value)
            argv += [flag, text]
    return argv


def parse_run_config(config: dict, parser: argparse.ArgumentParser, path: Path) -> tuple[list[str], argparse.Namespace]:
    """A run file's settings parsed as ``parser``'s flags: ``(argv, args)``; an error names the file."""
    argv = config_to_argv(config, parser, path)
    try:
        return argv, parser.parse_args(argv)
    except CLIError as e:
        raise CLIError(f"{path}: {str(e).split(': ', 1)[-1]}") from None


# --- the parser ----------------------------------------------------------------------------

def common_flags(s, model=True):
    """The flags every command has: the base model and the log level."""
    if model:
        s.add_argument("--model_name_or_path", "-m", default=None,
                       help="a local model folder, a finetune output's model/ pointer, or a Hugging Face "
                            "id; default: SmolLM2-135M-Instruct (offline)")
    s.add_argument("--trust_remote_code", action="store_true",
                   help="allow a hub model's own Python code (only for models you trust)")
    s.add_argument("--log_level", type=int, choices=range(5), default=3,
                   help="0 debug, 1 info, 2 warning, 3 error (default), 4 critical")


def data_flags(s):
    """The data flags (Olive's): the dataset, its files, the template and the splits."""
    s.add_argument("--data_name", default=None,
                   help="a bundled dataset (tone, recipes, sql), a .jsonl/.json/.csv file, a folder with "
                        "train.jsonl, or a Hugging Face dataset id (where the hub is reachable)")
    s.add_argument("--data_files", "-d", default=None, help="a data file (Olive: --data_name json --data_files FILE)")
    s.add_argument("--text_template", default=None,
                   help='e.g. "{phrase} -> {tone}": your fields, the answer last; \\n is a newline '
                        "(default for a bundled dataset: its own template)")
    s.add_argument("--task_name", choices=["classification", "generation", "text-generation"], default=None,
                   help="classification: label scoring, accuracy, macro-F1, stratified split (default: "
                        "detected, few distinct short answers = classification)")
    s.add_argument("--normalize_labels", type=boolean, default=False,
                   help="true: labels that differ only by case or spaces (joy, Joy, 'joy ') become one label, "
                        "written as the most frequent spelling (default: such labels are an error)")


EXAMPLES = {
    "finetune": """examples:
  labkit finetune --data_name tone --text_template "{phrase} -> {tone}" --method lora --max_steps 50 --output_path models/ft
  labkit finetune --data_name my.csv --text_template "{text} -> {label}" --output_path adapters/mine
  labkit finetune --data_name json --data_files my.jsonl --train_split "train[:4096]" --eval_split "train[4096:4224]" \\
      --text_template "### Question: {prompt} \\n### Answer: {response}" --max_steps 150 --output_path adapters/x

A classification task (few distinct short answers) trains for --time_budget (5 min for the whole
command) unless --max_steps is set, keeps the checkpoint with the best validation macro-F1, draws rare
labels more often (square-root balancing) and warms up over 10% of the steps at 1e-3. The old
defaults (100 steps at 2e-3, the last checkpoint) let a real set of imbalanced headlines collapse to
one label; these gave no collapse on three imbalanced sets, seeds 0-2, in under 5 minutes on the slow
CPU kind (bench/own_data.py; docs/cli.md). It ends with a validation report, and a warning with what
to try when the answers have collapsed.

Split specs use the datasets slice syntax: with a slice (train[:4096]) they read the data's own
splits; a bare name (train, validation) reads labkit's 80/10/10 split (stratified by label).
Writes <output_path>/adapter and <output_path>/model (a pointer to the base, for auto-opt).""",
    "evaluate": """examples:
  labkit evaluate --adapter_path models/ft/adapter --data_name tone
  labkit evaluate --adapter_path adapters/mine/adapter --data_name my.csv --text_template "{text} -> {label}"
A classification task is scored by label scoring: accuracy, macro-F1 and the confusion matrix.""",
    "export": """examples:
  labkit export --adapter_path models/ft/adapter --precision int4 --output_path models/onnx
  labkit auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter --device cpu \\
      --provider CPUExecutionProvider --use_ort_genai --precision int4 --output_path models/onnx""",
    "chat": "examples:\n  labkit chat --model_path models/onnx\n  labkit chat --model_path models/multi-adapter --adapter tone",
    "generate-adapter": """example:
  labkit generate-adapter --base_model_path models/tone/model --adapter_paths models/tone/adapter,models/recipes/adapter \\
      --output_path models/multi-adapter""",
    "run": """example run.yaml (keys are finetune's flag names; `command:` picks another command):
  model_name_or_path: null          # the offline default
  data_name: tone
  text_template: "{phrase} -> {tone}"
  method: lora
  lora_r: 16
  lora_alpha: 32
  target_modules: [q_proj, v_proj]
  max_steps: 50
  learning_rate: 0.001
  output_path: models/ft
then: labkit run --config run.yaml""",
    "search": """example search.yaml (finetune's keys, plus the ranges to search under search:):
  data_name: tickets.csv
  text_template: "{message} -> {team}"
  max_steps: 30
  eval_steps: 10
  output_path: search/tickets      # study.db (resumable) and best.yaml go here
  search:
    n_trials: 8
    sampler: tpe                   # or random
    learning_rate: {low: 1.0e-5, high: 1.0e-3}
    lora_r: [4, 8, 16, 32, 64]
    per_device_train_batch_size: [4, 8, 16]
    lora_dropout: {low: 0.0, high: 0.2}
then: labkit search --config search.yaml   (again, to resume a search that was stopped)""",
    "doctor": """examples:
  labkit doctor
  labkit doctor --slot 20        # the workshop gives each lesson 20 minutes
Predicts each lesson's minutes here from the times recorded by
`python -m labkit.course.runner notebooks --save-times`, scaled by this machine's fp32 matmul peak,
and flags a lesson predicted over the slot.""",
    "prepare": "example:\n  labkit prepare",
    "dpo": """examples:
  labkit dpo --data_files pairs.jsonl --adapter_path models/ft/adapter --output_path models/ft-dpo
  labkit dpo --data_files pairs.csv --beta 0.1 --max_steps 30 --output_path models/dpo

The file has one preference pair per row: prompt, chosen (the better answer), rejected (the worse).
--adapter_path (e.g. a finetune's adapter) is trained further and, frozen, is the reference; without it
a new LoRA adapter starts from the base model, which is then the reference.""",
}


def finetune_flags(s) -> None:
    """``labkit finetune``'s flags (Olive's names)."""
    common_flags(s)
    data_flags(s)
    s.add_argument("--train_split", default=None, help='default "train"; e.g. "train[:4096]"')
    s.add_argument("--eval_split", default=None, help='default "validation"; e.g. "train[4096:4224]"')
    s.add_argument("--method", choices=["lora", "qlora", "full"], default="lora")
    s.add_argument("--lora_r", type=positive_int, default=16)
    s.add_argument("--lora_alpha", type=positive_int, default=32)
    s.add_argument("--lora_dropout", type=fraction, default=0.0)
    s.add_argument("--target_modules", type=comma_list, default=None, help="e.g. q_proj,v_proj (default: all linear layers)")
    s.add_argument("--modules_to_save", type=comma_list, default=None,
                   help="layers trained in full and saved next to the adapter, e.g. lm_head")
    s.add_argument("--max_steps", type=positive_int, default=None,
                   help="default: a classification task trains for --time_budget instead; else 50")
    s.add_argument("--time_budget", type=positive_float, default=None, metavar="MINUTES",
                   help=f"minutes for the whole command: finetune times its first steps, then trains the steps that "
                        f"fit (at most {MAX_PASSES} passes over the data, at least {MIN_STEPS} steps) (default: "
                        f"{DEFAULT_TIME_BUDGET:g} for a classification task unless --max_steps is set)")
    s.add_argument("--learning_rate", type=learning_rate, default=None, help="default: 1e-3 (--method full: 5e-5)")
    s.add_argument("--lr_scheduler_type", choices=["cosine", "linear", "constant", "constant_with_warmup"], default="cosine")
    s.add_argument("--warmup_steps", type=non_negative_int, default=None,
                   help=f"default: {WARMUP_SHARE:.0%}% of the steps, at least 5")
    s.add_argument("--weight_decay", type=non_negative_float, default=0.0)
    s.add_argument("--per_device_train_batch_size", type=positive_int, default=8)
    s.add_argument("--per_device_eval_batch_size", type=positive_int, default=None,
                   help="validation batch size (default: max(train batch, 16))")
    s.add_argument("--gradient_accumulation_steps", type=positive_int, default=1)
    s.add_argument("--gradient_checkpointing", type=boolean, default=None,
                   help="true/false (default: off on CPU, on on GPU)")
    s.add_argument("--group_by_length", type=boolean, default=True,
                   help="true/false: batch examples of similar length (less padding); false: random batches")
    s.add_argument("--torch_dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="auto: float32 on CPU, bf16/fp16 on GPU")
    s.add_argument("--max_seq_len", type=positive_int, default=256, help="longer examples are an error, never cut")
    s.add_argument("--max_samples", type=positive_int, default=None, help="use at most this many training examples")
    s.add_argument("--max_eval_samples", type=positive_int, default=None,
                   help=f"validation examples (default: all of --eval_split, else {CLASSIFICATION_EVAL_SAMPLES} for a "
                        f"classification task, stratified, or {DEFAULT_EVAL_SAMPLES})")
    s.add_argument("--logging_steps", type=positive_int, default=5)
    s.add_argument("--eval_steps", type=positive_int, default=None,
                   help=f"validation loss every N steps (default: max_steps / {EVALUATIONS_PER_RUN})")
    s.add_argument("--save_steps", type=positive_int, default=25)
    s.add_argument("--early_stopping_patience", type=positive_int, default=None)
    s.add_argument("--load_best_model_at_end", type=boolean, default=None,
                   help="true/false: end on the checkpoint with the best validation score (macro-F1 for a "
                        "classification task, else loss) instead of the last (default: true for a classification "
                        "task, else only with early stopping)")
    s.add_argument("--balance_classes", type=boolean, default=None,
                   help="true/false, classification: draw each label's training examples in proportion to the "
                        "square root of its count, so that a rare label is seen more often (default: true)")
    s.add_argument("--report_to", choices=["none", "tensorboard"], default="none")
    s.add_argument("--logging_dir", default=None, help="TensorBoard logs (default: <output_path>/runs)")
    s.add_argument("--seed", type=non_negative_int, default=None, help="default: $LABKIT_SEED, else 0")
    s.add_argument("--output_path", "-o", default=None)
    s.add_argument("--overwrite", action="store_true",
                   help="replace a different run already in --output_path (default: refuse and say what it holds)")


def dpo_flags(s) -> None:
    """``labkit dpo``'s flags: the pairs file, the adapter to start from, DPO's beta and the training flags."""
    common_flags(s)
    s.add_argument("--data_files", "-d", "--data_name", dest="data_files", required=True,
                   help="a .jsonl/.json/.csv file of preference pairs: prompt, chosen, rejected")
    s.add_argument("--adapter_path", default=None,
                   help="the LoRA adapter to start from and to use, frozen, as the reference (default: a new "
                        "adapter on the base model; the base is then the reference)")
    s.add_argument("--beta", type=positive_float, default=0.1,
                   help="how far from the reference the model may move: larger keeps it closer (default 0.1)")
    s.add_argument("--max_steps", type=positive_int, default=30)
    s.add_argument("--learning_rate", type=learning_rate, default=5e-5)
    s.add_argument("--per_device_train_batch_size", type=positive_int, default=4, help="pairs per step")
    s.add_argument("--max_seq_len", type=positive_int, default=256,
                   help="prompt + answer tokens; a longer pair is an error, never cut")
    s.add_argument("--lora_r", type=positive_int, default=16, help="without --adapter_path: the new adapter's rank")
    s.add_argument("--lora_alpha", type=positive_int, default=32)
    s.add_argument("--logging_steps", type=positive_int, default=5)
    s.add_argument("--seed", type=non_negative_int, default=None, help="default: $LABKIT_SEED, else 0")
    s.add_argument("--output_path", "-o", required=True)
    s.add_argument("--overwrite", action="store_true",
                   help="replace a different run already in --output_path (default: refuse and say what it holds)")


def export_flags(s) -> None:
    """``labkit export`` / ``auto-opt``'s flags (Olive's names)."""
    common_flags(s)
    s.add_argument("--adapter_path", default=None, help="a LoRA adapter to merge before export")
    s.add_argument("--precision", choices=["fp32", "fp16", "int4"], default="int4")
    s.add_argument("--device", choices=["cpu", "cuda", "dml", "webgpu"], default=None)
    s.add_argument("--provider", choices=sorted(PROVIDERS), default=None)
    s.add_argument("--use_ort_genai", action="store_true",
                   help="accepted for Olive: labkit always builds for onnxruntime-genai")
    s.add_argument("--output_path", "-o", default=None)
    s.add_argument("--overwrite", action="store_true",
                   help="replace an export of another model, adapter or precision in --output_path")


# --- what finetune reads from its flags ------------------------------------------------------


MIN_TRAIN_EXAMPLES = 8              # fewer: a model only memorises them


def task_from_flags(args) -> Task:
    """The task named by the data flags (:func:`labkit.data.load_task`)."""
    from labkit import data

    return data.load_task(data_source(getattr(args, "data_name", None), getattr(args, "data_files", None)),
                           args.text_template, getattr(args, "task_name", None),
                           getattr(args, "normalize_labels", False))


def train_config(args, kind: str = "other"):
    """Olive's finetune flags as a :class:`labkit.train.TrainConfig` for a ``kind`` task (a classification
    task's best checkpoint is the one with the best validation macro-F1, see :class:`labkit.train.ValidationAccuracy`)."""
    from labkit import env, train

    values = dict(method=args.method, r=args.lora_r, lora_alpha=args.lora_alpha,
                  lora_dropout=args.lora_dropout, learning_rate=args.learning_rate,
                  lr_scheduler_type=args.lr_scheduler_type,
                  warmup_steps=5 if args.warmup_steps is None else args.warmup_steps,
                  weight_decay=args.weight_decay, max_steps=args.max_steps or MIN_STEPS,
                  batch_size=args.per_device_train_batch_size,
                  gradient_accumulation_steps=args.gradient_accumulation_steps,
                  group_by_length=args.group_by_length, max_length=args.max_seq_len, logging_steps=args.logging_steps,
                  eval_steps=args.eval_steps, save_steps=args.save_steps,
                  early_stopping_patience=args.early_stopping_patience, report_to=args.report_to,
                  load_best_model_at_end=getattr(args, "load_best_model_at_end", None),
                  metric_for_best_model="eval_macro_f1" if kind == "classification" else "eval_loss",
                  logging_dir=args.logging_dir, seed=env.seed() if args.seed is None else args.seed,
                  target_modules=args.target_modules or "all-linear",
                  modules_to_save=args.modules_to_save or None,
                  eval_batch_size=args.per_device_eval_batch_size or None,
                  gradient_checkpointing=args.gradient_checkpointing,   # None: the hardware rule
                  dtype=None if args.torch_dtype == "auto" else args.torch_dtype)
    return train.TrainConfig(**values)


def check_hardware_flags(args) -> str:
    """Check --gradient_checkpointing / --torch_dtype against this machine, saying once what a
    choice that differs from labkit's hardware rule (``labkit.env``) costs; returns the device.
    The values themselves go into the TrainConfig (:func:`train_config`)."""
    from labkit import env

    dev = env.device()
    if dev == "cpu" and args.torch_dtype == "float16":
        raise CLIError("--torch_dtype float16: fp16 mixed precision needs a CUDA GPU; on a CPU use "
                       "float32 (the default here) or bfloat16.")
    if dev == "cpu" and args.gradient_checkpointing:
        note("--gradient_checkpointing true on a CPU: each step recomputes the forward pass "
             "(about a third more compute per step) to save memory, which a CPU rarely lacks.")
    if dev == "cpu" and args.torch_dtype == "bfloat16" and not env.native_bf16():
        note("--torch_dtype bfloat16 on a CPU without native bf16 (no avx512_bf16/amx_bf16): bf16 "
             "is emulated, several times slower than float32 (TRL's bf16 defaults measured ~15x "
             "slower per step on such a CPU).")
    elif dev == "cpu" and args.torch_dtype == "bfloat16":
        note("--torch_dtype bfloat16 on a CPU with native bf16: as accurate as float32 over 5 paired seeds, "
             "but a whole tone run was only ~1.05x faster (bench/bf16_vs_fp32.py); float32 is the default.")
    if dev == "cpu" and args.method == "qlora":
        note("--method qlora on a CPU: the 4-bit weights are unpacked at every step, so a step is "
             "slower than LoRA; QLoRA saves GPU memory, which is what it is for.")
    return dev


def training_records(args, task: Task) -> tuple[list[dict], list[dict]]:
    """The training and validation examples the finetune flags select, checked: enough of them, every
    validation label seen in training, and a note when the two splits overlap."""
    train_records = task.split(args.train_split or "train", "--train_split")[: args.max_samples]
    eval_records = task.split(args.eval_split or "validation", "--eval_split")
    if task.kind == "classification":
        eval_cap = args.max_eval_samples or (len(eval_records) if args.eval_split else CLASSIFICATION_EVAL_SAMPLES)
        eval_records = stratified_sample(eval_records, task.target, eval_cap)
    else:
        eval_records = eval_records[:args.max_eval_samples or (None if args.eval_split else DEFAULT_EVAL_SAMPLES)]
    if len(train_records) < MIN_TRAIN_EXAMPLES:
        raise CLIError(f"{task.source}: {len(train_records)} training example(s) (--train_split "
                       f"{args.train_split or 'train'}); fine-tuning needs at least {MIN_TRAIN_EXAMPLES} "
                       "(a few hundred to learn a task well). Add examples.")
    check_labels_seen(task, train_records, {"validation": eval_records})
    overlap = len({id(r) for r in train_records} & {id(r) for r in eval_records})
    if overlap:
        note(f"--train_split and --eval_split share {overlap} examples: the validation loss will look "
             "better than it is.")
    return train_records, eval_records


def model_from_flags(args, cfg, dev: str):
    """The base model and tokenizer as ``labkit finetune`` trains them, for every command that trains
    (finetune, run, search: a search must try the model its best.yaml replays): NF4 for ``--method
    qlora``; fp32 on a CPU (bf16 there is autocast over fp32 weights) and for a full fine-tune (every
    weight is updated: it keeps fp32 weights, mixed precision autocasts over them); the training dtype
    otherwise."""
    import torch

    from labkit import models

    base = models.resolve_model(args.model_name_or_path)
    full_precision = dev == "cpu" or cfg.method == "full"
    return models.load_base(base, quantization="nf4" if cfg.method == "qlora" else None,
                            dtype=torch.float32 if full_precision else cfg.train_dtype(dev),
                            trust_remote_code=args.trust_remote_code)
