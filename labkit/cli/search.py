"""``labkit search --config search.yaml``: hyperparameter search over ``labkit finetune``'s settings.

The file holds the same keys as ``labkit run --config`` (a finetune), plus a ``search:`` mapping: the
study's settings and the ranges to search, by their finetune flag names::

    data_name: tickets.csv
    text_template: "{message} -> {team}"
    max_steps: 30
    eval_steps: 10
    output_path: search/tickets
    search:
      n_trials: 8                 # finished trials (complete or pruned) the study ends with
      sampler: tpe                # or random
      learning_rate: {low: 1.0e-5, high: 1.0e-3}   # a range: log-uniform for the learning rate
      lora_r: [4, 8, 16, 32, 64]                   # a list: choices
      per_device_train_batch_size: [4, 8, 16]
      lora_dropout: {low: 0.0, high: 0.2}

Trial 0 runs the file's own settings (the values outside ``search:``, or finetune's defaults), so the
best trial is at least as good as them on validation. It prints a table of trials, writes
``<output_path>/study.db`` (run the command again to resume a killed search) and ``<output_path>/best.yaml``: the finetune settings of the best trial, for
``labkit run --config``. Trials are scored by validation accuracy (classification tasks).
"""

from __future__ import annotations

import json
from pathlib import Path

from labkit.cli.flags import CLIError, fill_task_defaults, parse_run_config, read_run_config

STUDY_KEYS = {"n_trials": 8, "sampler": "tpe", "seed": 0}


def read_search_config(path: Path, finetune_parser):
    """(finetune args, study settings, search space) from a search file; every mistake names the key."""
    from labkit import search

    config = read_run_config(path)
    space = config.pop("search", None)
    if not isinstance(space, dict):
        raise CLIError(f"{path}: no 'search:' mapping. Add one with the ranges to search, e.g.\n"
                       "search:\n  n_trials: 8\n  learning_rate: {low: 1.0e-5, high: 1.0e-3}\n  lora_r: [4, 8, 16]")
    study = {key: space.pop(key, default) for key, default in STUDY_KEYS.items()}
    if isinstance(study["n_trials"], bool) or not isinstance(study["n_trials"], int) or study["n_trials"] < 1:
        raise CLIError(f"{path}: search.n_trials must be a whole number of at least 1, got {study['n_trials']!r}.")
    if study["sampler"] not in ("tpe", "random"):
        raise CLIError(f"{path}: search.sampler: {study['sampler']!r}; use 'tpe' or 'random'.")
    if config.get("output_path") is None:
        raise CLIError(f"{path}: output_path is required: the study's SQLite file and best.yaml go there.")
    try:
        params = search.parse_space(space)
    except search.SearchSpaceError as e:
        raise CLIError(f"{path}: {e}") from None
    for p in params:
        if config.get(p.name) is not None:
            raise CLIError(f"{path}: {p.name} is both set ({config[p.name]!r}) and searched; keep one.")
    _, args = parse_run_config(config, finetune_parser, path)
    return args, config, study, params


def search_command(args) -> int:
    """Run (or resume) the study, print its trials, write the best trial's finetune settings."""
    import yaml

    from labkit import evaluate, search
    from labkit.cli.flags import (check_hardware_flags, model_from_flags, task_from_flags, train_config,
                                   training_records)
    from labkit.cli.report import gold_labels
    from labkit.data import balance_labels, note

    path = Path(args.config).expanduser()
    fargs, config, study_cfg, params = read_search_config(path, args.subparsers["finetune"])
    task = task_from_flags(fargs)
    if task.kind != "classification":
        raise CLIError(f"{path}: labkit search scores trials by validation accuracy, so it needs a "
                       f"classification task; {task.source} is a {task.kind} task.")
    if fargs.max_steps is None:
        raise CLIError(f"{path}: set max_steps: every trial trains the same steps, so that trials differ only in "
                       "the settings searched (a time budget would give each trial the steps its speed allows).")
    # trials score their last step (the pruner watches every eval_steps), so best.yaml replays the last step too
    chosen = fill_task_defaults(fargs, task.kind)
    if chosen.get("load_best_model_at_end"):
        fargs.load_best_model_at_end = config["load_best_model_at_end"] = False
    cfg = train_config(fargs, task.kind)
    train_records, eval_records = training_records(fargs, task)
    model, tok = model_from_flags(fargs, cfg, check_hardware_flags(fargs))   # the model best.yaml replays
    train_pairs, eval_pairs = task.pairs(train_records), task.pairs(eval_records)
    if fargs.balance_classes:   # as finetune draws them, so that best.yaml replays the searched run
        train_pairs = task.pairs(balance_labels(train_records, task.target, seed=cfg.seed))
    prompts, prefix = evaluate.label_scoring_setup(tok, task, [p["prompt"] for p in eval_pairs])
    golds = gold_labels(task, eval_records)
    out = Path(fargs.output_path)
    study = search.open_study(out / "study.db", sampler=study_cfg["sampler"], seed=study_cfg["seed"])
    # what makes two runs of this command the same search (n_trials may grow: that is how a search goes on)
    made_from = json.dumps({"settings": config, "space": [repr(p) for p in params], "sampler": study_cfg["sampler"],
                            "seed": study_cfg["seed"]}, sort_keys=True, default=str)
    done = len(study.trials)
    if done and study.user_attrs.get("made_from") != made_from:
        raise CLIError(f"{out / 'study.db'} holds a search made from other settings or ranges ({done} trial(s)); "
                       "resuming it would mix the two. Use another output_path, or delete that file to start over.")
    if done:
        note(f"resuming the study in {out / 'study.db'}: {done} trial(s) there already.")
    else:   # trial 0: the file's own settings, the ones the search has to beat
        study.set_user_attr("made_from", made_from)
        study.enqueue_trial(search.settings_of(cfg, params), skip_if_exists=True)
    objective = search.classification_objective(lambda: model, tok, train_pairs, eval_pairs,
                                                task.labels, cfg, params, prefix, golds, prompts)
    search.optimize(study, objective, study_cfg["n_trials"])
    table = search.trials_table(study, [p.name for p in params])
    print(table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}"))
    best = {**config, **study.best_trial.params, "output_path": str(out / "best")}
    (out / "best.yaml").write_text(yaml.safe_dump(best, sort_keys=False))
    print(f"best: trial {study.best_trial.number}, validation accuracy {study.best_value:.3f}; its settings: "
          f"{out / 'best.yaml'} (labkit run --config {out / 'best.yaml'})")
    best_report(model, tok, task, eval_records, study.best_trial, fargs.max_steps)
    return 0


def best_report(model, tok, task, eval_records, best_trial, steps: int) -> dict:
    """The validation report of the best trial's adapter (:func:`labkit.cli.report.validation_report`): a
    search whose best trial answers one label for everything says so, as ``finetune`` does."""
    from peft import PeftModel

    from labkit.cli.report import validation_report

    trained = PeftModel.from_pretrained(model, best_trial.user_attrs["adapter"]).eval()
    try:
        return validation_report(trained, tok, task, eval_records, steps, steps)
    finally:
        trained.unload()   # the base is shared with anything that runs after the search
