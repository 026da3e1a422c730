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
