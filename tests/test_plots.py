"""The figures a person learns from: every panel's axes labelled, titles that say what (and how many) is shown,
flat data in scatter plots coloured by label or by the traversed value, and no text outside the canvas."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from helpers import TINY, binary_images
from matplotlib.backends.backend_agg import FigureCanvasAgg

import pyro_vaes
from pyro_vaes.analysis import plots
from pyro_vaes.data import ArraySplit, VAEData


def renderer(fig):
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def texts_outside(fig) -> list[str]:
    """What of ``fig`` as drawn (titles, labels, the tick labels drawn, legends, notes) is not inside its canvas:
    the figure-level texts and legends by their text, an axes by its label or title."""
    r = renderer(fig)
    box = fig.bbox.padded(1)

    def inside(e) -> bool:
        return box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1

    outside = [t.get_text() for t in fig.texts if t.get_text().strip() and not inside(t.get_window_extent(r))]
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        t = getattr(fig, name, None)
        if t is not None and t.get_text() and not inside(t.get_window_extent(r)):
            outside.append(t.get_text())
    for legend in fig.legends:
        if not inside(legend.get_window_extent(r)):
            outside.append("legend: " + ", ".join(t.get_text() for t in legend.get_texts()))
    for ax in fig.axes:
        if ax.get_visible() and not inside(ax.get_tightbbox(r)):
            outside.append(f"axes {ax.get_title() or ax.get_label()!r}")
    return outside


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def title_of(fig) -> str:
    """The figure's title (or its first axes'), its wrapped lines joined."""
    text = fig._suptitle.get_text() if fig._suptitle is not None else fig.axes[0].get_title()
    return " ".join(text.split())


def panels(fig):
    """The data panels of ``fig`` (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


@pytest.fixture
def captured(monkeypatch):
    """The figures the plotting functions save, in order (still written to disk)."""
    figs = []
    save = plots.save_figure

    def keep(fig, path):
        figs.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figs


def flat_run(tmp_path, data: str, model: str = "vae", latent_dim: int = 3, **extra):
    return pyro_vaes.fit(
        out=tmp_path / f"{model}-{data}",
        model=model,
        data=data,
        data_args={"n_train": 64, "n_test": 40},
        model_args={"latent_dim": latent_dim, "hidden": 16, "likelihood": "gaussian"},
        guide_args={"hidden": 16},
        **{**TINY, **extra},
    )


def scatter_sizes(ax) -> list[int]:
    return [len(c.get_offsets()) for c in ax.collections if c.__class__.__name__ in ("PathCollection",)]


def check_common(fig) -> None:
    assert not texts_outside(fig), texts_outside(fig)
    for ax in panels(fig):
        assert ax.get_xlabel() and ax.get_ylabel(), "every panel's axes are labelled"


@pytest.mark.parametrize("data,dim", [("moons", 2), ("swissroll", 3)])
def test_flat_run_figures_are_labelled_scatters_with_honest_titles(tmp_path, captured, data, dim):
    run = flat_run(tmp_path, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No data for colormapping provided"
        paths = run.plot("all", out=tmp_path / "figs")
    assert [p.name for p in paths] == ["reconstructions.png", "samples.png", "traversals.png"]
    assert all(p.stat().st_size < 500_000 for p in paths)
    recon, samples, trav = captured
    for fig in captured:
        check_common(fig)

    # reconstructions: one panel per pair of features, test points and reconstructions, as many as the title says
    assert len(panels(recon)) == {2: 1, 3: 3}[dim]
    n = int(re.search(r"(\d+) test points and their reconstructions", title_of(recon)).group(1))
    assert n == 40 and "(top)" not in title_of(recon)
    for ax in panels(recon):
        assert scatter_sizes(ax) == [n, n]
    assert {ax.get_xlabel() for ax in panels(recon)} <= {"x[0]", "x[1]"}

    # samples: the title's counts are those plotted
    m = re.search(r"(\d+) samples .* over (\d+) test points", title_of(samples))
    shown, ref = int(m.group(1)), int(m.group(2))
    assert (shown, ref) == (500, 40)
    for ax in panels(samples):
        assert sorted(scatter_sizes(ax)) == [ref, shown]

    # traversals: one panel per latent dimension, the points coloured by the swept value, a colour bar
    data_panels = panels(trav)
    assert [ax.get_title() for ax in data_panels] == ["z0", "z1", "z2"]
    assert any(ax.get_label() == "<colorbar>" for ax in trav.axes)
    assert trav.axes[-1].get_ylabel() == "value of the swept dimension"
    for ax in data_panels:
        coloured = [c for c in ax.collections if c.get_array() is not None]
        assert len(coloured) == 1 and torch.allclose(
            torch.as_tensor(coloured[0].get_array()).float(), torch.linspace(-3, 3, 9)
        )
        if dim == 3:
            assert ax.name == "3d" and ax.get_zlabel() == "x[2]"
    assert "panel = dimension of z" in title_of(trav)


def test_class_conditioned_flat_samples_are_coloured_by_class(tmp_path, captured):
    run = flat_run(tmp_path, "moons", model="cvae", latent_dim=2)
    run.plot("samples", out=tmp_path / "figs")
    (fig,) = captured
    check_common(fig)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["test data", "samples, moon 0", "samples, moon 1"]
    shown = int(re.search(r"(\d+) samples", title_of(fig)).group(1))
    assert sum(scatter_sizes(fig.axes[0])[1:]) == shown


def test_flat_figures_of_one_and_many_features(monkeypatch):
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figs.append(fig) or path)
    x = torch.randn(30, 6)
    plots._flat_figure("six features", "u.png", [("data", x, {}), ("model", x + 1, {})], links=(x, x + 1))
    plots._flat_figure("one feature", "u.png", [("data", x[:, :1], {})])
    plots._flat_traversals(torch.randn(2, 5, 6), torch.linspace(-1, 1, 5), x, ["z0", "z1"], "6 features", "u.png")
    many, one, trav = figs
    assert len(panels(many)) == 6 and "pairs of features 0-3 of 6" in title_of(many)
    assert panels(one)[0].get_ylabel() == "count"
    assert [ax.get_xlabel() for ax in panels(trav)] == ["value of z0", "value of z1"]
    for fig in figs:
        check_common(fig)


def test_image_figures_say_what_they_show(tmp_path, captured):
    data = binary_images(n_train=32, n_test=20)
    run = pyro_vaes.fit(
        out=tmp_path / "img",
        model="vae",
        data="linear-gaussian",
        dataset=data,
        model_args={"latent_dim": 2, "hidden": 16},
        guide_args={"hidden": 16},
        **TINY,
    )
    run.plot("all", out=tmp_path / "figs")
    recon, samples, trav = captured
    for fig in captured:
        assert not texts_outside(fig), texts_outside(fig)
    assert "16 test images (top row)" in title_of(recon)
    assert "64 samples" in title_of(samples)
    assert "around test item 0's posterior mean" in title_of(trav)
    ax = trav.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["z0", "z1"] and ax.get_xlabel() == "value of z_d"


def toy(x, y, label_names=None, info=None):
    return VAEData(
        "toy", ArraySplit(x, y), ArraySplit(x[:5], None if y is None else y[:5]), label_names, None, info or {}
    )


@pytest.mark.parametrize(
    "y,names,expect",
    [
        (torch.arange(60) % 2, ["left", "right"], ["left", "right"]),  # (N,) classes, named
        ((torch.arange(60) % 2)[:, None], ["x0>=10"], ["x0>=10 = 0", "x0>=10 = 1"]),  # (N, 1): swissroll's
        (torch.stack([torch.arange(60) % 2, torch.arange(60) % 3], 1), ["a", "b"], None),  # (N, 2): a panel each
        (torch.linspace(0, 1, 60), None, "colorbar"),  # continuous
        (None, None, []),
    ],
)
@pytest.mark.parametrize("dim", [2, 3])
def test_data_show_colours_flat_data_by_label(y, names, expect, dim):
    from pyro_vaes.data.cli import dataset_figure

    x = torch.randn(60, dim)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "No data for colormapping provided" when the labels are ignored
        fig = dataset_figure(toy(x, y, names), n=64)
    check_common(fig)
    data_panels = panels(fig)
    if dim == 3:
        assert all(ax.name == "3d" and ax.get_zlabel() == "x[2]" for ax in data_panels)
    assert "the first 60 of 60 examples" in title_of(fig)
    if expect == "colorbar":
        assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    elif expect is None:  # one panel per label column, each with its classes
        assert [ax.get_title() for ax in data_panels] == ["coloured by a", "coloured by b"]
        assert [len(ax.get_legend().get_texts()) for ax in data_panels] == [2, 3]
    elif expect:
        assert [t.get_text() for t in data_panels[0].get_legend().get_texts()] == expect
        assert len(data_panels[0].collections) == len(expect)
    else:
        assert data_panels[0].get_legend() is None and len(data_panels) == 1


def test_data_show_of_many_and_one_features():
    from pyro_vaes.data.cli import dataset_figure

    fig = dataset_figure(toy(torch.randn(50, 7), torch.arange(50) % 3), n=10)
    check_common(fig)
    assert len(panels(fig)) == 6 and "pairs of features 0-3 of 7" in title_of(fig)
    fig = dataset_figure(toy(torch.randn(50, 1), torch.arange(50) % 2, ["no", "yes"]), n=10)
    check_common(fig)
    assert [t.get_text() for t in panels(fig)[0].get_legend().get_texts()] == ["no", "yes"]


def test_data_show_image_title_clears_the_captions():
    from pyro_vaes.data.cli import dataset_figure

    data = binary_images(n_train=20, n_test=4)
    data.train.y = torch.arange(20) % 3
    fig = dataset_figure(data, n=12)
    r = renderer(fig)
    assert not texts_outside(fig)
    top = fig._suptitle.get_window_extent(r)
    captions = [ax.title.get_window_extent(r) for ax in fig.axes if ax.get_title()]
    assert len(captions) == 12 and not any(overlaps(top, c) for c in captions)
    assert "the first 12 of 20 examples" in title_of(fig)


def test_chyvae_scatter_has_no_offset_text_over_its_label(tmp_path, monkeypatch):
    from pyro_vaes.experiments import chyvae_figures

    figs = []
    monkeypatch.setattr(chyvae_figures, "save_figure", lambda fig, path: figs.append(fig) or path)
    rows = [  # reconstruction errors that differ in the fourth decimal: matplotlib would add an offset text
        {"family": f, "param": p, "value": v, "recon_error": 3008.404 + d, "factor_vae_metric": m}
        for f, p, v, d, m in [
            ("chyvae", "nu", 12.0, 0.0001, 0.35),
            ("beta-vae", "beta", 4.0, 0.0019, 0.25),
            ("factor-vae", "gamma", 35.0, 0.001, 0.4),
        ]
    ]
    chyvae_figures.write_figures(tmp_path, "shapes2d", rows, {})
    (fig,) = figs
    ax = fig.axes[0]
    r = renderer(fig)
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    label = ax.xaxis.label.get_window_extent(r)
    assert not any(overlaps(label, t.get_window_extent(r)) for t in ax.get_xticklabels() if t.get_text())
    assert not texts_outside(fig)
    assert sorted(t.get_text() for t in ax.texts) == ["β=4", "γ=35", "ν=12"]
    assert "3 runs" in ax.get_title()
