"""Plot a controller training run from its logs: fitness and evaluation score vs generation and hours.

    python plot_progress.py [--base log/carracing.cma.16.64 [BASE ...]] [--out progress.png]

Without --base: your run at log/carracing.cma.16.64 once train.py has written one, otherwise the
runs that trained the shipped agent, end to end (SHIPPED_RUNS: each went on from the last one's
mean; dotted lines mark where one run hands over to the next). Several --base do the same.

Reads <base>.hist.json (rows [generation, seconds, mean, min, max, std, rms_stdev, mean_steps,
max_steps]) and, when there has been an evaluation, <base>.hist_best.json (rows [generation,
seconds, "improvement", x, "curr", x, "prev", x, "best", x]). Writes the PNG (headless, Agg).
plot_training_progress.ipynb calls the same functions.
"""
import argparse
import io
import os

import numpy as np

from common import UserError, atomic_write_bytes, main_guard, read_json

DEFAULT_BASE = os.path.join("log", "carracing.cma.16.64")
# the shipped controller's lineage: 380 generations on the first V and M, then round 1 of
# iterative training (V and M retrained on driving data; C re-learns from the mean it had)
SHIPPED_RUNS = [os.path.join("log", "agent1", "carracing.cma.16.64"),
                os.path.join("log", "round1", "carracing.cma.4.32"),
                os.path.join("log", "round1", "carracing.cma.2.64"),
                os.path.join("log", "round2", "carracing.cma.2.64"),
                os.path.join("log", "round3", "carracing.cma.2.64"),
                os.path.join("log", "hard", "carracing.cma.8.32")]
TARGET = 900  # "solved": an average of 900 over 100 consecutive episodes


def default_bases():
    """Your run if train.py has written one, else the shipped agent's runs."""
    return [DEFAULT_BASE] if os.path.exists(DEFAULT_BASE + ".hist.json") else SHIPPED_RUNS


def as_bases(base):
    return default_bases() if base is None else [base] if isinstance(base, str) else list(base)


def load_progress(base=None):
    """(hist, evals): hist float array (G, 9); evals float array (E, 4) of generation, seconds, curr, best.

    base: one file base, a list of them (runs that continued one another, joined end to end:
    a run whose generations or seconds start again from the beginning carries on from the previous
    run's last row), or None (default_bases)."""
    return _join(base)[:2]


def handovers(base=None):
    """The generations after which the next run of a lineage starts (empty for one run)."""
    return [g for g, _ in _join(base)[2]]


def _join(base):
    """(hist, evals, ends): the runs joined, and [generation, seconds] where each hands over."""
    hist, evals, ends = np.zeros((0, 9)), np.zeros((0, 4)), []
    for b in as_bases(base):
        h, e = _load_run(b)
        if len(hist):
            ends.append(hist[-1, :2].tolist())
            for col in (0, 1):  # generation, seconds; a run resumed from a copied checkpoint counts on already
                if h[0, col] <= hist[-1, col]:
                    e[:, col] += hist[-1, col]
                    h[:, col] += hist[-1, col]
        hist, evals = np.concatenate([hist, h]), np.concatenate([evals, e])
    return hist, evals, ends


def _load_run(base):
    path = base + ".hist.json"
    rows = read_json(path, "training history")
    if not rows:
        raise UserError(f"{path} has no generations yet: wait for the first one to finish")
    try:
        hist = np.array([[float(v) for v in r[:9]] for r in rows])
    except (TypeError, ValueError):
        raise UserError(f"{path} is not a list of [generation, seconds, mean, min, max, ...] rows")
    evals = np.zeros((0, 4))
    best_path = base + ".hist_best.json"
    if os.path.exists(best_path):
        best = read_json(best_path, "evaluation history")
        try:
            evals = np.array([[float(r[0]), float(r[1]), float(r[r.index("curr") + 1]),
                               float(r[r.index("best") + 1])] for r in best]).reshape(-1, 4)
        except (TypeError, ValueError, IndexError):
            raise UserError(f"{best_path} is not a list of [generation, seconds, 'improvement', x, "
                            f"'curr', x, 'prev', x, 'best', x] rows")
    return hist, evals


def _draw(ax, x, hist, evals, ex, xlabel, target):
    ax.fill_between(x, hist[:, 3], hist[:, 4], color="tab:blue", alpha=0.2, label="population min-max")
    ax.plot(x, hist[:, 2], color="tab:blue", label="population mean")
    if len(evals):
        ax.plot(ex, evals[:, 2], "o-", color="tab:orange", markersize=3, label="evaluation of the mean")
        ax.plot(ex, evals[:, 3], "--", color="tab:red", label="best evaluation")
    ax.axhline(target, color="gray", linestyle=":", label=f"{target} (solved)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)


def plot_progress(base=None, target=TARGET):
    """A matplotlib Figure: left vs generation, right vs wall-clock hours."""
    import matplotlib.pyplot as plt

    hist, evals, ends = _join(base)
    fig, (ax_gen, ax_time) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    _draw(ax_gen, hist[:, 0], hist, evals, evals[:, 0], "generation", target)
    for g, seconds in ends:
        ax_gen.axvline(g, color="black", linestyle=":", linewidth=1)
        ax_time.axvline(seconds / 3600.0, color="black", linestyle=":", linewidth=1)
    _draw(ax_time, hist[:, 1] / 3600.0, hist, evals, evals[:, 1] / 3600.0, "wall-clock hours", target)
    ax_gen.legend(loc="best", fontsize="small")
    fig.suptitle(summary(base, hist, evals))
    fig.tight_layout()
    return fig


def summary(base=None, hist=None, evals=None):
    """One line: the run, its last generation, time and best evaluation."""
    if hist is None:
        hist, evals = load_progress(base)
    bases = as_bases(base)
    # more than two names overflow the figure's title
    names = " + ".join(os.path.basename(b) for b in bases) if len(bases) <= 2 else f"{len(bases)} runs"
    text = (f"{names}: {int(hist[-1, 0])} generations in {hist[-1, 1] / 3600.0:.1f} h, "
            f"last mean {hist[-1, 2]:.1f}")
    if len(evals):
        text += f", best evaluation {evals[:, 3].max():.1f} (last {evals[-1, 2]:.1f})"
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", nargs="+", default=None,
                   help="log file base, without .hist.json; several: runs that continued one another "
                        f"(default: {DEFAULT_BASE} if train.py has written it, else the shipped agent's runs)")
    p.add_argument("--out", default="progress.png", help="PNG to write")
    p.add_argument("--target", type=float, default=TARGET, help="the horizontal goal line")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_progress(args.base, target=args.target)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    atomic_write_bytes(args.out, png.getvalue())
    print(summary(args.base))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main_guard(main)
