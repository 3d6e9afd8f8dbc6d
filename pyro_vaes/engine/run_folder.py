"""The run folder: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``figures/`` and ``results.json``, and
the rules that keep what a user owns safe.

* **Only a run folder may be replaced** (``--overwrite``): a folder holding ``config.json`` and ``checkpoint.pt``.
  Anything else that is not empty is refused, with or without ``--overwrite``. The replacement is written into a
  hidden sibling folder first and swapped in only once it has written its first checkpoint, so the old run is kept
  until then (:class:`NewRunFolder`); every check and the data loading happen before anything is written.
* **An unfinished run** (a folder with our ``config.json`` but no checkpoint: killed before its first checkpoint)
  is restarted by a plain rerun of the same command.
* **One process per run folder**: training, resuming and evaluating hold ``.lock`` (pid, host, command); a second
  process is refused with the holder named; a lock whose process is gone is cleared (:func:`run_lock`).
* **Output options** (``--out`` of sample, plot, data show, reproduce, switch) refuse an existing file unless
  ``--overwrite`` and never write over a run folder's own files (:func:`check_output`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from pyro_vaes.config import FitConfig
from pyro_vaes.engine.errors import RunExistsError, RunLockedError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
FIGURES = "figures"
LOCK = ".lock"
#: the files a run writes into its folder (and nothing else)
RUN_FILES = {CHECKPOINT, CONFIG, METRICS, RESULTS, FIGURES, LOCK}
#: files no output option may write over, even with --overwrite
PROTECTED = {CHECKPOINT, CONFIG, METRICS, LOCK}


def default_run_dir(config: FitConfig) -> Path:
    """``runs/MODEL-DATA-seedS``, with the guide and the objective after the model when they are not the model's
    defaults (``runs/vae-iwae-shapes2d-seed0``): runs of different configurations get different default folders.
    ``config`` is resolved (its guide and objective filled in); an unresolved one names what it gives."""
    from pyro_vaes.registry import GUIDES, MODELS, default_guide

    parts = [config.model]
    try:
        model_cls = MODELS.get(config.model)
        guide = default_guide(config.model) if model_cls.has_guide else None
        objective = (
            GUIDES.get(config.guide).default_objective if config.guide else None
        ) or model_cls.default_objective
    except (ValueError, KeyError):  # an unknown name: the name as given (it is refused before anything is written)
        guide = objective = None
    if config.guide is not None and config.guide != guide:
        parts.append(config.guide)
    if config.objective is not None and config.objective != objective:
        parts.append(config.objective)
    return Path("runs") / f"{'-'.join(parts)}-{config.data}-seed{config.seed}"


def is_run_folder(path: Path) -> bool:
    """A folder holding a run's ``config.json`` and ``checkpoint.pt``."""
    return (Path(path) / CONFIG).is_file() and (Path(path) / CHECKPOINT).is_file()


def _ours(entry: Path) -> bool:
    """A file a run writes: its own names, figures, and the temporary files of an interrupted atomic write."""
    return entry.name in RUN_FILES or (entry.name.startswith(f".{CHECKPOINT}.") and entry.name.endswith(".tmp"))


def is_unfinished_run(path: Path) -> bool:
    """A folder a run created and was stopped in before its first checkpoint: our config, no checkpoint, and nothing
    but what a run writes (figures holding only PNGs)."""
    path = Path(path)
    if not (path / CONFIG).is_file() or (path / CHECKPOINT).exists():
        return False
    for entry in path.iterdir():
        if not _ours(entry):
            return False
        if entry.name == FIGURES and (not entry.is_dir() or any(f.suffix != ".png" for f in entry.iterdir())):
            return False
    try:
        json.loads((path / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return True


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def check_writable(path: Path, what: str) -> None:
    """Refuse a destination whose nearest existing folder is not writable (a read-only folder or disk)."""
    base = _nearest_existing(path)
    if base.is_file():
        raise NotADirectoryError(f"{what} {path}: {base} is a file, not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: {base} is not writable; choose a folder you can write to")


def check_new_run_target(path: Path, overwrite: bool) -> str:
    """Validate the folder a new run goes into, writing nothing; returns ``"new"`` (absent or empty), ``"restart"``
    (an unfinished run) or ``"replace"`` (a run folder, with ``overwrite``)."""
    path = Path(path)
    check_writable(path, "run folder")
    if not path.exists():
        return "new"
    if not path.is_dir():
        raise NotADirectoryError(f"run folder {path} is a file; choose another --out")
    if not any(path.iterdir()):
        return "new"
    if is_run_folder(path):
        if not overwrite:
            raise RunExistsError(
                f"run folder {path} already exists; pass --resume {path} to continue it, --overwrite "
                "to replace it, or --out to choose another folder"
            )
        if Path(os.path.abspath(path)) in Path(os.path.abspath(os.getcwd())).parents or os.path.abspath(
            path
        ) == os.path.abspath(os.getcwd()):
            raise ValueError(f"--overwrite would replace {path}, which holds the current directory; run from elsewhere")
        return "replace"
    if is_unfinished_run(path):
        return "restart"
    held = sorted(p.name for p in path.iterdir())
    shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
    raise RunExistsError(
        f"{path} is not a run folder (it holds {shown}); --overwrite only replaces run folders "
        "(config.json + checkpoint.pt): choose another --out"
    )


class NewRunFolder:
    """Where a new run writes: the target itself (absent, empty or an unfinished run), or, when it replaces a run
    folder, a hidden sibling that is swapped in after the first checkpoint (:meth:`committed`), the old run deleted
    only then. :meth:`abort` removes a replacement that never reached its first checkpoint, leaving the old run."""

    def __init__(self, target: Path, mode: str):
        self.target = Path(target)
        self.mode = mode
        self.pending = mode == "replace"
        self.path = self.target.parent / f".{self.target.name}.new-{os.getpid()}" if self.pending else self.target

    def open(self) -> Path:
        for stale in self.target.parent.glob(f".{self.target.name}.new-*"):  # left by a killed replacement
            if stale != self.path and (stale / CONFIG).is_file():
                shutil.rmtree(stale, ignore_errors=True)
        if self.mode == "restart":
            for entry in self.target.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        (self.path / FIGURES).mkdir(parents=True, exist_ok=True)
        return self.path

    def committed(self) -> Path:
        """After the first checkpoint: put the new run in place of the old one (which is deleted now)."""
        if self.pending:
            aside = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            os.replace(self.target, aside)
            os.replace(self.path, self.target)
            shutil.rmtree(aside, ignore_errors=True)
            self.path, self.pending = self.target, False
        return self.path

    def abort(self) -> None:
        if self.pending:
            shutil.rmtree(self.path, ignore_errors=True)


def clean_temporary_files(run_dir: Path) -> None:
    """Remove the temporary files of atomic writes a killed process left (ours only: ``.checkpoint.pt.*.tmp``)."""
    for tmp in Path(run_dir).glob(f".{CHECKPOINT}.*.tmp"):
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``run_dir/.lock`` held by this process: :meth:`acquire` refuses when a live process holds it and clears it when
    its holder is gone; ``folder`` follows the run when its folder is renamed (a replacement swapped in).

    ``take_over`` True (``--break-lock``) replaces a lock held by any other process instead of refusing: for a lock
    whose holder the user knows is dead but this process cannot check (one on another host of a shared file system,
    a process id reused since); ``taken_from`` is then the holder it replaced (None when there was none). False: the
    command offers ``--break-lock`` and its refusal says so; None: it does not."""

    def __init__(self, run_dir: Path, command: str, take_over: bool | None = None):
        self.folder = Path(run_dir)
        self.command = command
        self.take_over = take_over
        self.taken_from: dict | None = None

    def __enter__(self) -> RunLock:
        self.taken_from = _acquire(self.folder / LOCK, self.folder, self.command, self.take_over)
        return self

    def __exit__(self, *exc) -> None:
        path = self.folder / LOCK
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def run_lock(run_dir: Path, command: str, take_over: bool | None = None) -> RunLock:
    """Hold ``run_dir/.lock`` for a ``with`` block (see :class:`RunLock`)."""
    return RunLock(run_dir, command, take_over)


def describe_holder(holder: dict) -> str:
    """A lock's holder in words: ``process PID on HOST (COMMAND, since WHEN)``."""
    return f"process {holder.get('pid')} on {holder.get('host')} ({holder.get('command')}, since {holder.get('since')})"


def _acquire(path: Path, run_dir: Path, command: str, take_over: bool | None = None) -> dict | None:
    """Create ``path`` for this process; returns the holder a ``take_over`` replaced (None: the lock was free or
    stale). ``take_over`` None: the refusal does not offer ``--break-lock`` (the command has no such option)."""
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            if not isinstance(holder, dict):
                holder = {}
            if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if take_over and (holder or attempt == 2):  # the user says its holder is dead: this process's now
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(me))
                os.replace(tmp, path)
                return holder or {"pid": None, "host": None, "command": "an unreadable lock"}
            if not holder:  # being written right now, or unreadable
                time.sleep(0.2)
                continue
            if take_over is None:
                how = "wait for it to finish or stop it"
            elif holder.get("host") == me["host"]:
                how = (
                    "wait for it to finish or stop it (if that process id now belongs to another program, pass "
                    "--break-lock to take the lock over)"
                )
            else:
                how = (
                    f"this host cannot check a process on {holder.get('host')}: wait for it to finish or stop it, or, "
                    "if it is dead (its job was killed or preempted), pass --break-lock to take the lock over"
                )
            raise RunLockedError(f"run folder {run_dir} is in use by {describe_holder(holder)}; {how}") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return None
    raise RunLockedError(
        f"run folder {run_dir} has a lock file {path} that cannot be read; if no pyro-vaes process is using the "
        + ("folder, remove it" if take_over is None else "folder, pass --break-lock to take it over")
    )


def check_output(path: Path, overwrite: bool, what: str = "--out") -> Path:
    """Validate an output file: refuse a run folder's own files (always), an existing file (unless ``overwrite``), a
    folder where a file is expected, and a destination that cannot be written."""
    path = Path(path)
    if path.name in PROTECTED and (path.parent / CONFIG).is_file():
        raise ValueError(f"{what} {path}: that is the run folder's own {path.name}; choose another file")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{what} {path} exists; pass --overwrite to replace it, or choose another file")
    check_writable(path.parent, what)
    return path


def metrics_rows(run_dir: Path) -> tuple[list[tuple[str, dict]], bool]:
    """The rows of ``run_dir/metrics.jsonl`` (each line with its parsed row), and whether its last line was torn (a
    crash while it was being written: that row is left out). A damaged line elsewhere is one error naming the file
    and the line."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return [], False
    lines = path.read_text().splitlines()
    rows: list[tuple[str, dict]] = []
    torn = False
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and isinstance(row.get("step"), int)
        except ValueError:
            ok = False
        if ok:
            rows.append((line, row))
        elif i == len(lines):
            torn = True
        else:
            raise ValueError(
                f"{path} line {i} is not a metrics row ({line[:40]!r}): the file was damaged; remove or repair "
                "that line, then resume"
            )
    return rows, torn


def truncate_metrics(run_dir: Path, step: int) -> bool:
    """Drop metric rows written after ``step`` (a crash between an evaluation and the next checkpoint) and a torn
    last line (a crash while writing it); returns whether a torn line was dropped."""
    path = Path(run_dir) / METRICS
    rows, torn = metrics_rows(run_dir)
    if path.exists():
        path.write_text("".join(line + "\n" for line, row in rows if row["step"] <= step))
    return torn
