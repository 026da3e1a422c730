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


_LINEAR_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def chat_model_diagram(config, lora_targets=_LINEAR_PROJECTIONS, ax=None):
    """Lesson 00's picture of one request: messages -> chat template -> token ids -> embedding ->
    the decoder layers -> LM head, and below it one decoder layer opened up, with the linear
    projections LoRA attaches to (``lora_targets``: labkit's default ``all-linear`` is all seven) in
    orange. Every size printed comes from ``config`` (a transformers model config)."""
    from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

    ax = ax or plt.subplots(figsize=(12, 6))[1]
    hidden, vocab, layers = config.hidden_size, config.vocab_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q_out, kv_out = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    lora, plain, tied = "tab:orange", "lightgray", getattr(config, "tie_word_embeddings", False)

    def box(x, y, w, h, text, color=plain, lw=1.0):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=color, edgecolor="black", lw=lw, alpha=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10))

    def proj(x, y, w, h, name, n_in, n_out):
        target = name in lora_targets
        box(x, y, w, h, f"{name}\n{n_in:,} → {n_out:,}" + ("\n+ B·A" if target else ""), lora if target else plain)

    head = f"LM head\n{hidden} → {vocab:,}\nscores → next token" + ("\n(tied to embedding)" if tied else "")
    top = [("messages\n[{role, content},\n...]", plain), ("chat template\none text with\nrole markers", plain),
           (f"tokenizer\ntoken ids\n(vocabulary {vocab:,})", plain), (f"embedding\n{vocab:,} x {hidden}", plain),
           (f"{layers} x decoder layer\n(opened below)", "lightsteelblue"), (head, plain)]
    for i, (text, color) in enumerate(top):
        box(16.5 * i, 44, 13.5, 14, text, color, lw=2 if i == 4 else 1)
        if i:
            arrow(16.5 * i - 3, 51, 16.5 * i, 51)
    ax.add_patch(Rectangle((0, 2), 100, 35, facecolor="aliceblue", edgecolor="steelblue", lw=1.5))
    ax.plot([66, 0], [44, 37], [79.5, 100], [44, 37], ls="--", color="steelblue")
    ax.text(50, 34.5, f"one decoder layer (all {layers} alike): x + attention(norm(x)), then x + MLP(norm(x))",
            ha="center", fontsize=9)
    box(1.5, 14, 7, 10, "RMSNorm")
    for y, name, n_out in ((25.5, "q_proj", q_out), (16, "k_proj", kv_out), (6.5, "v_proj", kv_out)):
        proj(11, y, 12, 7.5, name, hidden, n_out)
        arrow(8.5, 19, 11, y + 3.75)
        arrow(23, y + 3.75, 25.5, 19)
    box(25.5, 14, 12, 10, "attention\nsoftmax(QKᵀ/√d)\n· V")
    proj(40, 14, 10, 10, "o_proj", q_out, hidden)
    box(53, 14, 7, 10, "RMSNorm")
    for y, name in ((21, "gate_proj"), (8, "up_proj")):
        proj(62.5, y, 12, 8, name, hidden, config.intermediate_size)
        arrow(60, 19, 62.5, y + 4)
        arrow(74.5, y + 4, 77, 19)
    box(77, 14, 9, 10, "SiLU(gate)\n· up")
    proj(88.5, 14, 10.5, 10, "down_proj", config.intermediate_size, hidden)
    for x0, x1 in ((37.5, 40), (50, 53), (86, 88.5)):
        arrow(x0, 19, x1, 19)
    n_lora = sum(name in lora_targets for name in _LINEAR_PROJECTIONS)
    ax.legend(handles=[Patch(color=lora, label=f"LoRA attaches here: frozen W + trainable B·A "
                                                f"({n_lora} per layer, {n_lora * layers} in all)"),
                       Patch(color=plain, label="frozen, no adapter")], loc="upper center",
              bbox_to_anchor=(0.5, 0.03), ncol=2, fontsize=9, frameon=False)
    ax.set(xlim=(-1, 101), ylim=(0, 60), title="One request through the model, and where LoRA attaches")
    ax.axis("off")
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


def interval_scaling_plot(spread: dict, intervals: dict, accuracy: float | None = None, axes=None):
    """Lesson 04's picture of how sure a test set makes us. Left, on log-log axes: the measured
    spread of accuracy across disjoint test subsets of n (``labkit.evaluate.subset_spread``) with
    its fitted power law n^k, and, given the overall ``accuracy`` p, the formula sqrt(p(1-p)/n)
    that Wilson's interval is built on. Right: the share of subsets whose percentile bootstrap
    interval collapsed to width 0 (``intervals`` from ``labkit.evaluate.interval_widths``)."""
    import numpy as np

    if axes is None:
        axes = plt.subplots(1, 2, figsize=(12, 3.8))[1]
    ax, ax_zero = axes
    n = np.array(sorted(spread), dtype=float)
    std = np.array([spread[int(k)]["std"] for k in n])
    k, log_c = np.polyfit(np.log(n), np.log(std), 1)
    grid = np.geomspace(n.min(), n.max(), 50)
    ax.loglog(n, std, "o", markersize=7, label="measured: std over disjoint subsets")
    ax.loglog(grid, np.exp(log_c) * grid ** k, "-", label=f"fit: {np.exp(log_c):.2f}·n^{k:.2f}")
    if accuracy is not None:
        ax.loglog(grid, np.sqrt(accuracy * (1 - accuracy) / grid), "--", color="gray", label="formula: √(p(1-p)/n)")
    ax.minorticks_off()
    ax.set_xticks(n, [str(int(k)) for k in n])
    y_ticks = [t for t in (0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5) if std.min() / 1.3 <= t <= std.max() * 1.3]
    ax.set_yticks(y_ticks, [f"{t:g}" for t in y_ticks])
    ax.set_xlabel("test examples per subset (n)")
    ax.set_ylabel("spread (std) of accuracy")
    ax.set_title("How much does accuracy move between test sets of n?")
    ax.grid(alpha=0.3)
    ax.legend()
    sizes = sorted(intervals)
    ax_zero.bar([str(s) for s in sizes], [100 * intervals[s]["collapsed"] for s in sizes], color="tab:red")
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
