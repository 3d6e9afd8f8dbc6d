"""The loss curves of a run, from its ``metrics.jsonl`` (``pyro-vaes plot RUN --kind loss``): the training loss and
the held-out loss against the training step.

What the two lines are (the figure says so): **train** is the moving average of the objective's loss per datum over
the training batches (``train_loss`` of ``metrics.jsonl``: each step's loss divided by the batch size, averaged with
a decay of 0.98, i.e. over roughly the last 50 steps, so it lags behind a fast-falling loss); **held-out** is the
same objective per datum on the first test examples (``eval_batches`` × ``batch_size`` of them), computed at each
evaluation with the modules in eval mode. A gap that opens between them is over-fitting; a held-out line that
still falls at the end says more steps would help.

With enough evaluations the figure has a second panel zoomed on the later part of training, where the first
steps' large losses would otherwise flatten everything; events of the run (a learning rate changed on resume, a
resume on another number of ranks) are dashed vertical lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

#: the decay of the training loss's moving average (engine/trainer.py)
DECAY = 0.98


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The evaluation rows and the event rows of ``run_dir/metrics.jsonl`` (lines that are not rows left out: a torn
    last line); two empty lists when there is no such file."""
    path = Path(run_dir) / "metrics.jsonl"
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    if not path.exists():
        return rows, events
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        if "event" in row:
            events.append(row)
        elif "train_loss" in row and "test_loss" in row:
            rows.append(row)
    return rows, events


def _event_label(event: dict[str, Any]) -> str:
    if "lr" in event:
        old, new = event["lr"]
        return f"lr {old:g} → {new:g}"
    if "world_size" in event:
        old, new = event["world_size"]
        return f"resumed on {new or 1} process(es), was {old or 1}"
    return str(event.get("event", "event"))


def _draw(ax, rows, events, best, zoom_from: int | None = None) -> None:
    steps = [r["step"] for r in rows]
    marker = "o" if len(rows) <= 20 else None
    ax.plot(steps, [r["train_loss"] for r in rows], color="tab:blue", marker=marker, markersize=3, label="train")
    ax.plot(steps, [r["test_loss"] for r in rows], color="tab:orange", marker=marker, markersize=3, label="held-out")
    ax.plot([best["step"]], [best["test_loss"]], marker="*", markersize=11, color="tab:red", linestyle="none")
    for event in events:
        if zoom_from is None or event["step"] >= zoom_from:
            ax.axvline(event["step"], color="0.4", linestyle="--", linewidth=0.8)
            ax.annotate(
                _event_label(event),
                (event["step"], 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                fontsize=7,
                color="0.3",
                rotation=90,
                va="top",
            )
    ax.set_xlabel("training step")
    ax.grid(True, color="0.9", linewidth=0.6)


def _trend(rows: list[dict[str, Any]]) -> str:
    """How the held-out loss moved over the last fifth of the run (a least-squares line through its evaluations
    there, at least 3), in words; empty with fewer evaluations."""
    end = rows[-1]["step"]
    tail = [r for r in rows if r["step"] >= end - 0.2 * end]
    if len(tail) < 3:
        tail = rows[-3:]
    if len(tail) < 3:
        return ""
    xs = [float(r["step"]) for r in tail]
    ys = [float(r["test_loss"]) for r in tail]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    change = slope * (xs[-1] - xs[0])
    return f"; held-out change over the last {xs[-1] - xs[0]:.0f} steps: {change:+.3g}"


def loss_curves(run, path: Path) -> Path | None:
    """Train and held-out loss per datum against the step, from ``metrics.jsonl`` (see the module docstring); None
    when the run has no evaluation row yet."""
    from pyro_vaes.analysis.plots import save_figure, wrap_title

    rows, events = read_metrics(run.run_dir)
    if not rows:
        return None
    c = run.config
    n_test = c.eval_batches * c.batch_size
    data = getattr(run, "data", None)
    if data is not None:
        n_test = min(n_test, len(data.test))
    best = min(rows, key=lambda r: r["test_loss"])
    last = rows[-1]
    zoom = len(rows) >= 6
    width = 10.0 if zoom else 6.0
    fig = Figure(figsize=(width, 4.4), layout="constrained")
    axes = fig.subplots(1, 2 if zoom else 1, squeeze=False)[0]
    _draw(axes[0], rows, events, best)
    values = [r[k] for r in rows for k in ("train_loss", "test_loss")]
    if min(values) > 0 and max(values) / min(values) > 10:
        from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

        axes[0].set_yscale("log")
        axes[0].yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes[0].yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        axes[0].yaxis.set_minor_formatter(NullFormatter())
        axes[0].set_ylabel("loss per datum (log scale)")
    else:
        axes[0].set_ylabel("loss per datum")
    axes[0].set_title("the whole run", fontsize=9)
    if zoom:
        later = rows[len(rows) // 3 :]
        _draw(axes[1], later, events, best if best in later else min(later, key=lambda r: r["test_loss"]), zoom_from=0)
        low = min(min(r["train_loss"], r["test_loss"]) for r in later)
        high = max(max(r["train_loss"], r["test_loss"]) for r in later)
        pad = 0.08 * (high - low) if high > low else max(abs(high), 1.0) * 0.01
        axes[1].set_ylim(low - pad, high + pad)
        axes[1].set_xlim(later[0]["step"] - 0.02 * (last["step"] - later[0]["step"] + 1), None)
        axes[1].set_ylabel("loss per datum")
        axes[1].set_title(f"zoomed: from step {later[0]['step']} on", fontsize=9)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="tab:blue"),
        Line2D([], [], color="tab:orange"),
        Line2D([], [], color="tab:red", marker="*", markersize=9, linestyle="none"),
    ]
    labels = [
        f"train: moving average of the loss per datum over the training batches (decay {DECAY}, ~50 steps: it lags "
        f"behind a falling loss); last {last['train_loss']:.4g}",
        f"held-out: the loss per datum on the first {n_test} test examples, at each evaluation; last "
        f"{last['test_loss']:.4g}",
        f"lowest held-out: {best['test_loss']:.4g} at step {best['step']}",
    ]
    import textwrap

    per_line = int(width * 72 / (0.6 * 8)) - 10  # characters of 8-point text on a line beside the legend's marks
    labels = [textwrap.fill(label, per_line) for label in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=1, fontsize=8, frameon=False)
    gap = last["test_loss"] - last["train_loss"]
    title = (
        f"{c.model} on {c.data}: the {c.objective} loss per datum (lower is better), {last['step']} steps. Final gap, "
        f"held-out minus train: {gap:+.3g}{_trend(rows)}"
    )
    fig.suptitle(wrap_title(title, width, 10), fontsize=10)
    return save_figure(fig, path)
