"""pyro_vaes.fit with no hidden effects: nothing printed, notes returned and logged, the command line's shortcuts
taken as the command line takes them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from helpers import TINY, binary_images

import pyro_vaes
from pyro_vaes.cli import main
from pyro_vaes.config import SHORTCUTS, FitConfig, apply_shortcuts

LG = dict(model="vae", data="linear-gaussian", data_args={"n_train": 200, "n_test": 50})


def test_a_quiet_fit_prints_nothing_at_all(tmp_path):
    """The promise of ``progress=False``: stdout and stderr both empty, from a fresh interpreter."""
    code = (
        "import pyro_vaes; pyro_vaes.fit(model='vae', data='moons', likelihood='gaussian', steps=5, out='x', "
        "progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout, proc.stderr) == ("", "")
    config = json.loads((tmp_path / "x" / "config.json").read_text())
    assert config["model_args"] == {"likelihood": "gaussian"} and (tmp_path / "x" / "checkpoint.pt").is_file()


def test_notes_are_returned_and_logged_never_printed(tmp_path, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="pyro_vaes"):
        run = pyro_vaes.fit(out=tmp_path / "r", model="vae", data="linear-gaussian", dataset=binary_images(), **TINY)
    assert run.notes == ["likelihood 'bernoulli' chosen for 'binary-images' (binary data)"]
    assert "--" not in run.notes[0]  # worded for a Python user as much as for the command line
    notes = [r for r in caplog.records if getattr(r, "note", None) is not None]
    assert [r.getMessage() for r in notes] == run.notes and {r.name for r in notes} == {"pyro_vaes"}
    assert any(m.startswith("step 6: train loss") for m in caplog.messages)  # each evaluation row, logged
    assert capsys.readouterr() == ("", "")
    reopened = pyro_vaes.load(tmp_path / "r", dataset=binary_images())
    assert reopened.notes == []  # the recorded config holds the choice: nothing is chosen again


def test_the_library_configures_no_handler():
    logger = logging.getLogger("pyro_vaes")
    assert logger.handlers == [] and logger.level == logging.NOTSET and logger.propagate


@pytest.mark.parametrize(
    "shortcut, group",
    [("latent_dim", "model_args"), ("likelihood", "model_args"), ("beta", "objective_args")],
)
def test_shortcuts_are_model_and_objective_arguments(tmp_path, shortcut, group):
    value = {"latent_dim": 3, "likelihood": "gaussian", "beta": 2.0}[shortcut]
    objective = {"objective": "beta-vae-h"} if shortcut == "beta" else {}
    run = pyro_vaes.fit(out=tmp_path / "r", **LG, **TINY, **objective, **{shortcut: value})
    assert getattr(run.config, group)[shortcut] == value
    assert json.loads((tmp_path / "r" / "config.json").read_text())[group][shortcut] == value


def test_the_api_and_the_command_line_take_the_same_shortcuts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = ["--latent-dim", "3", "--likelihood", "gaussian", "--objective", "iwae", "--num-particles", "2"]
    small = ["--data-arg", "n_train=40", "--data-arg", "n_test=10", "--steps", "2", "--batch-size", "8"]
    assert main(["fit", "vae", "--data", "linear-gaussian", *flags, *small, "--quiet", "--out", "cli"]) == 0
    pyro_vaes.fit(
        out="api",
        model="vae",
        data="linear-gaussian",
        latent_dim=3,
        likelihood="gaussian",
        objective="iwae",
        num_particles=2,
        data_args={"n_train": 40, "n_test": 10},
        steps=2,
        batch_size=8,
        progress=False,
    )
    cli, api = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("cli", "api"))
    assert {**cli, "out": None} == {**api, "out": None}
    assert cli["model_args"] == {"latent_dim": 3, "likelihood": "gaussian"}
    assert cli["objective_args"] == {"num_particles": 2}


def test_a_shortcut_that_disagrees_with_the_explicit_argument_is_one_error(tmp_path, capsys):
    with pytest.raises(
        ValueError, match=r"latent_dim is given twice with different values: 2 .* and 8 \(in model_args"
    ):
        pyro_vaes.fit(out=tmp_path / "r", **LG, **TINY, latent_dim=2, model_args={"latent_dim": 8})
    assert not (tmp_path / "r").exists()
    same = pyro_vaes.fit(out=tmp_path / "same", **LG, **TINY, latent_dim=2, model_args={"latent_dim": 2})
    assert same.config.model_args["latent_dim"] == 2
    argv = ["fit", "vae", "--data", "linear-gaussian", "--latent-dim", "2", "--model-arg", "latent_dim=8"]
    assert main([*argv, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latent_dim is given twice" in err and not (tmp_path / "c").exists()


def test_shortcuts_in_a_config_mapping_or_file():
    assert apply_shortcuts({"beta": 4.0, "objective_args": {"gamma": 1}}) == {
        "objective_args": {"gamma": 1, "beta": 4.0}
    }
    assert apply_shortcuts({"latent_dim": None}) == {}  # None: not given
    given = {"likelihood": "gaussian", "model_args": {"hidden": 8}}
    assert FitConfig.from_dict(given).model_args == {"hidden": 8, "likelihood": "gaussian"}
    assert given == {"likelihood": "gaussian", "model_args": {"hidden": 8}}  # the mapping itself is not changed
    assert set(SHORTCUTS) == {"latent_dim", "likelihood", "beta", "num_particles"}
    with pytest.raises(ValueError, match="unknown config keys: latent_dims; .*and the shortcuts latent_dim"):
        FitConfig.from_dict({"latent_dims": 2})


def test_a_resumed_run_takes_a_shortcut_only_when_it_changes_nothing(tmp_path):
    pyro_vaes.fit(out=tmp_path / "r", **LG, **TINY, latent_dim=2, likelihood="gaussian")
    with pytest.raises(ValueError, match="keeps its recorded config.*got latent_dim"):
        pyro_vaes.fit(resume=tmp_path / "r", steps=8, latent_dim=3, progress=False)
    run = pyro_vaes.fit(resume=tmp_path / "r", steps=8, latent_dim=2, progress=False, figures=False)
    assert run.config.model_args == {"latent_dim": 2, "likelihood": "gaussian"}


def test_the_command_line_prints_the_notes_with_its_flag_and_leaves_logging_as_it_was(tmp_path, capsys):
    logger = logging.getLogger("pyro_vaes")
    state = (list(logger.handlers), logger.level, logger.propagate)
    argv = ["fit", "vae", "--data", "linear-gaussian", "--data-arg", "n_train=40", "--data-arg", "n_test=10"]
    argv += ["--steps", "2", "--batch-size", "8", "--eval-every", "1", "--no-figures", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "pyro-vaes: likelihood 'gaussian' chosen for 'linear-gaussian' (real-valued data outside [0, 1]); pass "
        "--likelihood to choose another"
    )
    assert out[1].startswith("pyro-vaes: obs_scale = ") and "chosen for the Gaussian likelihood" in out[1]
    assert out[2].startswith("step 1: train loss") and out[3].startswith("step 2: train loss")
    assert out[4] == f"run folder: {tmp_path / 'r'}"
    assert (list(logger.handlers), logger.level, logger.propagate) == state


def test_the_classifier_shows_its_progress_as_a_bar_not_as_printed_lines(capsys):
    import torch

    from pyro_vaes.metrics.classifier import Recipe, train_classifier

    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    train_classifier(x, y, "class", 2, Recipe(steps=3, batch_size=16), progress=False)
    assert capsys.readouterr() == ("", "")
    train_classifier(x, y, "class", 2, Recipe(steps=3, batch_size=16), progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "classifier" in err
