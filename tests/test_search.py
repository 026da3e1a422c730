"""labkit.search on a tiny model: a study runs, survives its process being killed and resumes from its
SQLite file, a bad search space is a clear error, and the pruner stops a diverging trial."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

import optuna
from optuna.trial import TrialState

from labkit import search, train

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"learning_rate": {"low": 1e-3, "high": 1e-2}, "lora_r": [2, 4]}


def tiny_objective(tokenizer, space=SPACE):
    """Label-scoring accuracy of a tiny Llama fine-tuned for 8 steps, measured at steps 4 and 8."""
    from conftest import TONE_LABELS, build_model

    pairs = [{"prompt": f"message {i} ->", "completion": f" {TONE_LABELS[i % 5]}"} for i in range(40)]
    base = train.TrainConfig(max_steps=8, batch_size=8, r=4, lora_alpha=8, logging_steps=2, eval_steps=4,
                             save_steps=100, warmup_steps=0)
    return search.classification_objective(lambda: build_model(tokenizer), tokenizer, pairs, pairs[:10],
                                           TONE_LABELS, base, search.parse_space(space))


@pytest.mark.parametrize("space, message", [
    ({}, "give at least one hyperparameter"),
    ({"learning_rat": [1e-4]}, "search.learning_rat: not a searchable setting"),
    ({"learning_rate": {"low": 1e-3, "high": 1e-5}}, "search.learning_rate: low .* must be below high"),
    ({"learning_rate": {"low": 0, "high": 1e-3}}, "must be above 0"),
    ({"lora_r": [4, 8.5]}, "search.lora_r: 8.5 must be a whole number"),
    ({"lora_r": []}, "non-empty"),
    ({"per_device_train_batch_size": "8"}, "write a list of choices"),
    ({"lora_dropout": [0.1, 1.5]}, r"must be in \[0, 1\)"),
    ({"lora_r": [4, "big"]}, "'big' is not a number"),
])
def test_a_bad_search_space_is_a_clear_error(space, message):
    with pytest.raises(search.SearchSpaceError, match=message):
        search.parse_space(space)


def test_the_space_suggests_within_its_ranges():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = search.parse_space({"learning_rate": {"low": 1e-5, "high": 1e-3}, "lora_r": [4, 8, 16],
                                 "lora_dropout": {"low": 0.0, "high": 0.2}})
    for _ in range(20):
        cfg = search.trial_config(train.TrainConfig(), params, study.ask())
        assert 1e-5 <= cfg.learning_rate <= 1e-3 and cfg.r in (4, 8, 16) and 0 <= cfg.lora_dropout <= 0.2


def test_a_searched_rank_keeps_the_update_scale():
    params = search.parse_space({"lora_r": [4, 64]})
    for r in (4, 64):
        cfg = search.trial_config(train.TrainConfig(r=16, lora_alpha=32), params, optuna.trial.FixedTrial({"lora_r": r}))
        assert (cfg.r, cfg.lora_alpha) == (r, 2 * r)
    both = search.parse_space({"lora_r": [4], "lora_alpha": [16]})
    cfg = search.trial_config(train.TrainConfig(), both, optuna.trial.FixedTrial({"lora_r": 4, "lora_alpha": 16}))
    assert cfg.lora_alpha == 16     # searched alpha is left alone


def test_the_first_trial_can_be_the_configs_own_settings():
    params = search.parse_space({"learning_rate": {"low": 1e-4, "high": 5e-3}, "lora_r": [4, 8, 16],
                                 "per_device_train_batch_size": [4, 16]})
    cfg = train.TrainConfig(learning_rate=1e-3, r=16, batch_size=8)
    assert search.settings_of(cfg, params) == {"learning_rate": 1e-3, "lora_r": 16}   # batch 8 is not a choice


def test_a_study_of_three_trials_runs_and_reuses_a_finished_trial(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    study = search.open_study(tmp_path / "study.db", sampler="random")
    objective = tiny_objective(tiny_tokenizer)
    search.optimize(study, objective, n_trials=3)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3 and all(0 <= t.value <= 1 for t in done)
    table = search.trials_table(study)
    assert list(table["trial"]) == [0, 1, 2] and set(table.columns) >= {"score", "learning_rate", "lora_r", "last step"}
    assert list(table["score"]) == [t.value for t in done] and set(table["state"]) == {"complete"}
    # the same settings again: the finished run is loaded, not trained (same score, no new steps)
    study.enqueue_trial(done[0].params)
    search.optimize(study, objective, n_trials=4)
    again = study.trials[-1]
    assert again.value == done[0].value and again.user_attrs["adapter"] == done[0].user_attrs["adapter"]


def test_a_search_with_its_own_runs_dir_keeps_its_trials_there(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    base = train.TrainConfig(max_steps=8, r=4, lora_alpha=8)
    assert search.trial_run_dir(tmp_path, base) == search.trial_run_dir(tmp_path, train.TrainConfig(max_steps=8, r=4,
                                                                                                    lora_alpha=8))
    assert search.trial_run_dir(tmp_path, base) != search.trial_run_dir(tmp_path, train.TrainConfig(max_steps=8, r=2))
    assert search.trial_run_dir(tmp_path, base).name.startswith("lora-")
    from conftest import TONE_LABELS, build_model

    pairs = [{"prompt": f"message {i} ->", "completion": f" {TONE_LABELS[i % 5]}"} for i in range(40)]
    cfg = train.TrainConfig(max_steps=4, batch_size=8, r=4, lora_alpha=8, eval_steps=2, save_steps=100, warmup_steps=0)
    space = search.parse_space({"lora_r": [2, 4]})
    objective = search.classification_objective(lambda: build_model(tiny_tokenizer), tiny_tokenizer, pairs, pairs[:10],
                                                TONE_LABELS, cfg, space, runs_dir=tmp_path / "trials")
    study = search.open_study(tmp_path / "study.db", sampler="random")
    study.enqueue_trial({"lora_r": 2})
    search.optimize(study, objective, n_trials=1)
    trial_cfg = replace(search.trial_config(cfg, space, optuna.trial.FixedTrial({"lora_r": 2})), eval_steps=None)
    assert Path(study.trials[0].user_attrs["adapter"]) == search.trial_run_dir(tmp_path / "trials", trial_cfg) / "adapter"
    assert not (tmp_path / "home" / "runs").exists()      # nothing went to the shared runs folder


KILLABLE = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{tests!r}, {root!r}]
    from conftest import build_tokenizer
    from test_search import SPACE, tiny_objective
    from labkit import search
    objective = tiny_objective(build_tokenizer())
    def slow_after_the_first(trial):
        if trial.number >= 1:       # its settings are drawn, then it is killed here, mid-trial
            for param in search.parse_space(SPACE):
                param.suggest(trial)
            time.sleep(60)
        return objective(trial)
    search.optimize(search.open_study({db!r}, sampler="random", heartbeat=1), slow_after_the_first, n_trials=3)
""")


def _trial_states(db: Path) -> set[str]:
    """The states of the trials in a study file, as stored ("COMPLETE"...), a running trial counted only once its first
    heartbeat is written (a trial killed before it has none, and is never found stale); none while the file is created."""
    import sqlite3

    if not db.exists():
        return set()
    query = ("SELECT t.state, h.heartbeat IS NOT NULL FROM trials t "
             "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {state for state, beat in conn.execute(query) if state != "RUNNING" or beat}
    except sqlite3.OperationalError:   # the tables are not there yet, or the file is locked for a write
        return set()


@pytest.mark.slow
def test_a_killed_search_resumes_from_its_sqlite_file(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    db = tmp_path / "study.db"
    script = KILLABLE.format(tests=str(ROOT / "tests"), root=str(ROOT), db=str(db))
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            # read the file directly, read-only: opening it with Optuna while the search process is still creating
            # its tables races with that process (both insert the schema version)
            if {"COMPLETE", "RUNNING"} <= _trial_states(db):
                break
            assert proc.poll() is None, "the search ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("the first trial did not finish within 300 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = search.open_study(db, heartbeat=1).trials[0]
    time.sleep(2.5)     # the killed trial's heartbeat is now older than the grace period (2 s)

    study = search.open_study(db, sampler="random", heartbeat=1)
    search.optimize(study, tiny_objective(tiny_tokenizer), n_trials=3)
    trials = study.trials
    assert trials[0].state == TrialState.COMPLETE and trials[0].value == first.value    # kept, not re-run
    assert trials[1].state == TrialState.FAIL                                           # killed mid-trial
    retried = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 1]
    assert retried and retried[0].params == trials[1].params                            # run again
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3 and trials[-1].number >= 3


def test_the_pruner_stops_a_diverging_trial(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    study = search.open_study(tmp_path / "study.db", startup_trials=2)
    for lr in (5e-3, 8e-3, 50.0):   # two that learn, then one that diverges
        study.enqueue_trial({"learning_rate": lr, "lora_r": 4})
    objective = tiny_objective(tiny_tokenizer, {**SPACE, "learning_rate": {"low": 1e-3, "high": 100.0}})
    search.optimize(study, objective, n_trials=3)
    good, diverged = study.trials[:2], study.trials[2]
    assert all(t.state == TrialState.COMPLETE for t in good)
    assert diverged.state == TrialState.PRUNED, (diverged.state, diverged.intermediate_values,
                                                 [t.intermediate_values for t in good])
    assert max(diverged.intermediate_values) == 4     # stopped at its first evaluation, not at the end


# --- labkit search --config search.yaml ----------------------------------------------------------

def _search_file(tmp_path, tiny_folder, search_block: str, **extra) -> Path:
    import csv

    data = tmp_path / "tickets.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["message", "team"])
        for i in range(30):
            w.writerow([f"ticket {i} about my invoice" if i % 2 else f"ticket {i}: the app crashed",
                        "billing" if i % 2 else "technical"])
    lines = [f"model_name_or_path: {tiny_folder}", f"data_name: {data}", 'text_template: "{message} -> {team}"',
             "max_steps: 4", "eval_steps: 2", "lora_r: 4", f"output_path: {tmp_path / 'search'}"]
    lines = [line for line in lines if line.split(":")[0] not in extra] + [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "search.yaml"
    path.write_text("\n".join(lines) + "\n" + search_block)
    return path


def test_labkit_search_prints_trials_writes_the_best_config_and_resumes(tmp_path, tiny_folder, capsys, monkeypatch):
    import yaml

    from labkit.cli import main as cli

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    block = "search:\n  n_trials: 2\n  sampler: random\n  learning_rate: {low: 1.0e-3, high: 1.0e-2}\n"
    path = _search_file(tmp_path, tiny_folder, block, lora_r="null")
    assert cli.main(["search", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"trial\s+state\s+score\s+learning_rate\s+last step", out) and "best: trial" in out
    # and it ends with the best trial's validation report, as finetune does (issue 33)
    assert re.search(r"validation \(\d+ examples, the checkpoint of step \d+ of \d+\):\n  accuracy", out)
    assert "recall per class:" in out and out.index("best: trial") < out.index("recall per class:")
    best = yaml.safe_load((tmp_path / "search" / "best.yaml").read_text())
    assert best["text_template"] == "{message} -> {team}" and 1e-3 <= best["learning_rate"] <= 1e-2
    assert best["output_path"].endswith("best")
    assert cli.main(["search", "--config", str(path)]) == 0      # again: the study is there, nothing to run
    captured = capsys.readouterr()
    assert "resuming the study" in captured.err + captured.out
    assert len(search.open_study(tmp_path / "search" / "study.db").trials) == 2
    # another search into the same folder is refused, and the study there is left as it was
    path.write_text(path.read_text().replace("high: 1.0e-2", "high: 5.0e-2"))
    assert cli.main(["search", "--config", str(path)]) == 2
    assert "holds a search made from other settings or ranges" in capsys.readouterr().err
    assert len(search.open_study(tmp_path / "search" / "study.db").trials) == 2


@pytest.mark.parametrize("block, expected", [
    ("", "no 'search:' mapping"),
    ("search:\n  n_trials: 0\n  lora_r: [4]\n", "search.n_trials must be a whole number"),
    ("search:\n  lora_rank: [4, 8]\n", "search.lora_rank: not a searchable setting"),
    ("search:\n  lora_r: [4, 8]\n", "lora_r is both set (4) and searched"),
    ("search:\n  sampler: grid\n  learning_rate: [0.001]\n", "sampler: 'grid'"),
])
def test_a_bad_search_file_names_what_to_fix(tmp_path, tiny_folder, capsys, block, expected):
    from labkit.cli import main as cli

    path = _search_file(tmp_path, tiny_folder, block)
    assert cli.main(["search", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "search.yaml" in err and expected in err, err
    assert not (tmp_path / "search" / "best.yaml").exists()


def test_a_resumed_study_draws_new_settings(tmp_path):
    # a new process with the same seed must not repeat the first process's draws (reuse=True would
    # then count one fine-tune as two trials)
    def objective(trial):
        return trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)

    for _ in range(3):   # three processes, each opening the file anew and adding two trials
        study = search.open_study(tmp_path / "study.db", sampler="random", seed=0)
        search.optimize(study, objective, len(study.trials) + 2)
    values = [t.params["learning_rate"] for t in study.trials]
    assert len(values) == 6 and len(set(values)) == 6, values


def test_search_trains_the_model_that_labkit_run_replays(tmp_path, tiny_folder, monkeypatch):
    # the search's trials and `labkit run --config best.yaml` (a finetune) load the base the same way
    from labkit import models
    from labkit.cli import main as cli

    loads = []

    class Loaded(Exception):
        pass

    def record(base, **kwargs):
        loads.append(kwargs)
        raise Loaded

    monkeypatch.setattr(models, "load_base", record)
    path = _search_file(tmp_path, tiny_folder, "search:\n  n_trials: 1\n  learning_rate: {low: 1.0e-3, high: 1.0e-2}\n",
                        method="qlora")
    with pytest.raises(Loaded):
        cli.main(["search", "--config", str(path)])
    replay = tmp_path / "best.yaml"   # what the search writes: the finetune settings, no search block
    replay.write_text(path.read_text().split("search:")[0])
    with pytest.raises(Loaded):
        cli.main(["run", "--config", str(replay)])
    assert len(loads) == 2 and loads[0] == loads[1] and loads[0]["quantization"] == "nf4"
