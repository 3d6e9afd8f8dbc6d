"""Nothing a user has is ever lost, and no input gives a traceback.

``CASES`` is a catalogue of bad inputs and faults across every command, tried as a new user would. Each must exit
non-zero with exactly one line on stderr (no traceback), and leave every file that existed before byte-identical
(and create nothing, unless the case says what it may create). Separate tests kill a fit with SIGKILL at random
moments and check the resumed run equals the uninterrupted one, run two writers on one folder at once, fill a disk,
and press Ctrl-C.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_vaes.cli import main

FIT = [
    "fit",
    "vae",
    "--data",
    "linear-gaussian",
    "--data-arg",
    "n_train=64",
    "--data-arg",
    "n_test=16",
    "--model-arg",
    "latent_dim=2",
    "--model-arg",
    "hidden=8",
    "--guide-arg",
    "hidden=8",
    "--batch-size",
    "16",
    "--quiet",
    "--no-figures",
]


SWISSROLL = [
    "fit",
    "vae",
    "--data",
    "swissroll",
    "--data-arg",
    "n_train=64",
    "--data-arg",
    "n_test=16",
    "--model-arg",
    "latent_dim=2",
    "--model-arg",
    "hidden=8",
    "--guide-arg",
    "hidden=8",
    "--batch-size",
    "16",
    "--steps",
    "2",
    "--quiet",
    "--no-figures",
]


def snapshot(root: Path):
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder a user works in: a trained run, a folder of their own, files of their own, broken run folders."""
    ws = tmp_path_factory.mktemp("workspace")
    cwd = os.getcwd()
    os.chdir(ws)
    clean = np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32)
    np.save(ws / "points.npy", clean)
    try:
        assert main(FIT + ["--steps", "4", "--checkpoint-every", "2", "--eval-every", "2", "--out", "run"]) == 0
        assert main(["plot", "run"]) == 0
        assert main([*SWISSROLL, "--out", "sw"]) == 0  # flat data with a 0/1 attribute, x0>=10
        outliers = [*FIT[:2], "--data", "arrays", "--data-arg", f"path={ws / 'points.npy'}", "--data-arg", "n_test=40"]
        assert (
            main([*outliers, "--batch-size", "16", "--steps", "2", "--quiet", "--no-figures", "--out", "outliers"]) == 0
        )
    finally:
        os.chdir(cwd)
    spoilt = clean.copy()
    spoilt[::4] *= 1e4  # the data of run "outliers" now holds outliers: its resumed first step diverges
    np.save(ws / "points.npy", spoilt)
    (ws / "thesis").mkdir()
    (ws / "thesis" / "thesis.txt").write_text("two years of work")
    (ws / "folder.pt").mkdir()
    (ws / "user.png").write_bytes(b"\x89PNG not really")
    (ws / "user.pt").write_bytes(b"the user's tensors")
    for name, payload in (
        ("truncated", (ws / "run" / "checkpoint.pt").read_bytes()[:500]),
        ("random", os.urandom(4000)),
    ):
        shutil.copytree(ws / "run", ws / name)
        (ws / name / "checkpoint.pt").write_bytes(payload)
    shutil.copytree(ws / "run", ws / "evil")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch EVIL_RAN",))

    torch.save({"model": Evil()}, ws / "evil" / "checkpoint.pt")
    shutil.copytree(ws / "run", ws / "evil4")  # pickle protocol 4: torch warns before refusing it
    torch.save({"model": Evil()}, ws / "evil4" / "checkpoint.pt", pickle_protocol=4)
    shutil.copytree(ws / "run", ws / "damaged")
    rows = (ws / "run" / "metrics.jsonl").read_text()
    (ws / "damaged" / "metrics.jsonl").write_text('{"step": 1, "train_lo\n' + rows)  # torn, then more rows
    shutil.copytree(ws / "run", ws / "badresults")
    (ws / "badresults" / "results.json").write_text('{"num_particles": 10, "n"')
    shutil.copytree(ws / "run", ws / "locked")
    (ws / "locked" / ".lock").write_text(
        json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "command": "pyro-vaes fit", "since": "today"})
    )
    (ws / "figs").mkdir()
    (ws / "figs" / "reconstructions.png").write_bytes(b"mine")
    configs = {
        "malformed.yaml": "model: vae\nsteps: [1, 2\n",
        "list.yaml": "- vae\n- 3\n",
        "unknown.yaml": "modle: vae\n",
        "lr.yaml": "model: vae\nlr: abc\n",
        "args.yaml": "model: vae\nmodel_args: 7\n",
        "device.yaml": "model: vae\ndevice: 3\n",
        "steps.yaml": "model: vae\nsteps: 12.7\n",
        "figures.yaml": 'model: vae\nfigures: "no"\n',
        "latent.yaml": "model: vae\nmodel_args: {latent_dim: 2.5}\n",
    }
    for name, text in configs.items():
        (ws / name).write_text(text)
    raw = ws / "fashion" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 16)):
        for kind, shape in (("images-idx3", (n, 28, 28)), ("labels-idx1", (n,))):
            arr = np.zeros(shape, dtype=np.uint8)
            header = (0x800 + arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + arr.tobytes())
    (raw / "train-images-idx3-ubyte").write_bytes((raw / "train-images-idx3-ubyte").read_bytes()[:3000])  # truncated
    (ws / "imgs" / "a").mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(ws / "imgs" / "a" / "ok.png")
    (ws / "imgs" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return ws


# (id, argv, a fragment the one-line message must contain)
CASES = [
    ("unknown model", ["fit", "vea"], "Did you mean 'vae'"),
    ("unknown guide", ["fit", "vae", "--guide", "nope"], "unknown guide 'nope'"),
    ("guide of another model", ["fit", "vae", "--guide", "ugvae-structured"], "does not fit model 'vae'"),
    ("unknown objective", ["fit", "vae", "--objective", "elbow"], "Did you mean 'elbo'"),
    ("objective the model cannot use", ["fit", "ugvae", "--objective", "factor-vae"], "Objectives that fit"),
    ("elbo on an enumerated model", ["fit", "gmvae", "--objective", "elbo"], "would sample instead"),
    ("unknown dataset", ["fit", "vae", "--data", "mnits"], "Did you mean 'mnist'"),
    ("zero steps", ["fit", "vae", "--steps", "0"], "steps must be >= 1"),
    ("steps not a number", ["fit", "vae", "--steps", "abc"], "invalid int value"),
    ("negative batch", ["fit", "vae", "--batch-size", "-1"], "batch_size must be >= 1"),
    ("zero learning rate", ["fit", "vae", "--lr", "0"], "learning rates must be > 0"),
    ("learning rate not a number", ["fit", "vae", "--lr", "abc"], "invalid float value"),
    ("unknown device", ["fit", "vae", "--device", "tpu"], "unknown device"),
    ("cuda without cuda", [*FIT, "--device", "cuda", "--out", "x"], "CUDA is not available"),
    ("model arg without value", ["fit", "vae", "--model-arg", "latent_dim"], "expects KEY=VALUE"),
    ("fractional latent size", ["fit", "vae", "--model-arg", "latent_dim=2.5"], "expected an integer, got 2.5"),
    ("zero latent size", [*FIT, "--model-arg", "latent_dim=0", "--out", "x"], "latent_dim must be an integer >= 1"),
    ("unknown model arg", ["fit", "vae", "--model-arg", "nope=1"], "takes no argument 'nope'"),
    ("renamed model arg", ["fit", "ugvae", "--model-arg", "z_dim=3"], "renamed 'latent_dim'"),
    ("mistyped data arg", ["fit", "vae", "--data-arg", "n_trian=3"], "takes no argument 'n_trian'"),
    ("data arg of the wrong type", ["fit", "vae", "--data-arg", "n_train=abc"], "expected an integer"),
    ("malformed YAML value", ["fit", "vae", "--data-arg", "n_train=[1,"], "not valid YAML"),
    ("negative beta", ["fit", "vae", "--objective", "beta-vae-h", "--beta", "-2"], "beta must be > 0"),
    (
        "argument an objective does not take",
        ["fit", "vae", "--objective", "iwae", "--objective-arg", "alpha=0.5"],
        "takes no argument 'alpha'",
    ),
    (
        "unknown likelihood",
        ["fit", "ugvae", "--likelihood", "poisson", "--data", "linear-gaussian"],
        "likelihood must be",
    ),
    ("Bernoulli on grey data", [*FIT, "--likelihood", "bernoulli", "--out", "x"], "needs binary data"),
    ("batch larger than the data", [*FIT, "--batch-size", "128", "--out", "x"], "larger than the training set"),
    ("missing config file", ["fit", "--config", "missing.yaml"], "does not exist"),
    ("malformed YAML config", ["fit", "--config", "malformed.yaml"], "not valid YAML"),
    ("config that is a list", ["fit", "--config", "list.yaml"], "must hold a mapping"),
    ("unknown config key", ["fit", "--config", "unknown.yaml"], "unknown config keys: modle"),
    ("config lr: abc", ["fit", "--config", "lr.yaml"], "lr: expected a number"),
    ("config model_args: 7", ["fit", "--config", "args.yaml"], "model_args: expected a mapping"),
    ("config device: 3", ["fit", "--config", "device.yaml"], "device: expected text"),
    ("config steps: 12.7", ["fit", "--config", "steps.yaml"], "steps: expected an integer, got 12.7"),
    ("config figures: 'no'", ["fit", "--config", "figures.yaml"], "figures: expected true or false"),
    ("config latent_dim: 2.5", ["fit", "--config", "latent.yaml"], "expected an integer, got 2.5"),
    ("overwrite a folder that is not a run", [*FIT, "--out", "thesis", "--overwrite"], "is not a run folder"),
    ("write into a folder that is not a run", [*FIT, "--out", "thesis"], "is not a run folder"),
    ("out is a file", [*FIT, "--out", "user.png"], "is a file"),
    ("existing run without overwrite", [*FIT, "--out", "run"], "already exists"),
    (
        "overwrite with a bad setting keeps the old run",
        [*FIT, "--out", "run", "--overwrite", "--batch-size", "9999"],
        "larger than the training set",
    ),
    ("overwrite the current directory", [*FIT, "--out", ".", "--overwrite"], "is not a run folder"),
    ("resume a folder that does not exist", ["fit", "--resume", "nowhere"], "not a run folder"),
    ("resume a folder that is not a run", ["fit", "--resume", "thesis"], "not a run folder"),
    ("resume to a step already reached", ["fit", "--resume", "run", "--steps", "2"], "is at step 4"),
    (
        "resume with a changed setting",
        ["fit", "--resume", "run", "--steps", "8", "--batch-size", "8"],
        "keeps its recorded config",
    ),
    ("resume a truncated checkpoint", ["fit", "--resume", "truncated", "--steps", "8"], "is truncated or corrupt"),
    ("resume a checkpoint of random bytes", ["fit", "--resume", "random", "--steps", "8"], "cannot be loaded"),
    ("resume a checkpoint that holds code", ["fit", "--resume", "evil", "--steps", "8"], "holds objects other than"),
    ("resume a folder another process holds", ["fit", "--resume", "locked", "--steps", "8"], "is in use by process"),
    ("evaluate a folder that does not exist", ["evaluate", "nowhere"], "not a run folder"),
    ("evaluate a folder that is not a run", ["evaluate", "thesis"], "not a run folder"),
    ("evaluate zero examples", ["evaluate", "run", "--max-examples", "0"], "--max-examples must be >= 1"),
    ("evaluate negative examples", ["evaluate", "run", "--max-examples", "-1"], "--max-examples must be >= 1"),
    ("evaluate zero particles", ["evaluate", "run", "--particles", "0"], "--particles must be >= 1"),
    ("evaluate a truncated checkpoint", ["evaluate", "truncated"], "is truncated or corrupt"),
    ("evaluate a folder another process holds", ["evaluate", "locked"], "is in use by process"),
    ("evaluate on a device that is not there", ["evaluate", "run", "--device", "cuda"], "CUDA is not available"),
    ("sample zero", ["sample", "run", "-n", "0"], "-n must be >= 1"),
    ("sample over an existing file", ["sample", "run", "--out", "user.pt"], None),
    (
        "sample over the run's checkpoint",
        ["sample", "run", "--out", "run/checkpoint.pt", "--overwrite"],
        "the run folder's own checkpoint.pt",
    ),
    ("sample into a folder", ["sample", "run", "--out", "folder.pt"], "is a folder"),
    ("sample flat data into an image", ["sample", "run", "--out", "s.png"], "give a name ending in .pt"),
    ("sample a corrupt run", ["sample", "random"], "cannot be loaded"),
    ("plot an unknown kind", ["plot", "run", "--kind", "nope"], "unknown figure kind"),
    ("plot into a file", ["plot", "run", "--out", "user.png"], "is a file"),
    ("plot over existing figures", ["plot", "run", "--out", "figs"], "pass --overwrite"),
    ("data show an unknown dataset", ["data", "show", "nope", "--out", "d.png"], "unknown dataset"),
    ("data show over an existing file", ["data", "show", "moons", "--out", "user.png"], "pass --overwrite"),
    (
        "data show a mistyped argument",
        ["data", "show", "moons", "--out", "d.png", "--data-arg", "n_trian=3"],
        "takes no argument",
    ),
    (
        "a truncated Fashion-MNIST file",
        ["data", "show", "fashion-mnist", "--data-root", "fashion", "--out", "d.png"],
        "truncated or corrupt",
    ),
    (
        "a corrupt JPEG",
        ["data", "show", "folder", "--data-arg", "path=imgs", "--data-arg", "n_test=0", "--out", "d.png"],
        "cannot be read",
    ),
    ("reproduce an unknown experiment", ["reproduce", "nope"], "unknown experiment"),
    (
        "reproduce with an unknown setting",
        ["reproduce", "ugvae-sampling", "--set", "nope=1", "--out", "r"],
        "no such setting",
    ),
    (
        "reproduce with a setting of the wrong type",
        ["reproduce", "ugvae-sampling", "--set", "steps=abc", "--out", "r"],
        "expected an integer",
    ),
    ("reproduce into a file", ["reproduce", "ugvae-sampling", "--out", "user.png"], "is a file"),
    ("reproduce into a folder with files", ["reproduce", "chyvae-shapes2d", "--out", "thesis"], "not empty"),
    ("reproduce at an unknown scale", ["reproduce", "ugvae-sampling", "--scale", "huge"], "invalid choice"),
    ("compare an unknown model", ["compare", "vea", "--data", "moons", "--out", "c"], "Did you mean 'vae'"),
    (
        "compare a guide of another model",
        ["compare", "vae", "--guides", "ugvae-structured", "--data", "moons", "--out", "c"],
        "does not fit model 'vae'",
    ),
    ("compare without data", ["compare", "vae", "--out", "c"], "needs a model and --data"),
    (
        "compare with bad seeds",
        ["compare", "vae", "--data", "moons", "--seeds", "0,x", "--out", "c"],
        "comma-separated integers",
    ),
    (
        "compare into a folder with files",
        ["compare", "vae", "--data", "moons", "--out", "thesis"],
        "holds no comparison",
    ),
    ("compare runs with fit settings", ["compare", "--runs", "run", "--steps", "5", "--out", "c"], "drop steps"),
    ("compare a folder that is not a run", ["compare", "--runs", "thesis", "--out", "c"], "not a run folder"),
    ("evaluate with negative refinement", ["evaluate", "run", "--refine", "-1"], "--refine must be >= 0"),
    (
        "switch on data without labels",
        ["switch", "run", "--attribute", "0", "--to", "1", "--out", "s.png"],
        "has no labels",
    ),
    ("switch to a value that is not 0/1", ["switch", "run", "--attribute", "0", "--to", "2"], "invalid choice"),
    ("switch a folder that is not a run", ["switch", "thesis", "--attribute", "0", "--to", "1"], "not a run folder"),
    (
        "switch zero items",
        ["switch", "sw", "--attribute", "0", "--to", "1", "-n", "0"],
        "-n must be >= 1",
    ),
    ("switch on a grid of zero points", ["switch", "sw", "--attribute", "0", "--to", "1", "--grid", "0"], "--grid"),
    (
        "switch an attribute beyond the label columns",
        ["switch", "sw", "--attribute", "7", "--to", "1"],
        "--attribute 7 is not a label column",
    ),
    (
        "switch flat data into an image",
        ["switch", "sw", "--attribute", "0", "--to", "1", "--out", "user.png"],
        "give a name ending in .pt",
    ),
    (
        "switch over an existing file",
        ["switch", "sw", "--attribute", "x0>=10", "--to", "1", "--out", "user.pt"],
        "pass --overwrite",
    ),
    (
        "generation traversals without a flow prior",
        ["plot", "run", "--kind", "generation-traversals"],
        "has no flow prior",
    ),
    ("sample on an unknown device", ["sample", "run", "--device", "tpu"], "unknown device; valid: cpu, cuda, cuda:N"),
    ("evaluate on an unknown device", ["evaluate", "run", "--device", "tpu"], "unknown device"),
    (
        "resume a run whose metrics have a damaged line",
        ["fit", "--resume", "damaged", "--steps", "8"],
        "metrics.jsonl line 1 is not a metrics row",
    ),
    (
        "resume on data with outliers, with a lower learning rate",
        ["fit", "--resume", "outliers", "--steps", "8", "--lr", "1e-4", "--quiet"],
        "The data is the likely cause, not the learning rate",
    ),
    ("evaluate a run whose results.json is damaged", ["evaluate", "badresults"], "results.json cannot be read"),
    (
        "compare with zero particles",
        ["compare", "vae", "--data", "moons", "--particles", "0", "--out", "c"],
        "--particles",
    ),
    (
        "reproduce with zero seeds",
        ["reproduce", "ugvae-sampling", "--set", "seeds=0", "--out", "r"],
        "seeds=0: expected an integer >= 1",
    ),
    (
        "resume a checkpoint that holds code, pickle protocol 4",
        ["fit", "--resume", "evil4", "--steps", "8"],
        "holds objects",
    ),
    ("no command", [], "required"),
    ("an unknown flag", ["list", "--bogus"], "unrecognized arguments"),
]


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("PYRO_VAES_DATA", raising=False)
    return workspace


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, in_workspace, capsys):
    name, argv, fragment = case
    ws = in_workspace
    before = snapshot(ws)
    with warnings.catch_warnings(record=True) as warned:  # a warning is a line on stderr too
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: usage errors exit through SystemExit
            code = exit_.code
    err = capsys.readouterr().err
    assert not warned, [str(w.message) for w in warned]
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("pyro-vaes:"), err
    if fragment is not None:
        assert fragment in lines[0], lines[0]
    after = snapshot(ws)
    assert {k: v for k, v in after.items() if k in before} == before, "a file that existed changed"
    assert set(after) == set(before), f"created {sorted(set(after) - set(before))}"
    assert not (ws / "EVIL_RAN").exists()


def test_the_catalogue_covers_every_command():
    commands = {argv[0] for _, argv, _ in CASES if argv}
    assert (
        commands >= {"fit", "evaluate", "sample", "plot", "data", "reproduce", "list", "compare", "switch"}
        and len(CASES) >= 60
    )


def test_a_read_only_folder_is_one_line(tmp_path, capsys):
    """--out in a folder nobody may write: refused before the data is read (as root, a read-only tmpfs)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True
        ).returncode:
            pytest.skip("running as root and cannot mount a read-only tmpfs: no read-only folder to try")
    else:
        os.chmod(ro, 0o555)
    try:
        assert main([*FIT, "--out", str(ro / "new")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not writable" in err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], capture_output=True)
        else:
            os.chmod(ro, 0o755)


def test_diverging_loss_stops_with_one_line_and_names_the_checkpoint(in_workspace, capsys):
    """A loss that grows far above its running level but stays finite stops training (it used to train to the end
    with exit 0); with no checkpoint yet the message says so."""
    code = main(
        [*FIT, "--lr", "3", "--steps", "200", "--divergence", "2", "--checkpoint-every", "100", "--out", "diverged"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "training stopped" in err and "no checkpoint was written" in err
    assert not (in_workspace / "diverged" / "checkpoint.pt").exists()
    shutil.rmtree(in_workspace / "diverged")


def test_ctrl_c_stops_cleanly_with_exit_130(in_workspace, capsys, monkeypatch):
    from pyro_vaes.engine.trainer import Trainer

    real = Trainer._step

    def interrupted(self, x, y):
        if self.step == 5:
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "_step", interrupted)
    code = main([*FIT, "--steps", "20", "--checkpoint-every", "2", "--out", "ctrlc"])
    err = capsys.readouterr().err.strip()
    assert code == 130 and err == (
        "pyro-vaes: stopped at step 5 (Ctrl-C); the last checkpoint is at step 4: resume "
        "with pyro-vaes fit --resume ctrlc"
    )
    monkeypatch.setattr(Trainer, "_step", real)
    assert main(["fit", "--resume", "ctrlc", "--steps", "6", "--quiet", "--no-figures"]) == 0
    shutil.rmtree(in_workspace / "ctrlc")


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(in_workspace, monkeypatch):
    """A replacement that fails before its first checkpoint leaves the old run exactly as it was; one that reaches it
    replaces the old run and leaves nothing aside."""
    from pyro_vaes.engine.trainer import Trainer

    shutil.copytree(in_workspace / "run", in_workspace / "keep")
    before = snapshot(in_workspace / "keep")
    real = Trainer._step

    def fails(self, x, y):
        if self.step == 1:
            raise RuntimeError("boom")
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "_step", fails)
    assert main([*FIT, "--steps", "6", "--checkpoint-every", "3", "--out", "keep", "--overwrite"]) == 1
    assert snapshot(in_workspace / "keep") == before
    monkeypatch.setattr(Trainer, "_step", real)
    assert main([*FIT, "--steps", "6", "--checkpoint-every", "3", "--out", "keep", "--overwrite", "--seed", "3"]) == 0
    assert json.loads((in_workspace / "keep" / "config.json").read_text())["seed"] == 3
    assert not [p for p in in_workspace.iterdir() if p.name.startswith(".keep.")]
    shutil.rmtree(in_workspace / "keep")


def test_a_run_killed_before_its_first_checkpoint_restarts_on_a_plain_rerun(in_workspace):
    argv = [*FIT, "--steps", "4", "--out", "early"]
    (in_workspace / "early").mkdir()
    (in_workspace / "early" / "config.json").write_text((in_workspace / "run" / "config.json").read_text())
    (in_workspace / "early" / ".checkpoint.pt.abc.tmp").write_bytes(b"partial")
    assert main(argv) == 0 and (in_workspace / "early" / "checkpoint.pt").exists()
    assert not list((in_workspace / "early").glob(".checkpoint.pt.*.tmp"))
    shutil.rmtree(in_workspace / "early")


def test_relative_data_root_is_stored_absolute_and_readers_take_a_new_one(tmp_path, monkeypatch, shared_data):
    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(shared_data, tmp_path)
    args = [
        "fit",
        "vae",
        "--data",
        "mnist",
        "--data-root",
        rel,
        "--data-arg",
        "n_train=32",
        "--data-arg",
        "n_test=16",
        "--steps",
        "1",
        "--batch-size",
        "16",
        "--quiet",
        "--no-figures",
        "--out",
        "r",
    ]
    assert main(args) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data_root"] == str(Path(shared_data).resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", "../r", "--particles", "2", "--max-examples", "4"]) == 0
    assert main(["sample", "../r", "-n", "4", "--out", "s.png", "--data-root", str(shared_data)]) == 0


# -- faults -------------------------------------------------------------------------------------------------------
def _cli(*argv, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pyro_vaes", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw
    )


def _rows(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def _params(run_dir):
    state = torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True)
    return {k: v for part in ("model", "guide") for k, v in state[part].items()}, state["step"]


def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path):
    argv = [*FIT, "--steps", "40", "--checkpoint-every", "5", "--eval-every", "5"]
    assert _cli(*argv, "--out", str(tmp_path / "full")).wait() == 0
    rng = random.Random(0)
    target = tmp_path / "killed"
    kills = 0
    for _ in range(8):
        resume = (target / "checkpoint.pt").exists()
        cmd = (
            ["fit", "--resume", str(target), "--steps", "40", "--quiet", "--no-figures"]
            if resume
            else [*argv, "--out", str(target)]
        )
        proc = _cli(*cmd)
        if kills < 3:
            # kill mid-training at a random moment: after 1 or 2 more metrics rows (every 5 steps, each followed by a
            # checkpoint write), then up to 50 ms into what follows. Timed by the run's progress, not the wall clock:
            # an idle machine finishes the whole run within the few seconds a fixed delay would wait.
            wanted = _rows(target / "metrics.jsonl") + rng.randint(1, 2)
            while proc.poll() is None and _rows(target / "metrics.jsonl") < wanted:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        proc.wait()
        if (target / "checkpoint.pt").exists() and _params(target)[1] == 40:  # (a kill may land after the last one)
            break
    assert kills >= 1 and _params(target)[1] == 40
    full, _ = _params(tmp_path / "full")
    got, _ = _params(target)
    assert all(torch.equal(full[k], got[k]) for k in full)
    assert not list(target.glob(".checkpoint.pt.*.tmp")) and not (target / ".lock").exists()


def test_two_writers_on_one_folder_the_second_is_refused_and_a_stale_lock_is_cleared(tmp_path, capsys):
    assert main([*FIT, "--steps", "2", "--out", str(tmp_path / "r")]) == 0
    proc = _cli(
        "fit",
        "--resume",
        str(tmp_path / "r"),
        "--steps",
        "100000",
        "--quiet",
        "--no-figures",
        "--checkpoint-every",
        "100000",
        "--eval-every",
        "100000",
    )
    try:
        for _ in range(300):
            if (tmp_path / "r" / ".lock").exists():
                break
            time.sleep(0.05)
        assert main(["fit", "--resume", str(tmp_path / "r"), "--steps", "4", "--quiet", "--no-figures"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by process {proc.pid}" in err and len(err.strip().splitlines()) == 1
        assert main(["evaluate", str(tmp_path / "r"), "--particles", "2"]) == 2
        assert "is in use" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / "r" / ".lock").exists()  # left by the killed process: stale now
    assert main(["fit", "--resume", str(tmp_path / "r"), "--steps", "4", "--quiet", "--no-figures"]) == 0
    assert not (tmp_path / "r" / ".lock").exists()


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount)")
    try:
        (disk / "mine.bin").write_bytes(os.urandom(200 * 1024))  # the user's file fills most of the disk
        code = main([*FIT, "--steps", "4", "--checkpoint-every", "2", "--out", str(disk / "r")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "no space left" in err.lower()
        assert len((disk / "mine.bin").read_bytes()) == 200 * 1024
        assert not list((disk / "r").glob(".checkpoint.pt.*.tmp"))
        (disk / "mine.bin").unlink()  # free space: the run resumes from its last whole checkpoint (or reruns)
        again = (
            ["fit", "--resume", str(disk / "r"), "--steps", "4", "--quiet", "--no-figures"]
            if (disk / "r" / "checkpoint.pt").exists()
            else [*FIT, "--steps", "4", "--out", str(disk / "r")]
        )
        assert main(again) == 0
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# -- the newcomer's path: what a first session runs into ------------------------------------------------------------
def test_a_full_disk_seen_as_torchs_runtime_error_is_one_line_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    """torch's zip writer raises a RuntimeError, not an OSError, when the disk fills: it is said as a full disk, and
    the previous checkpoint stays whole."""
    from pyro_vaes.engine import checkpoint as ckpt

    real, calls = torch.save, []

    def full(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # the first checkpoint is written; the second finds the disk full
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4372")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", full)
    out = tmp_path / "r"
    code = main([*FIT, "--steps", "4", "--checkpoint-every", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "no space left on the device" in err and "the previous checkpoint.pt is kept whole" in err
    assert "internal error" not in err and "enforce fail" not in err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not list(out.glob(".checkpoint.pt.*.tmp"))


def test_a_torn_last_metrics_line_is_dropped_and_the_run_resumes(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*FIT, "--steps", "4", "--checkpoint-every", "2", "--eval-every", "2", "--out", str(out)]) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "train_loss": 1.2, "te')  # a crash while the row was written
    capsys.readouterr()
    assert main(["fit", "--resume", str(out), "--steps", "6", "--quiet", "--no-figures"]) == 0
    said = capsys.readouterr().out
    assert f"the last line of {out / 'metrics.jsonl'} is torn" in said and "that row is dropped" in said
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]


def test_divergence_in_the_first_steps_points_at_the_data_and_names_the_right_first_checkpoint(tmp_path, capsys):
    code = main([*FIT, "--lr", "3", "--steps", "40", "--divergence", "2", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "(the first comes at step 40)" in err and "step 250" not in err
    assert "check the data's scale" in err and "standardise" in err


def test_a_resume_that_diverges_on_its_first_step_changes_no_file(in_workspace, capsys):
    """The outlier run of the catalogue, directly: a lower learning rate does not help, and neither config.json nor
    metrics.jsonl records the failed attempt."""
    before = snapshot(in_workspace / "outliers")
    assert main(["fit", "--resume", "outliers", "--steps", "8", "--lr", "1e-4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a lower --lr fails the same way" in err and "outliers" in err and "remove or clip them" in err
    assert snapshot(in_workspace / "outliers") == before


def test_switch_on_flat_data_writes_a_tensor_file_under_a_safe_name_and_says_what_it_did(
    in_workspace, tmp_path, capsys
):
    run = tmp_path / "sw"
    shutil.copytree(in_workspace / "sw", run)
    assert main(["switch", str(run), "--attribute", "x0>=10", "--to", "1", "-n", "3"]) == 0
    out = capsys.readouterr().out
    path = run / "figures" / "switch-x0ge10-to1.pt"
    assert f"written: {path}" in out and "switched x0>=10 to 1 for 3 test item(s) by latent-arithmetic" in out
    saved = torch.load(path, weights_only=False)
    assert saved["switched"].shape[:2] == (3, 1) and saved["attribute"] == "x0>=10"
    assert main(["switch", str(run), "--attribute", "0", "--to", "1", "--out", str(tmp_path / "mine.pt")]) == 0
    assert (tmp_path / "mine.pt").is_file() and not (tmp_path / "mine.png").exists()


def test_evaluations_of_other_settings_are_kept_and_an_old_results_json_still_loads(in_workspace, tmp_path, capsys):
    import pyro_vaes
    from pyro_vaes.api import read_results

    run_dir = tmp_path / "run"
    shutil.copytree(in_workspace / "run", run_dir)
    old = {"model": "vae", "num_particles": 1000, "n": 16, "log_likelihood": -3.0, "log_likelihood_se": 0.1}
    (run_dir / "results.json").write_text(json.dumps(old))  # the layout of earlier versions: one result
    run = pyro_vaes.load(run_dir)
    assert run.results() == {"particles=1000,examples=16": old}
    first = run.evaluate(num_particles=5)
    assert main(["evaluate", str(run_dir), "--particles", "3", "--refine", "2"]) == 0
    assert "1 evaluation(s)" not in capsys.readouterr().out  # two others are kept beside it
    kept = read_results(run_dir)
    assert list(kept) == [
        "particles=1000,examples=16",
        "particles=5,examples=16",
        "particles=3,examples=16,refine=2,refine_particles=10,refine_lr=0.1",
    ]
    assert kept["particles=1000,examples=16"] == old and kept["particles=5,examples=16"] == first
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["format"] == 2 and saved["latest"].startswith("particles=3,")
    assert run.evaluate(num_particles=5) == first and list(read_results(run_dir))[-1] == "particles=5,examples=16"


def test_gaussian_data_gets_a_likelihood_scale_of_its_own_recorded_in_the_config(tmp_path, capsys):
    """When the likelihood resolves to Gaussian from the data and obs_scale was not given, obs_scale comes from the
    data (a note says so; config.json records it, so the loaded run is the same model). Given, it is kept."""
    import pyro_vaes
    from pyro_vaes.data import load_dataset
    from pyro_vaes.engine.build import gaussian_scale

    lg = load_dataset("linear-gaussian", n_train=2000, n_test=10)  # noise 0.5 around a 2-D linear subspace of 8-D
    scale, how = gaussian_scale(lg.train.x[:1000], 2)
    assert abs(scale - 0.5) < 0.05 and "probabilistic PCA" in how
    angle = torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 6.283
    circle = torch.stack([angle.cos(), angle.sin()], 1)  # a code as wide as the data: a tenth of the data's spread
    scale, how = gaussian_scale(circle, 2)
    assert abs(scale - 0.0707) < 0.002 and "a tenth" in how
    out = tmp_path / "r"
    assert main([*FIT, "--steps", "2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    recorded = json.loads((out / "config.json").read_text())["model_args"]
    assert f"obs_scale = {recorded['obs_scale']:g} chosen for the Gaussian likelihood" in said
    assert recorded["likelihood"] == "gaussian" and 0 < recorded["obs_scale"] < 1
    assert pyro_vaes.load(out).model.obs_scale == recorded["obs_scale"]
    assert main([*FIT, "--steps", "2", "--model-arg", "obs_scale=0.3", "--out", str(tmp_path / "given")]) == 0
    assert json.loads((tmp_path / "given" / "config.json").read_text())["model_args"]["obs_scale"] == 0.3
    assert "chosen for the Gaussian likelihood" not in capsys.readouterr().out
