"""What train.py's opt-in rollout savings cost in selection: --stall_frames and --screen_episodes
replayed on the same episodes as the full rule, at the stage of a real run.

    python -m benchmark.savings log/round1/carracing.cma.2.64.ckpt.pkl --vae log/round1/vae.json \\
        --rnn log/round1/rnn.json --populations 3 --num_episode 4
    python -m benchmark.savings --traces log/round1/savings_gen28.npz   # the table of a saved run

Samples populations from the checkpoint's CMA-ES (the checkpoint is only read; after the first,
each population is the next generation of a branch told the full means) and drives every
candidate on two sets of num_episode common tracks, A and B (training seeds), recording each
frame's reward. Each rule then picks the better half of a population from set A (CMA-ES
recombines that half), and the picked candidates are scored on set B, which no rule saw. The
gain of a rule is that score minus the population's mean on B; the roles of A and B are
swapped for a second, paired sample. Rules:
  full N        the mean of the first N tracks of A (N = num_episode is train.py's default)
  stall F       full episodes, but each ended after F frames without a new tile, as
                --stall_frames F charges it
  screen K      every candidate's first K tracks, then the better half's remaining ones,
                as --screen_episodes K ranks them
Rewards per frame replay --stall_frames exactly (the test suite checks it against
simulate_batch). Prints a table of gain and frames driven per rule (as a share of full's),
and writes it with every return to OUT.json, and the traces to OUT.npz (--traces rereads them).
"""
import argparse
import os

import config

config.one_blas_thread()
import numpy as np  # noqa: E402

from common import UserError, atomic_savez, atomic_write_json, main_guard, standard_error  # noqa: E402


def drive(params, seeds, max_len, vae_path, rnn_path, renderer, encoder, z_noise=config.Z_NOISE):
    """Worker task: one controller on `seeds`, full episodes -> each episode's reward per frame."""
    import model as model_lib
    import train

    traces = []
    model_lib.simulate_batch(train.worker_model(params, vae_path, rnn_path, encoder, z_noise), seeds,
                             max_len=max_len, renderer=renderer, traces=traces)
    return traces


def stalled(trace, frames, max_steps=config.MAX_FRAMES):
    """(return, frames driven) of one episode under --stall_frames `frames`, from its rewards."""
    since = 0
    for t, r in enumerate(trace):
        since = 0 if r > 0 else since + 1
        if since >= frames and t + 1 < len(trace):  # the stall rule never fires on the last frame
            return float(trace[:t + 1].sum()) - 0.1 * (max_steps - (t + 1)), t + 1
    return float(trace.sum()), len(trace)


def rule_scores(traces, rule, arg, max_steps=config.MAX_FRAMES):
    """One track set of one population -> (score used to rank each candidate, frames driven).
    traces[c][e]: candidate c's episode e rewards per frame."""
    full = np.array([[t.sum() for t in c] for c in traces])
    lengths = np.array([[len(t) for t in c] for c in traces])
    if rule == "full":
        return full[:, :arg].mean(1), int(lengths[:, :arg].sum())
    if rule == "stall":
        out = np.array([[stalled(t, arg, max_steps) for t in c] for c in traces])  # (candidate, episode, 2)
        return out[:, :, 0].mean(1), int(out[:, :, 1].sum())
    if rule == "screen":
        from fitness import better_half, screened_ranking

        screened = full[:, :arg].mean(1)
        top = better_half(screened)
        fitness = screened.copy()
        fitness[top] = full[top].mean(1)
        ranking = screened_ranking(fitness, screened, top)
        return ranking, int(lengths[:, :arg].sum() + lengths[top, arg:].sum())
    raise ValueError(rule)


def analyse(traces, rules, max_steps=config.MAX_FRAMES):
    """traces[p][s][c][e] (population, track set A/B, candidate, episode) -> per rule: gain
    on the other set, and frames driven relative to the full rule."""
    from fitness import better_half

    rows = {}
    for rule, arg in rules:
        gains, frames, frames_full = [], 0, 0
        for pop in traces:
            for s in (0, 1):
                pick_on, score_on = pop[s], pop[1 - s]
                score, f = rule_scores(pick_on, rule, arg, max_steps)
                frames += f
                frames_full += sum(len(t) for c in pick_on for t in c)
                held = np.array([np.mean([t.sum() for t in c]) for c in score_on])
                top = better_half(score)
                gains.append(held[top].mean() - held.mean())
        # the two picks of a population share its episodes: the error is over populations
        per_pop = np.reshape(gains, (len(traces), 2)).mean(1)
        se = float(standard_error(per_pop))
        rows[f"{rule} {arg}"] = {"gain": float(np.mean(gains)), "gain_se": se,
                                 "gains": [round(float(g), 2) for g in gains], "frames": frames / frames_full}
    return rows


def signal(traces):
    """How much of a ranking is the candidates' and how much the episodes'. Per population: the
    covariance of the candidates' means on sets A and B estimates the variance of their true
    quality (as far as it carries to new tracks, s^2); the residual variance of one episode once
    track and candidate means are removed estimates the noise (v^2). A ranking on n tracks then
    correlates with quality by sqrt(s^2 / (s^2 + v^2 / n))."""
    cov, corr, noise = [], [], []
    for pop in traces:
        r = np.array([[[t.sum() for t in c] for c in s] for s in pop])  # (set, candidate, episode)
        a, b = r[0].mean(1), r[1].mean(1)
        cov.append(np.cov(a, b)[0, 1])
        corr.append(np.corrcoef(a, b)[0, 1])
        for x in r if r.shape[2] > 1 else []:
            res = x - x.mean(0) - x.mean(1, keepdims=True) + x.mean()
            noise.append((res ** 2).sum() / ((x.shape[0] - 1) * (x.shape[1] - 1)))
    s2, v2 = float(np.mean(cov)), float(np.mean(noise)) if noise else float("nan")
    e = len(traces[0][0][0])
    return {"quality_var": s2, "noise_var_per_episode": v2, "corr_a_b": [round(float(c), 3) for c in corr],
            "ranking_corr_with_quality": {n: float(np.sqrt(max(s2, 0.0) / (max(s2, 0.0) + v2 / n))) if s2 > 0 else 0.0
                                          for n in range(1, e + 1)}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", help="train.py's <base>.ckpt.pkl (read only; not with --traces)")
    p.add_argument("--vae", default=config.VAE_PATH)
    p.add_argument("--rnn", default=config.RNN_PATH)
    p.add_argument("--renderer", default="obs64", choices=config.RENDERERS)
    p.add_argument("--encoder", default="int8", choices=["numpy", "int8"])
    p.add_argument("--populations", type=int, default=3)
    p.add_argument("--num_episode", type=int, default=4, help="tracks in each of sets A and B")
    p.add_argument("--max_len", type=int, default=config.MAX_FRAMES, help="frames per episode (tiny runs)")
    p.add_argument("--stall", default="100,200,300", help="--stall_frames values to replay")
    p.add_argument("--processes", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None, help="OUT (default: savings beside the checkpoint)")
    p.add_argument("--traces", default=None, help="an OUT.npz of an earlier run: analyse it, drive nothing")
    args = p.parse_args(argv)
    for flag in ("populations", "num_episode", "max_len"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1")
    try:
        args.stall = [int(x) for x in args.stall.split(",") if x]
    except ValueError:
        raise UserError(f"--stall {args.stall!r}: give frame counts separated by commas, e.g. 100,200")
    if any(x < 1 for x in args.stall):
        raise UserError("--stall: frame counts must be at least 1")
    if bool(args.checkpoint) == bool(args.traces):
        raise UserError("give a checkpoint to sample populations from (train.py's <base>.ckpt.pkl), "
                        "or --traces FILE to analyse a saved run, not both")
    paths = [("--traces", args.traces)] if args.traces else [("checkpoint", args.checkpoint), ("--vae", args.vae),
                                                              ("--rnn", args.rnn)]
    for flag, path in paths:
        if not os.path.exists(path):
            raise UserError(f"{flag} {path} not found")
    args.out = args.out or os.path.splitext(args.traces or os.path.join(os.path.dirname(args.checkpoint), "savings"))[0]
    return args


def collect(args):
    """Drive every candidate of `populations` samples on its two track sets -> traces[p][s][c][e]."""
    from fitness import generation_seeds
    from train_state import read_checkpoint
    from workers import open_executor, run_tasks

    st = read_checkpoint(args.checkpoint, "give train.py's <base>.ckpt.pkl")
    if not (isinstance(st, dict) and hasattr(st.get("es"), "ask") and "generation" in st):
        raise UserError(f"{args.checkpoint} is not a train.py checkpoint (<base>.ckpt.pkl)")
    es, rng = st["es"], np.random.default_rng(args.seed)
    z_noise = (st.get("flags") or {}).get("z_noise", config.Z_NOISE)  # the run's own view of V's noise
    models = (os.path.abspath(args.vae), os.path.abspath(args.rnn), args.renderer, args.encoder, z_noise)
    if args.encoder == "int8":
        from vae.int8 import prepare
        prepare(args.vae)
    out = []
    with open_executor(False, args.processes or os.cpu_count() or 1) as executor:
        for p in range(args.populations):
            solutions = es.ask()
            sets = []
            for _ in (0, 1):
                seeds = generation_seeds(rng, len(solutions), args.num_episode, False, common=True)
                sets.append(run_tasks(executor, drive, [(s, sd, args.max_len, *models) for s, sd in zip(solutions, seeds)]))
            out.append(sets)
            save_traces(args, out, st["generation"])  # a long run keeps what it has driven
            means = np.array([np.mean([t.sum() for t in a + b]) for a, b in zip(*sets)])
            print(f"population {p + 1}/{args.populations}: mean {means.mean():.1f} over sets A and B "
                  f"(generation {st['generation'] + p + 1})", flush=True)
            es.tell(means)  # pycma asks again only after a tell: the next population is a generation on
    return out, st["generation"]


def save_traces(args, traces, generation):
    eps = [t for pop in traces for s in pop for c in s for t in c]
    shape = (len(traces), 2, len(traces[0][0]), len(traces[0][0][0]))
    atomic_savez(args.out + ".npz", shape=shape, rewards=np.concatenate(eps), lengths=[len(t) for t in eps],
                 generation=generation, max_len=args.max_len)


def main(argv=None):
    args = parse_args(argv)
    if args.traces:
        with np.load(args.traces) as f:
            shape, flat, lengths = f["shape"], f["rewards"], f["lengths"]
            generation, args.max_len = int(f["generation"]), int(f["max_len"])
        bounds = np.cumsum(np.concatenate([[0], lengths]))
        eps = [flat[bounds[i]:bounds[i + 1]] for i in range(len(lengths))]
        p, s, c, e = shape
        traces = [[[eps[((pi * s + si) * c + ci) * e:((pi * s + si) * c + ci + 1) * e] for ci in range(c)]
                   for si in range(s)] for pi in range(p)]
    else:
        traces, generation = collect(args)
    e = len(traces[0][0][0])
    rules = ([("full", n) for n in range(e, 0, -1)] + [("stall", f) for f in args.stall] +
             [("screen", k) for k in range(1, e)])
    rows = analyse(traces, rules, args.max_len)
    print(f"selection of the better half, {len(traces)} populations x 2 (A/B swapped), generation {generation}:")
    print(f"{'rule':<12} {'gain on held-out set':>22} {'frames driven':>14}")
    for name, r in rows.items():
        print(f"{name:<12} {r['gain']:>13.1f} +- {r['gain_se']:<5.1f} {100 * r['frames']:>13.1f}%")
    sig = signal(traces)
    print(f"candidates' quality: variance {sig['quality_var']:.0f} (A/B covariance; correlations "
          f"{sig['corr_a_b']}); one episode's noise: variance {sig['noise_var_per_episode']:.0f}")
    print("a ranking on n tracks correlates with quality by " +
          ", ".join(f"{c:.2f} (n={n})" for n, c in sig["ranking_corr_with_quality"].items()))
    atomic_write_json(args.out + ".json", {"source": args.traces or args.checkpoint, "generation": generation,
                                           "populations": len(traces), "rules": rows, "signal": sig})
    print(f"wrote {args.out}.json")


if __name__ == "__main__":
    main_guard(main)
