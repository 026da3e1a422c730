"""Hyperparameter search with Optuna: the search space, a trial as a labkit fine-tune, a study in SQLite.

The ideas, each one Optuna object:
- a **trial** is one fine-tune with hyperparameters the sampler picked, scored on the *validation*
  split (the test split stays untouched until the search is over);
- the **sampler** picks the next trial's values: ``random`` draws them independently, ``tpe``
  (Tree-structured Parzen Estimator) draws more where earlier trials scored well;
- the **pruner** stops a trial whose validation score at an evaluation step is below the median of
  earlier trials at the same step (:class:`ReportAndPrune` measures and reports them);
- the **study** lives in a SQLite file (Optuna's RDB storage), so a search that was killed resumes
  where it stopped: finished trials stay finished, a trial that was running when the process died is
  marked failed (its heartbeat stopped) and run again, and the trial count goes on.

A trial's run is ``train.finetune(..., reuse=True)`` in a folder named after its fingerprint (or, with
``runs_dir``, after its settings: :func:`trial_run_dir`), so a trial with the same settings as a finished
one (after a resume, or in a second study) loads instead of training.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from transformers import TrainerCallback

# What `labkit search` may search, by its finetune flag (Olive's names), and the TrainConfig field it sets.
SEARCHABLE = {"learning_rate": "learning_rate", "lora_r": "r", "per_device_train_batch_size": "batch_size",
              "lora_dropout": "lora_dropout", "lora_alpha": "lora_alpha", "weight_decay": "weight_decay",
              "warmup_steps": "warmup_steps", "max_steps": "max_steps"}
LOG_SCALE = {"learning_rate", "weight_decay"}     # ranges searched log-uniformly
HEARTBEAT_SECONDS = 10                            # a running trial's sign of life in the SQLite file


class SearchSpaceError(ValueError):
    """A search space that cannot be searched; the message names the key and says what to write."""


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: ``choices`` (a list) or a ``low``..``high`` range."""

    name: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None

    def contains(self, value) -> bool:
        """Whether ``value`` is one of the choices, or inside the range."""
        return value in self.choices if self.choices is not None else self.low <= value <= self.high

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int) and self.name not in LOG_SCALE:
            return trial.suggest_int(self.name, self.low, self.high)
        return trial.suggest_float(self.name, self.low, self.high, log=self.name in LOG_SCALE)


def parse_space(space: dict, where: str = "search") -> list[Param]:
    """``{flag: [choices...]}`` or ``{flag: {low: .., high: ..}}`` as Params, checked.

    A list is a set of choices; ``{low, high}`` is a range (log-uniform for the learning rate)."""
    if not isinstance(space, dict) or not space:
        raise SearchSpaceError(f"{where}: give at least one hyperparameter to search, e.g. "
                               "learning_rate: {low: 1.0e-5, high: 1.0e-3}")
    params = []
    for name, value in space.items():
        key = f"{where}.{name}"
        if name not in SEARCHABLE:
            raise SearchSpaceError(f"{key}: not a searchable setting; use one of {sorted(SEARCHABLE)}.")
        if isinstance(value, list):
            if not value or any(isinstance(v, (list, dict)) for v in value) or len(set(value)) != len(value):
                raise SearchSpaceError(f"{key}: a list of choices must be non-empty, flat and without repeats: {value}")
            _check_values(key, name, value)
            params.append(Param(name, choices=tuple(value)))
        elif isinstance(value, dict) and set(value) == {"low", "high"}:
            low, high = value["low"], value["high"]
            _check_values(key, name, [low, high])
            if not low < high:
                raise SearchSpaceError(f"{key}: low ({low}) must be below high ({high}).")
            params.append(Param(name, low=low, high=high))
        else:
            raise SearchSpaceError(f"{key}: write a list of choices ([4, 8, 16]) or a range ({{low: 1.0e-5, "
                                   f"high: 1.0e-3}}), not {value!r}.")
    return params


def _check_values(key: str, name: str, values) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SearchSpaceError(f"{key}: {v!r} is not a number.")
        if name in ("lora_r", "per_device_train_batch_size", "lora_alpha", "max_steps") and (v != int(v) or v < 1):
            raise SearchSpaceError(f"{key}: {v!r} must be a whole number of at least 1.")
        if name in ("learning_rate", "weight_decay") and v <= 0:
            raise SearchSpaceError(f"{key}: {v!r} must be above 0 (it is searched on a log scale).")
        if name == "lora_dropout" and not 0 <= v < 1:
            raise SearchSpaceError(f"{key}: {v!r} must be in [0, 1).")


def trial_config(base, params: list[Param], trial):
    """The TrainConfig of one trial: ``base`` with the trial's suggested values.

    When the rank is searched and ``lora_alpha`` is not, alpha follows the rank so that the update's
    scale alpha / r stays the base config's: a trial at r = 4 then differs from one at r = 64 in
    capacity only, not also in a 16x larger step (with a fixed alpha the small ranks would win or
    lose on their scale, and the search would credit the rank)."""
    values = {SEARCHABLE[p.name]: p.suggest(trial) for p in params}
    if "r" in values and "lora_alpha" not in values:
        alpha = values["r"] * base.lora_alpha / base.r
        values["lora_alpha"] = int(alpha) if alpha == int(alpha) else alpha
    return replace(base, **values)


def trial_run_dir(runs_dir, config) -> Path:
    """The folder under ``runs_dir`` where a trial with the TrainConfig ``config`` trains:
    ``<method>-<hash of the config>``, the same folder for the same settings. A search given its own
    ``runs_dir`` (:func:`classification_objective`) keeps its trials there, so deleting that folder
    starts the next search from scratch (every trial trained and scored again, with its pruning), while
    within one search a trial with the settings of a finished one still loads instead of training."""
    import dataclasses
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode())
    return Path(runs_dir) / f"{config.method}-{digest.hexdigest()[:16]}"


def settings_of(config, params: list[Param]) -> dict:
    """``config``'s own values of the searched settings, by flag name: ``study.enqueue_trial(settings_of(...))``
    makes them a study's first trial, so the search starts from the settings you trust and its best is at
    least as good as them on validation. A value outside its searched range is left to the sampler."""
    values = {p.name: getattr(config, SEARCHABLE[p.name]) for p in params}
    return {p.name: values[p.name] for p in params if p.contains(values[p.name])}


class ReportAndPrune(TrainerCallback):
    """Every ``every`` training steps: score the model on validation, report the score to the trial, and
    stop the trial (``optuna.TrialPruned``) when the pruner says it is behind the earlier trials.

    ``score(model)`` returns the validation score, higher is better (e.g. label-scoring accuracy).
    Scoring here, not in the trainer's evaluation, skips the validation loss a search does not use."""

    changes_the_run = False   # it only reads the model; a pruned run ends before anything is saved

    def __init__(self, trial, score, every: int):
        self.trial, self.score, self.every = trial, score, every
        self.scores: dict[int, float] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        import optuna

        if state.global_step % self.every:
            return
        was_training = model.training
        model.eval()
        value = self.score(model)
        if was_training:
            model.train()
        self.scores[state.global_step] = value
        self.trial.report(value, state.global_step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"step {state.global_step}: validation score {value:.3f} is below the "
                                     "median of earlier trials at this step")


def open_study(path, name: str = "search", sampler: str = "tpe", seed: int = 0, startup_trials: int = 3,
               heartbeat: int = HEARTBEAT_SECONDS):
    """Create, or load and go on with, the study stored in the SQLite file ``path``.

    ``sampler``: "tpe" or "random". The median pruner starts judging after ``startup_trials`` trials
    have finished. A trial whose process died stops sending heartbeats; after ``2 * heartbeat`` seconds
    the next ``optimize`` marks it failed and runs its settings again. A resumed study's sampler is
    seeded with ``seed`` plus the trials already there, so it does not draw the earlier trials again."""
    import optuna

    samplers = {"tpe": lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=startup_trials),
                "random": lambda s: optuna.samplers.RandomSampler(seed=s)}
    if sampler not in samplers:
        raise SearchSpaceError(f"sampler: {sampler!r}; use 'tpe' or 'random'.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():   # heartbeats and their retry are marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{path.resolve()}", heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                sampler=samplers[sampler](seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=startup_trials))
    if study.trials:
        # resumed: a sampler seeded as the first process's would draw that process's trials again
        study.sampler = samplers[sampler](seed + len(study.trials))
    return study


def optimize(study, objective, n_trials: int) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (complete or pruned): a resumed
    study runs only the rest."""
    import optuna
    from optuna.trial import TrialState

    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if done < n_trials:
        study.optimize(objective, n_trials=n_trials - done,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE,
                                                                                   TrialState.PRUNED))])


def trials_table(study, params: list[str] | None = None):
    """Optuna's ``study.trials_dataframe()``, one row per trial, with the columns a learner reads:
    trial, state, score, the values it tried (``params``, default all) and the last step it
    reported (where the pruner stopped it)."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "intermediate_values"))
    if frame.empty:
        return frame
    steps = {c: int(c.rsplit("_", 1)[1]) for c in frame.columns if c.startswith("intermediate_values_")}
    names = params or sorted(c.removeprefix("params_") for c in frame.columns if c.startswith("params_"))
    table = frame[["number", "state", "value"]].rename(columns={"number": "trial", "value": "score"})
    table["state"] = table["state"].str.lower()
    for name in names:
        table[name] = frame.get(f"params_{name}")
    reported = frame[list(steps)].notna()               # which steps each trial reported
    table["last step"] = reported.mul(list(steps.values())).max(axis=1).where(reported.any(axis=1)) if steps else None
    return table


def classification_objective(load_model, tokenizer, train_pairs, eval_pairs, labels, base_config, params,
                             prefix: str = " ", golds=None, prompts=None, runs_dir=None):
    """An Optuna objective: fine-tune with the trial's settings, return the validation accuracy.

    ``load_model()`` gives the base model (``finetune`` trains a copy, so one model serves every trial).
    ``eval_pairs`` are the validation prompt/completion pairs; their prompts (or ``prompts``, as
    :func:`labkit.evaluate.label_scoring_setup` makes them) are label-scored, and their completions
    (stripped), or ``golds``, are the right labels. Every ``base_config.eval_steps`` steps the accuracy is
    measured, reported and judged by the pruner; the score is the accuracy after the last step. Each
    trial's run goes to ``$LABKIT_HOME/runs``, in a folder named after its fingerprint (or, given
    ``runs_dir``, to :func:`trial_run_dir` under it), and is loaded instead of trained when the same
    settings come again."""
    from labkit import evaluate, train

    prompts = list(prompts) if prompts is not None else [p["prompt"] for p in eval_pairs]
    golds = list(golds) if golds is not None else [p["completion"].strip() for p in eval_pairs]
    every = base_config.eval_steps or base_config.max_steps

    def accuracy(model) -> float:
        predicted = evaluate.classify(model, tokenizer, prompts, labels, prefix)
        return sum(p == g for p, g in zip(predicted, golds)) / len(golds)

    def objective(trial) -> float:
        cfg = replace(trial_config(base_config, params, trial), eval_steps=None)   # scored by the callback
        reporter = ReportAndPrune(trial, accuracy, every)
        out = trial_run_dir(runs_dir, cfg) if runs_dir is not None else None
        result = train.finetune(load_model(), tokenizer, train_pairs, None, cfg, out, reuse=True,
                                live_plot=False, verbose=False, callbacks=[reporter])
        trial.set_user_attr("adapter", str(result.adapter_dir))
        trial.set_user_attr("train_seconds", round(result.train_seconds, 1))
        return reporter.scores[result.steps] if result.steps in reporter.scores else accuracy(result.model)

    return objective
