"""What lesson 07 measures and drills, on tiny random Llamas built here: a fixed-size request
(``serve.generate_exactly``), the costs of serving N tasks (``labkit.course.serving_costs``) and the
refusal drills (``labkit.course.refusal_drills``)."""

from pathlib import Path

import pytest

og = pytest.importorskip("onnxruntime_genai")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_adapters import ADAPTERS, save_adapter  # noqa: E402
from test_export import make_tiny_model  # noqa: E402

from labkit.course import refusal_drills, serving_costs  # noqa: E402
from labkit.onnx import adapter_files, build, serve  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="module")
def peft_dirs(tiny, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("peft")
    return {name: save_adapter(tiny, root / name, **spec) for name, spec in ADAPTERS.items()}


@pytest.fixture(scope="module")
def multi(tiny, peft_dirs, tmp_path_factory) -> Path:
    return build.generate_adapter(tiny, peft_dirs, tmp_path_factory.mktemp("out") / "multi")


@pytest.fixture(scope="module")
def merged(tiny, peft_dirs, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("merged")
    return {name: build.export_onnx(tiny, adapter_dir=folder, precision="fp32", out=root / name, verbose=False)
            for name, folder in peft_dirs.items()}


def test_generate_exactly_makes_every_request_the_same_size(multi, merged):
    served, plain = serve.MultiAdapterModel(multi), serve.GenAIModel(merged["qv"])
    ids = served.token_ids("the cat sat on the mat")
    for model, adapter in ((served, None), (served, "qv"), (served, "all"), (plain, None)):
        new = serve.generate_exactly(model, ids, 12, adapter=adapter)
        assert len(new) == 12, (model, adapter)          # end-of-text does not cut it short
        assert new[:4] == model.greedy_ids(ids, 4, adapter=adapter)   # the same greedy tokens
    with pytest.raises(KeyError, match="No adapter 'nope'"):
        serve.generate_exactly(served, ids, 2, adapter="nope")
    with pytest.raises(ValueError, match="plain export with no adapters"):
        serve.generate_exactly(plain, ids, 2, adapter="qv")


def test_disk_counts_the_base_once_and_each_merged_export(multi, merged):
    disk = serving_costs.disk_mb(multi, merged.values())
    base = build.folder_size_mb(multi / "model.onnx.data")
    files = [build.folder_size_mb(f) for f in adapter_files.find_adapter_files(multi).values()]
    assert disk[serving_costs.MULTI] == pytest.approx(base + sum(files))
    assert disk[serving_costs.MERGED] == pytest.approx(sum(build.folder_size_mb(d / "model.onnx.data")
                                                           for d in merged.values()))
    per_task = serving_costs.added_per_task_mb(multi, merged.values())
    assert per_task["adapter file"] == pytest.approx(sum(files) / 2)
    assert per_task["merged export"] == pytest.approx(disk[serving_costs.MERGED] / 2)


def test_switch_costs_and_the_serving_modes_table(multi, merged):
    ids = serve.GenAIModel(multi).token_ids("hello world")
    switch = serving_costs.switch_costs(multi, merged, ids, repeats=4)
    assert set(switch["adapter file load (ms)"]) == set(ADAPTERS) == set(switch["merged export load (ms)"])
    assert all(v > 0 for v in switch["adapter file load (ms)"].values()) and switch["set_active_adapter (µs)"] > 0
    memory = {serving_costs.MULTI: 300.0, serving_costs.ONE_MERGED: 280.0}
    disk = {serving_costs.MULTI: 10.0, serving_costs.MERGED: 16.0}
    table = serving_costs.serving_modes(switch, 1.1, memory, disk)
    assert list(table.index) == [serving_costs.ADAPTER_PER_REQUEST, serving_costs.MERGE_ON_SWITCH]
    assert table.loc[serving_costs.ADAPTER_PER_REQUEST, "request time vs merged"] == 1.1
    assert table.loc[serving_costs.MERGE_ON_SWITCH, "disk (MB)"] == 16
    assert table.loc[serving_costs.ADAPTER_PER_REQUEST, "switch a task"].endswith(" µs")


@pytest.mark.slow
def test_server_memory_is_measured_for_every_setup(multi, merged):
    ids = serve.GenAIModel(multi).token_ids("hello world")
    memory = serving_costs.server_memory_mb(multi, merged.values(), ids)
    assert list(memory) == [serving_costs.NOTHING, serving_costs.MULTI, serving_costs.MERGED, serving_costs.ONE_MERGED]
    assert all(20 < v < 5000 for v in memory.values()), memory


def test_refused_says_whether_the_checks_turned_an_action_away(capsys):
    def refuse():
        raise adapter_files.AdapterError("not for this base")

    assert refusal_drills.refused("a bad adapter", refuse) is True
    assert "a bad adapter: REFUSED\n    not for this base" in capsys.readouterr().out
    assert refusal_drills.refused("a good adapter", lambda: None) is False
    assert "accepted?!" in capsys.readouterr().out
    with pytest.raises(ZeroDivisionError):       # only the checks' refusals count as refused
        refusal_drills.refused("a bug", lambda: 1 / 0)


def test_the_drills_bad_inputs_are_refused(tiny, multi, tmp_path):
    from transformers import AutoTokenizer

    other = refusal_drills.adapter_of_another_base(tmp_path / "other", len(AutoTokenizer.from_pretrained(tiny)))
    with pytest.raises(adapter_files.AdapterError):
        build.generate_adapter(tiny, [other], tmp_path / "never")
    cut = refusal_drills.truncated_copy(multi / "qv.onnx_adapter", tmp_path / "cut.onnx_adapter")
    assert cut.stat().st_size == (multi / "qv.onnx_adapter").stat().st_size // 2
    with pytest.raises(adapter_files.AdapterError):
        serve.MultiAdapterModel(multi, adapters={}).load_adapter("cut", cut)
