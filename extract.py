"""Random-policy rollouts: the first stage of the pipeline (one worker).

Drives the agent with random weights (Cauchy-distributed controller, VAE and MDN-RNN weights
scaled by rand()*0.01, new for every episode, as the original did) for full 1000-frame
episodes, ignoring the end of the episode, and writes one file per episode:

    record/<seed>.npz    obs uint8 (T, 64, 64, 3): the frame the agent saw at step t
                         action float16 (T, 3): the action it took

Episode seeds are seed_start + worker * episodes + i: the same seed writes the same episode
(track, weights, noise), and files already present are skipped, so a rerun resumes.
A failed episode is logged and skipped; it never ends the worker.
"""
import argparse
import glob
import os
import sys
import time
import traceback

# One BLAS thread per worker (extract.bash runs one per core); it must be set before numpy loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import config
from common import atomic_savez, main_guard


def record_episode(model, env, seed, max_frames):
    """One random-policy episode -> (obs uint8 (T,64,64,3), action float16 (T,3))."""
    np.random.seed(seed)
    model.init_random_model_params(stdev=np.random.rand() * config.RANDOM_STDEV_SCALE)
    model.rng = np.random.default_rng(seed)
    model.reset()
    obs, _ = env.reset(seed=seed)
    frames, actions = [], []
    for _ in range(max_frames):
        frames.append(obs)
        z, _, _ = model.encode_obs(obs)
        action = model.get_action(z)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:  # with full_episode only the frame cap ends it
            break
    return np.array(frames, dtype=np.uint8), np.array(actions, dtype=np.float16)


def count_record(record_dir):
    """(episodes, frames) in a record folder, reading only the array headers."""
    episodes = frames = 0
    for path in glob.glob(os.path.join(record_dir, "*.npz")):
        try:
            with np.load(path) as data:
                frames += data["action"].shape[0]
            episodes += 1
        except Exception:
            pass
    return episodes, frames


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-episodes", type=int, default=config.EXTRACT_EPISODES, help="episodes for this worker")
    p.add_argument("--max-frames", type=int, default=config.MAX_FRAMES, help="frames per episode")
    p.add_argument("--worker", type=int, default=0, help="worker index (chooses this worker's seeds)")
    p.add_argument("--seed-start", type=int, default=0, help="seed of the first episode of worker 0")
    p.add_argument("--out-dir", default=config.RECORD_DIR, help="where the npz files go")
    p.add_argument("--renderer", default=None, choices=["stock", "exact", "turbo"],
                   help=f"CarRacing renderer (default {config.RENDERER}; turbo is approximate but faster)")
    p.add_argument("--count", action="store_true", help="only report the episodes and frames in --out-dir")
    args = p.parse_args(argv)

    if args.count:
        episodes, frames = count_record(args.out_dir)
        print(f"{args.out_dir}: {episodes} episodes, {frames} frames")
        return
    from env import make_env
    from model import make_model

    model = make_model(load_model=False)
    env = make_env(full_episode=True, renderer=args.renderer, max_frames=args.max_frames)
    os.makedirs(args.out_dir, exist_ok=True)
    first = args.seed_start + args.worker * args.num_episodes
    written = skipped = failed = frames = 0
    t0 = time.time()
    for i in range(args.num_episodes):
        seed = first + i
        path = os.path.join(args.out_dir, f"{seed}.npz")
        if os.path.exists(path):
            skipped += 1
            continue
        try:
            obs, action = record_episode(model, env, seed, args.max_frames)
            atomic_savez(path, obs=obs, action=action)
        except Exception as e:  # one bad episode must not end the worker
            failed += 1
            print(f"worker {args.worker}: episode seed {seed} failed: {e!r}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            env.close()
            env = make_env(full_episode=True, renderer=args.renderer, max_frames=args.max_frames)
            continue
        written += 1
        frames += len(action)
        rate = frames / (time.time() - t0)
        print(f"worker {args.worker}: episode {i + 1}/{args.num_episodes} seed {seed} "
              f"{len(action)} frames -> {path} ({rate:.0f} frames/s)", flush=True)
    env.close()
    print(f"worker {args.worker}: wrote {written} episodes ({frames} frames), skipped {skipped} "
          f"already present, {failed} failed, in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main_guard(main)
