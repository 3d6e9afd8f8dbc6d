"""Watching runs: TensorBoard events in RUN/tensorboard (read back with TensorBoard's own reader) and the loss curves
of ``pyro-vaes plot RUN --kind loss``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import TINY, binary_images
from test_plots import texts_outside

import pyro_vaes
from pyro_vaes.analysis import plots
from pyro_vaes.engine import events

SETTINGS = dict(
    model="vae",
    data="linear-gaussian",
    model_args={"latent_dim": 2, "hidden": 16},
    guide_args={"hidden": 16},
)


def accumulator():
    return pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="the tensorboard package is not installed (pip install 'pyro-vaes[tensorboard]')",
    )


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of ``run_dir/tensorboard`` as TensorBoard shows it: (step, value) per tag, after its purges."""
    ea = accumulator().EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "event" not in r]


def same_series(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    """The same steps and the same values (events store float32)."""
    return [x for x, _ in a] == [x for x, _ in b] and [y for _, y in a] == pytest.approx([y for _, y in b], rel=1e-6)


def params(run) -> list[torch.Tensor]:
    return [p.detach().clone() for m in (run.model, run.guide) for p in m.parameters()]


def test_events_hold_the_losses_the_objective_terms_and_the_learning_rates(tmp_path):
    """FactorVAE (reconstruction, the KL of z, the TC regulariser, two optimizers): every tag is there, the losses
    are metrics.jsonl's, and the terms add up to the step's loss."""
    accumulator()
    data = binary_images(n_train=64, n_test=32, shape=(1, 12, 12))
    run = pyro_vaes.fit(
        out=tmp_path / "run",
        dataset=data,
        objective="factor-vae",
        objective_args={"disc_hidden": 16, "disc_layers": 2},
        **SETTINGS,
        **dict(TINY, steps=20, eval_every=10, checkpoint_every=10),
    )
    s = scalars(run.run_dir)
    assert set(s) == {
        "loss/train",
        "loss/train_average",
        "loss/heldout",
        "terms/reconstruction",
        "terms/kl/z",
        "terms/regularizer",
        "lr/main",
        "lr/discriminator",
    }
    assert [step for step, _ in s["loss/train"]] == [10, 20]  # every events.EVERY steps and at each evaluation
    recorded = rows(run.run_dir)
    assert same_series(s["loss/heldout"], [(r["step"], r["test_loss"]) for r in recorded])
    assert same_series(s["loss/train_average"], [(r["step"], r["train_loss"]) for r in recorded])
    assert same_series(s["lr/main"], [(10, 1e-3), (20, 1e-3)]) and s["lr/discriminator"][0][1] > 0
    for i, (_, loss) in enumerate(s["loss/train"]):  # one process: the terms are the whole batch's
        parts = s["terms/reconstruction"][i][1] + s["terms/kl/z"][i][1] + s["terms/regularizer"][i][1]
        assert math.isclose(parts, loss, rel_tol=1e-4)
        assert s["terms/regularizer"][i][1] != 0.0  # the TC penalty


def test_a_resume_appends_and_replaces_what_came_after_its_checkpoint(tmp_path):
    """4 steps, resume to 8, then (as if killed after step 8's evaluation, its last checkpoint at 4) resume from 4 to
    8 again: TensorBoard shows each step once — the events after the checkpoint are replaced, as metrics.jsonl's rows
    are — in one event file per session."""
    accumulator()
    data = binary_images(n_train=64, n_test=32, shape=(1, 12, 12))
    run_dir = tmp_path / "run"
    settings = dict(SETTINGS, **dict(TINY, eval_every=2, checkpoint_every=4))
    pyro_vaes.fit(out=run_dir, dataset=data, **dict(settings, steps=4))
    at4 = (run_dir / "checkpoint.pt").read_bytes()
    pyro_vaes.fit(resume=run_dir, steps=8, dataset=data, progress=False)
    first = scalars(run_dir)
    (run_dir / "checkpoint.pt").write_bytes(at4)  # the crash: its last checkpoint is step 4's
    pyro_vaes.fit(resume=run_dir, steps=8, dataset=data, progress=False)
    assert len(list((run_dir / "tensorboard").iterdir())) == 3
    again = scalars(run_dir)
    assert [step for step, _ in again["loss/heldout"]] == [2, 4, 6, 8]
    assert again["loss/heldout"] == first["loss/heldout"]  # the resumed run is exact
    assert same_series(again["loss/heldout"], [(r["step"], r["test_loss"]) for r in rows(run_dir)])


def test_events_change_no_number_and_their_absence_is_said_once(tmp_path, monkeypatch):
    """Without the tensorboard package: the same parameters, no tensorboard/ folder, one note (the first run of the
    process) saying how to turn the events on."""
    data = binary_images(n_train=64, n_test=32, shape=(1, 12, 12))
    with_events = pyro_vaes.fit(out=tmp_path / "on", dataset=data, **SETTINGS, **TINY)
    monkeypatch.setattr(events, "summary_writer", lambda: None)
    monkeypatch.setattr(events, "_SAID_OFF", False)
    without = pyro_vaes.fit(out=tmp_path / "off", dataset=data, **SETTINGS, **TINY)
    for a, b in zip(params(with_events), params(without)):
        assert torch.equal(a, b)
    assert not (tmp_path / "off" / "tensorboard").exists()
    said = [n for n in without.notes if "TensorBoard" in n]
    assert said == [
        "TensorBoard events are off: the tensorboard package is not installed (pip install "
        "'pyro-vaes[tensorboard]' turns them on, in RUN/tensorboard)"
    ]
    again = pyro_vaes.fit(out=tmp_path / "off2", dataset=data, **SETTINGS, **TINY)
    assert not any("TensorBoard" in n for n in again.notes)  # once


def test_loss_curves_say_what_each_line_is(tmp_path, monkeypatch):
    """``plot --kind loss``: one figure from metrics.jsonl, its axes labelled, its legend saying that the train line
    is a moving average of the loss per datum and how many test examples the held-out line uses; a run without an
    evaluation row is refused in one line."""
    figs = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: (figs.append(fig), save(fig, path))[1])
    data = binary_images(n_train=64, n_test=32, shape=(1, 12, 12))
    run = pyro_vaes.fit(out=tmp_path / "run", dataset=data, **SETTINGS, **dict(TINY, steps=24, eval_every=3))
    (path,) = run.plot("loss", out=tmp_path / "figs")
    assert path.name == "loss.png" and path.stat().st_size < 300_000
    (fig,) = figs
    assert len(fig.axes) == 2  # 8 evaluations: the whole run and a zoom on its later part
    for ax in fig.axes:
        assert ax.get_xlabel() == "training step" and "loss per datum" in ax.get_ylabel()
        train, heldout = ax.get_lines()[:2]
        assert list(heldout.get_xdata())[-1] == 24
    assert not texts_outside(fig), texts_outside(fig)  # (test_plots.py's check of every figure)
    legend = " ".join(" ".join(t.get_text() for t in lg.get_texts()) for lg in fig.legends).replace("\n", " ")
    assert "moving average of the loss per datum" in legend and "first 16 test examples" in legend
    assert "vae on linear-gaussian" in fig._suptitle.get_text().replace("\n", " ")
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="metrics.jsonl has no evaluation row yet"):
        pyro_vaes.load(tmp_path / "run", dataset=data).plot("loss", out=tmp_path / "figs2")


def test_a_replacing_run_writes_its_events_in_the_final_folder(tmp_path):
    """--overwrite: the new run is written beside the old one and swapped in at its first checkpoint; its events
    (evaluations before that checkpoint included) end up in RUN/tensorboard, the old run's gone with it."""
    accumulator()
    data = binary_images(n_train=64, n_test=32, shape=(1, 12, 12))
    settings = dict(SETTINGS, **dict(TINY, eval_every=2, checkpoint_every=4, steps=4))
    pyro_vaes.fit(out=tmp_path / "run", dataset=data, **settings)
    pyro_vaes.fit(out=tmp_path / "run", dataset=data, overwrite=True, **dict(settings, seed=1))
    assert len(list((tmp_path / "run" / "tensorboard").iterdir())) == 1
    assert same_series(
        scalars(tmp_path / "run")["loss/heldout"], [(r["step"], r["test_loss"]) for r in rows(tmp_path / "run")]
    )
