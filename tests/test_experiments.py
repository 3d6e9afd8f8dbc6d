"""The experiment contract: every registered experiment at its tiny scale (discovered from the registry, so a new one
is tested without anyone listing it), the envelope, the seed loop, NaN-aware mean ± std and the rerun command."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHARED_DATA

from pyro_vaes.config import parse_assignments
from pyro_vaes.data.real import MissingDataError
from pyro_vaes.experiments.base import ENVELOPE, Context, Experiment, register
from pyro_vaes.experiments.common import command, format_mean_std, markdown_table, mean_std, seeds
from pyro_vaes.registry import EXPERIMENTS


def check_results(
    run: Any, name: str, out: Path, table: dict[str, Any], seed: int = 0, overrides: dict | None = None
) -> None:
    """What every experiment's results at tiny scale must satisfy (the Experiment-contract part only for Experiment
    instances)."""
    assert (out / "results.json").is_file() and (out / "results.md").read_text().strip()
    written = json.loads((out / "results.json").read_text())
    as_text = lambda t: json.dumps(t, sort_keys=True)  # noqa: E731  (text: NaN == NaN)
    assert as_text(written) == as_text(json.loads(json.dumps(table))), "results.json differs from the returned table"
    missing = [f for f in written.get("figures", []) if not (out / f).is_file()]
    assert not missing, f"listed figures that do not exist: {missing}"
    if not isinstance(run, Experiment):
        pytest.xfail(f"{name} is registered as a plain function, not yet an Experiment: its envelope is not checked")
    assert set(ENVELOPE) <= set(written), f"envelope keys missing: {sorted(set(ENVELOPE) - set(written))}"
    assert written["experiment"] == name and written["scale"] == "tiny" and written["overrides"] == (overrides or {})
    assert written["command"] == command(name, "tiny", seed, overrides)
    assert isinstance(written["rows"], list) and written["rows"], "no rows"
    if run.declares_figures:
        assert written["figures"], f"{name} declares figures (overrides Experiment.figures) but listed none"


@pytest.mark.parametrize("name", EXPERIMENTS.names())
def test_every_experiment_at_tiny_scale(name, tmp_path):
    run = EXPERIMENTS.get(name)
    out = tmp_path / name
    try:
        table = run(out=out, scale="tiny", seed=0, data_root=str(SHARED_DATA), overrides={})
    except MissingDataError as err:
        pytest.skip(f"{name} needs real data that {SHARED_DATA} lacks (set PYRO_VAES_DATA): {err}")
    check_results(run, name, out, table)
    assert table["convergence"], f"{name} fitted nothing its learning curves were checked on"
    for tag, check in table["convergence"].items():  # a learning curve of several points behind every fit
        assert (out / "runs" / tag / "metrics.jsonl").is_file() and check["points"] >= 2, (tag, check)


# -- the contract on a toy experiment (no fitting) -------------------------------------------------------------------
class Toy(Experiment):
    name = "toy-contract"
    help = "a toy experiment for the contract's tests"
    scales = {"tiny": {"seeds": 2, "k": 3, "values": [1.0, 2.0]}, "small": {"seeds": 1, "k": 3, "values": [1.0]}}
    paper = {"claim": "none"}

    def __init__(self, figures: bool = True):
        self.make_figures = figures
        self.seen: list[int] = []

    def prepare(self, settings: dict[str, Any], context: Context) -> None:
        context.extra["shared"] = settings["k"]

    def run_one(self, settings: dict[str, Any], seed: int, context: Context) -> list[dict[str, Any]]:
        self.seen.append(seed)
        value = float("nan") if seed % 2 else float(seed * settings["k"])
        return [{"seed": seed, "v": v, "score": value, "_private": object()} for v in settings["values"]]

    def summary(self, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
        assert all("_private" in r for r in rows)  # the hooks see every key
        return {"score": mean_std([r["score"] for r in rows])}

    def figures(self, rows: list[dict[str, Any]], context: Context) -> list[Path]:
        assert context.summary["score"]["seeds"] == len(rows)
        if not self.make_figures:
            return []
        path = context.out / "figures" / "toy.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a figure")
        return [path]


def test_the_contract_writes_the_envelope(tmp_path):
    toy = Toy()
    table = toy(out=tmp_path / "out", scale="tiny", seed=5, overrides={"k": 2})
    assert toy.seen == [5, 6]  # seeds first .. first + settings["seeds"] - 1
    assert list(table) == [*ENVELOPE[:9], "shared", *ENVELOPE[9:]]  # context.extra after summary and convergence
    assert table["convergence"] == {}  # the toy fits nothing
    assert table["settings"] == {"seeds": 2, "k": 2, "values": [1.0, 2.0], "first_seed": 5}
    assert table["overrides"] == {"k": 2} and table["command"] == command("toy-contract", "tiny", 5, {"k": 2})
    assert table["paper"] == {"claim": "none"} and table["shared"] == 2
    assert all("_private" not in r for r in table["rows"]) and len(table["rows"]) == 4
    assert table["summary"]["score"] == {"mean": 12.0, "std": 0.0, "n": 2, "seeds": 4}
    assert table["figures"] == ["figures/toy.txt"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "### toy-contract (scale tiny)" in md and "| seed | v | score |" in md and "_private" not in md
    check_results(toy, "toy-contract", tmp_path / "out", table, seed=5, overrides={"k": 2})


def test_a_declared_figure_list_may_not_be_empty(tmp_path):
    toy = Toy(figures=False)
    table = toy(out=tmp_path, scale="tiny")
    assert toy.declares_figures and not Experiment().declares_figures
    with pytest.raises(AssertionError, match="declares figures"):
        check_results(toy, "toy-contract", tmp_path, table)


def test_settings_and_extra_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown scale 'full'"):
        Toy()(out=tmp_path, scale="full")
    with pytest.raises(ValueError, match="no such setting"):
        Toy()(out=tmp_path, scale="tiny", overrides={"steps": 3})
    with pytest.raises(ValueError, match="seeds=0"):
        Toy()(out=tmp_path, scale="tiny", overrides={"seeds": 0})

    class Clash(Toy):
        def prepare(self, settings, context):
            context.extra["rows"] = []

    with pytest.raises(ValueError, match="may not replace the envelope's rows"):
        Clash()(out=tmp_path, scale="tiny")


def test_register_puts_a_callable_in_the_registry(tmp_path):
    toy = register(Toy())
    try:
        assert EXPERIMENTS.get("toy-contract") is toy
        assert EXPERIMENTS.entry("toy-contract").help == Toy.help
        table = EXPERIMENTS.get("toy-contract")(out=tmp_path, scale="small", seed=0, data_root=None, overrides=None)
        assert table["rows"] and table["overrides"] == {}
    finally:
        EXPERIMENTS.unregister("toy-contract")
    with pytest.raises(ValueError, match="needs a name and scales"):
        register(Experiment())


def test_context_caches_data(tmp_path):
    ctx = Context("x", tmp_path, "tiny", 3, None, {}, {})
    a = ctx.data("moons", n_train=20, n_test=10)
    assert ctx.data("moons", n_train=20, n_test=10) is a and ctx.data("moons", seed=3, n_train=20, n_test=10) is a
    assert ctx.data("moons", seed=4, n_train=20, n_test=10) is not a
    assert ctx.relative(tmp_path / "a" / "b.png") == "a/b.png"


# -- helpers ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [[1.0, 2.0, 4.0], [1.0, float("nan"), 3.0, float("inf"), None, -2.5], [5.0], [0.1, 0.2], [float("nan")], []],
)
def test_mean_std_is_nan_aware(values):
    stat = mean_std(values)
    finite = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    assert stat["n"] == len(finite) and stat["seeds"] == len(values)
    if len(finite) == 0:
        assert math.isnan(stat["mean"]) and math.isnan(stat["std"])
    else:
        assert stat["mean"] == pytest.approx(np.mean(finite), rel=1e-12)
        expected_std = np.std(finite, ddof=1) if len(finite) > 1 else 0.0
        assert stat["std"] == pytest.approx(expected_std, rel=1e-12)
        with np.errstate(invalid="ignore"):
            nan_values = np.array([np.nan if v is None or not np.isfinite(v) else v for v in values], dtype=float)
        assert stat["mean"] == pytest.approx(np.nanmean(nan_values), rel=1e-12)


def test_format_mean_std_and_markdown_table():
    assert format_mean_std(mean_std([1.0, 3.0]), 2) == "2.00 ± 1.41"
    assert format_mean_std(mean_std([1.0, float("nan"), 3.0]), 1) == "2.0 ± 1.4 (2/3 finite)"
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, None]]) == [
        "| a | b |",
        "| --- | --- |",
        "| 1 | x |",
        "| 2.5 | None |",
    ]


def test_seeds():
    assert list(seeds(3, {"seeds": 2})) == [3, 4] and list(seeds(0, {})) == [0]
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="seeds"):
            seeds(0, {"seeds": bad})


def test_command_string():
    assert command("chyvae-shapes2d", "tiny", 0) == "`pyro-vaes reproduce chyvae-shapes2d --scale tiny --seed 0`"
    assert (
        command("nvae-kl", "small", 2, {"steps": 3000, "data": "moons", "lr": 1e-4})
        == '`pyro-vaes reproduce nvae-kl --scale small --seed 2 --set data="moons" --set lr=0.0001 --set steps=3000`'
    )
    overrides = {
        "grid": {"chyvae": [12.0, 20.0], "beta-vae": [4.0]},
        "regularizers": ["beta-vae-h", "info-vae"],
        "name": "two words",
        "flag": True,
        "missing": None,
        "metric": {"batch_size": 20},
        "sigma": 0.5,
    }
    text = command("x", "tiny", 7, overrides)
    words = shlex.split(text.strip("`"))  # what a shell hands to pyro-vaes: the same overrides come back
    assert words[:7] == ["pyro-vaes", "reproduce", "x", "--scale", "tiny", "--seed", "7"]
    sets = words[7:]
    assert sets[::2] == ["--set"] * len(overrides)
    assert parse_assignments(sets[1::2], "--set") == overrides
    assert [s.partition("=")[0] for s in sets[1::2]] == sorted(overrides)


# -- the convergence check ------------------------------------------------------------------------------------------
def _curve(folder: Path, losses: dict[int, float], torn: bool = False) -> Path:
    folder.mkdir()
    lines = [json.dumps({"step": s, "train_loss": v, "test_loss": v}) for s, v in losses.items()]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + ('\n{"step": 2' if torn else "\n"))
    return folder


def test_convergence_reads_the_last_tenth_of_the_curve(tmp_path):
    from pyro_vaes.experiments.common import convergence, eval_every

    assert eval_every(20000) == 1000 and eval_every(10) == 1
    # 100.0 at step 900 (the last evaluation at or before 90 % of 1000), 99.6 at the end: 0.4 % < 0.5 %
    c = convergence(_curve(tmp_path / "a", {100: 200.0, 500: 120.0, 900: 100.0, 950: 99.8, 1000: 99.6}, torn=True))
    assert c["from_step"] == 900 and c["steps"] == 1000 and c["points"] == 5
    assert c["improvement"] == pytest.approx(0.004) and c["converged"] is True
    # 100.0 -> 99.4: 0.6 %, still improving
    c = convergence(_curve(tmp_path / "b", {100: 200.0, 850: 100.0, 1000: 99.4}))
    assert c["from_step"] == 850 and c["improvement"] == pytest.approx(0.006) and c["converged"] is False
    # a negative loss (a density above 1): the relative change uses |L|
    c = convergence(_curve(tmp_path / "c", {900: -2.0, 1000: -2.02}))
    assert c["improvement"] == pytest.approx(0.01) and c["converged"] is False
    # a loss that rose: converged (not improving); one evaluation at the end only: undecided
    assert convergence(_curve(tmp_path / "d", {900: 10.0, 1000: 10.5}))["converged"] is True
    assert convergence(_curve(tmp_path / "e", {1000: 10.0}))["converged"] is None


def test_convergence_lines_name_the_fits_still_improving():
    from pyro_vaes.experiments.common import convergence_lines

    checks = {
        "a": {"converged": True, "improvement": 0.001},
        "b": {"converged": False, "improvement": 0.02},
        "c": {"converged": None, "improvement": None},
    }
    (text, blank) = convergence_lines(checks)
    assert "1 of 2 fits converged; the largest improvement 2.00 %; still improving: `b` 2.00 %" in text
    assert "1 undecided" in text and blank == ""
    assert convergence_lines({}) == []


# -- the verdicts decide the claims by their stated rules (hand-made summaries, each rule on both sides) ------------
def _ms(*values: float) -> dict[str, Any]:
    return mean_std(list(values))


def test_csvae_swissroll_verdict():
    run = EXPERIMENTS.get("csvae-swissroll")
    table = lambda z, w: {"summary": {"z_balanced_accuracy": _ms(*z), "w_balanced_accuracy": _ms(*w)}}  # noqa: E731
    (v,) = run.verdicts(table((0.52, 0.55, 0.54), (1.0, 0.99, 1.0)))
    assert v["verdict"] == "holds" and v["seeds"] == 3 and v["ours"].startswith("z 0.537 ± 0.015, w 0.997")
    assert run.verdicts(table((0.7, 0.6, 0.65), (1.0, 1.0, 1.0)))[0]["verdict"] == "does not hold"  # z informative
    assert run.verdicts(table((0.5, 0.5, 0.5), (0.8, 0.85, 0.9)))[0]["verdict"] == "does not hold"  # w not separated


def test_dpvae_moons_verdict():
    run = EXPERIMENTS.get("dpvae-moons")

    def entry(flow_lp: float, flow_ll: float) -> dict[str, Any]:
        normal = {"lp_distance": _ms(0.3, 0.4), "skl": _ms(0.2, 0.3), "log_likelihood": _ms(-1.20, -1.18), "seeds": 2}
        flow = {"lp_distance": _ms(flow_lp), "skl": _ms(0.1, 0.1), "log_likelihood": _ms(flow_ll, flow_ll), "seeds": 2}
        return {"regularizer": "vae", "normal": normal, "flow": flow}

    assert run.verdicts({"summary": [entry(0.1, -1.22)]})[0]["verdict"] == "holds"  # NLL within 0.05 nats
    assert run.verdicts({"summary": [entry(0.5, -1.19)]})[0]["verdict"] == "does not hold"  # LP samples farther
    assert run.verdicts({"summary": [entry(0.1, -1.30)]})[0]["verdict"] == "does not hold"  # likelihood worse


def test_nvae_kl_verdicts():
    run = EXPERIMENTS.get("nvae-kl")

    def summary(own: float, shared: float) -> dict[str, Any]:
        return {"class_own_per_dim": _ms(own, own), "shared_per_dim": _ms(shared, shared)}

    good = run.verdicts({"summary": {"mnist": summary(1.2, 1.6), "yaleb": summary(0.2, 1.85)}})
    assert [v["verdict"] for v in good] == ["holds", "holds"] and "r = 0.75" in good[0]["ours"]
    bad = run.verdicts({"summary": {"mnist": summary(0.5, 1.6), "yaleb": summary(0.5, 1.85)}})
    assert [v["verdict"] for v in bad] == ["does not hold", "does not hold"]
    assert run.verdicts({"summary": {"moons": summary(1.0, 1.0)}}) == []  # no claim on other data


def test_ugvae_mnist_series_verdicts():
    run = EXPERIMENTS.get("ugvae-mnist-series")

    def result(acc: float) -> dict[str, Any]:
        return {k: {"train": _ms(1.0), "test": _ms(acc, acc)} for k in ("linear", "rbf")} | {
            "chance": {"test": _ms(0.4)}
        }

    def table(ug: float, ml: float) -> dict[str, Any]:
        classification = {"ugvae:series only": result(ug), "mlvae:series only": result(ml)}
        return {"summary": {"classification": classification}}

    assert [v["verdict"] for v in run.verdicts(table(0.65, 0.5))] == ["holds", "holds"]
    assert [v["verdict"] for v in run.verdicts(table(0.65, 0.8))] == ["holds", "does not hold"]
    assert [v["verdict"] for v in run.verdicts(table(0.45, 0.3))] == ["does not hold", "holds"]


def test_ugvae_celeba_attributes_verdicts():
    run = EXPERIMENTS.get("ugvae-celeba-attributes")

    def result(acc: float, chance: float) -> dict[str, Any]:
        return {k: {"train": _ms(1.0), "test": _ms(acc, acc)} for k in ("linear", "rbf")} | {
            "chance": {"test": _ms(chance)}
        }

    def table(two: float, three: float, hair: float) -> dict[str, Any]:
        tasks = {"male vs female": result(two, 0.5), "male / female / random": result(three, 0.37)}
        tasks["black vs blond hair"] = result(hair, 0.5)
        return {"summary": {"classification": {f"ugvae:{k}": v for k, v in tasks.items()}}}

    good = run.verdicts(table(0.85, 0.66, 0.8))
    assert [v["verdict"] for v in good] == ["holds", "holds", "holds"] and "linear 0.850" in good[0]["paper"]
    # two classes at chance + 0.1 (not above), three classes above two, hair at chance
    assert [v["verdict"] for v in run.verdicts(table(0.6, 0.7, 0.55))] == ["does not hold"] * 3
    assert run.verdicts({"summary": {}, "paper_claim": "x"})[0]["verdict"].startswith("not decided")


def test_csvae_celeba_verdicts():
    run = EXPERIMENTS.get("csvae-celeba")

    def cells(model: str, attr: str, both: float, accuracy: float = 0.9) -> tuple[str, dict[str, Any]]:
        c = {k: _ms(0.5, 0.5) for k in ("switched_to_1", "switched_to_0", "unswitched_to_1", "unswitched_to_0")}
        c |= {"both": _ms(both - 0.01, both + 0.01), "classifier_accuracy": _ms(accuracy), "constant_guess": _ms(0.8)}
        return f"gf:{model}:{attr}", c

    def table(scores: dict[str, tuple[float, float]], accuracy: float = 0.9) -> dict[str, Any]:
        summary = dict(
            cells(m, a, b, accuracy) for m, pair in scores.items() for a, b in zip(("Eyeglasses", "Hair"), pair)
        )
        return {"summary": summary, "settings": {"subsets": ["gf"]}}

    good = run.verdicts(
        table({"vae": (0.3, 0.3), "condvae": (0.4, 0.2), "condvae-info": (0.42, 0.22), "csvae": (0.5, 0.4)})
    )
    assert [v["verdict"] for v in good] == ["holds", "holds"] and {v["seeds"] for v in good} == {2}
    assert "Eyeglasses: CSVAE 0.500 ± 0.014, best baseline (CondVAE-info) 0.420 ± 0.014" in good[0]["ours"]
    # CSVAE below the VAE on one attribute; CondVAE-info 0.1 above CondVAE on the other
    bad = run.verdicts(
        table({"vae": (0.3, 0.45), "condvae": (0.4, 0.2), "condvae-info": (0.42, 0.3), "csvae": (0.5, 0.4)})
    )
    assert [v["verdict"] for v in bad] == ["does not hold", "does not hold"]
    # a classifier no better than a constant guess decides nothing
    useless = run.verdicts(
        table({"vae": (0.3, 0.3), "condvae": (0.4, 0.2), "condvae-info": (0.4, 0.2), "csvae": (0.5, 0.4)}, 0.805)
    )
    assert all(v["verdict"].startswith("cannot be compared: the classifier") for v in useless)


def test_nvae_augmentation_verdicts():
    run = EXPERIMENTS.get("nvae-augmentation")

    def entry(model: str, sigma: float, proportion: float, error: float) -> dict[str, Any]:
        return {"model": model, "sigma": sigma, "proportion": proportion, "test_error": _ms(error, error)}

    def summary(nvae: list[float], cgan_alone: float) -> list[dict[str, Any]]:
        rows = [{"model": "real only", "sigma": None, "proportion": 0.0, "test_error": _ms(0.14)}]
        rows += [entry("nvae", s, 0.5, e) for s, e in zip((0.5, 1.0, 2.0), nvae)]
        return rows + [entry("nvae", 1.0, 1.0, 0.3), entry("cgan", 1.0, 1.0, cgan_alone)]

    assert [v["verdict"] for v in run.verdicts({"summary": summary([0.2, 0.18, 0.17], 0.25)})] == ["holds", "holds"]
    bad = run.verdicts({"summary": summary([0.15, 0.17, 0.16], 0.9)})
    assert [v["verdict"] for v in bad] == ["does not hold", "does not hold"]
