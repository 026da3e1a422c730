"""labkit.course.timing: time to first token and decode speed, on a tiny random model (PyTorch) and its
tiny ONNX export, plus fake onnxruntime-genai objects that record what a measurement runs."""

import types

import pytest

from labkit.course import timing


def test_summarize_drops_the_warm_up_and_takes_medians():
    runs = [(9.0, 9.0), (0.1, 1.0), (0.3, 3.0), (0.2, 2.0)]      # (ttft s, decode s); the first is the warm-up
    row = timing.summarize(runs, prompt_tokens=128, new_tokens=65)
    assert row["TTFT (ms)"] == pytest.approx(200.0)                 # median of 0.1, 0.3, 0.2
    assert row["prompt (tok/s)"] == pytest.approx(128 / 0.2)
    assert row["decode (tok/s)"] == pytest.approx(64 / 2.0)         # the 64 tokens after the first, median 2.0 s
    assert list(row) == ["TTFT (ms)", "prompt (tok/s)", "decode (tok/s)"]
    with pytest.raises(ValueError, match="warm-up"):
        timing.summarize([(1.0, 1.0)], 8, 4)


def test_filler_ids_are_plain_text_of_the_asked_length(tiny_tokenizer):
    ids = timing.filler_ids(tiny_tokenizer, 50)
    one = tiny_tokenizer(timing.FILLER, add_special_tokens=False)["input_ids"]
    assert len(ids) == 50 and ids == (one * 50)[:50]


def test_torch_speed_generates_exactly_the_asked_tokens_after_a_warm_up(tiny_model, tiny_tokenizer, monkeypatch):
    ids = timing.filler_ids(tiny_tokenizer, 12)
    real, calls = tiny_model.generate, []

    def spy(x, **kwargs):
        out = real(x, **kwargs)
        calls.append((kwargs["max_new_tokens"], kwargs["min_new_tokens"], out.shape[1] - x.shape[1]))
        return out

    monkeypatch.setattr(tiny_model, "generate", spy)
    row = timing.torch_speed(tiny_model, ids, new_tokens=5, runs=2)
    assert calls == [(1, 1, 1), (5, 5, 5)] * 3                       # 1 token (TTFT), then all 5; warm-up + 2 runs
    assert row["prompt (tok/s)"] == pytest.approx(12 / (row["TTFT (ms)"] / 1000))   # the prompt's 12 tokens in the TTFT


def fake_og(generators):
    """A stand-in for onnxruntime_genai that records every generator a measurement creates."""

    class GeneratorParams:
        def __init__(self, model):
            self.options = {}

        def set_search_options(self, **options):
            self.options = options

    class Generator:
        def __init__(self, model, params):
            self.params, self.prompt, self.steps, self.adapter = params, None, 0, None
            generators.append(self)

        def set_active_adapter(self, adapters, name):
            assert self.prompt is None, "the adapter is set before the prompt"
            self.adapter = (adapters, name)

        def append_tokens(self, ids):
            self.prompt = list(ids)

        def generate_next_token(self):
            self.steps += 1

        def is_done(self):
            return len(self.prompt) + self.steps >= self.params.options["max_length"]

    return types.SimpleNamespace(GeneratorParams=GeneratorParams, Generator=Generator)


def test_genai_speed_runs_one_prompt_and_a_fixed_number_of_greedy_tokens(monkeypatch):
    from labkit.onnx import serve

    generators = []
    monkeypatch.setattr(serve, "import_og", lambda: fake_og(generators))
    model = types.SimpleNamespace(model="the og.Model", og_adapters="the og.Adapters")
    row = timing.genai_speed(model, [5, 6, 7, 8], new_tokens=6, runs=3)
    assert len(generators) == 4                                      # a warm-up and 3 measured runs
    for g in generators:
        assert g.params.options == {"max_length": 10, "min_length": 10, "do_sample": False}   # EOS cannot stop it early
        assert g.prompt == [5, 6, 7, 8] and g.steps == 6 and g.adapter is None
    assert set(row) == {"TTFT (ms)", "prompt (tok/s)", "decode (tok/s)"}

    generators.clear()
    timing.genai_speed(model, [5, 6], new_tokens=2, runs=1, adapter="tone")
    assert [g.adapter for g in generators] == [("the og.Adapters", "tone")] * 2


def test_genai_speed_on_a_tiny_onnx_export(tmp_path):
    pytest.importorskip("onnxruntime_genai")
    from test_export import make_tiny_model

    from labkit.onnx.build import export_onnx
    from labkit.onnx.serve import GenAIModel

    model = GenAIModel(export_onnx(make_tiny_model(tmp_path / "tiny-llama"), precision="fp32", out=tmp_path / "onnx"))
    ids = model.token_ids("the cat sat on the mat")
    row = timing.genai_speed(model, ids, new_tokens=8, runs=2)
    assert row["prompt (tok/s)"] == pytest.approx(len(ids) / (row["TTFT (ms)"] / 1000))
    assert set(row) == {"TTFT (ms)", "prompt (tok/s)", "decode (tok/s)"}


def test_compare_times_interleaves_rounds_and_drops_the_warm_up():
    calls = []
    table = timing.compare_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                 repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4                      # interleaved: a b a b ..., warm-up round included
    assert list(table.index) == ["a", "b"] and table.loc["a", "median / first"] == 1.0
    assert (table["min s"] <= table["median s"]).all() and (table["median s"] <= table["max s"]).all()
