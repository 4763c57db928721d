"""Compare two agents on the same tracks (paired), from the output of `model.py norender`.

    python model.py norender A.json 20000 --workers 2 | tee a.txt
    python model.py norender B.json 20000 --workers 2 | tee b.txt
    python compare_scores.py a.txt b.txt

Reads the `seed N reward R steps S` lines of each file (nothing is written). Prints each agent's
figures on the tracks both drove, then B - A per track: its mean +- standard error, how many tracks
B won, and whether it is more than twice its standard error; then the difference in frames a lap on
the tracks where both finished (the speed, which lost laps would drown). Pairing removes the part
of the spread that comes from the track itself (some tracks are hard for every agent): comparing
two agents on validation tracks 20000-20099, the difference's standard error was 12.3 paired
against 17.8 from the two unpaired means.
"""
import argparse
import re

import numpy as np

from common import UserError, main_guard, score_summary, standard_error

LINE = re.compile(r"^seed (\d+) reward (\S+) steps (\d+)( lap finished)?\s*$")


def read_scores(path):
    """{seed: (reward, lap finished, frames)} from one `model.py norender` output."""
    how = "save the output of `python model.py norender CONTROLLER SEED | tee a.txt` and pass a.txt"
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}); {how}")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not text; {how}")
    scores = {}
    for line in lines:
        m = LINE.match(line.strip())
        if not m:
            continue
        seed = int(m.group(1))
        try:
            reward = float(m.group(2))
        except ValueError:
            reward = float("nan")
        if not np.isfinite(reward):
            raise UserError(f"{path}: seed {seed} has reward {m.group(2)}, not a finite number; rerun that agent")
        if seed in scores:
            raise UserError(f"{path} has seed {seed} twice (two runs in one file?); keep one run per file")
        scores[seed] = (reward, bool(m.group(4)), int(m.group(3)))
    if not scores:
        raise UserError(f"{path} has no 'seed N reward R steps S' lines; {how}")
    return scores


def paired(a, b):
    """The per-track difference b - a on the seeds both have: (seeds, diffs)."""
    seeds = sorted(set(a) & set(b))
    return seeds, np.array([b[s][0] - a[s][0] for s in seeds])


def difference_summary(d):
    """B - A: mean +- standard error, wins, and a verdict at two standard errors."""
    n = len(d)
    se = standard_error(d)
    if n > 1 and abs(d.mean()) > 2 * se:
        verdict = "B is better" if d.mean() > 0 else "A is better"
    else:
        verdict = "no clear difference (within two standard errors)"
    return (f"B - A over {n} tracks: {d.mean():+.2f} +- {se:.2f} (standard error), "
            f"B higher on {int((d > 0).sum())}, lower on {int((d < 0).sum())}: {verdict}")


def speed_summary(a, b, seeds):
    """Frames a lap, B - A, on the tracks where both finished: speed without the lost laps' noise."""
    both = [s for s in seeds if a[s][1] and b[s][1]]
    if len(both) < 2:
        return f"laps both finished: {len(both)}, too few to compare speed"
    d = np.array([b[s][2] - a[s][2] for s in both], dtype=np.float64)
    return (f"on the {len(both)} laps both finished: B - A {d.mean():+.1f} +- {standard_error(d):.1f} frames a lap "
            f"(A {np.mean([a[s][2] for s in both]):.0f}; fewer frames = faster, +0.1 point each)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="output of `model.py norender` for agent A")
    p.add_argument("b", help="output of `model.py norender` for agent B, on the same seeds")
    args = p.parse_args(argv)
    a, b = read_scores(args.a), read_scores(args.b)
    seeds, d = paired(a, b)
    if len(seeds) < 2:
        raise UserError(f"{args.a} and {args.b} share {len(seeds)} track seed(s); a paired comparison needs "
                        "two or more: run both agents from the same first seed")
    for name, path, s in (("A", args.a, a), ("B", args.b, b)):
        left = len(s) - len(seeds)
        print(f"{name} {path}: " + score_summary([s[k][0] for k in seeds], [s[k][1] for k in seeds])
              + (f" ({left} unpaired tracks left out)" if left else ""))
    print(difference_summary(d))
    print(speed_summary(a, b, seeds))


if __name__ == "__main__":
    main_guard(main)
