"""The ``pyro-vaes`` command line: list, fit, evaluate, sample, plot, data, reproduce.

The library prints nothing; what it has to say (notes such as the likelihood chosen from the data, evaluation rows,
a comparison's progress) it logs at INFO on the ``pyro_vaes`` logger, and :func:`main` prints those records on
stdout for the duration of a command (:class:`_Say`), a note with the option that changes it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from pyro_vaes.config import BACKENDS, SHORTCUTS, FitConfig, apply_shortcuts, parse_assignments, read_config_file

EXAMPLES = """examples:
  pyro-vaes fit vae                                   # a VAE on procedural 2D shapes, no download
  pyro-vaes fit vae --data mnist --data-root ../shared/data --latent-dim 20 --steps 5000
  pyro-vaes fit vae --objective beta-vae-h --beta 4 --guide full-covariance
  pyro-vaes fit --config my_run.yaml
  pyro-vaes fit --resume runs/vae-shapes2d-seed0 --steps 4000
  pyro-vaes evaluate runs/vae-shapes2d-seed0
"""


def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="train a model/guide pair with an objective",
        description="Train MODEL with SVI. Every option can also come from --config (JSON or YAML); flags win.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="model name (see `pyro-vaes list`)")
    p.add_argument("--guide", help="variational family (default: the model's paper guide)")
    p.add_argument("--objective", help="fitting objective (default: the model's, see `pyro-vaes list`)")
    p.add_argument("--data", help="dataset name (default: shapes2d, generated, no download)")
    p.add_argument("--data-root", help="folder real datasets are read from (default: $PYRO_VAES_DATA)")
    p.add_argument("--steps", type=int, help="training steps (default 1000)")
    p.add_argument("--batch-size", type=int, help="minibatch size (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--aux-lr", type=float, help="learning rate of an objective's auxiliary net (default 1e-4)")
    p.add_argument("--eval-every", type=int, help="held-out evaluation every N steps (default 250)")
    p.add_argument("--eval-batches", type=int, help="held-out batches per evaluation (default 4)")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (default 250)")
    p.add_argument(
        "--divergence",
        type=float,
        help="stop when the loss exceeds its running average by more than this "
        "many times its magnitude (default 100; 0: only NaN/inf stop)",
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="torch: one torch Adam over differentiable_loss (default); svi: pyro.infer.SVI with pyro.optim.Adam",
    )
    p.add_argument("--latent-dim", type=int, help="shortcut for --model-arg latent_dim=N")  # config.SHORTCUTS
    p.add_argument("--likelihood", help="shortcut for --model-arg likelihood=NAME")
    p.add_argument("--beta", type=float, help="shortcut for --objective-arg beta=B")
    p.add_argument("--num-particles", type=int, help="shortcut for --objective-arg num_particles=K")
    for what in ("model", "guide", "objective", "data"):
        p.add_argument(f"--{what}-arg", action="append", metavar="KEY=VALUE", help=f"{what} argument (repeatable)")
    p.add_argument("--config", help="JSON or YAML file of settings (FitConfig fields)")
    p.add_argument("--out", help="run folder (default runs/MODEL-DATA-seedS)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its checkpoint")
    p.add_argument(
        "--resume-or-start",
        action="store_true",
        help="start the run in --out, or continue it from its checkpoint if it exists (a finished run: nothing to "
        "do, exit 0); for restarted or requeued jobs (torchrun --max-restarts, a scheduler)",
    )
    p.add_argument(
        "--break-lock",
        action="store_true",
        help="take over the run folder's lock from a process you know is dead (e.g. on another host)",
    )
    p.add_argument("--no-figures", action="store_true", help="skip the figures at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _flag(key: str) -> str:
    """A setting's option name: ``latent_dim`` -> ``latent-dim``."""
    return key.replace("_", "-")


def _fit_settings(args) -> dict[str, Any]:
    """The settings of ``pyro-vaes fit``: the ``--config`` file's, then the flags' (a flag wins over the file; a
    shortcut flag and a ``--model-arg``/``--objective-arg`` of the same argument must agree)."""
    s: dict[str, Any] = read_config_file(args.config) if args.config else {}
    if s:
        FitConfig.from_dict(s)  # unknown keys and wrong types in the file are named before anything else
        s = apply_shortcuts(s)  # the file's shortcuts in their groups, where a flag can replace them
    for key in (f.name for f in fields(FitConfig)):  # every flag named as a FitConfig field
        v = getattr(args, key, None)
        if v is not None:
            s[key] = v
    for key, group in SHORTCUTS.items():
        v = getattr(args, key, None)
        if v is not None:
            if isinstance(s.get(group), dict) and key in s[group]:  # the flag wins over the file's value
                s[group] = {k: x for k, x in s[group].items() if k != key}
            s[key] = v  # into its group in pyro_vaes.fit, as a Python caller's shortcut
    for what in ("model", "guide", "objective", "data"):
        extra = parse_assignments(getattr(args, f"{what}_arg"), f"--{what}-arg")
        if extra:
            s[f"{what}_args"] = {**s.get(f"{what}_args", {}), **extra}
    if args.no_figures:
        s["figures"] = False
    return s


def cmd_fit(args) -> int:
    from pyro_vaes.api import fit

    settings = _fit_settings(args)
    if args.resume:
        if args.resume_or_start:
            raise ValueError(
                "--resume RUN continues RUN, --resume-or-start starts or continues the run in --out: pass one of them"
            )
        run = fit(resume=args.resume, progress=not args.quiet, break_lock=args.break_lock, **settings)
    else:
        if "model" not in settings:
            raise ValueError("fit needs a MODEL (or a --config that names one); see `pyro-vaes list`")
        run = fit(
            progress=not args.quiet,
            overwrite=args.overwrite,
            resume_or_start=args.resume_or_start,
            break_lock=args.break_lock,
            **settings,
        )
    last = run.history[-1] if run.history else {}
    print(f"run folder: {run.run_dir}")
    if last:
        print(
            f"step {last['step']}: train loss {last['train_loss']:.4f}, test loss {last['test_loss']:.4f} (per datum)"
        )
    return 0


def _ess_note(res: dict[str, Any], prefix: str = "log_likelihood") -> str:
    """The diagnostics beside an importance-sampled estimate (effective sample size, Pareto k̂), and a warning when
    :func:`~pyro_vaes.analysis.evaluation.reliability` says it cannot be trusted."""
    from pyro_vaes.analysis.evaluation import reliability

    ess, k, particles = res.get(f"{prefix}_ess"), res.get(f"{prefix}_pareto_k"), res["num_particles"]
    if ess is None:  # results written before the effective sample size was recorded
        return ""
    ok, why = reliability(ess, k, particles)
    if not ok:
        return (
            f"; UNRELIABLE: {why}, so this is a loose lower bound and its standard error understates its error "
            "(more --particles or a better guide)"
        )
    return f"; effective sample size {ess:.0f} of {particles}" + ("" if k is None else f", Pareto k {k:.2f}")


def _format_gaps(g: dict[str, Any]) -> str:
    """The inference-gap block of ``evaluate --refine`` and ``compare``."""
    rows = [
        (
            f"after {g['refine_steps']} refinement steps",
            f"local parameters of {', '.join(g['refined_sites']) or 'no site'}"
            f" optimised per example ({g['refine_particles']} particles a step)",
        ),
        ("ELBO amortized -> refined", f"{g['elbo_amortized']:.3f} -> {g['elbo_refined']:.3f}"),
        (
            "log p(x), refined proposal",
            f"{g['log_likelihood']:.3f} ± {g['log_likelihood_se']:.3f}{_ess_note(g)}",
        ),
        ("amortization gap", f"{g['amortization_gap']:.3f} ± {g['amortization_gap_se']:.3f}  (L[q*] - L[q_phi])"),
        ("approximation gap", f"{g['approximation_gap']:.3f} ± {g['approximation_gap_se']:.3f}  (log p(x) - L[q*])"),
        ("refinement converged?", f"ELBO change over the last 10% of steps {g['refine_last_change']:+.4f} nats"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _format_results(res: dict[str, Any]) -> str:
    rows = []
    if "log_likelihood" in res:
        per_datum = " per datum" + (f" ({res['per_datum_from']})" if "per_datum_from" in res else "")
        rows += [
            (
                "test log-likelihood (IS, nats)",
                f"{res['log_likelihood']:.3f} ± {res['log_likelihood_se']:.3f} (Monte-Carlo "
                f"standard error; {res['num_particles']} particles){per_datum}"
                f"{_ess_note(res)}",
            ),
            ("test ELBO (nats)", f"{res['elbo']:.3f}"),
        ]
        if "log_likelihood_batch" in res:
            rows += [
                (
                    f"log p(X)/B of batches of {res['batch_size']}",
                    f"{res['log_likelihood_batch']:.3f} ± {res['log_likelihood_batch_se']:.3f}  (ELBO(X)/B "
                    f"{res['elbo_batch']:.3f}: the bound the model was trained on, not comparable with per-datum "
                    f"log p(x)){_ess_note(res, 'log_likelihood_batch')}",
                )
            ]
        rows += [
            ("reconstruction E_q[log p(x|z)]", f"{res['reconstruction']:.3f}"),
            ("reconstruction squared error", f"{res['recon_mse']:.4f}"),
        ]
    if "note" in res:
        rows.append(("note", res["note"]))
    for site, kl in res.get("kl", {}).items():
        rows.append((f"KL({site})", f"{kl:.3f}"))
    for site, per_dim in res.get("kl_per_dim", {}).items():
        prior = res.get("kl_per_dim_prior", {}).get(site)
        rows.append(
            (f"KL({site}) per dim", " ".join(f"{v:.2f}" for v in per_dim) + (f"  (against {prior})" if prior else ""))
        )
    if "active_units" in res:
        rows.append(("active units", str(res["active_units"])))
    rows.append(("test examples", str(res["n"])))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def cmd_evaluate(args) -> int:
    if args.particles < 1:
        raise ValueError(f"--particles must be >= 1, got {args.particles}")
    if not args.all and args.max_examples < 1:
        raise ValueError(f"--max-examples must be >= 1, got {args.max_examples} (use --all for every test example)")
    if args.refine < 0:
        raise ValueError(f"--refine must be >= 0 steps, got {args.refine}")
    run = _load(args)
    res = run.evaluate(
        num_particles=args.particles,
        max_examples=None if args.all else args.max_examples,
        progress=True,
        refine=args.refine,
    )
    print(
        f"{run.config.model} / {run.config.guide} / {run.config.objective} on {run.config.data}: {res['n']} test "
        f"examples, {res['num_particles']} particles each"
    )
    print(_format_results(res))
    if "refined" in res:
        print(_format_gaps(res["refined"]))
    from pyro_vaes.api import results_key

    kept = len(run.results())
    print(
        f"written: {Path(args.run) / 'results.json'} (as {results_key(res)}"
        + (f"; {kept - 1} evaluation(s) of other settings kept beside it)" if kept > 1 else ")")
    )
    return 0


def _load(args):
    """The run folder of a reading command (evaluate, sample, plot, switch), with its data found again."""
    from pyro_vaes.api import load

    return load(args.run, device=args.device, data_root=args.data_root)


def cmd_sample(args) -> int:
    from pyro_vaes.analysis.plots import image_grid
    from pyro_vaes.engine import check_output

    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    run = _load(args)
    suffix = ".png" if run.data.is_image else ".pt"  # flat data: the samples themselves, as a tensor file
    out = Path(args.out) if args.out else Path(args.run) / "figures" / f"samples{suffix}"
    if out.suffix.lower() != suffix:
        kind = "an image grid" if run.data.is_image else "a tensor file (torch.save)"
        raise ValueError(
            f"--out {out}: samples of {run.config.data} are written as {kind}; give a name ending in {suffix}"
        )
    check_output(out, args.overwrite)
    x = run.sample(args.n, seed=args.seed)
    if run.data.is_image:
        title = f"{run.config.model} on {run.config.data}: {args.n} samples (decoder means of prior draws, seed {args.seed})"
        image_grid(x, 8, title, out)
    else:
        import torch

        torch.save(x, out)
    print(f"written: {out}")
    return 0


def cmd_plot(args) -> int:
    from pyro_vaes.analysis.plots import ALL, PLOTTERS
    from pyro_vaes.engine import check_output

    if args.kind != "all" and args.kind not in PLOTTERS:
        raise ValueError(f"unknown figure kind {args.kind!r}; valid: all, {', '.join(PLOTTERS)}")
    run = _load(args)
    if args.out is not None:  # an output option: nothing in it is replaced without --overwrite
        if Path(args.out).is_file():
            raise NotADirectoryError(f"--out {args.out} is a file; give a folder for the figures")
        for kind in ALL if args.kind == "all" else [args.kind]:
            check_output(Path(args.out) / f"{kind}.png", args.overwrite)
    for path in run.plot(args.kind, args.out):
        print(f"written: {path}")
    return 0


def _add_list(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list models (with their guides), objectives, datasets and experiments; NAME: its arguments",
        description="Without NAME: every model (with its guides and default objective), objective, dataset and "
        "experiment, one line each. With NAME (a model, guide, objective, dataset or experiment): its arguments, "
        "their defaults and what they mean. --args: the arguments of every component.",
    )
    p.add_argument("name", nargs="?", help="a model, guide, objective, dataset or experiment name")
    p.add_argument("--args", action="store_true", help="the arguments of every model, guide, objective and dataset")


#: where each kind's arguments are given on the command line
_ARG_OPTION = {"model": "--model-arg", "guide": "--guide-arg", "objective": "--objective-arg", "dataset": "--data-arg"}


def _plain(text: str) -> str:
    """reST as a terminal shows it: ``:class:`~a.b.C``` -> ``C``, ``:mod:`a.b``` -> ``a.b``, a ````literal```` in
    single quotes, whitespace runs as one space."""
    import re

    text = re.sub(r":[a-z]+:`~([^`]+)`", lambda m: m.group(1).rstrip("()").split(".")[-1], text)
    text = re.sub(r":[a-z]+:`([^`]+)`", r"\1", text)
    text = re.sub(r"``(.+?)``", lambda m: m.group(1) if "'" in m.group(1) else f"'{m.group(1)}'", text)
    return " ".join(text.split())


def _docstring(obj: Any) -> str:
    import inspect

    return inspect.cleandoc(obj.__doc__ or "") if obj.__doc__ else ""


def _summary(e) -> str:
    """A component's description: the ``help`` it registered, else its docstring's first paragraph (the registry
    keeps only the first line of it) up to any ``:param`` field, as plain text."""
    import re

    doc = _docstring(e.obj)
    first = doc.split("\n", 1)[0].strip()
    if e.help and e.help != first:  # help given to register(...)
        return _plain(e.help)
    paragraph = re.split(r"\n\s*\n", doc, maxsplit=1)[0] if doc else e.help
    return _plain(re.split(r":param\b|:returns?:|:raises\b", paragraph, maxsplit=1)[0])


def param_descriptions(obj: Any) -> dict[str, str]:
    """The ``:param NAME: text`` fields of a component's docstring (a class's, its ``__init__``'s and its bases'),
    as plain text by name. A field runs to the next field or the end of its paragraph; several may share a line;
    one whose text is only ``/`` (``:param a: / :param b: the pair``) shares the next one's."""
    import re

    docs: list[str] = []
    for owner in obj.__mro__ if isinstance(obj, type) else (obj,):
        if owner is object:
            continue
        docs.append(_docstring(owner))
        init = owner.__dict__.get("__init__") if isinstance(obj, type) else None
        if init is not None:
            docs.append(_docstring(init))
    out: dict[str, str] = {}
    for doc in docs:
        for paragraph in re.split(r"\n\s*\n", doc):
            parts = re.split(r":param\s+(\w+)\s*:", paragraph)
            fields_ = [
                (name, re.split(r":returns?:|:raises\b|:rtype:", text)[0])
                for name, text in zip(parts[1::2], parts[2::2])
            ]
            pending: list[str] = []
            for name, text in fields_:
                text = _plain(text).rstrip(";").strip()
                if text in ("", "/"):
                    pending.append(name)
                    continue
                for n in (*pending, name):
                    out.setdefault(n, text)
                pending = []
    return out


def _value(v: Any) -> str:
    """A default as it is typed after ``--model-arg KEY=`` (YAML): ``true``, ``null``, ``[3.0, 0.0]``, text plain."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return v if v and parse_assignments([f"v={v}"], "").get("v") == v else repr(v)
    return repr(v)


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def _rows(
    rows: list[tuple[str, ...]],
    indent: int = 2,
    header: tuple[str, ...] | None = None,
    widths: list[int] | None = None,
) -> list[str]:
    """Rows as aligned columns, the last one wrapped to the terminal width under itself. ``widths``: the columns'
    widths but the last (default: their longest cells); a row with a longer cell has its text start on the next
    line, in the same column."""
    import textwrap

    table = ([header] if header else []) + rows
    widths = widths or [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    lead = " " * indent + "".join(" " * (w + 2) for w in widths)
    text_width = max(_width() - len(lead), 30)
    lines = []
    for r in table:
        left = " " * indent + "".join(f"{c:<{w}}  " for c, w in zip(r, widths))
        wrapped = textwrap.wrap(r[-1], text_width, break_on_hyphens=False) or [""]
        if len(left) > len(lead):  # a cell wider than its column: the text goes under the column
            lines.append(left.rstrip())
            lines.extend(lead + w for w in wrapped)
            continue
        lines.append((left + wrapped[0]).rstrip())
        lines.extend(lead + w for w in wrapped[1:])
    return lines


def _title(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, _width(), subsequent_indent="  ", break_on_hyphens=False)


def component_arguments(kind: str, name: str) -> list[str]:
    """The lines ``pyro-vaes list NAME`` prints for one registered component: what it is, then each argument the
    argument check accepts (:func:`~pyro_vaes.engine.build.signature_params`) with its type, default and meaning
    (its docstring's ``:param`` field, else "(no description)")."""
    import inspect

    from pyro_vaes.engine.build import ENGINE_ARGS, signature_params
    from pyro_vaes.registry import DATASETS, GUIDES, MODELS, OBJECTIVES, guides_for

    registry = {"model": MODELS, "guide": GUIDES, "objective": OBJECTIVES, "dataset": DATASETS}[kind]
    e = registry.entry(name)
    lines = _title(f"{kind} {name}: {_summary(e)}")
    if kind == "model":
        guides = guides_for(name)
        lines.append(
            "  guides: "
            + (", ".join([f"{guides[0]} (default)", *guides[1:]]) if guides else "none (trained without a guide)")
            + f"; default objective: {e.obj.default_objective}"
        )
    elif kind == "guide":
        lines.append(f"  for models: {', '.join(e.meta.get('models', ())) or '-'}")
    elif kind == "dataset":
        meta = [f"{k}: {e.meta[k]}" for k in ("kind", "shape", "factors") if e.meta.get(k)]
        if meta:
            lines.append("  " + "; ".join(meta))
    sig = inspect.signature(e.obj).parameters
    params = signature_params(e.obj)
    option = _ARG_OPTION[kind]
    shortcuts = [f"--{_flag(p)}" for p in params if p in SHORTCUTS]
    if not params:
        lines.append(f"  arguments: none ({option} is refused)")
    else:
        how = f"{option} NAME=VALUE" + (f"; shortcuts {', '.join(shortcuts)}" if shortcuts else "")
        lines.append(f"  arguments ({how}):")
        docs = param_descriptions(e.obj)
        rows = []
        for p in params:
            param = sig[p]
            kind_ = "" if param.annotation is inspect.Parameter.empty else str(param.annotation).replace("'", "")
            default = "(required)" if param.default is inspect.Parameter.empty else _value(param.default)
            rows.append((p, kind_, default, docs.get(p, "(no description)")))
        lines += _rows(rows, indent=4, header=("NAME", "TYPE", "DEFAULT", "MEANING"))
    if any(p.kind == p.VAR_KEYWORD for p in sig.values()):
        lines.append("  (takes further keyword arguments too)")
    engine = [p for p in sig if p in ENGINE_ARGS and p != "self"]
    if engine:
        lines.append(f"  set by the engine, not by an option: {', '.join(engine)}")
    renamed = getattr(e.obj, "renamed_args", {})
    if renamed:
        lines.append("  renamed: " + ", ".join(f"{old} -> {new}" for old, new in renamed.items()))
    return lines


def experiment_settings(name: str) -> list[str]:
    """The lines ``pyro-vaes list NAME`` prints for an experiment: its settings at each scale."""
    from pyro_vaes.registry import EXPERIMENTS

    e = EXPERIMENTS.entry(name)
    lines = _title(f"experiment {name}: {_summary(e)}")
    scales = getattr(e.obj, "scales", {}) or {}
    if scales:
        lines.append(f"  settings by --scale (pyro-vaes reproduce {name} --set KEY=VALUE):")
        keys = list(dict.fromkeys(k for s in scales.values() for k in s))
        names = list(scales)
        rows = [(k, *(_value(scales[s].get(k, "-")) for s in names), "") for k in keys]
        lines += _rows(rows, indent=4, header=("KEY", *[s.upper() for s in names], ""))
    return lines


def _lookup(name: str) -> list[tuple[str, str]]:
    """Every (kind, name) registered under ``name`` (a name may be a model and an objective at once); an unknown
    name is one error naming the close ones of every kind."""
    import difflib

    from pyro_vaes.registry import DATASETS, EXPERIMENTS, GUIDES, MODELS, OBJECTIVES, UnknownNameError

    registries = (MODELS, GUIDES, OBJECTIVES, DATASETS, EXPERIMENTS)
    found = [(r.kind, name) for r in registries if name in r]
    if found:
        return found
    kinds = {}
    for r in registries:
        for n in r.names():
            kinds.setdefault(n, []).append(r.kind)
    close = difflib.get_close_matches(name, list(kinds), n=5)
    hint = (
        "Close names: " + ", ".join(f"{c} ({'/'.join(kinds[c])})" for c in close) + "."
        if close
        else "No name is close;"
    )
    raise UnknownNameError(
        f"no model, guide, objective, dataset or experiment is called {name!r}. {hint} `pyro-vaes list` lists them all"
    )


def cmd_list(args) -> int:
    from pyro_vaes.registry import DATASETS, EXPERIMENTS, GUIDES, MODELS, OBJECTIVES, guides_for

    if getattr(args, "name", None):
        blocks = [
            experiment_settings(n) if kind == "experiment" else component_arguments(kind, n)
            for kind, n in _lookup(args.name)
        ]
        print("\n\n".join("\n".join(b) for b in blocks))
        return 0
    if getattr(args, "args", False):
        blocks = [component_arguments(r.kind, n) for r in (MODELS, GUIDES, OBJECTIVES, DATASETS) for n in r.names()]
        print("\n\n".join("\n".join(b) for b in blocks))
        return 0
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    models = []
    for e in MODELS.entries():
        guides = ", ".join(guides_for(e.name)) or "(none: trained without a guide)"
        models.append((e.name, _summary(e)))
        models.append(("", f"guides: {guides}; objective: {e.obj.default_objective}"))
    sections.append(("models (guides: the first is the paper's default; default objective):", models))
    sections.append(("objectives:", [(e.name, _summary(e)) for e in OBJECTIVES.entries()]))
    sections.append(("datasets:", [(e.name, f"[{e.meta.get('kind', '')}] {_summary(e)}") for e in DATASETS.entries()]))
    if EXPERIMENTS.names():
        sections.append(
            ("experiments (pyro-vaes reproduce NAME):", [(e.name, _summary(e)) for e in EXPERIMENTS.entries()])
        )
    # one name column for every section, as wide as the longest component name (a longer experiment name has its
    # description on the next line)
    width = max(len(n) for _, rows in sections[:3] for n, _ in rows)
    for title, rows in sections:
        print(title)
        print("\n".join(_rows(rows, widths=[width])))
    print("pyro-vaes list NAME: the arguments of one of them, their defaults and meaning (--args: of all)")
    return 0


def cmd_reproduce(args) -> int:
    from pyro_vaes.engine.run_folder import check_writable
    from pyro_vaes.engine.sweep import check_executor
    from pyro_vaes.experiments.common import resolve_settings
    from pyro_vaes.registry import EXPERIMENTS

    run = EXPERIMENTS.get(args.name)
    overrides = parse_assignments(args.set, "--set")
    check_executor(args.jobs, args.executor, args.address)
    if args.inception_weights is not None:
        from pyro_vaes.metrics.fid_inception import check_weights_file

        if "inception_weights" not in getattr(run, "scales", {}).get(args.scale, {}):
            takes = [n for n in EXPERIMENTS.names() if "inception_weights" in EXPERIMENTS.get(n).scales.get("tiny", {})]
            raise ValueError(
                f"--inception-weights: {args.name} computes no FID; leave it out (experiments that take it: "
                f"{', '.join(takes)})"
            )
        check_weights_file(Path(args.inception_weights).expanduser())
        overrides["inception_weights"] = str(Path(args.inception_weights).expanduser().resolve())
    if hasattr(run, "scales"):  # an Experiment: its settings are checked before anything is read or written
        resolve_settings(run.scales, args.scale, overrides)
    out = Path(args.out or f"results/{args.name}")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the experiment's results")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty; pass --overwrite to write into it (only its results and "
            "its own run folders are replaced), or choose another --out"
        )
    check_writable(out, "--out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    sweep = {"jobs": args.jobs, "executor": args.executor, "address": args.address}
    try:
        run(out=out, scale=args.scale, seed=args.seed, data_root=args.data_root, overrides=overrides, **sweep)
    except BaseException:
        finished = [c for c in (out / "runs").glob("*/checkpoint.pt")] if out.is_dir() else []
        if created and not finished:  # the folder this command made, with nothing worth keeping in it
            shutil.rmtree(out, ignore_errors=True)
        elif finished:
            print(
                f"pyro-vaes: {len(finished)} finished fit(s) kept in {out / 'runs'}: rerun the same command with "
                "--overwrite to continue from them",
                file=sys.stderr,
            )
        raise
    print((out / "results.md").read_text().rstrip())
    print(f"\nwritten: {out / 'results.md'}, {out / 'results.json'} and the figures it lists")
    return 0


def _add_switch(sub) -> None:
    p = sub.add_parser(
        "switch",
        help="switch a binary attribute of test items (CSVAE's attribute switching) -> PNG",
        description="Switch ATTRIBUTE of test items to --to (0 or 1) the way the model defines it: "
        "latent arithmetic (no labels: VAE), label swap (CondVAE), a point in the label's subspace "
        "(CSVAE). Writes a grid: one row per item, input, reconstruction, then each candidate.",
    )
    p.add_argument("run", help="run folder (trained on data with 0/1 attribute labels)")
    p.add_argument("--attribute", required=True, help="attribute name (one of the data's labels) or column index")
    p.add_argument("--to", type=int, choices=(0, 1), required=True, help="the value to switch to")
    p.add_argument("-n", type=int, default=8, help="test items whose attribute is not already --to (default 8)")
    p.add_argument("--grid", type=int, default=5, help="subspace models: points per grid axis (default 5)")
    p.add_argument(
        "--method",
        default="auto",
        choices=("auto", "grid", "pca"),
        help="subspace models: grid (up to 2-D) or principal components (default: auto)",
    )
    p.add_argument(
        "--others",
        default="keep",
        choices=("keep", "zero"),
        help="subspace models: the other labels' subspaces keep their posterior means or are set to 0",
    )
    p.add_argument(
        "--intensity",
        type=float,
        action="append",
        help="latent arithmetic / label swap: the factor α (repeatable; default 1)",
    )
    p.add_argument("--out", help="PNG path (default RUN/figures/switch-ATTRIBUTE-toV.png; .pt for flat data)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_reader_options(p)


def cmd_switch(args) -> int:
    from pyro_vaes.analysis.switch import check_counts, write_switch

    check_counts(args.n, args.grid)  # before the run is loaded
    run = _load(args)
    path = write_switch(
        run,
        args.attribute,
        args.to,
        out=args.out,
        overwrite=args.overwrite,
        n=args.n,
        grid=args.grid,
        method=args.method,
        others=args.others,
        intensities=tuple(args.intensity or (1.0,)),
    )
    print(f"written: {path}")
    return 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse with every usage error on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"pyro-vaes: error: {message} (see {self.prog} --help)\n")


def _add_reader_options(p) -> None:
    p.add_argument(
        "--data-root",
        help="folder the run's data is read from when it moved (default: the recorded one, else $PYRO_VAES_DATA)",
    )
    p.add_argument("--device", default="cpu")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="pyro-vaes",
        description="A Pyro model zoo of structured VAEs: fit, evaluate, sample and plot model/guide pairs.",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_list(sub)
    _add_fit(sub)
    p = sub.add_parser("evaluate", help="held-out log-likelihood, ELBO, reconstruction and KLs -> results.json")
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--particles",
        type=int,
        default=100,
        help="importance samples per datum (default 100; the standard error printed says when to ask for more)",
    )
    p.add_argument(
        "--max-examples",
        type=int,
        default=500,
        help="evaluate on the first N test examples (default 500; --all for every one)",
    )
    p.add_argument("--all", action="store_true", help="evaluate on every test example")
    p.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="K",
        help="also take K steps of local variational inference per example (model and networks fixed) and "
        "report the refined ELBO and the amortization and approximation gaps (default 0: off)",
    )
    _add_reader_options(p)
    p = sub.add_parser("sample", help="decode prior samples into a PNG grid")
    p.add_argument("run", help="run folder")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        help="an image grid (.png) for image data, a tensor file (.pt) for flat data; default "
        "RUN/figures/samples.png or samples.pt",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_reader_options(p)
    p = sub.add_parser("plot", help="figures: reconstructions, samples, traversals, loss curves")
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--kind",
        default="all",
        help="all (default: every figure of the model), reconstructions, samples, traversals, generation-traversals "
        "(flow-prior runs) or loss (train and held-out loss against the step, from metrics.jsonl; fit draws it too)",
    )
    p.add_argument("--out", help="folder (default RUN/figures, whose figures are replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace existing figures in --out")
    _add_reader_options(p)
    p = sub.add_parser("reproduce", help="rerun a paper experiment at laptop scale")
    p.add_argument("name", help="experiment name (see `pyro-vaes list`)")
    p.add_argument("--scale", default="small", choices=("tiny", "small", "full"))
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one of the experiment's settings (repeatable), e.g. --set steps=3000 --set seeds=3",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root")
    p.add_argument("--out", help="output folder (default results/NAME)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out (its results are replaced; its finished fits of the same settings are "
        "reused, so an interrupted run continues)",
    )
    p.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (checked by SHA-256): FIDs on the FID Inception "
        "network's features, the papers' scale (default: the project's classifier features, which rank models only)",
    )
    _add_sweep_options(p)
    try:
        from pyro_vaes.data.cli import add_data_parser
    except ImportError:  # pragma: no cover - the data CLI is part of the package
        add_data_parser = None
    if add_data_parser is not None:
        add_data_parser(sub)
    _add_switch(sub)
    _add_compare(sub)
    return parser


def _add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="fit guides of one model alike and compare them, inference gaps included",
        description="Fit every listed guide of MODEL with the same data, budget and seeds (or reuse "
        "--runs), evaluate them on the same test examples, split each inference gap into "
        "approximation and amortization (Cremer et al., 2018), time their steps, and write "
        "OUT/compare.md, compare.json and compare.png.",
    )
    p.add_argument("model", nargs="?", help="model name (not with --runs)")
    p.add_argument("--guides", help="comma-separated guide names (default: every guide of the model)")
    p.add_argument("--data", help="dataset name")
    p.add_argument("--data-root", help="folder real datasets are read from (default: $PYRO_VAES_DATA)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, one fit per guide and seed (default 0)")
    p.add_argument("--objective", help="one objective for every guide (default: each guide's own default)")
    p.add_argument("--steps", type=int, help="training steps per fit (default 1000)")
    p.add_argument("--batch-size", type=int, help="minibatch size (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    for what in ("model", "objective", "data"):
        p.add_argument(f"--{what}-arg", action="append", metavar="KEY=VALUE", help=f"{what} argument (repeatable)")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="finished run folders to compare instead of fitting")
    p.add_argument("--particles", type=int, default=100, help="importance samples per example (default 100)")
    p.add_argument("--max-examples", type=int, default=100, help="test examples (default 100)")
    p.add_argument("--refine", type=int, default=100, metavar="K", help="local refinement steps (default 100)")
    p.add_argument("--out", required=True, help="the comparison's folder (new, empty, or an earlier comparison)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_sweep_options(p)


def _add_sweep_options(p) -> None:
    p.add_argument(
        "--jobs", type=int, default=1, help="independent fits side by side in N worker processes (default 1)"
    )
    p.add_argument(
        "--executor",
        default="process",
        choices=("process", "ray"),
        help="where the fits run: worker processes here, or Ray tasks (pip install 'pyro-vaes[ray]')",
    )
    p.add_argument("--address", help="the Ray cluster to run on (as ray.init takes it; default: a local instance)")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated integers, got {text!r}") from None


def cmd_compare(args) -> int:
    from pyro_vaes.analysis.comparison import compare

    settings: dict[str, Any] = {}
    for key in ("steps", "batch_size", "lr"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for what in ("model", "objective", "data"):
        extra = parse_assignments(getattr(args, f"{what}_arg"), f"--{what}-arg")
        if extra:
            settings[f"{what}_args"] = extra
    if args.runs and settings:
        raise ValueError(f"--runs compares finished runs as they are; drop {', '.join(sorted(settings))}")
    if args.particles < 1:
        raise ValueError(f"--particles must be >= 1, got {args.particles}")
    if args.max_examples < 1:
        raise ValueError(f"--max-examples must be >= 1, got {args.max_examples}")
    if args.refine < 0:
        raise ValueError(f"--refine must be >= 0 steps, got {args.refine}")
    guides = [g.strip() for g in args.guides.split(",") if g.strip()] if args.guides else None
    compare(
        args.model,
        guides,
        out=args.out,
        data=args.data,
        seeds=_int_list(args.seeds, "--seeds"),
        objective=args.objective,
        runs=args.runs,
        num_particles=args.particles,
        max_examples=args.max_examples,
        refine_steps=args.refine,
        data_root=args.data_root,
        progress=not args.quiet,
        jobs=args.jobs,
        executor=args.executor,
        address=args.address,
        **settings,
    )
    print((Path(args.out) / "compare.md").read_text())
    return 0


COMMANDS = {
    "fit": cmd_fit,
    "evaluate": cmd_evaluate,
    "sample": cmd_sample,
    "plot": cmd_plot,
    "list": cmd_list,
    "reproduce": cmd_reproduce,
    "switch": cmd_switch,
    "compare": cmd_compare,
}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())  # whatever the exception carried, on one line
    return text or type(err).__name__


class _Say(logging.Handler):
    """Prints the library's records on stdout as the command's own lines (between progress bars): a note as
    ``pyro-vaes: NOTE``, with the flag that changes it when it is about a shortcut setting; anything else (evaluation
    rows, a comparison's progress) as it is. An error writing (a closed pipe) reaches :func:`main`."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        note = getattr(record, "note", None)
        if note is None:
            text = record.getMessage()
        else:
            text = f"pyro-vaes: {note}"
            setting = getattr(note, "setting", None)
            if setting in SHORTCUTS:
                text += f"; pass --{_flag(setting)} to choose another"
        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()


@contextmanager
def _saying() -> Iterator[None]:
    """For the ``with`` block: the ``pyro_vaes`` logger's INFO records printed on stdout (:class:`_Say`), and not
    passed on to the root logger; restored afterwards (a command run from Python leaves the logging as it was)."""
    logger = logging.getLogger("pyro_vaes")
    handler = _Say(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def main(argv: list[str] | None = None) -> int:
    """Run one command. An error a user can cause is one line on stderr and exit status 2; Ctrl-C exits with 130 and
    says where to resume; anything else is a bug, reported in one line (the traceback with ``--debug``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        return 130
    with _saying():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """:func:`main` for parsed arguments."""
    from pyro_vaes.engine import RunExistsError, RunLockedError, TrainingDiverged, TrainingInterrupted, distributed
    from pyro_vaes.registry import UnknownNameError

    # under torchrun rank 0 speaks for the job: the other ranks print only errors of their own, named by rank
    rank = 0
    me = "pyro-vaes"
    try:
        launched = distributed.launched()
        if launched is not None:
            rank = launched[0]
            me = "pyro-vaes" if rank == 0 else f"pyro-vaes (rank {rank})"
            if args.command != "fit":
                raise distributed.everywhere(
                    ValueError(
                        f"`pyro-vaes {args.command}` runs in one process; only `fit` "
                        "trains on torchrun's ranks: run it without torchrun"
                    ),
                    rank,
                )
            if rank != 0:
                sys.stdout = open(os.devnull, "w")
        if args.command == "data":
            from pyro_vaes.data.cli import run_data_command

            return run_data_command(args)
        if launched is None:
            return COMMANDS[args.command](args)
        try:  # under torchrun: whether the ranks end together (then they wait for each other before exiting)
            code = COMMANDS[args.command](args)
        except BaseException as err:
            if distributed.agreed(err):
                distributed.finished_together()
            raise
        distributed.finished_together()
        return code
    except BrokenPipeError:  # the reader went away (pyro-vaes list | head): nothing more to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except (TrainingInterrupted, KeyboardInterrupt) as err:
        if args.debug:
            raise
        if rank == 0:
            print(
                f"{me}: {_one_line(err) if isinstance(err, TrainingInterrupted) else 'stopped (Ctrl-C)'}",
                file=sys.stderr,
            )
        return getattr(err, "exit_status", 130)  # 143 after SIGTERM
    except (
        UnknownNameError,
        ValueError,
        OSError,
        RunExistsError,
        RunLockedError,
        TrainingDiverged,
        NotImplementedError,
    ) as err:
        if args.debug:
            raise
        if not distributed.echoed(err):  # an error all ranks raised together is printed by rank 0 alone
            print(f"{me}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: one line, the traceback on request
        if args.debug:
            raise
        if not distributed.echoed(err):
            print(
                f"{me}: internal error ({type(err).__name__}: {_one_line(err)}); this is a bug: rerun with --debug "
                "for the traceback and report it",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
