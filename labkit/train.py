"""Fine-tuning through TRL's ``SFTTrainer`` and PEFT, with defaults that fit the hardware.

``finetune()`` trains LoRA, QLoRA or all weights on prompt/completion pairs, computing the
loss on the completion only. What it adds to TRL is small and visible:

- hardware rules (``labkit.env``): fp32 and no gradient checkpointing on a CPU (TRL's defaults,
  bf16 and checkpointing, made a step ~15x slower on an AVX2 CPU; on a CPU with native bf16,
  bf16 trains as well but is hardly faster, see :func:`labkit.env.train_dtype`), bf16/fp16 and
  checkpointing on a GPU;
- on a CPU, the output layer runs on the answer tokens only (``labkit.train``);
- a live loss plot, validation loss at intervals, optional early stopping;
- checkpoints in ``output_dir`` that a re-run resumes from, and the final adapter saved
  atomically with its config and a small model card.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import TrainerCallback
from transformers.utils import ModelOutput
from trl import SFTTrainer

from labkit import env
from labkit.data import check_lengths
from labkit.env import is_main_process, world_size  # noqa: F401  (train.is_main_process: the lessons' name)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# A full fine-tune moves every weight: the source courses' 1e-5..1e-4. LoRA trains a small update from
# zero and needs a larger step (lesson 01 uses 2e-3).
DEFAULT_LEARNING_RATES = {"lora": 1e-3, "qlora": 1e-3, "full": 5e-5}


@dataclass
class TrainConfig:
    """Everything that shapes a run. Printed at the start so a learner sees every default."""

    method: str = "lora"             # "lora" | "qlora" | "full"
    r: int = 16                      # LoRA rank: size of the low-rank update B @ A
    lora_alpha: int = 32             # the update is scaled by alpha / r
    lora_dropout: float = 0.0
    target_modules: str | list = "all-linear"  # or e.g. ["q_proj", "v_proj"]
    learning_rate: float | None = None  # None: 1e-3 for LoRA/QLoRA, 5e-5 for a full fine-tune
                                     # (LoRA tolerates 10x and more the learning rate of full fine-tuning)
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 5
    weight_decay: float = 0.0
    max_steps: int = 50
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    group_by_length: bool = True     # batch examples of similar length: less padding, faster steps
    max_length: int = 256            # tokens; longer examples are an error (see data.check_lengths)
    logging_steps: int = 5
    eval_steps: int | None = 10      # validation loss every N steps (None: never)
    save_steps: int = 25             # checkpoint every N steps (resume from the last one)
    save_only_model: bool = False    # checkpoints hold the weights only, not the optimizer state:
                                     # a third of the size, enough to restore the best one, but a
                                     # resumed run restarts its optimizer
    early_stopping_patience: int | None = None  # evals without improvement before stopping
    load_best_model_at_end: bool | None = None  # restore the best-validation checkpoint at the end
                                     # (None: yes when early stopping is on)
    metric_for_best_model: str = "eval_loss"  # what "best" means for early stopping and restoring;
                                     # "eval_accuracy" needs the ValidationAccuracy callback
    optim: str | None = None         # None: "paged_adamw_8bit" for QLoRA on a GPU, else "adamw_torch"
    report_to: str = "none"          # "tensorboard": write TensorBoard event files too
    logging_dir: str | None = None   # where TensorBoard logs go (default: output_dir/runs)
    seed: int = field(default_factory=env.seed)  # $LABKIT_SEED, 0 unless set
    # None: labkit's hardware rule (labkit.env): fp32 and no checkpointing on CPU, bf16/fp16 and
    # checkpointing on a GPU. Set them to override the rule for one run.
    dtype: str | None = None         # "float32" | "bfloat16" | "float16" (mixed precision)
    gradient_checkpointing: bool | None = None  # recompute activations: less memory, more compute
    eval_batch_size: int | None = None  # None: max(batch_size, 16)
    modules_to_save: list | None = None  # layers trained and saved in full next to LoRA (e.g. ["lm_head"])
    answer_only_logits: bool = True  # CPU: run the output layer on answer tokens only (labkit.train);
                                     # False: TRL's loss, which scores every position on a CPU

    def __post_init__(self):
        if self.method not in ("lora", "qlora", "full"):
            raise ValueError(f"method={self.method!r}: use 'lora', 'qlora' or 'full'.")
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.method]
        if self.report_to not in ("none", "tensorboard"):
            raise ValueError(f"report_to={self.report_to!r}: use 'none' or 'tensorboard'.")
        if self.dtype not in (None, *DTYPES):
            raise ValueError(f"dtype={self.dtype!r}: use one of {sorted(DTYPES)} or None (the hardware rule).")

    def train_dtype(self, dev: str | None = None) -> torch.dtype:
        """The training dtype: ``dtype`` if set, else the hardware rule (:func:`labkit.env.train_dtype`)."""
        return DTYPES[self.dtype] if self.dtype else env.train_dtype(dev)

    def uses_gradient_checkpointing(self, dev: str | None = None) -> bool:
        """``gradient_checkpointing`` if set, else the hardware rule (:func:`labkit.env.use_gradient_checkpointing`)."""
        if self.gradient_checkpointing is None:
            return env.use_gradient_checkpointing(dev)
        return self.gradient_checkpointing

    def optimizer(self, dev: str | None = None) -> str:
        """``optim`` if set, else the rule: QLoRA on a GPU uses 8-bit AdamW in paged memory (the
        QLoRA paper's recipe: optimizer state 4x smaller, and it spills to CPU RAM instead of
        failing at a memory spike); everything else plain AdamW (bitsandbytes' paged optimizers
        need CUDA)."""
        if self.optim:
            return self.optim
        return "paged_adamw_8bit" if self.method == "qlora" and (dev or env.device()) == "cuda" else "adamw_torch"

    @property
    def restores_best(self) -> bool:
        """Whether the run ends by loading its best-validation checkpoint."""
        if self.load_best_model_at_end is None:
            return bool(self.early_stopping_patience)
        return self.load_best_model_at_end

    def checkpoint_every(self) -> int:
        """Steps between checkpoints. Restoring the best model needs a checkpoint at every
        evaluation, so then it is ``eval_steps``; otherwise ``save_steps``."""
        if self.restores_best and self.eval_steps:
            return self.eval_steps
        return self.save_steps


@dataclass
class TrainResult:
    """What :func:`finetune` returns: the model, where it saved, and what the run measured."""
    model: object                    # the trained model (a PeftModel for lora/qlora)
    output_dir: Path                 # checkpoints and logs
    adapter_dir: Path                # the saved adapter (or full model)
    history: list = field(default_factory=list)  # the trainer's log: loss, eval_loss per step
    train_seconds: float = 0.0
    trained_tokens: int = 0          # completion + prompt tokens processed, padding excluded
    reused: bool = False             # True when a finished run with the same inputs was loaded
    steps: int = 0                   # optimizer steps actually trained (early stopping: fewer)
    best_step: int | None = None     # the step whose checkpoint was restored, if one was

    @property
    def losses(self):
        return [(h["step"], h["loss"]) for h in self.history if "loss" in h]

    @property
    def eval_losses(self):
        return [(h["step"], h["eval_loss"]) for h in self.history if "eval_loss" in h]


def lora_config(cfg: TrainConfig):
    """The PEFT ``LoraConfig`` for a run: rank, alpha, dropout and which layers get adapters."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, modules_to_save=cfg.modules_to_save,
                      task_type="CAUSAL_LM", bias="none")


def add_lora(model, cfg: TrainConfig):
    """Freeze the base and add LoRA adapters (for QLoRA, first prepare the 4-bit model)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.uses_gradient_checkpointing())
        _keep_4bit_trainable(model)
    return get_peft_model(model, lora_config(cfg))


def trainer_class(cfg: TrainConfig, dev: str | None = None):
    """The trainer ``finetune`` builds: TRL's ``SFTTrainer``, or on a CPU (with
    ``answer_only_logits``) its subclass that runs the output layer on the answer tokens only.
    On a GPU TRL's own fused LM head already does that."""
    from trl import SFTTrainer

    if cfg.answer_only_logits and (dev or env.device()) == "cpu":
        return AnswerOnlySFTTrainer
    return SFTTrainer


def training_attention(dtype: torch.dtype, dev: str | None = None) -> str | None:
    """The attention kernel to train with, or None to keep the model's. On a CPU in bf16,
    PyTorch's fused (SDPA) attention has a slow backward pass: plain ("eager") attention made
    a step 1.1-1.25x faster (``bench/train_throughput.py``). In fp32 the two ran the same."""
    return "eager" if (dev or env.device()) == "cpu" and dtype == torch.bfloat16 else None


def sft_config(cfg: TrainConfig, output_dir: Path, has_eval: bool):
    """Translate a TrainConfig into TRL's ``SFTConfig`` with the hardware rules applied."""
    from trl import SFTConfig

    dev = env.device()
    dtype = cfg.train_dtype(dev)
    evaluate = bool(has_eval and cfg.eval_steps)
    restore_best = evaluate and cfg.restores_best
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or max(cfg.batch_size, 16),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        optim=cfg.optimizer(dev),
        max_length=cfg.max_length,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        completion_only_loss=True,           # loss on the answer, not on the prompt
        packing=False,
        bf16=dtype == torch.bfloat16,         # TRL defaults to bf16=True, even on CPU
        fp16=dtype == torch.float16,
        activation_checkpointing=cfg.uses_gradient_checkpointing(dev),  # TRL defaults to True; the
                                              # old name gradient_checkpointing warns in transformers 5
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=cfg.eval_steps if evaluate else None,
        save_strategy="steps",
        save_steps=cfg.checkpoint_every() if restore_best else cfg.save_steps,
        save_total_limit=2,                   # the best checkpoint is always kept as well
        save_only_model=cfg.save_only_model,
        load_best_model_at_end=restore_best,
        metric_for_best_model=cfg.metric_for_best_model if evaluate else None,
        greater_is_better=(not cfg.metric_for_best_model.endswith("loss")) if evaluate else None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",                     # TensorBoard is added as a callback (see finetune)
        include_num_input_tokens_seen="non_padding",  # trained tokens, padding excluded
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,     # data parallel: every trainable weight gets a gradient
        dataset_num_proc=None,
        use_cpu=dev == "cpu",
    )


def _write_model_card(adapter_dir: Path, cfg: TrainConfig, base: str, result: dict) -> None:
    lines = [f"# {adapter_dir.parent.name}", "",
             f"A {cfg.method.upper()} fine-tune of `{base}` made with Fine-Tuning Lab's labkit.", "",
             "## Training config", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in dataclasses.asdict(cfg).items()]
    lines += ["", "## Result", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result.items()]
    (adapter_dir / "README.md").write_text("\n".join(lines) + "\n")


def finetune(model, tokenizer, train_pairs, eval_pairs=None, config: TrainConfig | None = None,
             output_dir: str | os.PathLike | None = None, resume: bool = True, reuse: bool = False,
             live_plot: bool = True, callbacks=(), verbose: bool = True, overwrite: bool = True) -> TrainResult:
    """Fine-tune ``model`` on prompt/completion pairs and save the result.

    - ``train_pairs`` / ``eval_pairs``: lists of ``{"prompt", "completion"}`` dicts (see
      ``labkit.data.to_prompt_completion``); loss is computed on the completion only.
    - ``output_dir``: checkpoints go to ``output_dir/checkpoint-N``, the final adapter (or
      model, for ``method="full"``) to ``output_dir/adapter``. Defaults to a folder named
      after the run's fingerprint under ``$LABKIT_HOME/runs``.
    - ``resume``: continue from the newest checkpoint in ``output_dir`` if there is one.
    - ``reuse``: if ``output_dir/adapter`` holds a finished run with the same fingerprint
      (config, data, base model), load it instead of training again.
    - ``overwrite``: False refuses (:class:`RunConflictError`) to train into an ``output_dir``
      that holds another run (another fingerprint), finished or not, instead of replacing it.
      The command line passes False unless ``--overwrite`` is given.
    """
    from labkit.cache import labkit_home
    from labkit.models import weights_fingerprint

    cfg = config or TrainConfig()
    main = is_main_process()
    verbose = verbose and main  # under accelerate/torchrun only the main process prints
    base_name = str(getattr(model.config, "_name_or_path", "model"))
    base_weights = weights_fingerprint(base_name)        # None for a hub id or a model built in memory
    fp = fingerprint(cfg, train_pairs, base_name, eval_pairs, tokenizer, callbacks, base_weights)
    output_dir = Path(output_dir or labkit_home() / "runs" / f"{cfg.method}-{fp}")
    adapter_dir = output_dir / "adapter"
    if not overwrite and main:
        refuse_another_run(output_dir, fp)
    if reuse and (adapter_dir / "labkit_run.json").is_file():
        info = json.loads((adapter_dir / "labkit_run.json").read_text())
        if info.get("fingerprint") == fp:
            if verbose:
                print(f"Reusing the finished run in {adapter_dir} (same config, data and base).")
            return _load_finished(model, cfg, output_dir, adapter_dir, info)
    if verbose:
        _say_what_runs(model, cfg, output_dir)
    check_lengths(train_pairs, tokenizer, cfg.max_length)   # TRL would silently cut off over-long answers
    if eval_pairs:
        check_lengths(eval_pairs, tokenizer, cfg.max_length)
    if cfg.early_stopping_patience and not (eval_pairs and cfg.eval_steps):
        raise ValueError("early_stopping_patience needs validation data (eval_pairs) and eval_steps: "
                         "early stopping watches the validation loss.")
    trainer = _trainer(_model_to_train(model, cfg), tokenizer, cfg, output_dir, train_pairs, eval_pairs,
                       callbacks, live_plot)
    checkpoint = _prepare_output_dir(trainer, output_dir, fp, resume, verbose)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    model = trainer.model
    model.eval()
    history = [dict(h) for h in trainer.state.log_history]
    final = _run_summary(trainer, history, seconds, len(train_pairs), verbose)
    if main:  # one adapter, model card and run record, written by the main process
        _save_atomically(model, tokenizer, adapter_dir, cfg, base_name, fp, history, final, base_weights)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(model=model, output_dir=output_dir, adapter_dir=adapter_dir,
                       history=history, train_seconds=seconds, trained_tokens=int(trainer.state.num_input_tokens_seen or 0),
                       steps=trainer.state.global_step, best_step=final.get("best_step"))


def _say_what_runs(model, cfg: TrainConfig, output_dir: Path) -> None:
    """Print the run's method, device, dtype, every config value, the memory estimate and (data
    parallel) the global batch: what a learner should see before the first step."""
    print(f"{cfg.method.upper()} fine-tuning on {env.device()} "
          f"({str(cfg.train_dtype()).replace('torch.', '')}, gradient checkpointing "
          f"{'on' if cfg.uses_gradient_checkpointing() else 'off'}), output: {output_dir}")
    print("config:", {k: v for k, v in dataclasses.asdict(cfg).items()})
    _print_memory_estimate(model.config, cfg)
    if world_size() > 1:
        print(f"data parallel: {world_size()} processes; global batch {global_batch_size(cfg)} = "
              f"{cfg.batch_size} per process x {world_size()} processes x "
              f"{cfg.gradient_accumulation_steps} accumulation steps")


def _model_to_train(model, cfg: TrainConfig):
    """The model the trainer updates: LoRA layers added to a *copy* of ``model`` (PEFT injects
    them in place, and the caller's base model must stay the base model: re-running a cell
    starts afresh), a copy for a full fine-tune, or ``model`` itself when it is already a PEFT model."""
    if cfg.method in ("lora", "qlora") and not _is_peft(model):
        from transformers import set_seed

        set_seed(cfg.seed)  # LoRA's A matrices start random: the same seed, the same run
        model = add_lora(_use_training_attention(_copy_model(model), cfg), cfg)
    elif cfg.method == "full":
        # every weight is updated: keep an fp32 copy (mixed precision autocasts over it) rather than
        # update bf16/fp16 weights in place, whose small updates round away with no fp32 master copy
        model = _use_training_attention(_copy_model(model), cfg).float()
    model.train()
    return model


def training_examples(pairs, tokenizer) -> list[dict]:
    """The pairs as TRL gets them: a text prompt that starts with the BOS (a chat template writes its
    own) loses it when the tokenizer adds one itself (Llama 3's and Mistral's do), so the model trains
    on one BOS, as :func:`labkit.evaluate.prompt_ids` scores it, not two."""
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    if not adds_bos:
        return list(pairs)
    return [{**p, "prompt": p["prompt"][len(bos):]} if isinstance(p["prompt"], str) and p["prompt"].startswith(bos)
            else p for p in pairs]


def _trainer(model, tokenizer, cfg: TrainConfig, output_dir: Path, train_pairs, eval_pairs, callbacks, live_plot):
    """TRL's trainer (:func:`trainer_class`) for this run, with its callbacks: the caller's, the
    live plot, early stopping and TensorBoard as the config asks."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    from labkit.plots import LiveLossPlot

    cbs = list(callbacks)
    if live_plot:
        cbs.append(LiveLossPlot())
    if eval_pairs and cfg.early_stopping_patience:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    if cfg.report_to == "tensorboard":
        cbs.append(tensorboard_callback(cfg.logging_dir or output_dir / "runs"))
    _quiet_dataset_maps()
    trainer = trainer_class(cfg)(
        model=model, args=sft_config(cfg, output_dir, has_eval=bool(eval_pairs)), processing_class=tokenizer,
        train_dataset=Dataset.from_list(training_examples(train_pairs, tokenizer)),
        eval_dataset=Dataset.from_list(training_examples(eval_pairs, tokenizer)) if eval_pairs else None,
        callbacks=cbs,
    )
    if cfg.method == "qlora":
        _adapter_dtype_follows_hardware(trainer.model, cfg.train_dtype())
    return trainer


def _prepare_output_dir(trainer, output_dir: Path, fp: str, resume: bool, verbose: bool) -> str | None:
    """The checkpoint to resume from (``resume`` and one of this run's), else None; a fresh run
    clears old checkpoints. The main process writes the run's fingerprint before the others go on."""
    main = is_main_process()
    with trainer.accelerator.main_process_first():  # the main process clears stale checkpoints first
        checkpoint = resumable_checkpoint(output_dir, fp, verbose) if resume else None
        if not resume and output_dir.is_dir() and main:
            for old in output_dir.glob("checkpoint-*"):  # a fresh run: old checkpoints are not ours
                shutil.rmtree(old, ignore_errors=True)
        if main:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / RUN_FINGERPRINT).write_text(fp)
    if checkpoint and verbose:
        print(f"Resuming from {checkpoint}")
    return checkpoint


def _run_summary(trainer, history: list[dict], seconds: float, n_train: int, verbose: bool) -> dict:
    """What ``labkit_run.json`` records of a finished run: steps, seconds, examples, the restored
    checkpoint (if the best one was loaded), the last training loss and the best validation loss."""
    final = {"steps": trainer.state.global_step, "train_seconds": round(seconds, 1), "train_examples": n_train}
    if trainer.state.best_model_checkpoint and trainer.args.load_best_model_at_end:
        final["restored_checkpoint"] = Path(trainer.state.best_model_checkpoint).name
        final["best_step"] = trainer.state.best_global_step
        if verbose:
            print(f"Restored the best checkpoint: {final['restored_checkpoint']} "
                  f"(validation loss {trainer.state.best_metric:.4f})")
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    if losses:
        final["last_train_loss"] = round(losses[-1], 4)
    if evals:
        final["best_eval_loss"] = round(min(evals), 4)
    return final


def _print_memory_estimate(model_config, cfg: TrainConfig) -> None:
    """One line: :func:`labkit.train.training_memory_gb` for this run (skipped for a model
    whose config lacks the sizes it reads: an estimate never stops a run)."""

    try:
        estimate = training_memory_gb(model_config, cfg)
    except (AttributeError, TypeError, KeyError):
        return
    print("memory estimate (labkit.train.training_memory_gb, at max_length): "
          + ", ".join(f"{k} {v:.2f} GB" for k, v in estimate.items()))


def global_batch_size(cfg: TrainConfig) -> int:
    """Examples per optimizer step across all processes: per-process batch x processes x
    gradient accumulation steps. Data parallelism keeps it when processes are added only if
    the per-process batch or the accumulation shrinks by the same factor."""
    return cfg.batch_size * world_size() * cfg.gradient_accumulation_steps


def _is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _copy_model(model):
    """A deep copy of a model (weights included) that training can change freely."""
    import copy

    return copy.deepcopy(model)


def _use_training_attention(model, cfg: TrainConfig):
    """Switch a (copied) model to the attention kernel that trains fastest here
    (:func:`training_attention`); the results are the same."""
    attention = training_attention(cfg.train_dtype())
    if attention and getattr(model.config, "_attn_implementation", None) != attention:
        model.set_attn_implementation(attention)
    return model


def tensorboard_callback(log_dir):
    """A trainer callback that writes TensorBoard event files to ``log_dir`` (open them with
    ``tensorboard --logdir`` or ``%tensorboard --logdir`` in a notebook)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        raise ImportError("report_to='tensorboard' needs the tensorboard package: "
                          "pip install tensorboard") from None
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def _adapter_dtype_follows_hardware(model, dtype: torch.dtype) -> None:
    """TRL casts the trainable (LoRA) weights of a quantised model to bf16, whatever the
    hardware. Where bf16 is not the training dtype (CPU: no native bf16, a step ~2x slower;
    fp16 GPUs such as the T4: mixed precision wants fp32 master weights) keep them in fp32.
    Called after the trainer is built and before it creates its optimizer."""
    if dtype == torch.bfloat16:
        return  # the QLoRA paper's recipe: bf16 adapters on a bf16-capable GPU
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def _save_atomically(model, tokenizer, adapter_dir: Path, cfg, base_name, fp, history, final, base_weights=None):
    """Save to a temporary folder, then move it into place (:func:`labkit.cache.atomic_dir`):
    an interrupted or failed save never leaves a folder that looks like a finished adapter, the
    previous adapter stays until the new one is in place, and two processes take turns."""
    from labkit.cache import atomic_dir

    with atomic_dir(adapter_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_model_card(tmp, cfg, base_name, final)
        (tmp / "labkit_run.json").write_text(json.dumps(
            {"fingerprint": fp, "base_model": base_name, "base_weights": base_weights,
             "config": dataclasses.asdict(cfg), "result": final, "history": history}, indent=1, default=str))


def _quiet_dataset_maps() -> None:
    """TRL prepares the data with four ``datasets.map`` passes (add EOS, tokenise, labels,
    truncate), each with its own progress bar per split: eight bars that flash by for a few
    hundred short examples and bury the training output. Turn the datasets library's bars off
    (the training progress bar is the trainer's own and stays)."""
    from datasets.utils.tqdm import disable_progress_bars

    disable_progress_bars()


def _keep_4bit_trainable(model) -> None:
    """QLoRA on a CPU with AVX512-BF16: stop bitsandbytes from sending the 4-bit layers to its
    inference-only kernel, which has no backward pass (see
    :func:`labkit.models.keep_4bit_weights_trainable`)."""
    from labkit.models import keep_4bit_weights_trainable

    keep_4bit_weights_trainable(model)


def _load_finished(model, cfg, output_dir, adapter_dir, info) -> TrainResult:
    if cfg.method == "full":
        from transformers import AutoModelForCausalLM

        trained = AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=model.dtype).to(model.device)
    else:
        from peft import PeftModel

        base = model if _is_peft(model) else _copy_model(model)  # the caller's model stays the base
        trained = PeftModel.from_pretrained(base, adapter_dir)
    trained.eval()
    result = info["result"]
    return TrainResult(model=trained, output_dir=output_dir, adapter_dir=adapter_dir,
                       history=info.get("history", []), train_seconds=result.get("train_seconds", 0.0),
                       reused=True, steps=result.get("steps", 0), best_step=result.get("best_step"))


def count_parameters(model) -> dict:
    """Trainable and total parameter counts, and the trainable share in percent."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "trainable_%": round(100 * trainable / total, 3)}


class ValidationAccuracy(TrainerCallback):
    """A trainer callback that label-scores validation prompts at every evaluation and adds
    ``eval_accuracy`` and ``eval_macro_f1`` to the log next to ``eval_loss`` (one forward pass per prompt).

    It changes what the run logs (and, with ``metric_for_best_model="eval_macro_f1"`` or
    ``"eval_accuracy"``, which checkpoint is kept), so it is part of the run's fingerprint."""

    changes_the_run = True

    def __init__(self, tokenizer, prompts, golds, labels, prefix=" "):
        self.tokenizer, self.prompts, self.golds = tokenizer, list(prompts), list(golds)
        self.labels, self.prefix = list(labels), prefix
        self.predictions: dict[int, list[str]] = {}   # step -> the answers scored there

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        from labkit import evaluate

        was_training = model.training
        model.eval()
        predicted = evaluate.classify(model, self.tokenizer, self.prompts, self.labels, self.prefix)
        if was_training:
            model.train()
        self.predictions[state.global_step] = predicted
        report = evaluate.classification_report(self.golds, predicted, self.labels)
        scores = {"eval_accuracy": report["accuracy"], "eval_macro_f1": report["macro_f1"]}
        if state.log_history and "eval_loss" in state.log_history[-1]:
            state.log_history[-1].update(scores)
        if metrics is not None:
            metrics.update(scores)


class _StepClock(TrainerCallback):
    """Seconds each training step took (for :func:`seconds_per_step`)."""

    def __init__(self):
        self.seconds, self._start = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def seconds_per_step(model, tokenizer, train_pairs, config: TrainConfig, steps: int = 3) -> float:
    """Seconds one training step of ``config`` takes on this machine: the median of ``steps`` steps
    of a throwaway run (after one warm-up step) on a copy of ``model``, with the trainer, batch and
    loss the real run uses, in a temporary folder. ``model`` and ``config`` are unchanged.
    ``labkit finetune --time_budget`` chooses its steps from it."""
    import statistics
    import tempfile

    probe = dataclasses.replace(config, max_steps=steps + 1, eval_steps=None, save_steps=10**9,
                                early_stopping_patience=None, load_best_model_at_end=False, report_to="none")
    clock = _StepClock()
    pairs = list(train_pairs)[: (steps + 1) * config.batch_size * config.gradient_accumulation_steps]
    copy = _copy_model(model) if _is_peft(model) else model   # _model_to_train copies a base itself
    with tempfile.TemporaryDirectory(prefix="labkit-step-clock-") as tmp:
        trainer = _trainer(_model_to_train(copy, probe), tokenizer, probe, Path(tmp), pairs, None, [clock], False)
        trainer.train()
    return statistics.median(clock.seconds[1:] or clock.seconds)


# --------------------------------------------------------------------------- beyond imitation: DPO and GRPO
# Two thin functions over TRL that start from a LoRA adapter (usually an SFT one) and train it on
# further: ``dpo`` on preference pairs, ``grpo`` on rewards a program computes from sampled answers.
# Both follow finetune's hardware rules (fp32 and no checkpointing on a CPU, see labkit.env), and
# both keep the starting adapter as the *reference* without a second model: TRL copies it into a
# frozen adapter named "ref" on the same base and switches to it for the reference's log-probs
# (PEFT adapter switching). They share finetune's fingerprint, reuse and refusal to overwrite; they
# save no intermediate checkpoints (runs of a few minutes), so an interrupted run starts over.
@dataclass
class RLResult(TrainResult):
    """What :func:`grpo` returns: a :class:`TrainResult` plus the rewards and generation counts."""
    rewards: list = field(default_factory=list)     # per step: every sampled answer's total reward, group by group
    generated_tokens: int = 0                        # answer tokens sampled during training
    last_batch: dict = field(default_factory=dict)   # TRL's log of the last batch: "rewards", "advantages"


def trl_arguments(cfg: TrainConfig, output_dir: Path) -> dict:
    """The TRL/Trainer arguments DPO and GRPO share with finetune, with labkit's hardware rules
    (dtype, gradient checkpointing, optimizer) applied; TRL's own defaults are bf16 and checkpointing."""
    dev = env.device()
    dtype = cfg.train_dtype(dev)
    return dict(output_dir=str(output_dir), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
                gradient_accumulation_steps=cfg.gradient_accumulation_steps, lr_scheduler_type=cfg.lr_scheduler_type,
                warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, optim=cfg.optimizer(dev),
                bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16,
                activation_checkpointing=cfg.uses_gradient_checkpointing(dev), logging_steps=cfg.logging_steps,
                save_strategy="no", report_to="none", seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=0,
                use_cpu=dev == "cpu", disable_dropout=True)


def policy_from_adapter(model, adapter_dir=None, cfg: TrainConfig | None = None):
    """The model DPO and GRPO train: a copy of ``model`` (the base stays the base) with the LoRA
    adapter in ``adapter_dir`` loaded *trainable* as "default", or a fresh LoRA adapter from ``cfg``."""
    from peft import PeftModel
    from transformers import set_seed

    cfg = cfg or TrainConfig()
    set_seed(cfg.seed)
    copy = _use_training_attention(_copy_model(model), cfg)
    if adapter_dir is None:
        return add_lora(copy, cfg)
    return PeftModel.from_pretrained(copy, str(adapter_dir), is_trainable=True)


def dpo_trainer(model, tokenizer, pairs, adapter_dir=None, config: TrainConfig | None = None, beta: float = 0.1,
                output_dir=None):
    """TRL's ``DPOTrainer`` for ``pairs`` (``{"prompt", "chosen", "rejected"}`` dicts) on a copy of
    ``model`` with the adapter in ``adapter_dir`` trainable (:func:`policy_from_adapter`). The reference
    is the same adapter, frozen: TRL copies it into an adapter named "ref" (no second model)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    cfg = config or TrainConfig()
    args = DPOConfig(**trl_arguments(cfg, Path(output_dir or labkit_home_runs("dpo"))), beta=beta,
                     per_device_train_batch_size=cfg.batch_size, max_length=cfg.max_length,
                     loss_type=["sigmoid"], precompute_ref_log_probs=False)
    _quiet_dataset_maps()
    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in training_pairs_for(pairs, tokenizer)]
    return DPOTrainer(model=policy_from_adapter(model, adapter_dir, cfg), args=args, processing_class=tokenizer,
                      train_dataset=Dataset.from_list(rows))


def labkit_home_runs(method: str) -> Path:
    """A default output folder for a ``method`` run under ``$LABKIT_HOME/runs``."""
    from labkit.cache import labkit_home

    return labkit_home() / "runs" / method


def training_pairs_for(pairs, tokenizer) -> list[dict]:
    """Preference pairs as TRL gets them: one BOS, as :func:`training_examples` does for SFT."""
    text = [{"prompt": p["prompt"], "completion": ""} for p in pairs]
    prompts = [t["prompt"] for t in training_examples(text, tokenizer)]
    return [{**p, "prompt": q} for p, q in zip(pairs, prompts)]


def _rl_fingerprint(method: str, cfg: TrainConfig, data, model, tokenizer, adapter_dir, extra: dict) -> str:
    """finetune's fingerprint of (config, data, base, tokenizer, versions), plus the method, its own
    settings and the starting adapter's weights: equal inputs, equal run."""
    from labkit.models import weights_fingerprint

    base_name = str(getattr(model.config, "_name_or_path", "model"))
    base_fp = fingerprint(cfg, data, base_name, None, tokenizer, (), weights_fingerprint(base_name))
    start = None
    if adapter_dir is not None:
        weights = sorted(Path(adapter_dir).glob("adapter_model.*"))
        start = hashlib.sha256(b"".join(w.read_bytes() for w in weights)).hexdigest()[:16]
    text = json.dumps({"method": method, "base": base_fp, "start": start, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finished_run(output_dir: Path, fp: str, reuse: bool, overwrite: bool, model):
    """For dpo/grpo: refuse another run's folder (``overwrite=False``), or load this run's finished
    adapter onto a copy of ``model`` (``reuse``); None when the run has to train."""
    if not overwrite:
        refuse_another_run(output_dir, fp)
    run_file = output_dir / "adapter" / "labkit_run.json"
    if reuse and run_file.is_file():
        info = json.loads(run_file.read_text())
        if info.get("fingerprint") == fp:
            from peft import PeftModel

            trained = PeftModel.from_pretrained(_copy_model(model), output_dir / "adapter").eval()
            return info, trained
    return None


def _train_and_save(trainer, tokenizer, cfg, output_dir: Path, fp: str, n_examples: int, verbose: bool,
                    record: dict | None = None):
    """Train ``trainer`` (DPO or GRPO), drop TRL's frozen "ref" adapter, save the trained adapter
    atomically with finetune's run record (plus ``record``, filled during training); returns
    ``(model, history, seconds, final)``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RUN_FINGERPRINT).write_text(fp)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model = trainer.model
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")             # the frozen reference copy: not part of the result
    model.eval()
    history = [dict(h) for h in trainer.state.log_history]
    final = {**_run_summary(trainer, history, seconds, n_examples, verbose), **(record or {})}
    base_name = str(getattr(model.config, "_name_or_path", "model"))
    _save_atomically(model, tokenizer, output_dir / "adapter", cfg, base_name, fp, history, final)
    return model, history, seconds, final


def dpo(model, tokenizer, pairs, adapter_dir=None, config: TrainConfig | None = None, beta: float = 0.1,
        output_dir=None, reuse: bool = False, overwrite: bool = True, verbose: bool = True) -> TrainResult:
    """Direct Preference Optimization with LoRA: train the adapter in ``adapter_dir`` (e.g. an SFT
    run's ``adapter_dir``) on ``pairs`` so that, against the frozen starting adapter (the reference),
    chosen answers gain log-probability relative to rejected ones. The loss per pair is TRL's
    ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))`` (p: policy, r: reference, c/r: chosen/rejected
    summed log-probs); ``beta * (p - r)`` is the *implicit reward* logged as ``rewards/*``.

    Same hardware rules, fingerprint, ``reuse`` and ``overwrite`` as :func:`finetune`; the adapter
    is saved to ``output_dir/adapter``."""
    cfg = config or TrainConfig(learning_rate=5e-5)
    output_dir = Path(output_dir or labkit_home_runs("dpo"))
    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    fp = _rl_fingerprint("dpo", cfg, rows, model, tokenizer, adapter_dir, {"beta": beta})
    done = _finished_run(output_dir, fp, reuse, overwrite, model)
    if done:
        info, trained = done
        if verbose:
            print(f"Reusing the finished DPO run in {output_dir / 'adapter'} (same pairs, config and start).")
        return TrainResult(model=trained, output_dir=output_dir, adapter_dir=output_dir / "adapter",
                           history=info["history"], train_seconds=info["result"]["train_seconds"], reused=True,
                           steps=info["result"]["steps"], trained_tokens=_last(info["history"], "num_tokens"))
    trainer = dpo_trainer(model, tokenizer, rows, adapter_dir, cfg, beta, output_dir)
    trained, history, seconds, final = _train_and_save(trainer, tokenizer, cfg, output_dir, fp, len(rows), verbose)
    return TrainResult(model=trained, output_dir=output_dir, adapter_dir=output_dir / "adapter", history=history,
                       train_seconds=seconds, trained_tokens=_last(history, "num_tokens"), steps=trainer.state.global_step)


def recorded_rewards(reward_funcs, log: list):
    """Wrap TRL reward functions so that each call appends its batch's total rewards (the sum over
    the functions, in TRL's order: the ``G`` answers of one prompt next to each other) to ``log``."""
    pending = []

    def wrap(func, is_last):
        def reward(prompts, completions, **kwargs):
            values = [float(v) for v in func(prompts=prompts, completions=completions, **kwargs)]
            pending.append(values)
            if is_last:
                log.append([sum(vs) for vs in zip(*pending)])
                pending.clear()
            return values
        reward.__name__ = getattr(func, "__name__", "reward")
        return reward

    return [wrap(f, i == len(reward_funcs) - 1) for i, f in enumerate(reward_funcs)]


def grpo_trainer(model, tokenizer, prompts, reward_funcs, adapter_dir=None, config: TrainConfig | None = None,
                 num_generations: int = 4, max_completion_length: int = 40, beta: float = 0.04,
                 temperature: float = 1.0, output_dir=None, reward_log: list | None = None):
    """TRL's ``GRPOTrainer`` on a copy of ``model`` with the adapter in ``adapter_dir`` trainable.
    ``prompts``: dicts with ``"prompt"`` plus any fields the reward functions read (TRL passes them
    as keyword arguments); ``config.batch_size`` is *prompts* per step, each sampled
    ``num_generations`` times. ``beta > 0`` adds a KL penalty to the starting adapter ("ref")."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    cfg = config or TrainConfig()
    args = GRPOConfig(**trl_arguments(cfg, Path(output_dir or labkit_home_runs("grpo"))), beta=beta,
                      per_device_train_batch_size=cfg.batch_size * num_generations, num_generations=num_generations,
                      max_completion_length=max_completion_length, temperature=temperature, top_k=0,
                      loss_type="grpo", scale_rewards="group", log_completions=False)
    funcs = recorded_rewards(list(reward_funcs), reward_log if reward_log is not None else [])
    _quiet_dataset_maps()
    return GRPOTrainer(model=policy_from_adapter(model, adapter_dir, cfg), reward_funcs=funcs, args=args,
                       processing_class=tokenizer, train_dataset=Dataset.from_list(training_pairs_for(prompts, tokenizer)))


def group_advantages(rewards, group_size: int, eps: float = 1e-4):
    """GRPO's advantage of each sampled answer: its reward minus the mean reward of its group (the
    ``group_size`` answers to the same prompt), divided by the group's standard deviation (+ ``eps``).
    An answer better than its siblings is pushed up, a worse one down; a group whose answers all
    score the same gets 0 everywhere and teaches nothing."""
    r = torch.as_tensor(rewards, dtype=torch.float32).view(-1, group_size)
    return ((r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + eps)).flatten()


def grpo(model, tokenizer, prompts, reward_funcs, adapter_dir=None, config: TrainConfig | None = None,
         num_generations: int = 4, max_completion_length: int = 40, beta: float = 0.04, temperature: float = 1.0,
         output_dir=None, reuse: bool = False, overwrite: bool = True, verbose: bool = True) -> RLResult:
    """Group Relative Policy Optimization with LoRA: for each prompt, sample ``num_generations``
    answers, score them with ``reward_funcs`` (TRL's signature: ``f(prompts, completions, **fields)``
    returns one number per answer; their sum is the reward), and push up the answers that beat their
    group's mean (:func:`group_advantages`), with a KL penalty ``beta`` to the starting adapter.
    Same hardware rules, fingerprint, ``reuse`` and ``overwrite`` as :func:`finetune`."""
    cfg = config or TrainConfig(learning_rate=5e-5)
    output_dir = Path(output_dir or labkit_home_runs("grpo"))
    settings = {"funcs": [getattr(f, "__name__", "reward") for f in reward_funcs], "G": num_generations,
                "max_completion_length": max_completion_length, "beta": beta, "temperature": temperature}
    fp = _rl_fingerprint("grpo", cfg, list(prompts), model, tokenizer, adapter_dir, settings)
    per_log = cfg.batch_size * num_generations * cfg.logging_steps     # answers sampled between two log lines
    done = _finished_run(output_dir, fp, reuse, overwrite, model)
    if done:
        info, trained = done
        history = info["history"]
        return RLResult(model=trained, output_dir=output_dir, adapter_dir=output_dir / "adapter", history=history,
                        train_seconds=info["result"]["train_seconds"], reused=True, steps=info["result"]["steps"],
                        trained_tokens=_last(history, "num_tokens"), rewards=info["result"].get("rewards", []),
                        generated_tokens=int(sum(h.get("completions/mean_length", 0) * per_log for h in history)))
    log: list = []
    trainer = grpo_trainer(model, tokenizer, prompts, reward_funcs, adapter_dir, cfg, num_generations,
                           max_completion_length, beta, temperature, output_dir, log)
    trained, history, seconds, _ = _train_and_save(trainer, tokenizer, cfg, output_dir, fp, len(prompts), verbose,
                                                   record={"rewards": log})
    logs = getattr(trainer, "_logs", {})                 # TRL's log of the last batch
    last = {"rewards": [sum(v) for v in zip(*logs.get("rewards", {}).values())],
            "advantages": list(logs.get("advantages", []))}
    return RLResult(model=trained, output_dir=output_dir, adapter_dir=output_dir / "adapter", history=history,
                    train_seconds=seconds, trained_tokens=_last(history, "num_tokens"), steps=trainer.state.global_step,
                    rewards=log, generated_tokens=int(sum(h.get("completions/mean_length", 0) * per_log for h in history)),
                    last_batch=last)


def _last(history: list, key: str) -> int:
    """The largest value of a counter (``num_tokens``) in a trainer's log, 0 if it never appears."""
    return int(max((h.get(key, 0) for h in history), default=0))


# --------------------------------------------------------------------------- a run's identity and folder
# A run's identity and its folder: the fingerprint of everything that decides what a run
# produces, the checkpoints in ``output_dir``, resuming from them, and refusing to train into a
# folder that holds another run. :func:`labkit.train.finetune` uses all of them.
def fingerprint(cfg: TrainConfig, train_pairs, model_name: str, eval_pairs=None, tokenizer=None,
                callbacks=(), base_weights: str | None = None) -> str:
    """A short hash of everything that decides what a run produces: equal inputs, equal run.

    The config, the training and validation pairs (validation drives early stopping and the
    restored checkpoint), the base model's name and weights (:func:`labkit.models.weights_fingerprint`
    of its folder), the tokenizer's vocabulary, special tokens and
    chat template, the callbacks that add metrics (``changes_the_run``), the resolved dtype, the number of processes (the global
    batch), and the versions of torch, transformers, TRL and PEFT. ``reuse=`` and resuming
    accept a run only when all of them match."""
    from importlib.metadata import version

    parts = {
        "config": dataclasses.asdict(cfg),
        "train": list(train_pairs),
        "eval": list(eval_pairs or []),
        "model": model_name,
        "base_weights": base_weights,
        "tokenizer": _tokenizer_identity(tokenizer),
        # callbacks that only watch (progress, plots) do not count; those that add metrics do
        "callbacks": sorted(type(c).__name__ for c in callbacks if getattr(c, "changes_the_run", False)),
        "dtype": str(cfg.train_dtype()),
        "world_size": world_size(),
        "versions": {pkg: version(pkg) for pkg in ("torch", "transformers", "trl", "peft")},
    }
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _tokenizer_identity(tokenizer) -> str | None:
    """A hash of what makes a tokenizer tokenise the way it does: vocabulary, special tokens,
    chat template."""
    if tokenizer is None:
        return None
    vocab = tokenizer.get_vocab()
    text = json.dumps({"vocab": sorted(vocab.items()), "special": tokenizer.special_tokens_map,
                       "chat_template": getattr(tokenizer, "chat_template", None)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


RUN_FINGERPRINT = "labkit_fingerprint.txt"  # in output_dir: which run its checkpoints belong to


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest *complete* ``checkpoint-N`` folder in ``output_dir``, if any.

    The trainer writes ``trainer_state.json`` last when it saves a checkpoint, so a folder
    without it is a save that was interrupted (a killed process) and is skipped."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    complete = [p for p in output_dir.glob("checkpoint-*")
                if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    if not complete:
        return None
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1])))


class RunConflictError(ValueError):
    """The output folder holds another run, which training there would replace."""


def refuse_another_run(output_dir: Path, fp: str) -> None:
    """Raise :class:`RunConflictError` if ``output_dir`` holds a run with another fingerprint:
    a finished adapter, or checkpoints of an unfinished run. The same run (same fingerprint)
    is fine: it resumes, or trains again into the same place."""
    output_dir = Path(output_dir)
    run_file = output_dir / "adapter" / "labkit_run.json"
    marker = output_dir / RUN_FINGERPRINT
    if run_file.is_file():
        try:
            info = json.loads(run_file.read_text())
        except (ValueError, UnicodeDecodeError):
            info = {}
        if info.get("fingerprint") != fp:
            cfg, result = info.get("config", {}), info.get("result", {})
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run_file.stat().st_mtime))
            held = (f"a finished {cfg.get('method', '?')} run of {info.get('base_model', '?')} from {when}: "
                    f"{result.get('steps', '?')} steps, learning rate {cfg.get('learning_rate', '?')}, "
                    f"{result.get('train_examples', '?')} training examples")
            raise RunConflictError(f"{output_dir} holds {held}, with other settings or data than this run. "
                                   "Training here would replace its adapter. Choose another output folder, or "
                                   "replace it on purpose (--overwrite / overwrite=True).")
    checkpoint = last_checkpoint(output_dir)
    if checkpoint and marker.is_file() and marker.read_text().strip() != fp:
        raise RunConflictError(f"{output_dir} holds an unfinished run with other settings or data "
                               f"({Path(checkpoint).name}). Training here would delete its checkpoints. Choose "
                               "another output folder, or replace it on purpose (--overwrite / overwrite=True).")


def resumable_checkpoint(output_dir: Path, fp: str, verbose: bool = True) -> str | None:
    """The checkpoint to resume from: the newest complete one, *if* ``output_dir`` belongs
    to the same run (same fingerprint). Checkpoints of another run (other data, another
    learning rate, ...) are removed, so that this run starts from step 0 and never stamps
    old weights with a new fingerprint."""
    output_dir = Path(output_dir)
    marker = output_dir / RUN_FINGERPRINT
    old = marker.read_text().strip() if marker.is_file() else None
    checkpoints = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
    if checkpoints and old != fp:
        if verbose:
            print(f"{output_dir} holds checkpoints of a different run (config, data or base model "
                  "changed): starting from step 0.")
        for c in checkpoints:
            shutil.rmtree(c, ignore_errors=True)
        return None
    return last_checkpoint(output_dir)


# --------------------------------------------------------------------------- the output layer only at the answer tokens
# Run the output layer only where the loss is computed: on the answer tokens.
#
# With completion-only loss a training example is a prompt and an answer, and only the answer's
# tokens are learned. A causal LM's forward pass still sends *every* position's hidden state
# through the output layer (576 -> 49,152 numbers per token for SmolLM2: about a fifth of the
# model's FLOPs) and a softmax over the whole vocabulary, and TRL then keeps only the answer
# positions. On a GPU, TRL's fused LM head (a Triton kernel) already skips the prompt positions;
# on a CPU it scores every position. :class:`AnswerOnlySFTTrainer` does what the kernel does, in
# plain PyTorch: the transformer layers on every token (the answer needs the prompt's context),
# the output layer and the loss only on the answer tokens. Same loss, same gradients, fewer
# FLOPs: ``bench/train_throughput.py`` measures the difference, and lesson 02 shows it.
@dataclass
class AnswerLogits(ModelOutput):
    """What a model patched by :func:`add_answer_logits` returns when asked for answer logits."""

    logits: torch.Tensor | None = None   # (n_answer_tokens, vocab), fp32
    targets: torch.Tensor | None = None  # (n_answer_tokens,): the answer tokens to predict


def postprocess_logits(causal_lm, logits: torch.Tensor) -> torch.Tensor:
    """What some model families do to the output layer's result before the softmax, done here
    too, so the answer-only loss is the model's own loss:

    - Gemma 2/3: ``final_logit_softcapping`` (cap * tanh(logits / cap));
    - Cohere: ``logit_scale`` (logits * scale);
    - Granite: ``logits_scaling`` (logits / scaling).

    A family that does something else is caught by :func:`answer_logits_match` (the trainer then
    computes the loss from the model's own full logits)."""
    config = causal_lm.config
    scale = getattr(causal_lm, "logit_scale", None)          # Cohere keeps it on the model
    if isinstance(scale, (int, float)):
        logits = logits * scale
    scaling = getattr(config, "logits_scaling", None)        # Granite
    if scaling:
        logits = logits / scaling
    cap = getattr(config, "final_logit_softcapping", None)   # Gemma 2 and 3
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def add_answer_logits(causal_lm) -> None:
    """Patch ``causal_lm.forward`` so that ``model(..., labels=labels, answer_logits=True)``
    returns :class:`AnswerLogits`: the transformer layers run on every token (the answer needs
    the prompt's context), the output layer only where the next token is an answer token
    (``labels != -100``), followed by the model's own logit post-processing
    (:func:`postprocess_logits`). Without ``answer_logits`` the class's forward runs, so
    generation is unchanged. Patch the causal LM itself (under PEFT: ``get_base_model()``); the
    call goes through the outer model, so PEFT, mixed precision and data parallelism apply.
    (TRL patches the forward the same way for its fused LM head.)"""
    previous = causal_lm.__dict__.get("forward")   # an earlier patch on this model (TRL's fused LM head), if any
    inner = getattr(previous, "__func__", None)

    def forward(self, *args, answer_logits=False, labels=None, **kwargs):
        if not answer_logits:
            # called with *this* model as self (not a bound method captured here), so a
            # copy.deepcopy of the model runs with the copy's weights
            return (inner or type(self).forward)(self, *args, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        targets = labels[:, 1:]                      # position t predicts token t + 1
        is_answer = targets != -100
        answer_hidden = hidden[:, :-1][is_answer]    # (n_answer_tokens, hidden size)
        lm_head = self.get_output_embeddings()
        weight_dtype = next(lm_head.parameters()).dtype
        with torch.autocast(answer_hidden.device.type, enabled=False):  # few rows: fp32 is cheap
            logits = postprocess_logits(self, lm_head(answer_hidden.to(weight_dtype)).float())
        return AnswerLogits(logits=logits, targets=targets[is_answer])

    causal_lm.forward = types.MethodType(forward, causal_lm)
    causal_lm._forward_before_answer_logits = previous


def remove_answer_logits(causal_lm) -> None:
    """Undo :func:`add_answer_logits`: the forward the model had before."""
    previous = causal_lm.__dict__.pop("_forward_before_answer_logits", None)
    if previous is None:
        causal_lm.__dict__.pop("forward", None)
    else:
        causal_lm.forward = previous


# how far apart the two probe passes may be under bf16/fp16 autocast, relative to the largest logit:
# the ordinary forward runs its output layer in 16 bits (bf16 keeps 8 significant bits, 0.4%) and the
# answer-only one in fp32; a model's own logit post-processing (a scale, a soft cap) moves them by more
MIXED_PRECISION_ATOL = 3e-2


@torch.no_grad()
def answer_logits_match(causal_lm, tokens: int = 8, atol: float = 1e-3) -> bool:
    """Whether the patched model's answer logits equal its ordinary forward's logits on a short
    probe sequence: the live check that the answer-only path computes this model's objective
    (a model family with its own logit post-processing that :func:`postprocess_logits` does not
    know fails it)."""
    device = next(causal_lm.parameters()).device
    ids = (torch.arange(tokens, device=device).unsqueeze(0) * 7 + 3).remainder(causal_lm.config.vocab_size)
    labels = ids.clone()
    labels[:, : tokens // 2] = -100                     # the second half is the "answer"
    was_training = causal_lm.training
    causal_lm.eval()                                    # no dropout: the two passes must see the same network
    try:
        full = causal_lm(input_ids=ids, use_cache=False).logits[0, tokens // 2 - 1: -1].float()
        answer = causal_lm(input_ids=ids, labels=labels, answer_logits=True).logits
    finally:
        causal_lm.train(was_training)
    scale = full.abs().max().clamp(min=1.0)
    return answer.shape == full.shape and bool(((answer - full).abs().max() / scale) < atol)


class AnswerOnlySFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` whose loss runs the output layer on the answer tokens only.

    The loss is TRL's: the answer tokens' cross-entropy, summed and divided by the number of
    answer tokens in the batch (``num_items_in_batch`` when gradients are accumulated over
    several batches or averaged over processes). TRL's logged ``entropy`` and
    ``mean_token_accuracy`` are computed on the same answer tokens."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self.model
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        add_answer_logits(causal_lm)
        # probed as it will train: under the run's mixed precision (a base stored in bf16 runs only
        # under autocast), where the ordinary forward's output layer rounds to bf16/fp16
        mixed = self.args.bf16 or self.args.fp16
        with self.accelerator.autocast():
            self.answer_only = answer_logits_match(causal_lm, atol=MIXED_PRECISION_ATOL if mixed else 1e-3)
        if not self.answer_only:  # a model whose logits we do not reproduce: its own full forward
            remove_answer_logits(causal_lm)
            print(f"note: {type(causal_lm).__name__} post-processes its logits in a way labkit's answer-only "
                  "output layer does not reproduce; training on the model's own full logits instead (slower, exact).")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # someone wants full logits (compute_metrics): TRL's path builds them
            return super().compute_loss(model, inputs, True, num_items_in_batch)
        logits, targets = self._answer_logits(model, inputs)
        if not self.model_accepts_loss_kwargs:
            # as TRL does for such a model: its loss is this batch's mean, and Trainer divides by the
            # accumulation steps itself (transformers 5.23 passes no num_items_in_batch then; dividing by
            # every accumulated batch's tokens as well would shrink the loss twice if a version did)
            num_items_in_batch = None
        count = targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = F.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # as in TRL and Trainer: num_items_in_batch counts every process's tokens, and
            # data parallelism averages the processes' gradients
            loss = loss * self.accelerator.num_processes
        self._log_answer_metrics(logits.detach(), targets, inputs)
        return loss

    def _answer_logits(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 logits at the positions that predict an answer token, and those tokens: from the
        answer-only output layer, or (for a model it cannot reproduce) from the model's own logits."""
        if self.answer_only:
            out = model(**inputs, answer_logits=True)
            return out.logits, out.targets
        full = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        targets = inputs["labels"][:, 1:]
        is_answer = targets != -100
        return full[:, :-1][is_answer].float(), targets[is_answer]

    def _log_answer_metrics(self, logits, targets, inputs) -> None:
        """The metrics TRL logs (entropy, token accuracy, tokens seen), on the answer tokens."""
        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        log_p = torch.log_softmax(logits, dim=-1)
        n = gather(torch.tensor(targets.numel(), device=logits.device)).sum()
        entropy = gather(-(log_p.exp() * log_p).sum()).sum()
        correct = gather((logits.argmax(-1) == targets).sum()).sum()
        self._metrics[mode]["entropy"].append((entropy / n).item() if n > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / n).item() if n > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


# --------------------------------------------------------------------------- memory a run needs

# NF4 with double quantisation (labkit.models.quantization_config): 4 bits per weight, an 8-bit
# absmax per block of 64 and an fp32 scale per 256 absmax values: ~4.127 bits
NF4_BYTES_PER_WEIGHT = (4 + 8 / 64 + 32 / (64 * 256)) / 8


def training_memory_gb(model_config, cfg, seq_len: int | None = None, dev: str | None = None) -> dict:
    """An estimate, in GB, of the memory a training run needs on ``dev``, term by term.

    ``model_config`` is the model's config (``model.config``; nothing is loaded), ``cfg`` the
    :class:`labkit.train.TrainConfig`; sequences are ``seq_len`` tokens (default
    ``cfg.max_length``, the longest allowed). The terms, so that you can see what to change:

    - ``weights``: every parameter in the weights dtype; for QLoRA the decoder's linear layers
      in NF4 (:data:`NF4_BYTES_PER_WEIGHT`, scales included) and the rest, which bitsandbytes
      leaves unquantised (embedding, untied ``lm_head``, norms), in the weights dtype;
    - ``trainable``: LoRA's parameters (counted on every linear layer: an upper bound when
      ``target_modules`` names fewer), or all for ``method="full"``, in fp32, their gradients
      and the optimizer state (AdamW: 8 bytes per parameter; 8-bit AdamW: 2);
    - ``activations``: what the backward pass needs, per layer and token ~(8·hidden +
      4·intermediate) values in the training dtype; with gradient checkpointing only each
      layer's input is kept, plus one layer's activations while it is recomputed;
    - ``logits``: the output layer's fp32 logits and their gradient at every position (an
      upper bound: labkit and TRL compute them on answer tokens only).

    Frameworks add workspace and fragmentation on top: keep the total well under the device."""
    from labkit import env

    dev = dev or env.device()
    seq_len = seq_len or cfg.max_length
    h, n_layers = model_config.hidden_size, model_config.num_hidden_layers
    inter = getattr(model_config, "intermediate_size", 4 * h)
    vocab = model_config.vocab_size
    kv = getattr(model_config, "num_key_value_heads", model_config.num_attention_heads)
    head_dim = getattr(model_config, "head_dim", None) or h // model_config.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter  # q, o, k, v, gate, up, down
    embeddings = vocab * h * (1 if getattr(model_config, "tie_word_embeddings", False) else 2)
    norms = (2 * n_layers + 1) * h
    n_linear, n_params = n_layers * per_layer, n_layers * per_layer + embeddings + norms

    dtype_bytes = env.weights_dtype(dev).itemsize  # QLoRA: bitsandbytes quantises the decoder's Linear layers only
    quantised = n_linear if cfg.method == "qlora" else 0
    weights = quantised * NF4_BYTES_PER_WEIGHT + (n_params - quantised) * dtype_bytes
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
        "weights": weights,
        "trainable": n_trainable * (4 + 4 + optimizer_bytes),
        "activations": activations,
        "logits": 2 * tokens * vocab * 4,
    }
    gb = {k: v / 1e9 for k, v in terms.items()}
    gb["total"] = sum(gb.values())
    return gb


