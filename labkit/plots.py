"""The figures the lessons draw (matplotlib), and the live loss plot used during training."""

from __future__ import annotations

import matplotlib.pyplot as plt
from transformers import TrainerCallback


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except Exception:
        return False


def lora_diagram(d: int, k: int, r: int, ax=None):
    """Lesson 02's picture of LoRA on one ``d x k`` weight matrix: the frozen W, plus B (``d x r``)
    times A (``r x k``), with each part's parameter count. B and A are drawn 6x thicker than
    their rank so that they are visible next to W; every number printed is the real one."""
    from matplotlib.patches import Rectangle

    ax = ax or plt.subplots(figsize=(8, 3.6))[1]
    thick = r * 6                                  # B's width and A's height on the drawing

    def box(x, y, w, h, color, label=""):
        ax.add_patch(Rectangle((x, y), w, h, color=color, alpha=0.6))
        ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=10)

    box(0, 0, k, d, "tab:gray", f"W (frozen)\n{d} x {k}\n{d * k:,} params")
    ax.text(k + 40, d / 2, "+", fontsize=22, va="center")
    b_x = k + 110
    box(b_x, 0, thick, d, "tab:orange")
    ax.text(b_x + thick / 2, -40, f"B\n{d} x {r}", ha="center", va="top", fontsize=10)
    ax.text(b_x + thick + 25, d / 2, "·", fontsize=26, va="center")
    a_x = b_x + thick + 70
    box(a_x, d - thick, k, thick, "tab:blue")
    ax.text(a_x + k / 2, d - thick - 40, f"A   ({r} x {k})", ha="center", va="top", fontsize=10)
    ax.text(a_x + k / 2, d / 3, f"B·A: {r * (d + k):,} trainable params\n({100 * r * (d + k) / (d * k):.1f}% of W)",
            ha="center", va="center", fontsize=10)
    ax.set_xlim(-20, a_x + k + 32)
    ax.set_ylim(-120, d + 20)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("LoRA: a frozen W plus a trainable low-rank update B·A (scaled by α/r)")
    return ax


def loss_curve(history, title: str = "Training", ax=None):
    """Train loss and validation loss against the step, from a trainer's log history."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train), label="train loss", marker=".")
    if evals:
        ax.plot(*zip(*evals), label="validation loss", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax




class LiveLossPlot(TrainerCallback):
    """Redraws the loss curve in the notebook each time the trainer logs.
    Outside a notebook it does nothing (the trainer's progress bar still shows)."""

    def __init__(self):
        self.handle = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not _in_notebook() or not state.is_world_process_zero:
            return
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(6, 3.5))
        loss_curve(state.log_history, title=f"step {state.global_step} / {state.max_steps}", ax=ax)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def bar_chart(values: dict, ylabel: str, title: str = "", ax=None, fmt="{:.2f}"):
    """A labelled bar chart of ``{name: value}``."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    bars = ax.bar(list(values), list(values.values()), color=plt.cm.tab10.colors[: len(values)])
    for b, v in zip(bars, values.values()):
        ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return ax


def confusion_matrix(matrix, labels, title: str = "Confusion matrix", ax=None):
    """A confusion matrix (rows: true label, columns: predicted) with counts in the cells."""
    import numpy as np

    m = np.asarray(matrix)
    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, int(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(title)
    return ax


def interval_width_plot(intervals: dict, axes=None):
    """Lesson 04's picture of ``labkit.evaluate.interval_widths``: left, the mean 95% interval width
    against n for the percentile bootstrap and the Wilson interval, with c/sqrt(n) fitted to
    Wilson's; right, the share of subsets whose bootstrap interval collapsed to width 0."""
    import numpy as np

    if axes is None:
        axes = plt.subplots(1, 2, figsize=(12, 3.8))[1]
    ax, ax_zero = axes
    n = np.array(sorted(intervals), dtype=float)
    boot = np.array([intervals[int(k)]["bootstrap"] for k in n])
    wilson = np.array([intervals[int(k)]["wilson"] for k in n])
    c = float(np.exp(np.mean(np.log(wilson) + 0.5 * np.log(n))))  # least squares for c on the log scale
    grid = np.linspace(n.min(), n.max(), 200)
    ax.plot(n, wilson, "o-", label="Wilson")
    ax.plot(n, boot, "s-", label="percentile bootstrap")
    ax.plot(grid, c / np.sqrt(grid), "--", color="gray", label=f"{c:.2f}/√n")
    ax.set_xlabel("test examples scored (n)")
    ax.set_ylabel("mean 95% interval width")
    ax.set_title("How sure are we? Interval width vs test-set size")
    ax.grid(alpha=0.3)
    ax.legend()
    ax_zero.bar([str(int(k)) for k in n], [100 * intervals[int(k)]["collapsed"] for k in n], color="tab:red")
    ax_zero.set_xlabel("test examples scored (n)")
    ax_zero.set_ylabel("% of subsets")
    ax_zero.set_title("bootstrap interval of width 0 (\"certain\")")
    ax_zero.grid(alpha=0.3, axis="y")
    return axes


def loss_curves(histories: dict, ax=None, title: str = "Validation loss", key: str = "eval_loss"):
    """One line per run (``{name: log history}``) of ``key`` against the step; the best point of
    each run is marked."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, (name, history) in enumerate(histories.items()):
        points = [(h["step"], h[key]) for h in history if key in h]
        if not points:
            continue
        color = plt.cm.tab10.colors[i % 10]
        ax.plot(*zip(*points), marker=".", label=name, color=color)
        best = min(points, key=lambda p: p[1])
        ax.plot(*best, "*", markersize=12, color=color)
    ax.set_xlabel("step")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
