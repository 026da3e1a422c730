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


def ci_width_curve(widths: dict, ax=None, title: str = "How sure are we? 95% interval width vs test-set size"):
    """Measured interval widths against n, with the c/sqrt(n) curve fitted to them: quadruple
    the test set to halve the interval."""
    import numpy as np

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    n = np.array(sorted(widths), dtype=float)
    w = np.array([widths[int(k)] for k in n])
    c = float((w / np.sqrt(1 / n)).mean())          # least-squares-ish scale for c/sqrt(n)
    grid = np.linspace(n.min(), n.max(), 200)
    ax.plot(n, w, "o", label="measured (bootstrap)")
    ax.plot(grid, c / np.sqrt(grid), "--", label=f"{c:.2f}/√n")
    ax.set_xlabel("test examples scored (n)")
    ax.set_ylabel("95% CI width (accuracy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


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
