"""Every CLI command end to end on tiny data, and each bad input's one-line error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pyro_vaes.cli import main

FIT = [
    "fit",
    "vae",
    "--data",
    "linear-gaussian",
    "--likelihood",
    "gaussian",
    "--latent-dim",
    "2",
    "--data-arg",
    "n_train=64",
    "--data-arg",
    "n_test=32",
    "--steps",
    "4",
    "--batch-size",
    "16",
    "--eval-every",
    "2",
    "--checkpoint-every",
    "2",
    "--quiet",
]


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "run"
    assert main(FIT + ["--out", str(out)]) == 0
    return out


def test_fit_writes_a_run_folder(run_dir):
    files = {p.name for p in run_dir.iterdir()}
    assert files - {"tensorboard"} == {"checkpoint.pt", "config.json", "metrics.jsonl", "figures"}  # events: an extra
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert {p.name for p in (run_dir / "figures").iterdir()} == {
        "loss.png",
        "reconstructions.png",
        "samples.png",
        "traversals.png",
    }


def test_evaluate_writes_results_and_prints_a_table(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--particles", "20"]) == 0
    out = capsys.readouterr().out
    assert "test log-likelihood (IS, nats)" in out and "KL(z) per dim" in out
    saved = json.loads((run_dir / "results.json").read_text())
    res = saved["evaluations"][saved["latest"]]
    assert res["num_particles"] == 20 and res["elbo"] <= res["log_likelihood"] + 0.5


def test_sample_and_plot(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "-n", "8", "--out", str(tmp_path / "s.pt")]) == 0
    assert torch.load(tmp_path / "s.pt").shape[0] == 8  # flat data: the samples themselves
    assert main(["plot", str(run_dir), "--kind", "traversals", "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "traversals.png").exists()


def test_resume_from_the_cli(run_dir, capsys):
    assert main(["fit", "--resume", str(run_dir), "--steps", "6", "--quiet"]) == 0
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]


def test_config_file_sets_every_option(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: vae\ndata: linear-gaussian\nsteps: 3\nbatch_size: 8\neval_every: 3\ncheckpoint_every: 3\n"
        "model_args: {latent_dim: 2, likelihood: gaussian}\ndata_args: {n_train: 32, n_test: 16}\nfigures: false\n"
    )
    assert main(["fit", "--config", str(cfg), "--out", str(tmp_path / "r"), "--lr", "0.01", "--quiet"]) == 0
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    assert recorded["steps"] == 3 and recorded["lr"] == 0.01 and recorded["model_args"]["latent_dim"] == 2


def test_list_shows_models_guides_objectives_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("vae", "diagonal", "full-covariance", "iwae", "beta-vae-h", "linear-gaussian", "mnist"):
        assert word in out


def test_list_keeps_its_columns_and_shows_no_markup(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":class:" not in out and ":mod:" not in out
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert all(len(line) <= 100 for line in lines)
    # every description, and each wrapped line of one, starts in the same column (a name longer than the column
    # stands alone on its line)
    columns = set()
    for line in lines:
        name = line[2:].split(" ", 1)[0]
        rest = line[2 + len(name) :]
        if rest.strip():
            columns.add(len(line) - len(rest.lstrip()))
    assert len(columns) == 1, columns
    # nothing cut off: N-VAE's docstring summary runs past its first line and ends with its reference
    assert "(Antorán & Miguel, 2019, §III-B)." in " ".join(out.split())


def test_list_name_prints_each_argument_with_its_default_and_meaning(capsys):
    assert main(["list", "vae"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model vae: ")
    assert "--model-arg NAME=VALUE" in out and "--latent-dim" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["latent_dim"])
    assert row[:3] == ["latent_dim", "int", "10"] and " ".join(row[3:]) == "dimension d of z."
    flat = " ".join(out.split())
    assert "'bernoulli', 'continuous-bernoulli', 'gaussian' or 'auto' (the engine picks" in flat  # a wrapped field
    assert "input_shape" in out.splitlines()[-1]  # named as the engine's, not offered as an option
    from pyro_vaes.engine.build import signature_params
    from pyro_vaes.registry import MODELS

    for name in signature_params(MODELS.get("vae")):  # the same arguments the argument check accepts
        assert f"    {name} " in out


def test_list_name_of_several_kinds_and_undocumented_arguments(capsys):
    assert main(["list", "nvae"]) == 0  # a model and an objective
    out = capsys.readouterr().out
    assert "model nvae:" in out and "objective nvae:" in out and "--objective-arg NAME=VALUE" in out
    assert main(["list", "mnist"]) == 0
    out = capsys.readouterr().out
    assert "dataset mnist:" in out and "(no description)" in out and "stochastic" in out


def test_list_args_covers_every_component(capsys):
    from pyro_vaes.registry import DATASETS, GUIDES, MODELS, OBJECTIVES

    assert main(["list", "--args"]) == 0
    out = capsys.readouterr().out
    for registry in (MODELS, GUIDES, OBJECTIVES, DATASETS):
        for name in registry.names():
            assert f"{registry.kind} {name}:" in out


def test_param_fields_are_parsed_when_several_share_a_line():
    from pyro_vaes.cli import param_descriptions

    class Component:
        """Summary.

        :param a: first; :param b: second, with ``code`` and :class:`~x.y.Z`
            continued here.
        :param c: / :param d: the pair.

        Not a field.
        """

    assert param_descriptions(Component) == {
        "a": "first",
        "b": "second, with 'code' and Z continued here.",
        "c": "the pair.",
        "d": "the pair.",
    }


def test_list_unknown_name_is_one_line_naming_the_close_ones(capsys):
    assert main(["list", "vea"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'vea'" in err and "vae (model)" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["fit", "vea"], "unknown model 'vea'. Did you mean 'vae'? Valid models: "),
        (["fit", "vae", "--guide", "nope"], "unknown guide 'nope'"),
        (["fit", "vae", "--objective", "elbow"], "unknown objective 'elbow'. Did you mean 'elbo'?"),
        (["fit", "vae", "--data", "mnits"], "unknown dataset 'mnits'. Did you mean 'mnist'?"),
        (["fit", "vae", "--beta", "-2", "--objective", "beta-vae-h"], "beta must be > 0"),
        (["fit", "vae", "--steps", "0"], "steps must be >= 1"),
        (["fit", "vae", "--model-arg", "latent_dim"], "--model-arg expects KEY=VALUE"),
        (["evaluate", "/nonexistent/run"], "is not a run folder"),
        (["fit", "vae", "--device", "tpu"], "unknown device"),
        (
            ["fit", "vae", "--data", "linear-gaussian", "--model-arg", "latent_dim=0"],
            "latent_dim must be an integer >= 1",
        ),
        (
            ["fit", "vae", "--objective", "iwae", "--objective-arg", "alpha=0.5"],
            "--objective-arg alpha: objective 'iwae' takes no argument 'alpha'; it takes: num_particles",
        ),
    ],
)
def test_bad_input_gets_a_one_line_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run folders are relative: never the working directory's own
    assert main(argv + ["--quiet"] if argv[0] == "fit" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyro-vaes: error: ") and message in err
    assert err.count("\n") == 1


def test_guide_that_does_not_fit_the_model_is_refused(capsys, monkeypatch, tmp_path):
    from pyro_vaes.registry import GUIDES, guides_for

    monkeypatch.chdir(tmp_path)

    others = [g for g in GUIDES.names() if g not in guides_for("vae")]
    if not others:
        pytest.skip("only VAE guides are registered")
    assert main(["fit", "vae", "--guide", others[0], "--quiet"]) == 2
    assert "does not fit model 'vae'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["list", "fit", "evaluate", "sample", "plot", "reproduce", "data"])
def test_every_command_has_help(command):
    out = subprocess.run([sys.executable, "-m", "pyro_vaes.cli", command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: pyro-vaes" in out.stdout


def test_sample_never_overwrites_without_asking(run_dir, tmp_path, capsys):
    target = tmp_path / "s.pt"
    target.write_bytes(b"user data")
    assert main(["sample", str(run_dir), "--out", str(target)]) == 2
    assert target.read_bytes() == b"user data"
    assert "exists" in capsys.readouterr().err


def test_every_shortcut_of_the_config_is_a_fit_flag():
    """The shortcuts are defined once (config.SHORTCUTS); the command line offers each as a flag of its own."""
    from pyro_vaes.cli import build_parser
    from pyro_vaes.config import SHORTCUTS

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    flags = {o for a in fit._actions for o in a.option_strings}
    assert {f"--{k.replace('_', '-')}" for k in SHORTCUTS} <= flags


TINY_DEFAULT = [  # FIT without --out: into the default folder runs/MODEL[-GUIDE][-OBJECTIVE]-DATA-seedS
    "fit",
    "vae",
    "--data",
    "linear-gaussian",
    "--latent-dim",
    "2",
    "--data-arg",
    "n_train=64",
    "--data-arg",
    "n_test=32",
    "--steps",
    "2",
    "--batch-size",
    "16",
    "--quiet",
    "--no-figures",
]


def test_a_bad_argument_is_said_before_the_folder_is_looked_at(tmp_path, monkeypatch, capsys):
    """A default folder that exists already (the README's first command ran here) does not hide a bad argument."""
    monkeypatch.chdir(tmp_path)
    assert main(TINY_DEFAULT) == 0
    capsys.readouterr()
    assert (
        main(
            [*TINY_DEFAULT[:-2], "--objective", "beta-vae-h", "--beta", "-2", "--out", "runs/vae-linear-gaussian-seed0"]
        )
        == 2
    )
    assert "beta must be > 0" in capsys.readouterr().err
    assert main([*TINY_DEFAULT, "--batch-size", "999"]) == 2  # found when the data is read: still before the folder
    assert "larger than the training set" in capsys.readouterr().err


def test_default_run_folders_never_collide_with_another_configuration(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    assert main(TINY_DEFAULT) == 0  # all defaults: the name the README shows
    assert (runs / "vae-linear-gaussian-seed0" / "checkpoint.pt").is_file()
    assert main([*TINY_DEFAULT, "--objective", "iwae"]) == 0  # another objective: a name of its own
    assert main([*TINY_DEFAULT, "--guide", "full-covariance"]) == 0
    assert (runs / "vae-iwae-linear-gaussian-seed0" / "checkpoint.pt").is_file()
    assert (runs / "vae-full-covariance-linear-gaussian-seed0" / "checkpoint.pt").is_file()
    capsys.readouterr()
    before = (runs / "vae-linear-gaussian-seed0" / "checkpoint.pt").read_bytes()
    assert main([*TINY_DEFAULT, "--steps", "3"]) == 0  # same name, other settings
    out = capsys.readouterr().out
    assert "runs/vae-linear-gaussian-seed0 holds a run of another configuration (steps 2 -> 3)" in out
    assert "so this run goes into runs/vae-linear-gaussian-seed0-2" in out and "resume runs/vae-linear" in out
    assert (runs / "vae-linear-gaussian-seed0" / "checkpoint.pt").read_bytes() == before  # neither replaced
    assert json.loads((runs / "vae-linear-gaussian-seed0-2" / "config.json").read_text())["steps"] == 3
    assert main(TINY_DEFAULT) == 2  # the same configuration again: the folder holding it, refused as before
    assert "runs/vae-linear-gaussian-seed0 already exists" in capsys.readouterr().err
    assert main([*TINY_DEFAULT, "--steps", "3"]) == 2
    assert "runs/vae-linear-gaussian-seed0-2 already exists" in capsys.readouterr().err
    assert sorted(p.name for p in runs.iterdir()) == [
        "vae-full-covariance-linear-gaussian-seed0",
        "vae-iwae-linear-gaussian-seed0",
        "vae-linear-gaussian-seed0",
        "vae-linear-gaussian-seed0-2",
    ]
