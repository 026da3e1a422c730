"""The command line's flags and settings files: Olive's flag names, value types whose errors name
their flag, each command's examples, and ``labkit run --config``'s YAML/JSON reading. The
commands themselves are in :mod:`labkit.cli`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


DEFAULT_EVAL_SAMPLES = 64           # validation examples without --eval_split: eval stays quick on a CPU
# Training flags whose default depends on the task, filled once the data says what the task is
# (None on the parser). A classification CSV of ~2,000 short texts (bench/csv_time_to_accuracy.py,
# 3 labels, 2 cores): 50 steps at 1e-3 reached 0.80 test accuracy, 100 steps at 2e-3 0.88, where
# 85% was the bar; lesson 01 trains its classifier at 2e-3 too.
TASK_DEFAULTS = {"classification": {"max_steps": 100, "learning_rate": 2e-3},
                 "other": {"max_steps": 50, "learning_rate": 1e-3}}
# --eval_steps default: a validation loss this many times a run. Each evaluation of 64 examples cost about
# 5 s there: 100 steps took 147 s with one every 10 steps, 105 s with 2, 106-113 s with 4.
EVALUATIONS_PER_RUN = 4
PROVIDERS = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
             "DmlExecutionProvider": "dml", "WebGpuExecutionProvider": "webgpu"}


def fill_task_defaults(args, kind: str) -> dict:
    """Set the training flags left unset to the defaults for a ``kind`` task (:data:`TASK_DEFAULTS`;
    ``--eval_steps``: ``--max_steps`` / :data:`EVALUATIONS_PER_RUN`) and return the ones set, by flag
    name, for finetune to print."""
    defaults = TASK_DEFAULTS.get(kind, TASK_DEFAULTS["other"])
    chosen = {name: value for name, value in defaults.items() if getattr(args, name) is None}
    for name, value in chosen.items():
        setattr(args, name, value)
    if args.eval_steps is None:
        args.eval_steps = chosen["eval_steps"] = max(1, args.max_steps // EVALUATIONS_PER_RUN)
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
    # str(text).strip() == str(value): "05" or "+5" is refused, as a typo may hide there
    return _number(text, int, lambda v: v > 0 and str(text).strip() == str(v), "a whole number greater than 0")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < float("inf"), "a number greater than 0")


def learning_rate(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is far too large: use 1e-5..1e-4 for full "
                                         "fine-tuning, 1e-4..2e-3 for LoRA")
    return value


def fraction(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def boolean(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def comma_list(text: str) -> list[str]:
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
    if model:
        s.add_argument("--model_name_or_path", "-m", default=None,
                       help="a local model folder, a finetune output's model/ pointer, or a Hugging Face "
                            "id; default: SmolLM2-135M-Instruct (offline)")
    s.add_argument("--trust_remote_code", action="store_true",
                   help="allow a hub model's own Python code (only for models you trust)")
    s.add_argument("--log_level", type=int, choices=range(5), default=3,
                   help="0 debug, 1 info, 2 warning, 3 error (default), 4 critical")


def data_flags(s):
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
  labkit finetune --data_name my.csv --text_template "{text} -> {label}" --max_steps 100 --output_path adapters/mine
  labkit finetune --data_name json --data_files my.jsonl --train_split "train[:4096]" --eval_split "train[4096:4224]" \\
      --text_template "### Question: {prompt} \\n### Answer: {response}" --max_steps 150 --output_path adapters/x

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
`python -m labkit.course notebooks --save-times`, scaled by this machine's fp32 matmul peak,
and flags a lesson predicted over the slot.""",
    "prepare": "example:\n  labkit prepare",
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
                   help="default: 100 for a classification task, else 50")
    s.add_argument("--learning_rate", type=learning_rate, default=None,
                   help="default: 2e-3 for a classification task, else 1e-3")
    s.add_argument("--lr_scheduler_type", choices=["cosine", "linear", "constant", "constant_with_warmup"], default="cosine")
    s.add_argument("--warmup_steps", type=non_negative_int, default=5)
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
                   help=f"validation examples (default: all of --eval_split, else {DEFAULT_EVAL_SAMPLES})")
    s.add_argument("--logging_steps", type=positive_int, default=5)
    s.add_argument("--eval_steps", type=positive_int, default=None,
                   help=f"validation loss every N steps (default: max_steps / {EVALUATIONS_PER_RUN})")
    s.add_argument("--save_steps", type=positive_int, default=25)
    s.add_argument("--early_stopping_patience", type=positive_int, default=None)
    s.add_argument("--report_to", choices=["none", "tensorboard"], default="none")
    s.add_argument("--logging_dir", default=None, help="TensorBoard logs (default: <output_path>/runs)")
    s.add_argument("--seed", type=non_negative_int, default=None, help="default: $LABKIT_SEED, else 0")
    s.add_argument("--output_path", "-o", default=None)
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
