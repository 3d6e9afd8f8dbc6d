"""pyro-vaes compare / pyro_vaes.compare: every guide fitted alike, evaluated alike, its gaps split; the table agrees
with the runs it came from; existing runs are reused, and nothing outside the comparison's folder is touched."""

from __future__ import annotations

import json
import logging

import pytest

import pyro_vaes
from pyro_vaes.analysis.inference_gap import gaps
from pyro_vaes.cli import main
from pyro_vaes.plumbing.isolation import isolated_rng

SMALL = dict(
    data="linear-gaussian",
    data_args={"n_train": 64, "n_test": 16},
    steps=20,
    batch_size=16,
    seeds=(0, 1),
    num_particles=20,
    max_examples=6,
    refine_steps=8,
    progress=False,
)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    return out, pyro_vaes.compare("vae", ["diagonal", "full-covariance"], out=out, **SMALL)


def test_every_guide_and_seed_is_fitted_alike_and_evaluated(compared):
    out, table = compared
    assert list(table["guides"]) == ["diagonal", "full-covariance"]
    assert sorted((r["guide"], r["seed"]) for r in table["runs"]) == [
        ("diagonal", 0),
        ("diagonal", 1),
        ("full-covariance", 0),
        ("full-covariance", 1),
    ]
    for r in table["runs"]:
        cfg = json.loads((out / "runs" / f"{r['guide']}-seed{r['seed']}" / "config.json").read_text())
        assert (cfg["steps"], cfg["batch_size"], cfg["data_args"]["n_train"]) == (20, 16, 64)
        g = r["gaps"]  # the decomposition is an identity: log p(x) − L[q_φ] = approximation + amortization
        assert g["inference_gap"] == pytest.approx(g["approximation_gap"] + g["amortization_gap"])
        assert g["n"] == 6 and g["refine_steps"] == 8 and r["step_ms"] > 0
    for name in ("compare.md", "compare.json", "compare.png"):
        assert (out / name).is_file()
    md = (out / "compare.md").read_text()
    assert "| diagonal | elbo | 2 |" in md and "approximation gap" in md


def test_the_table_is_the_mean_and_spread_of_the_runs_and_reproducible(compared):
    out, table = compared
    rows = [r for r in table["runs"] if r["guide"] == "diagonal"]
    values = [r["gaps"]["amortization_gap"] for r in rows]
    assert table["guides"]["diagonal"]["amortization_gap"]["mean"] == pytest.approx(sum(values) / 2)
    assert table["guides"]["diagonal"]["amortization_gap"]["sd"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    run = pyro_vaes.load(out / "runs" / "diagonal-seed0")
    with isolated_rng(12345):  # what compare does for each run after its evaluation: the same numbers again
        from pyro_vaes.analysis.evaluation import evaluate

        evaluate(run.model, run.guide, run.data.test, 20, max_examples=6)
        again = gaps(run.model, run.guide, run.data.test, max_examples=6, refine_steps=8, num_particles=20)
    assert again["elbo_amortized"] == pytest.approx(rows[0]["gaps"]["elbo_amortized"], abs=1e-5)


def test_the_figure_marks_an_unreliable_log_likelihood(compared, tmp_path):
    """compare.png says which log p(x) is unreliable (low ESS or heavy-tailed weights: a loose lower bound, so its
    approximation gap is too small): a labelled hollow marker and a hatched approximation-gap bar for that guide only,
    and a note saying why."""
    from pyro_vaes.analysis.comparison import figure

    _, table = compared
    table = json.loads(json.dumps(table))
    table["guides"]["full-covariance"]["log_likelihood_reliable"] = False
    table["guides"]["diagonal"]["log_likelihood_reliable"] = True
    fig = figure(table, tmp_path / "c.png")
    loglik, _, gap, *_ = fig.axes
    assert [t.get_text() for t in loglik.texts] == ["unreliable"]
    assert loglik.texts[0].xy[0] == pytest.approx(1)  # under full-covariance's log p(x) marker
    assert [b.get_hatch() or "" for b in gap.patches[:2]] == ["", "//"]  # the approximation-gap bars
    assert "hatched: log p(x) unreliable" in [t.get_text() for t in gap.get_legend().get_texts()]
    assert "unreliable" in fig._supxlabel.get_text()
    table["guides"]["full-covariance"]["log_likelihood_reliable"] = True
    fig = figure(table, tmp_path / "d.png")
    assert not fig.axes[0].texts and not any(b.get_hatch() for b in fig.axes[2].patches)


def test_the_figure_has_a_panel_per_quantity_and_keeps_its_text_inside(compared, tmp_path):
    """Six panels, as the docs list them, every one labelled; nothing outside the canvas; no legend over a bar, a
    marker or a seed's dot; the amortization gap drawn beside the approximation gap (a negative one reads as one)."""
    from test_plots import renderer, texts_outside

    from pyro_vaes.analysis.comparison import figure

    _, table = compared
    table = json.loads(json.dumps(table))
    table["guides"]["full-covariance"]["log_likelihood_reliable"] = False
    table["guides"]["full-covariance"]["amortization_gap"]["mean"] = -0.3  # a negative gap
    fig = figure(table, tmp_path / "c.png")
    assert [ax.get_title() for ax in fig.axes] == [
        "log p(x), importance-sampled",
        "ELBO",
        "inference gap = log p(x) − ELBO\n= approximation + amortization",
        "KL(q ‖ p) of z",
        "active units",
        "training step time",
    ]
    assert all(ax.get_ylabel() for ax in fig.axes)
    assert not texts_outside(fig), texts_outside(fig)
    r = renderer(fig)
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(r)
        for artist in [*ax.patches, *ax.collections, *ax.lines]:
            e = artist.get_window_extent(r)
            assert not (e.x0 < box.x1 and box.x0 < e.x1 and e.y0 < box.y1 and box.y0 < e.y1), ax.get_title()
    gap = fig.axes[2]
    amortization = gap.patches[2:4]  # beside the approximation bars, from zero
    assert amortization[1].get_height() == pytest.approx(-0.3) and amortization[1].get_y() == 0
    assert "4 runs" in fig._suptitle.get_text().replace("\n", " ")


def test_a_second_comparison_reuses_its_runs_and_compares_finished_runs(compared, tmp_path, capsys, caplog):
    out, _ = compared
    with caplog.at_level(logging.INFO, logger="pyro_vaes"):  # what it does is logged, never printed
        table = pyro_vaes.compare("vae", ["diagonal", "full-covariance"], out=out, **SMALL)
    assert sum(m.startswith("reusing") for m in caplog.messages) == 4
    assert capsys.readouterr() == ("", "")
    assert len(table["runs"]) == 4
    runs = [str(out / "runs" / "diagonal-seed0"), str(out / "runs" / "full-covariance-seed1")]
    code = main(
        [
            "compare",
            "--runs",
            *runs,
            "--out",
            str(tmp_path / "again"),
            "--particles",
            "10",
            "--max-examples",
            "4",
            "--refine",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out.splitlines()  # the command prints what the library logs, then the table
    assert printed[:2] == ["evaluating diagonal (seed 0)", "evaluating full-covariance (seed 1)"]
    assert printed[2].startswith("written: ") and printed[3].startswith("# vae on linear-gaussian")
    again = json.loads((tmp_path / "again" / "compare.json").read_text())
    assert [(r["guide"], r["seed"]) for r in again["runs"]] == [("diagonal", 0), ("full-covariance", 1)]
    assert not (tmp_path / "again" / "runs").exists()  # nothing fitted


def test_runs_of_different_models_are_refused(compared, tmp_path, capsys):
    out, _ = compared
    other = tmp_path / "other"
    pyro_vaes.fit(
        out=other,
        model="chyvae",
        data="linear-gaussian",
        data_args={"n_train": 32, "n_test": 8},
        steps=1,
        batch_size=8,
        figures=False,
        progress=False,
    )
    assert (
        main(["compare", "--runs", str(out / "runs" / "diagonal-seed0"), str(other), "--out", str(tmp_path / "c")]) == 2
    )
    assert "one model and one dataset" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_comparison_stopped_before_its_results_continues_and_other_folders_are_refused(
    compared, tmp_path, capsys, caplog
):
    out, _ = compared
    stopped = tmp_path / "stopped"  # what a comparison killed during its evaluations leaves: runs/ and nothing else
    (stopped / "runs").mkdir(parents=True)
    import shutil

    shutil.copytree(out / "runs" / "diagonal-seed0", stopped / "runs" / "diagonal-seed0")
    with caplog.at_level(logging.INFO, logger="pyro_vaes"):
        table = pyro_vaes.compare("vae", ["diagonal"], out=stopped, **{**SMALL, "seeds": (0,)})
    assert f"reusing {stopped / 'runs' / 'diagonal-seed0'}" in caplog.messages and len(table["runs"]) == 1
    assert (stopped / "compare.json").is_file()
    foreign = tmp_path / "foreign"
    (foreign / "runs").mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    assert main(["compare", "vae", "--guides", "diagonal", "--data", "linear-gaussian", "--out", str(foreign)]) == 2
    assert "holds no comparison" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt", "runs"]
