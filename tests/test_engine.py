"""The training engine: steps learn, resume is exact, NaN stops with the last good checkpoint, run folders
are protected, checkpoints load weights-only."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY, binary_images

import pyro_vaes
from pyro_vaes.config import FitConfig
from pyro_vaes.engine import CHECKPOINT, RunExistsError, Trainer, TrainingDiverged, build
from pyro_vaes.engine import checkpoint as ckpt

LG = dict(
    model="vae",
    data="linear-gaussian",
    model_args={"latent_dim": 2, "likelihood": "gaussian"},
    data_args={"n_train": 200, "n_test": 50},
)


def _params(run):
    return [p.detach().clone() for p in list(run.model.parameters()) + list(run.guide.parameters())]


@pytest.mark.parametrize("backend", ["torch", "svi"])
def test_training_step_changes_parameters(tmp_path, backend):
    cfg = FitConfig(**LG, backend=backend, steps=1, batch_size=16, figures=False)
    trainer = Trainer(build(cfg), tmp_path, progress=False)
    before = [p.detach().clone() for p in trainer.params]
    trainer.fit()
    after = trainer.params
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("backend", ["torch", "svi"])
def test_resume_is_exact(tmp_path, backend):
    kw = dict(LG, **TINY, backend=backend)
    kw.update(steps=8, checkpoint_every=4, eval_every=2)
    full = pyro_vaes.fit(out=tmp_path / "full", **kw)
    kw_half = dict(kw, steps=4)
    pyro_vaes.fit(out=tmp_path / "half", **kw_half)
    resumed = pyro_vaes.fit(resume=tmp_path / "half", steps=8, progress=False, figures=False)
    for a, b in zip(_params(full), _params(resumed)):
        assert torch.equal(a, b)
    rows_full = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    rows_res = (tmp_path / "half" / "metrics.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(rows_full) == strip(rows_res)


def test_resume_refuses_changed_model_settings_but_may_lower_the_learning_rate(tmp_path):
    pyro_vaes.fit(out=tmp_path / "r", **LG, **TINY)
    with pytest.raises(ValueError, match="keeps its recorded config.*got batch_size"):
        pyro_vaes.fit(resume=tmp_path / "r", steps=8, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="is at step 6; --steps must be more than that"):
        pyro_vaes.fit(resume=tmp_path / "r", steps=6, progress=False)
    run = pyro_vaes.fit(resume=tmp_path / "r", steps=9, lr=1e-4, progress=False, figures=False)
    rows = [json.loads(r) for r in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 6, "event": "learning rates changed on resume", "lr": [1e-3, 1e-4], "aux_lr": [1e-4, 1e-4]} in rows
    assert json.loads((tmp_path / "r" / "config.json").read_text())["lr"] == 1e-4
    trainer = Trainer(build(run.config), tmp_path / "unused", progress=False)
    assert trainer.config.lr == 1e-4


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = FitConfig(**LG, steps=10, batch_size=16, checkpoint_every=3, eval_every=100, figures=False)
    trainer = Trainer(build(cfg), tmp_path, progress=False)
    objective = trainer.parts.objective
    original = objective.loss

    def poisoned(x, y=None):
        loss = original(x, y)
        return loss * float("nan") if trainer.step >= 7 else loss

    objective.loss = poisoned
    with pytest.raises(TrainingDiverged, match="at step 8.*last good checkpoint"):
        trainer.fit()
    state = ckpt.load(tmp_path / CHECKPOINT)
    assert state["step"] == 6
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_existing_run_folder_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    pyro_vaes.fit(out=run_dir, **LG, **TINY)
    stamp = (run_dir / CHECKPOINT).stat().st_mtime_ns
    with pytest.raises(RunExistsError, match="--resume"):
        pyro_vaes.fit(out=run_dir, **LG, **TINY)
    assert (run_dir / CHECKPOINT).stat().st_mtime_ns == stamp
    pyro_vaes.fit(out=run_dir, overwrite=True, **LG, **TINY)


def test_bad_settings_are_refused_before_the_run_folder_is_made(tmp_path):
    with pytest.raises(ValueError, match="beta must be > 0"):
        pyro_vaes.fit(out=tmp_path / "x", objective="beta-vae-h", objective_args={"beta": 0}, **LG, **TINY)
    assert not (tmp_path / "x").exists()


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoints_load_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(ckpt.CheckpointError, match="holds objects other than tensors") as err:
        ckpt.load(path)
    assert "weights_only" not in str(err.value) and "code ran" not in capsys.readouterr().out


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    ckpt.save_atomic({"a": torch.ones(2)}, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_bernoulli_refuses_grey_data_and_the_default_likelihood_fits_it(tmp_path, capsys):
    data = binary_images()
    data.train.x = data.train.x * 0.5
    with pytest.raises(ValueError, match="needs binary data"):
        pyro_vaes.fit(
            out=tmp_path / "r",
            model="vae",
            data="linear-gaussian",
            dataset=data,
            model_args={"likelihood": "bernoulli"},
            **TINY,
        )
    assert not (tmp_path / "r").exists()
    run = pyro_vaes.fit(out=tmp_path / "auto", model="vae", data="linear-gaussian", dataset=data, **TINY)
    assert run.model.likelihood == "continuous-bernoulli"
    assert (
        json.loads((tmp_path / "auto" / "config.json").read_text())["model_args"]["likelihood"]
        == "continuous-bernoulli"
    )
    # the choice is a note the run returns (and logs), worded for Python users too; nothing is printed
    assert [n for n in run.notes if "likelihood 'continuous-bernoulli' chosen" in n] and capsys.readouterr().out == ""
    assert not any("--" in n for n in run.notes)
    binary = pyro_vaes.fit(out=tmp_path / "bin", model="vae", data="linear-gaussian", dataset=binary_images(), **TINY)
    assert binary.model.likelihood == "bernoulli"


def test_image_pipeline_with_figures(tmp_path):
    data = binary_images()
    run = pyro_vaes.fit(
        out=tmp_path / "img",
        model="vae",
        data="linear-gaussian",
        dataset=data,
        model_args={"latent_dim": 3, "hidden": 32},
        guide_args={"hidden": 32},
        **dict(TINY, figures=True),
    )
    names = sorted(p.name for p in (tmp_path / "img" / "figures").iterdir())
    assert names == ["loss.png", "reconstructions.png", "samples.png", "traversals.png"]
    loaded = pyro_vaes.load(tmp_path / "img", dataset=data)
    for a, b in zip(_params(run), _params(loaded)):
        assert torch.equal(a, b)


def test_config_json_records_every_setting(tmp_path):
    pyro_vaes.fit(out=tmp_path / "r", **LG, **TINY)
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    assert set(recorded) == set(FitConfig().to_dict())
    assert recorded["guide"] == "diagonal" and recorded["steps"] == TINY["steps"]


def test_skipping_param_registration_changes_nothing_but_the_param_store():
    """The torch backend's steps run without pyro.module; the loss and its gradients are identical."""
    import pyro

    from pyro_vaes.engine import build_component
    from pyro_vaes.objectives.elbo import ELBO
    from pyro_vaes.plumbing.params import param_registration
    from pyro_vaes.registry import GUIDES, MODELS

    model = build_component(MODELS, "vae", (5,), latent_dim=2, likelihood="gaussian")
    guide = build_component(GUIDES, "diagonal", model, hidden=8)
    obj = ELBO().bind(model, guide)
    x = torch.randn(4, 5)
    grads = []
    for enabled in (True, False):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        for p in list(model.parameters()) + list(guide.parameters()):
            p.grad = None
        with param_registration(enabled):
            obj.loss(x).backward()
        grads.append([p.grad.clone() for p in list(model.parameters()) + list(guide.parameters())])
        assert (len(pyro.get_param_store().keys()) > 0) == enabled
    assert all(torch.equal(a, b) for a, b in zip(*grads))


# -- the engine's structure: no hidden effects, one import direction ----------------------------------------------


def test_build_returns_a_new_resolved_config_and_notes_and_changes_nothing_it_was_given():
    from pyro_vaes.engine import build, resolve_config

    cfg = FitConfig(model="vae", data="linear-gaussian", data_args={"n_train": 40, "n_test": 10}, batch_size=8)
    before = cfg.to_dict()
    resolved = resolve_config(cfg)
    assert resolved is not cfg and cfg.to_dict() == before
    assert (resolved.guide, resolved.objective) == ("diagonal", "elbo") and cfg.guide is None
    parts = build(cfg, binary_images())
    assert cfg.to_dict() == before and parts.config is not cfg
    assert parts.config.model_args["likelihood"] == "bernoulli" and "likelihood" not in cfg.model_args
    assert parts.notes == ["likelihood 'bernoulli' chosen for 'binary-images' (binary data)"]
    assert parts.notes[0].setting == "likelihood"


def test_a_fit_resolves_its_config_once(tmp_path, monkeypatch):
    import importlib

    import pyro_vaes.api

    build_module = importlib.import_module("pyro_vaes.engine.build")  # (pyro_vaes.engine.build is the function)
    calls = []
    real = build_module.resolve_config

    def counted(config):
        calls.append(config)
        return real(config)

    monkeypatch.setattr(build_module, "resolve_config", counted)
    monkeypatch.setattr(pyro_vaes.api, "resolve_config", counted)
    pyro_vaes.fit(out=tmp_path / "r", **LG, **TINY)
    assert len(calls) == 1
    pyro_vaes.fit(resume=tmp_path / "r", steps=8, progress=False, figures=False)
    assert len(calls) == 2


def test_the_trainer_takes_built_components():
    from pyro_vaes.engine import build, resolve_config, trainer_for

    cfg = FitConfig(**LG, steps=1, batch_size=16, figures=False)
    parts = build(cfg)
    trainer = Trainer(parts, "unused", progress=False)
    assert trainer.parts is parts and trainer.config is parts.config and trainer.notes == parts.notes
    with pytest.raises(ValueError, match="trains on parts.data"):
        Trainer(parts, "unused", data=parts.data)
    made = trainer_for(resolve_config(cfg), "unused", progress=False)
    assert made.config.to_dict() == parts.config.to_dict()
    with pytest.warns(DeprecationWarning, match="builds the components itself"):
        old_style = Trainer(cfg, "unused", progress=False)
    assert old_style.config.to_dict() == parts.config.to_dict()


def _engine_imports() -> dict[str, set[str]]:
    """Each engine module -> the engine modules it imports, anywhere in its code (deferred imports included)."""
    import ast
    from pathlib import Path

    import pyro_vaes.engine

    folder = Path(pyro_vaes.engine.__file__).parent
    names = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        found = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "pyro_vaes.engine":
                    found |= {a.name for a in node.names} & names
                elif node.module.startswith("pyro_vaes.engine."):
                    found.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("pyro_vaes.engine.")}
        graph[name] = found - {name}
    return graph


def test_the_engine_modules_import_in_one_direction():
    graph = _engine_imports()
    order: list[str] = []
    remaining = dict(graph)
    while remaining:  # peel off the modules whose engine imports are all placed: a cycle leaves some behind
        ready = sorted(m for m, deps in remaining.items() if deps <= set(order))
        assert ready, f"engine modules import each other in a cycle: { {m: sorted(d) for m, d in remaining.items()} }"
        order += ready
        for m in ready:
            del remaining[m]
    assert graph["errors"] == set() and graph["notes"] == set()  # the leaves the others raise and log with
    assert "trainer" not in graph["distributed"] and "build" not in graph["distributed"]


@pytest.mark.parametrize("module", ["errors", "notes", "checkpoint", "run_folder", "distributed", "build", "trainer"])
def test_each_engine_module_imports_with_only_what_it_declares(module):
    """A fresh interpreter imports ``pyro_vaes.engine.<module>`` with every engine module it does not (transitively)
    import blocked: an import of a blocked module, at import time, fails."""
    import subprocess
    import sys

    graph = _engine_imports()
    allowed, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in allowed:
            allowed.add(m)
            todo += graph[m]
    blocked = sorted(set(graph) - allowed)
    code = (  # the packages as bare namespaces (their __init__ imports everything), the blocked modules as None
        "import importlib.util, os, sys, types\n"
        "root = importlib.util.find_spec('pyro_vaes').submodule_search_locations[0]\n"
        "for name, path in (('pyro_vaes', root), ('pyro_vaes.engine', os.path.join(root, 'engine'))):\n"
        "    sys.modules[name] = types.ModuleType(name); sys.modules[name].__path__ = [path]\n"
        f"for m in {blocked!r}: sys.modules['pyro_vaes.engine.' + m] = None\n"
        f"import pyro_vaes.engine.{module}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
