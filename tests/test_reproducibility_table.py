"""benchmarks/reproducibility_table.py builds the table from an experiment's folder: a row per verdict with budget,
convergence and command, grouped by paper between the markers the paper pages include, and the learning curves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyro_vaes.registry import EXPERIMENTS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproducibility_table.py"


def test_table_from_a_tiny_experiment(tmp_path):
    out = tmp_path / "csvae-swissroll"
    EXPERIMENTS.get("csvae-swissroll")(out=out, scale="tiny", overrides={"seeds": 2, "steps": 40})
    (tmp_path / "empty").mkdir()
    doc, figures = tmp_path / "docs" / "reproducibility.md", tmp_path / "docs" / "figures"
    doc.parent.mkdir()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), str(tmp_path / "empty"), "--out", str(doc), "--figures", str(figures)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stderr and "empty: no results.json" in done.stderr
    text = doc.read_text()
    assert "## CSVAE" in text and "<!-- paper:csvae -->" in text and "<!-- end:csvae -->" in text
    (shared,) = [line for line in text.splitlines() if line.startswith("**`csvae-swissroll`** (tiny scale)")]
    assert (
        "budget: 40 steps, 5.0 epochs (the paper: 2,300 epochs), 0 % of `--scale full` (20,000 steps); 2 seeds."
        in shared
    )
    assert any(f"Converged: {k} of 2" in shared for k in (0, 1, 2))
    assert shared.endswith(
        "Command: `pyro-vaes reproduce csvae-swissroll --scale tiny --seed 0 --set seeds=2 --set steps=40`"
    )
    lines = text.splitlines()
    header = lines.index("| claim | metric | ours | paper's | verdict |")
    assert lines[header - 2] == shared  # the shared line, a blank line, then the table
    (row,) = [line for line in lines[header + 2 :] if line.startswith("| the data overlap in Z")]
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert len(cells) == 5 and cells[2].endswith("(2 seeds)") and cells[4] in ("**holds**", "**does not hold**")
    png = figures / "curves-csvae-swissroll.png"
    assert png.is_file() and "![csvae-swissroll: learning curves](figures/curves-csvae-swissroll.png)" in text


def test_epochs_come_from_where_each_experiment_records_its_training_size():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproducibility_table", SCRIPT)
    table_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table_script)
    settings = {"steps": 1000, "batch": 128}
    ugvae = {"experiment": "ugvae-celeba-attributes", "settings": settings, "train_images": 3200}
    assert table_script.budget(ugvae).startswith("1,000 steps, 40.0 epochs (the paper: 20 epochs of ~162k images)")
    csvae = {"experiment": "csvae-celeba", "settings": {"steps": 1000, "batch_size": 32}}
    csvae["subsets"] = {"glasses-facial-hair": {"data": {"train": 1600}}}
    assert table_script.budget(csvae).startswith("1,000 steps, 20.0 epochs (the paper: 2,300 epochs)")
    assert table_script.training_size({"settings": {"n_train": 500}, "train_images": 3}) == 500
    assert table_script.training_size({"settings": {}}) is None
