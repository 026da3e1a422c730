"""The training runs that several lessons share, written once.

Lesson 01 trains a LoRA adapter on ``tone`` and lesson 02 one on ``recipes``; lessons 04, 06
and 07 use those adapters again. Each recipe below is the exact config and data its lesson
trains with in the active profile, so the run has the same *fingerprint* (config + data +
base model, see :func:`labkit.train.fingerprint`) wherever it is called, and
``finetune(..., reuse=True)`` loads the finished adapter instead of training it again.
A lesson never *requires* another one to have run: if the adapter is not there, it is
trained now (a few minutes on a CPU).
"""

from __future__ import annotations

from labkit import data, env, train
from labkit.cache import labkit_home


def tone_recipe() -> tuple[train.TrainConfig, list[dict]]:
    """Lesson 01's LoRA run on ``tone``: its config and training pairs in this profile."""
    s = env.settings("tone")
    records = list(data.load_dataset("tone")["train"])[: s["train_examples"]]
    config = train.TrainConfig(max_steps=s["max_steps"], batch_size=s["batch_size"],
                               learning_rate=s["learning_rate"], r=s["r"], lora_alpha=2 * s["r"],
                               eval_steps=None, save_steps=s["max_steps"])
    return config, data.task_pairs("tone", records)


def recipes_recipe() -> tuple[train.TrainConfig, list[dict], list[dict]]:
    """Lesson 02's LoRA run on ``recipes``: config, training pairs and validation pairs."""
    s = env.settings("recipes")
    ds = data.load_dataset("recipes")
    train_pairs = data.task_pairs("recipes", list(ds["train"])[: s["train_examples"]])
    val_pairs = data.task_pairs("recipes", list(ds["validation"])[: s["val_examples"]])
    config = train.TrainConfig(method="lora", r=16, lora_alpha=32, target_modules="all-linear",
                               learning_rate=s["learning_rate"], max_steps=s["max_steps"],
                               batch_size=s["batch_size"], logging_steps=2,
                               eval_steps=max(1, s["max_steps"] // 2), save_steps=s["max_steps"])
    return config, train_pairs, val_pairs


def run_dir(task: str):
    """Where the shared run for ``task`` (``"tone"`` or ``"recipes"``) keeps its adapter (one
    folder per ``LABKIT_SEED``, so runs with other seeds never replace each other's)."""
    seed = env.seed()
    return labkit_home() / "runs" / (f"lesson-{task}-lora" + (f"-seed{seed}" if seed else ""))


def say_it_trains(task: str) -> None:
    """Say, before a shared run trains, that it is not on disk yet and how long its lesson took as
    ``make course`` measured it on the nearest kind of machine (training is most of that time)."""
    from labkit.course import lesson_times

    lesson = {"tone": "01", "recipes": "02"}[task]
    found = lesson_times.reference_entry(lesson_times.read_times().get(lesson, {}), lesson_times.machine_kind())
    took = f"; lesson {lesson} as a whole took {found[1]['minutes']:g} min on {found[0]}" if found else ""
    print(f"Lesson {lesson}'s {task} adapter is not on disk yet: training it now, as lesson {lesson} does{took}. "
          "Later lessons load it from disk.")


def lesson_adapter(task: str, model, tokenizer, live_plot: bool = False) -> train.TrainResult:
    """The shared LoRA run for ``task`` on ``model``: loaded if a finished run with the same
    fingerprint is on disk, trained (and saved) otherwise."""
    if task == "tone":
        config, train_pairs = tone_recipe()
        val_pairs = None
    elif task == "recipes":
        config, train_pairs, val_pairs = recipes_recipe()
    else:
        raise ValueError(f"No shared lesson run for {task!r}; use 'tone' or 'recipes'.")
    if not (run_dir(task) / "adapter" / "labkit_run.json").is_file():
        say_it_trains(task)
    return train.finetune(model, tokenizer, train_pairs, val_pairs, config, output_dir=run_dir(task),
                          reuse=True, live_plot=live_plot)


def training_step(model, tokenizer, pairs, answer_only: bool = True):
    """A function of no arguments that runs one training step's forward and backward pass of
    ``model`` (a PEFT model, LoRA or QLoRA) on one batch made of ``pairs`` and returns the loss:
    the mean cross-entropy of the answer tokens (prompt masked, as ``finetune`` trains).

    ``answer_only=True`` runs the output layer on the answer positions only
    (:func:`labkit.train.add_answer_logits`, labkit's default); ``False`` on every position, as a
    plain causal-LM loss does. The optimizer's update is left out (a LoRA update is tiny) and the
    gradients are cleared after each call, so the function can be called again and again:
    what :func:`labkit.course.timing.compare_times` needs to time two ways of training fairly.
    The model is put in eval mode (no dropout), so two ways on one model give the same loss."""
    import torch
    import torch.nn.functional as F

    from labkit.evaluate import completion_tokens
    from labkit.train import add_answer_logits

    rows = [completion_tokens(tokenizer, p) for p in pairs]
    width, pad = max(len(ids) for ids, _ in rows), tokenizer.pad_token_id
    device = next(model.parameters()).device
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows], device=device)
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows], device=device)
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows], device=device)
    causal_lm = model.get_base_model()
    if answer_only and "_forward_before_answer_logits" not in causal_lm.__dict__:
        add_answer_logits(causal_lm)
    model.eval()

    def step() -> float:
        with torch.enable_grad():
            if answer_only:
                out = model(input_ids=ids, attention_mask=mask, labels=labels, answer_logits=True)
                loss = F.cross_entropy(out.logits, out.targets)
            else:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()

    return step
