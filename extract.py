"""Rollouts that make V's and M's training data: the first stage of the pipeline (one worker).

The default policy is the original's: random weights (Cauchy-distributed controller, VAE and
MDN-RNN weights scaled by rand()*0.01, new for every episode) for full 1000-frame episodes,
ignoring the end of the episode. Random weights mostly crawl, so the states a good driver
lives in (speed, corners, skids, recoveries) are rare in that data; `--policy` adds drivers
that go there (the paper's "iterative training": data from the agent itself):

    random   the original's random-weights agent (default)
    agent    a trained controller (--controller FILE, with vae/ and rnn/) plus temporally
             correlated (Ornstein-Uhlenbeck) action noise; each episode draws its noise scale
             uniformly in [0, --noise], so the data spans on-policy to very noisy driving
    follow   a scripted driver that steers at a point ahead on the track (it reads the track's
             geometry: it only makes data) at a target speed drawn per episode, plus noise
    wander   a correlated random driver: smooth random steering, mostly on the gas

Writes one file per episode:

    record/<seed>.npz    obs uint8 (T, 64, 64, 3): the frame the agent saw at step t
                         action float16 (T, 3): the action it took
                         policy (str), seed (int): what made the episode

Episode seeds are seed_start + worker * episodes + i: the same seed writes the same episode
(track, weights, noise), and files already present are skipped, so a rerun resumes. The
driving policies need seeds in [100000, 2**20): clear of the test (10000+) and validation
(20000+) tracks and of train.py's training tracks (2**20 and up).
A failed episode is logged and skipped; it never ends the worker.
"""
import argparse
import glob
import os
import sys
import time
import traceback

import config

config.one_blas_thread()  # extract.bash runs one worker per core
import numpy as np  # noqa: E402

from common import UserError, atomic_savez, main_guard
from env import make_env
from model import EXP_MODE, controller_action, make_model, rollout
from rnn.rnn import rnn_next_state, rnn_output


POLICIES = ("random", "agent", "follow", "wander")
DRIVE_SEEDS = (100_000, 2 ** 20)  # driving policies: clear of test, validation and C's tracks
ACTION_LOW, ACTION_HIGH = np.array([-1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])


class OUNoise:
    """Ornstein-Uhlenbeck noise, one process per action dimension: steps are correlated over
    ~1/theta frames, so the car swerves and brakes for a while instead of jittering."""

    def __init__(self, rng, scale, theta=0.15):
        self.rng, self.scale, self.theta = rng, np.asarray(scale, dtype=np.float64), theta
        self.x = np.zeros(3)

    def __call__(self):
        # stationary std = scale: dx = -theta x + scale * sqrt(2 theta) dW
        self.x += -self.theta * self.x + self.scale * np.sqrt(2 * self.theta) * self.rng.standard_normal(3)
        return self.x


def follow_action(env, lookahead, target_speed):
    """Steer at the track point `lookahead` tiles ahead of the nearest one; slow down for the
    bend after it, and lift off when pointed far from the target (else the car spins in circles)."""
    game = env.unwrapped
    if getattr(game, "_wm_track", None) is not game.track:  # a new track: its centre line once
        game._wm_track, game._wm_track_xy = game.track, np.array([(t[2], t[3]) for t in game.track])
    car, track = game.car, game._wm_track_xy
    n = len(track)
    pos = np.array(car.hull.position)
    i = int(np.argmin(((track - pos) ** 2).sum(axis=1)))
    target = track[(i + lookahead) % n] - pos
    fwd = np.array(car.hull.GetWorldVector((0, 1)))
    err = np.arctan2(fwd[0] * target[1] - fwd[1] * target[0], fwd @ target)  # > 0: target on the left
    a, b, c = track[i], track[(i + 6) % n], track[(i + 18) % n]
    u, v = b - a, c - b
    bend = abs(np.arctan2(u[0] * v[1] - u[1] * v[0], u @ v))  # heading change over the next tiles
    speed_cap = target_speed * max(0.45, 1.0 - 0.8 * bend) * (0.5 if abs(err) > 0.5 else 1.0)
    speed = np.linalg.norm(car.hull.linearVelocity)
    spin = car.hull.angularVelocity  # rad/s, > 0 turning left: damp it, and no gas while spinning
    gas = float(np.clip((speed_cap - speed) / 20.0, 0.0, 1.0)) if abs(spin) < 2.5 else 0.0
    brake = 0.5 if speed > speed_cap * 1.15 else 0.0
    return np.array([np.clip(-1.5 * err + 0.15 * spin, -1.0, 1.0), gas, brake])


def record_episode(model, env, seed, max_frames, policy="random", noise=0.0):
    """One episode of `policy` -> (obs uint8 (T,64,64,3), action float16 (T,3)).

    model: the agent (random weights are drawn here for "random"; "agent" uses its loaded
    controller; the scripted drivers need none); env: a full_episode env.
    """
    np.random.seed(seed)
    if policy == "random":
        model.init_random_model_params(stdev=np.random.rand() * config.RANDOM_STDEV_SCALE)
    # the driving policies' own draws: how noisy, how fast, how far ahead to look
    rng = np.random.default_rng([seed, 1])
    ou = OUNoise(rng, rng.uniform(0.0, noise) * np.array([1.0, 0.5, 0.3]))
    target_speed, lookahead = rng.uniform(40.0, 110.0), int(rng.integers(3, 8))
    wander = OUNoise(rng, np.array([0.6, 0.4, 0.25]), theta=0.05)

    def noisy(action):
        return np.clip(action + ou(), ACTION_LOW, ACTION_HIGH)

    def agent(z):  # C's action plus noise; M steps on the action really taken
        action = noisy(controller_action(rnn_output(model.state, z, EXP_MODE), model.weight, model.bias))
        model.state = rnn_next_state(model.rnn, z, action, model.state)
        return action

    def wanderer(_):  # steering drifts, gas mostly on, brake now and then
        w = wander()
        return noisy(np.array([w[0], 0.7 + w[1], w[2] - 0.2]))

    act = {"random": None, "agent": agent, "wander": wanderer,
           "follow": lambda _: noisy(follow_action(env, lookahead, target_speed))}[policy]
    frames, actions = [], []
    rollout(model if policy in ("random", "agent") else None, env, seed, max_frames, act=act,
            on_step=lambda t, obs, mu, action: frames.append(obs) or actions.append(action))
    return np.array(frames, dtype=np.uint8), np.array(actions, dtype=np.float16)


def remove_stale_temps(out_dir, seeds):
    """Delete the temp files of a save killed mid-way, for this worker's own seeds only (other
    workers write into the same folder at the same time)."""
    for name in os.listdir(out_dir):
        head = name.split(".npz.", 1)[0]
        if name.endswith(".tmp") and ".npz." in name and head.isdigit() and int(head) in seeds:
            os.unlink(os.path.join(out_dir, name))
            print(f"removed {name}, left by a worker killed while saving", flush=True)


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


def check_args(args):
    """Every flag checked before any work: one line naming the flag and what it must be."""
    if args.count:
        return
    if args.num_episodes < 1:
        raise UserError(f"--num-episodes {args.num_episodes}: must be at least 1")
    if args.max_frames < 1:
        raise UserError(f"--max-frames {args.max_frames}: must be at least 1")
    if args.worker < 0 or args.seed_start < 0:
        raise UserError("--worker and --seed-start must be >= 0")
    if not args.noise >= 0:
        raise UserError(f"--noise {args.noise}: must be >= 0")
    if args.policy == "agent" and not args.controller:
        raise UserError("--policy agent needs --controller FILE (e.g. log/carracing.cma.16.64.best.json)")
    if args.policy == "agent" and not os.path.exists(args.controller):
        raise UserError(f"--controller {args.controller} not found")
    if args.policy != "random":
        first = args.seed_start + args.worker * args.num_episodes
        last = first + args.num_episodes - 1
        lo, hi = DRIVE_SEEDS
        if first < lo or last >= hi:
            raise UserError(f"--policy {args.policy}: seeds {first}..{last} must lie in [{lo}, {hi}) "
                            f"(clear of the test, validation and training tracks); set --seed-start")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-episodes", type=int, default=config.EXTRACT_EPISODES, help="episodes for this worker")
    p.add_argument("--max-frames", type=int, default=config.MAX_FRAMES, help="frames per episode")
    p.add_argument("--worker", type=int, default=0, help="worker index (chooses this worker's seeds)")
    p.add_argument("--seed-start", type=int, default=0, help="seed of the first episode of worker 0")
    p.add_argument("--out-dir", default=config.RECORD_DIR, help="where the npz files go")
    p.add_argument("--renderer", default=None, choices=config.RENDERERS,
                   help=f"CarRacing renderer (default {config.RENDERER}; turbo and obs64 are approximate but "
                        "faster, obs64 the fastest)")
    p.add_argument("--policy", default="random", choices=POLICIES,
                   help="who drives (default random: the original's data; see above)")
    p.add_argument("--controller", default=None, help="--policy agent: the controller file to drive")
    p.add_argument("--noise", type=float, default=0.3,
                   help="driving policies: largest std of the correlated action noise (steer; gas "
                        "and brake get half and 0.3 of it); each episode draws its own in [0, this]")
    p.add_argument("--vae", default=config.VAE_PATH, help="--policy agent: V's weights")
    p.add_argument("--rnn", default=config.RNN_PATH, help="--policy agent: M's weights")
    p.add_argument("--encoder", default=None, choices=["numpy", "int8"],
                   help=f"--policy agent: V's encoder (default {config.ENCODER})")
    p.add_argument("--count", action="store_true", help="only report the episodes and frames in --out-dir")
    args = p.parse_args(argv)
    check_args(args)

    if args.count:
        episodes, frames = count_record(args.out_dir)
        print(f"{args.out_dir}: {episodes} episodes, {frames} frames")
        return

    model = make_model(load_model=args.policy == "agent", vae_path=args.vae, rnn_path=args.rnn,
                       encoder=args.encoder)
    if args.policy == "agent":
        model.load_model(args.controller)
    env = make_env(full_episode=True, renderer=args.renderer, max_frames=args.max_frames)
    os.makedirs(args.out_dir, exist_ok=True)
    first = args.seed_start + args.worker * args.num_episodes
    remove_stale_temps(args.out_dir, range(first, first + args.num_episodes))
    written = skipped = failed = frames = 0
    t0 = time.time()
    for i in range(args.num_episodes):
        seed = first + i
        path = os.path.join(args.out_dir, f"{seed}.npz")
        if os.path.exists(path):
            skipped += 1
            continue
        try:
            obs, action = record_episode(model, env, seed, args.max_frames, args.policy, args.noise)
            atomic_savez(path, obs=obs, action=action, policy=np.array(args.policy), seed=np.array(seed))
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
    if failed and not written and not skipped:
        raise UserError(f"worker {args.worker}: every episode failed (see the errors above)")


if __name__ == "__main__":
    main_guard(main)
