"""labkit.plots: the figures the lessons draw, on tiny inputs (no model, no display)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from labkit import plots  # noqa: E402


def test_lora_diagram_draws_w_b_and_a_with_their_real_parameter_counts():
    ax = plots.lora_diagram(576, 576, 8)
    texts = " | ".join(t.get_text() for t in ax.texts)
    assert "W (frozen)\n576 x 576\n331,776 params" in texts
    assert "B\n576 x 8" in texts and "A   (8 x 576)" in texts
    assert "B·A: 9,216 trainable params\n(2.8% of W)" in texts       # r (d + k) = 8 * 1152, the lesson's numbers
    w, b, a = ax.patches
    assert (w.get_width(), w.get_height()) == (576, 576)
    assert (b.get_width(), b.get_height()) == (48, 576) and (a.get_width(), a.get_height()) == (576, 48)  # drawn 6x r
    right_edge = a.get_x() + a.get_width()
    assert ax.get_xlim()[1] > right_edge                            # A is inside the picture
    plt.close(ax.figure)


def test_lora_diagram_draws_on_a_given_axes_for_any_shape():
    fig, (left, right) = plt.subplots(1, 2)
    assert plots.lora_diagram(64, 128, 2, ax=right) is right
    assert not left.patches and len(right.patches) == 3
    assert any("2 x 128" in t.get_text() for t in right.texts)
    assert right.get_xlim()[1] > max(p.get_x() + p.get_width() for p in right.patches)
    plt.close(fig)


def _lora_boxes(ax):
    import numpy as np
    from matplotlib.colors import to_rgba

    return [p for p in ax.patches if np.allclose(p.get_facecolor(), to_rgba("tab:orange", 0.8))]


def test_chat_model_diagram_marks_the_lora_targets_with_the_configs_sizes():
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    ax = plots.chat_model_diagram(config)
    texts = " | ".join(t.get_text() for t in ax.texts)
    assert "2 x decoder layer" in texts and "embedding\n400 x 32" in texts and "(tied to embedding)" in texts
    assert "q_proj\n32 → 32\n+ B·A" in texts and "k_proj\n32 → 16\n+ B·A" in texts     # 2 kv heads x head_dim 8
    assert "gate_proj\n32 → 64\n+ B·A" in texts and "down_proj\n64 → 32\n+ B·A" in texts
    assert len(_lora_boxes(ax)) == 7
    assert "7 per layer, 14 in all" in ax.get_legend().get_texts()[0].get_text()
    plt.close(ax.figure)

    fig, ax = plt.subplots()
    assert plots.chat_model_diagram(config, lora_targets=["q_proj", "v_proj"], ax=ax) is ax     # Olive's default targets
    texts = " | ".join(t.get_text() for t in ax.texts)
    assert len(_lora_boxes(ax)) == 2 and "k_proj\n32 → 16 |" in texts
    assert "2 per layer, 4 in all" in ax.get_legend().get_texts()[0].get_text()
    plt.close(fig)


def test_interval_scaling_plot_draws_the_measured_spread_its_fit_and_the_formula():
    import pytest

    spread = {n: {"std": 0.4 / n ** 0.5, "subsets": 100 // n} for n in (5, 10, 20, 40)}
    intervals = {n: {"bootstrap": 0.1, "wilson": 0.1, "collapsed": c} for n, c in ((5, 0.4), (10, 0.1), (20, 0), (40, 0))}
    ax, ax_zero = plots.interval_scaling_plot(spread, intervals, accuracy=0.8)
    assert [line.get_label() for line in ax.get_lines()] == [
        "measured: std over disjoint subsets", "fit: 0.40·n^-0.50", "formula: √(p(1-p)/n)"]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "10", "20", "40"]
    assert [p.get_height() for p in ax_zero.patches] == pytest.approx([40, 10, 0, 0])
    plt.close(ax.figure)
