"""plot_progress.py writes a PNG from a synthetic log; the notebook runs headless through it."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.fixture
def synthetic_log(tmp_path):
    base = os.path.join(str(tmp_path), "carracing.cma.16.64")
    hist = [[g, 2200 * g, 100 + 5 * g, -50 + g, 300 + 6 * g, 40.0, 0.1 - g / 1000, 700.5, 1000]
            for g in range(1, 31)]
    best, evals = None, []
    for g in (25, 30):
        curr = 700.0 + g
        prev, best = best, curr if best is None else max(best, curr)
        evals.append([g, 2200 * g, "improvement", None if prev is None else curr - prev,
                      "curr", curr, "prev", prev, "best", best])
    with open(base + ".hist.json", "w") as f:
        json.dump(hist, f)
    with open(base + ".hist_best.json", "w") as f:
        json.dump(evals, f)
    return base


def test_cli_writes_png(synthetic_log, tmp_path):
    out = os.path.join(str(tmp_path), "progress.png")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    p = subprocess.run([sys.executable, "plot_progress.py", "--base", synthetic_log, "--out", out],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "30 generations" in p.stdout and "best evaluation 730.0" in p.stdout
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(out) > 10000


def test_missing_log_is_explained(tmp_path):
    p = subprocess.run([sys.executable, "plot_progress.py", "--base", str(tmp_path / "nothing")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "nothing.hist.json does not exist" in p.stderr


def test_notebook_executes(synthetic_log):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(os.path.join(ROOT, "plot_training_progress.ipynb"), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("BASE = ")]
    assert len(cells) == 1, "the notebook selects its log with one `BASE = ...` cell at the top"
    cells[0].source = f"BASE = {synthetic_log!r}"
    # "python3" is the kernel of the interpreter running the tests (the venv's ipykernel)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": ROOT}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs)
    assert any("30 generations" in o.get("text", "") for o in outputs)


def test_runs_that_continued_one_another_are_joined(synthetic_log, tmp_path):
    import plot_progress

    hist1, evals1 = plot_progress.load_progress(synthetic_log)
    hist, evals = plot_progress.load_progress([synthetic_log, synthetic_log])
    assert len(hist) == 60 and len(evals) == 4
    # the second run's generations and seconds carry on from the first one's last row
    assert hist[30, 0] == 31 and hist[-1, 0] == 60 and hist[-1, 1] == 2 * hist1[-1, 1]
    assert evals[2:, 0].tolist() == [55.0, 60.0] and evals[2, 2] == evals1[0, 2]
    assert plot_progress.handovers([synthetic_log, synthetic_log]) == [30]
    assert plot_progress.handovers(synthetic_log) == []
    assert "carracing.cma.16.64 + carracing.cma.16.64: 60 generations" in plot_progress.summary(
        [synthetic_log, synthetic_log])
    assert plot_progress.summary([synthetic_log] * 3).startswith("3 runs: 90 generations")
    # a run that resumed a copied checkpoint counts on from where the first stopped: no shift
    later = str(tmp_path / "later")
    with open(synthetic_log + ".hist.json") as f:
        rows = json.load(f)
    with open(later + ".hist.json", "w") as f:
        json.dump([[r[0] + 30, r[1] + 66000] + r[2:] for r in rows], f)
    hist, _ = plot_progress.load_progress([synthetic_log, later])
    assert hist[:, 0].tolist() == list(range(1, 61)) and hist[-1, 1] == 2 * hist1[-1, 1]
    assert plot_progress.handovers([synthetic_log, later]) == [30]
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_progress.plot_progress([synthetic_log, synthetic_log])
    # the handover is marked on both panels: at generation 30 and at its hour
    marks = [[line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":" and line.get_color() == "black"]
             for ax in fig.axes]
    assert marks == [[30], [hist1[-1, 1] / 3600.0]]


def test_default_is_your_run_else_the_shipped_agents_runs(monkeypatch, synthetic_log, tmp_path):
    import plot_progress

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(plot_progress, "DEFAULT_BASE", str(tmp_path / "none_yet"))
    assert plot_progress.default_bases() == plot_progress.SHIPPED_RUNS
    # a fresh clone has every shipped run's logs
    hist, evals = plot_progress.load_progress(None)
    assert len(hist) > 400 and len(evals) > 40
    monkeypatch.setattr(plot_progress, "DEFAULT_BASE", synthetic_log)
    assert plot_progress.default_bases() == [synthetic_log]
