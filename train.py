"""Train the controller C with an evolution strategy (CMA-ES by default), as the original train.py.

Each generation the optimiser (es.py) asks for num_worker * num_worker_trial candidate
controllers (867 parameters); each candidate's fitness is its mean return over num_episode
CarRacing episodes (with --antithetic, pairs of candidates drive the same tracks; with
--common_tracks, the whole population does, so track difficulty drops out of the ranking). Every
eval_steps generations the current mean is scored on num_eval_episode fixed tracks (seeds
0, 1, 2, ...; training tracks are drawn from seeds >= 2**20, so they never coincide) and
the best scoring parameters are kept.

Two opt-in savings of training rollouts (evaluations always run in full; `python -m
benchmark.savings` prices both on a run's checkpoint): --stall_frames ends an episode that has
stopped reaching new tiles, charging the frames left; --screen_episodes K drives every candidate
on its first K tracks and only the better half on the rest (the logs' fitness of a candidate
is then the mean of the episodes it drove). --hard_episodes K takes the last K tracks of every
fitness from a pool of training tracks an agent scored badly on (--hard_tracks), so that rare
failures (a spin in a sharp bend) weigh more in the ranking than their ~1 in 20 share of tracks.
Which tracks a candidate drives, and the screened ranking, are in fitness.py; the checkpoint and
the flags --resume takes from it in train_state.py.

Reads vae/vae.json and rnn/rnn.json (--vae/--rnn); with --retrain, log/<base>.json.
Writes, under --log-dir (default log/), with <base> = carracing.<optimizer>.<num_episode>.<population>:
  <base>.json           [current mean params]                           every generation
  <base>.hist.json      rows [generation, seconds, mean, min, max, std, rms_stdev,
                              mean_steps, max_steps]  (steps = frames per episode, the
                              original's t+1)                              every generation
  <base>.hist_best.json rows [generation, seconds, "improvement", x, "curr", x, "prev", x,
                              "best", x]  (improvement and prev are null at the first)
  <base>.log.json       [[generation, eval_reward, params], ...]          every evaluation
  <base>.best.json      [params (4 decimals), reward] of the best evaluated mean
  <base>.ckpt.pkl       full checkpoint (optimiser, RNGs, history, and the run's track, episode
                        and model flags); --resume continues it with those flags unless given again
  tb/<base>/            TensorBoard scalars (written without TensorFlow)
All files are replaced atomically, so a killed run never leaves half a file.

Workers (workers.py): under MPI (see the usage below) the other ranks evaluate and
sleep while idle; otherwise a pool of --processes local processes (default: the cores).
One task = one candidate on its num_episode tracks, run in lockstep by model.simulate_batch
so V and M are batched across those episodes; evaluations are split into tasks of
num_episode tracks. A worker that raises or dies stops the run at once with its message.
"""
import os

import config  # noqa: E402

config.one_blas_thread()  # before numpy: one BLAS thread per process

import argparse
import sys
import time
import traceback

import numpy as np

import es as es_lib
from fitness import HARD_BELOW, better_half, generation_seeds, hard_pool, screened_ranking
from train_state import given_flags, restore_run_flags, run_flags, save_checkpoint
from workers import WorkerError, abort_workers, open_executor, run_tasks, under_mpi
from common import ScalarWriter, UserError, atomic_write_json, claim_outputs, main_guard, read_json

USAGE_MPI = """MPI (one master rank + N-1 worker ranks):
  .venv/bin/mpiexec -n 65 .venv/bin/python -m mpi4py.futures train.py [flags]
  .venv/bin/mpiexec -n 65 .venv/bin/python train.py --mpi [flags]
Without MPI: python train.py --processes N [flags].
Tiny run: python train.py -n 4 --num_episode 2 --max_len 50 --generations 2 --eval_steps 1 --num_eval_episode 2"""


# --- worker side -----------------------------------------------------------------------------

_MODELS = {}


def worker_model(params, vae_path, rnn_path, encoder=None, z_noise=config.Z_NOISE):
    """In a worker: the Model with these V and M (loaded once per process) and controller."""
    import model as model_lib

    key = (vae_path, rnn_path, encoder)
    if key not in _MODELS:
        _MODELS[key] = model_lib.make_model(vae_path=vae_path, rnn_path=rnn_path, encoder=encoder)
    _MODELS[key].set_model_params(params)
    _MODELS[key].z_noise = z_noise
    return _MODELS[key]


def evaluate(params, seeds, max_len, vae_path, rnn_path, renderer, encoder=None, stall=0, z_noise=config.Z_NOISE):
    """Worker task: one controller on the tracks `seeds` -> (returns, steps) lists."""
    import model as model_lib

    m = worker_model(params, vae_path, rnn_path, encoder, z_noise)
    rewards, steps = model_lib.simulate_batch(m, seeds, max_len=max_len, renderer=renderer, stall=stall)
    return np.asarray(rewards, dtype=np.float64).tolist(), np.asarray(steps).tolist()


# --- training ---------------------------------------------------------------------------------

def run_generation(optimizer, executor, rng, num_episode, antithetic, max_len, models, common=False,
                   stall=0, screen=0, pool=(), hard=0, z_noise=config.Z_NOISE):
    """ask -> evaluate everywhere -> tell. Returns (fitness, steps, episodes run); fitness and
    steps are each candidate's means over the episodes it drove.

    screen = K > 0: every candidate drives its first K tracks, then only the better half (by
    those) drives the other num_episode - K."""
    solutions = optimizer.ask()
    seeds = generation_seeds(rng, len(solutions), num_episode, antithetic, common, pool, hard)
    k = screen or num_episode
    results = run_tasks(executor, evaluate, [(s, sd[:k], max_len, *models, stall, z_noise)
                                             for s, sd in zip(solutions, seeds)])
    returns, steps = [list(r) for r, _ in results], [list(t) for _, t in results]
    top = np.arange(len(solutions))
    if screen:
        screened = np.array([np.mean(r) for r in returns])
        top = better_half(screened)
        more = run_tasks(executor, evaluate, [(solutions[i], seeds[i][k:], max_len, *models, stall, z_noise)
                                              for i in top])
        for i, (r, t) in zip(top, more):
            returns[i] += r
            steps[i] += t
    fitness = np.array([np.mean(r) for r in returns])
    optimizer.tell(screened_ranking(fitness, screened, top) if screen else fitness)
    return fitness, np.array([np.mean(t) for t in steps]), sum(len(r) for r in returns)


def evaluate_mean(executor, params, num_eval_episode, chunk, max_len, models, z_noise=config.Z_NOISE):
    """Mean return of `params` on tracks 0..num_eval_episode-1, in tasks of `chunk` tracks."""
    seeds = list(range(num_eval_episode))
    tasks = [(params, seeds[i:i + chunk], max_len, *models, 0, z_noise) for i in range(0, len(seeds), chunk)]
    return float(np.mean([r for rewards, _ in run_tasks(executor, evaluate, tasks) for r in rewards]))


def write_logs(paths, st):
    """Every JSON log from the run state (so a resumed run rewrites them consistently). A run on
    other than V's own z noise says so in its controller files, which model.py then drives with."""
    z_noise = st["flags"].get("z_noise", config.Z_NOISE)
    meta = [] if z_noise == config.Z_NOISE else [{"z_noise": z_noise}]
    atomic_write_json(paths["json"], [np.round(st["es"].current_param(), 4).tolist()] + meta)
    atomic_write_json(paths["hist"], st["history"])
    if st["eval_log"]:
        atomic_write_json(paths["hist_best"], st["hist_best"])
        atomic_write_json(paths["log"], st["eval_log"])
        atomic_write_json(paths["best"], [st["best_params"], st["best_reward"]] + meta)


def record_evaluation(st, generation, seconds, reward, params):
    params = np.round(params, 4).tolist()
    st["eval_log"].append([generation, reward, params])
    prev = st["best_reward"]
    if prev is None or reward > prev:
        st["best_reward"], st["best_params"] = reward, params
    st["hist_best"].append([generation, seconds, "improvement", None if prev is None else reward - prev,
                            "curr", reward, "prev", prev, "best", st["best_reward"]])


def run_files(args):
    """(base, prefix, paths) of the run these flags name: <log_dir>/<base>.* ."""
    base = f"{config.ENV_NAME}.{args.optimizer}.{args.num_episode}.{args.num_worker * args.num_worker_trial}"
    prefix = os.path.join(args.log_dir, base)
    paths = {k: f"{prefix}.{ext}" for k, ext in
             (("json", "json"), ("hist", "hist.json"), ("hist_best", "hist_best.json"),
              ("log", "log.json"), ("best", "best.json"), ("ckpt", "ckpt.pkl"))}
    return base, prefix, paths


def train(args, executor):
    popsize = args.num_worker * args.num_worker_trial
    base, prefix, paths = run_files(args)
    models = (os.path.abspath(args.vae), os.path.abspath(args.rnn), args.renderer, args.encoder)
    if (args.encoder or config.ENCODER) == "int8":  # converted here once, before the workers all look for it
        from vae.int8 import prepare
        prepare(args.vae)
    claim_outputs(args.log_dir, f"train.{base}", [os.path.basename(v) for v in paths.values()])

    if args.resume_state is not None:  # --resume with a checkpoint: parse_args read it for the run's flags
        st = args.resume_state
        np.random.set_state(st.pop("np_global"))
        print(f"resuming {paths['ckpt']} after generation {st['generation']}", flush=True)
        write_logs(paths, st)
    else:
        if os.path.exists(paths["ckpt"]) and not args.resume:
            raise UserError(f"{paths['ckpt']} exists: pass --resume to continue that run, or delete "
                            f"{prefix}.* (or use another --log-dir) to start over")
        if args.resume:
            print(f"--resume: no checkpoint {paths['ckpt']}, starting a new run", flush=True)
        optimizer = es_lib.make_es(args.optimizer, config.CONTROLLER_PARAMS, popsize, args.sigma_init,
                                   args.sigma_decay, bool(args.antithetic), seed=args.seed_start)
        if args.retrain:
            mu = np.asarray(read_json(paths["json"], "--retrain file")[0], dtype=np.float64)
            if mu.size != config.CONTROLLER_PARAMS:
                raise UserError(f"{paths['json']} holds {mu.size} parameters, expected {config.CONTROLLER_PARAMS}")
            optimizer.set_mu(mu)
            print(f"retraining from the mean in {paths['json']}", flush=True)
        st = {"es": optimizer, "rng": np.random.default_rng(args.seed_start), "generation": 0,
              "history": [], "hist_best": [], "eval_log": [], "best_params": None,
              "best_reward": None, "elapsed": 0.0, "mean_steps": None}
    st["flags"] = run_flags(args)  # what the next --resume restores
    for note in args.resume_notes:
        print(note, flush=True)

    tb = ScalarWriter(os.path.join(args.log_dir, "tb", base))
    print(f"{base}: population {popsize}, {args.num_episode} episodes each, "
          f"{config.CONTROLLER_PARAMS} parameters", flush=True)
    t_start = time.time() - st["elapsed"]
    while args.generations is None or st["generation"] < args.generations:
        t0 = time.time()
        gen = st["generation"] + 1
        max_len = args.max_len
        if args.cap_time and st["mean_steps"]:  # the original's cap: twice the last mean length
            cap = 2 * int(st["mean_steps"] + 1)
            max_len = cap if max_len <= 0 else min(max_len, cap)
        fitness, steps, episodes = run_generation(st["es"], executor, st["rng"], args.num_episode,
                                                  bool(args.antithetic), max_len, models, bool(args.common_tracks),
                                                  args.stall_frames, args.screen_episodes, args.hard_pool,
                                                  args.hard_episodes, args.z_noise)
        seconds = int(time.time() - t_start)
        rms = st["es"].rms_stdev()
        row = [gen, seconds, round(float(fitness.mean()), 4), round(float(fitness.min()), 4),
               round(float(fitness.max()), 4), round(float(fitness.std()), 4), round(rms, 6),
               round(float(steps.mean()), 2), int(steps.max())]
        st["history"].append(row)
        st["generation"], st["mean_steps"] = gen, float(steps.mean())
        print(f"gen {gen} {seconds}s ({time.time() - t0:.1f}s) fitness mean {row[2]:.2f} min {row[3]:.2f} "
              f"max {row[4]:.2f} rms_stdev {rms:.4f} steps mean {row[7]:.0f} max {row[8]} "
              f"episodes {episodes}", flush=True)
        scalars = {"fitness/mean": row[2], "fitness/min": row[3], "fitness/max": row[4],
                   "fitness/std": row[5], "es/rms_stdev": rms, "steps/mean": row[7],
                   "steps/max": row[8], "time/generation_seconds": time.time() - t0,
                   "episodes/generation": episodes}
        if gen % args.eval_steps == 0:
            params = st["es"].current_param()
            reward = evaluate_mean(executor, params, args.num_eval_episode, args.num_episode,
                                   args.max_len, models, args.z_noise)
            record_evaluation(st, gen, int(time.time() - t_start), reward, params)
            print(f"eval gen {gen}: {reward:.2f} over {args.num_eval_episode} episodes "
                  f"(best {st['best_reward']:.2f})", flush=True)
            scalars.update({"eval/reward": reward, "eval/best": st["best_reward"]})
        st["elapsed"] = time.time() - t_start
        save_checkpoint(paths["ckpt"], st)  # first: the JSON logs are re-derived from it on resume
        write_logs(paths, st)
        tb.scalars(gen, scalars)
    print(f"done: {st['generation']} generations, logs in {prefix}.*", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, epilog=USAGE_MPI,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--optimizer", default=config.ES_OPTIMIZER, choices=["cma", "ses", "pepg", "ga", "oes"])
    p.add_argument("-n", "--num_worker", type=int, default=config.ES_NUM_WORKER,
                   help="population = num_worker * num_worker_trial (not the number of processes)")
    p.add_argument("-t", "--num_worker_trial", type=int, default=config.ES_NUM_WORKER_TRIAL)
    p.add_argument("--num_episode", type=int, default=config.ES_NUM_EPISODE, help="episodes per fitness")
    p.add_argument("--eval_steps", type=int, default=config.ES_EVAL_STEPS, help="evaluate every N generations")
    p.add_argument("--num_eval_episode", type=int, default=config.ES_NUM_EVAL_EPISODES,
                   help="episodes (tracks 0..N-1) of each evaluation of the mean")
    p.add_argument("--antithetic", type=int, default=int(config.ES_ANTITHETIC), choices=[0, 1],
                   help="1: pairs of candidates drive the same tracks")
    p.add_argument("--common_tracks", type=int, default=0, choices=[0, 1],
                   help="1: all candidates of a generation drive the same tracks (not in the original: "
                        "most of an episode's variance is the track's, and it then drops out of the ranking)")
    p.add_argument("--stall_frames", type=int, default=0,
                   help="N > 0: end a training episode after N frames without a new tile, charging "
                        "-0.1 for each frame left (what they would cost); evaluations run in full")
    p.add_argument("--screen_episodes", type=int, default=0,
                   help="K in 1..num_episode-1: candidates drive their first K tracks, and only the better "
                        "half of them the rest; the other half ranks below it (0: off)")
    p.add_argument("--hard_tracks", default=None,
                   help="`model.py norender` output on training tracks (seeds >= 2**20): the tracks it scored "
                        "below --hard_below form a pool of hard tracks (see --hard_episodes)")
    p.add_argument("--hard_below", type=float, default=HARD_BELOW, help="score under which a track is hard")
    p.add_argument("--hard_episodes", type=int, default=0,
                   help="K in 1..num_episode: the last K tracks of each fitness come from the hard pool (rare "
                        "failures weigh more; the logged fitness is then not a mean over random tracks)")
    p.add_argument("--cap_time", type=int, default=config.ES_CAP_TIME, choices=[0, 1],
                   help="1: cap training episodes at twice the last generation's mean length")
    p.add_argument("--retrain", type=int, default=0, choices=[0, 1], help="1: start the mean from <base>.json")
    p.add_argument("-s", "--seed_start", type=int, default=0, help="seed of the track and optimiser RNGs")
    p.add_argument("--sigma_init", type=float, default=config.ES_SIGMA_INIT)
    p.add_argument("--sigma_decay", type=float, default=config.ES_SIGMA_DECAY)
    p.add_argument("--generations", type=int, default=None, help="stop after N generations (default: never)")
    p.add_argument("--resume", action="store_true", help="continue from <base>.ckpt.pkl, with the run's own track, "
                   "episode and model flags (kept in the checkpoint) unless given again")
    p.add_argument("--max_len", "--max-frames", dest="max_len", type=int, default=-1,
                   help="cap every episode at N frames (-1: 1000); --max-frames as in the other scripts")
    p.add_argument("--renderer", default=None, choices=config.RENDERERS,
                   help=f"CarRacing renderer (default {config.RENDERER}; obs64 is the fastest for training)")
    p.add_argument("--encoder", default=None, choices=["numpy", "int8"],
                   help=f"V's encoder in rollouts (default {config.ENCODER}; int8 ~5x faster, vae/int8.py)")
    p.add_argument("--z_noise", type=float, default=config.Z_NOISE,
                   help="scale of V's sampling noise in the z that C sees (1: z sampled from V's posterior, "
                        "as the original; 0: V's mean mu). Its controller files say it, and model.py drives "
                        "them so")
    p.add_argument("--mpi", action="store_true", help="use MPI ranks as workers (automatic under mpiexec)")
    p.add_argument("--processes", type=int, default=None, help="without MPI: worker processes (default: cores)")
    p.add_argument("--log-dir", default=config.LOG_DIR, help="where the logs go (default log/)")
    p.add_argument("--vae", default=config.VAE_PATH, help="VAE weights (vae.json)")
    p.add_argument("--rnn", default=config.RNN_PATH, help="MDN-RNN weights (rnn.json)")
    args = p.parse_args(argv)
    _, prefix, paths = run_files(args)
    args.resume_notes, args.resume_state = (restore_run_flags(p, args, given_flags(p, argv), paths["ckpt"], prefix)
                                            if args.resume else ([], None))
    for name in ("num_worker", "num_worker_trial", "num_episode", "eval_steps", "num_eval_episode"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if not 0 <= args.z_noise < float("inf"):
        raise UserError(f"--z_noise {args.z_noise}: must be a number >= 0 (1: V's own noise, 0: none)")
    if args.stall_frames < 0:
        raise UserError(f"--stall_frames {args.stall_frames}: must be >= 0 (0: off)")
    if args.screen_episodes and args.num_episode < 2:
        raise UserError(f"--screen_episodes {args.screen_episodes}: nothing to screen with --num_episode "
                        f"{args.num_episode} (needs at least 2 tracks a candidate)")
    if args.screen_episodes and not 0 < args.screen_episodes < args.num_episode:
        raise UserError(f"--screen_episodes {args.screen_episodes}: must be 0 (off) or 1..{args.num_episode - 1} "
                        f"(below --num_episode)")
    args.hard_pool = hard_pool(args.hard_tracks, args.hard_below, args.hard_episodes, args.num_episode,
                               args.screen_episodes)
    if args.num_worker * args.num_worker_trial < 2:
        raise UserError("-n x -t (the population) must be at least 2: an evolution strategy ranks candidates")
    if args.processes is not None and args.processes < 1:
        raise UserError(f"--processes {args.processes}: must be at least 1")
    if args.max_len == 0 or args.max_len < -1:
        raise UserError(f"--max_len {args.max_len}: must be -1 (the full 1000 frames) or at least 1")
    if not args.sigma_init > 0:
        raise UserError(f"--sigma_init {args.sigma_init}: must be > 0")
    if not 0 < args.sigma_decay <= 1:
        raise UserError(f"--sigma_decay {args.sigma_decay}: must be in (0, 1]")
    if args.seed_start < 0:
        raise UserError(f"--seed_start {args.seed_start}: must be >= 0")
    if args.generations is not None and args.generations < 1:
        raise UserError(f"--generations {args.generations}: must be at least 1")
    if args.resume and args.retrain:
        raise UserError("--resume and --retrain 1 exclude each other: resume continues the checkpoint")
    if args.mpi and args.processes:
        raise UserError("--mpi and --processes exclude each other")
    for flag, path in (("--vae", args.vae), ("--rnn", args.rnn)):
        if not os.path.exists(path):
            raise UserError(f"{flag} {path} not found: train it (see README) or pass {flag} PATH")
    return args


def main(argv=None):
    args = parse_args(argv)
    use_mpi = args.mpi or (not args.processes and under_mpi())
    popsize = args.num_worker * args.num_worker_trial
    processes = max(1, min(args.processes or os.cpu_count() or 1, popsize))
    with open_executor(use_mpi, processes, USAGE_MPI.split("\n", 1)[1].strip()) as executor:
        if executor is None:
            return  # an MPI worker rank: the master has finished
        try:
            train(args, executor)
        except WorkerError as e:
            print(f"error: a worker failed: {e}", file=sys.stderr, flush=True)
            abort_workers(executor)
            sys.exit(1)
        except UserError:
            raise  # nothing is running yet: the executor closes normally
        except BaseException as e:
            if not isinstance(e, KeyboardInterrupt):
                traceback.print_exc()
            abort_workers(executor)
            raise


if __name__ == "__main__":
    main_guard(main)
