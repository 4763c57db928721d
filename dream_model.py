"""The trained agent driving inside its own dream (the original's dream_model.py).

    python dream_model.py log/carracing.cma.16.64.best.json [seed]    # a window, or a video if headless
    python dream_model.py FILE 7 --video videos/dream.mp4 --gif       # video (and a small gif) instead
    python dream_model.py                                             # random controller weights

Reads vae/vae.json, rnn/rnn.json, initial_z/initial_z.json (flags override) and a controller
file ([params, ...] as train.py writes it). With no display, or with --video, writes an mp4/gif
(default videos/dream_<seed>.mp4) instead of opening a window; --gif adds a small 128x128 gif.

The controller acts on [z, h] exactly as in the real game (model.py's controller_action), but z
comes from M's samples (dream_env.CarRacingDream) instead of the VAE's encoding of a real frame.
Each step prints the action and the sum of squared z (a drifting dream shows up as a growing
sum). With no controller file the controller weights are random, as the original; V and M are
always the installed ones, since a dream needs a trained M to look like anything.
"""
import argparse
import os
import time

import config

# batch-1 inference gains nothing from BLAS threads, and on a busy machine they cost
# 100x (VAE encode measured 0.5 ms with one thread, 46 ms with two on 2 shared cores)
config.one_blas_thread()

import numpy as np  # noqa: E402

from common import FPS, UserError, VideoWriter, main_guard, window_or_video
from dream_env import CarRacingDream, load_initial_z
from model import EXP_MODE, agent_from_args, controller_action
from rnn.rnn import LSTMState, rnn_output

GIF_SCALE = 2  # 64x64 -> 128x128: small enough for a README
GIF_EVERY = 2  # every other frame, shown at 25 fps


def dream_action(model, z, info):
    """The controller's action for z and the dream's LSTM state, as model.get_action computes it."""
    features = rnn_output(LSTMState(info["c"], info["h"]), z, EXP_MODE)
    return controller_action(features, model.weight, model.bias)


def run_dream(model, env, seed, video=None, gif=None, print_every=1, log=print):
    """One dream episode; returns the number of steps. Frames (what the agent sees before each
    action) go to `video` / `gif` (VideoWriters) when given."""
    z, info = env.reset(seed=seed)
    steps = 0
    while True:
        action = dream_action(model, z, info)
        if video is not None:
            video.append(env.frame())
        if gif is not None and steps % GIF_EVERY == 0:
            gif.append(np.repeat(np.repeat(env.small_frame(), GIF_SCALE, 0), GIF_SCALE, 1))
        if print_every > 0 and steps % print_every == 0:
            log(f"step {steps:4d}  action [{action[0]:+.3f} {action[1]:+.3f} {action[2]:+.3f}]  "
                f"sum(z^2) {float(np.sum(z * z)):.3f}", flush=True)
        z, _, terminated, truncated, info = env.step(action)
        steps += 1
        if terminated or truncated:
            return steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default=None, help="controller file (default: random weights; a lone number is taken as the seed)")
    p.add_argument("seed", nargs="?", type=int, default=None, help="dream seed (default: random)")
    p.add_argument("--temperature", type=float, default=config.DREAM_TEMPERATURE,
                   help=f"M's sampling temperature tau (default {config.DREAM_TEMPERATURE})")
    p.add_argument("--max-frames", type=int, default=config.DREAM_MAX_FRAMES,
                   help=f"dream length in frames (default {config.DREAM_MAX_FRAMES})")
    p.add_argument("--vae", default=config.VAE_PATH, help="VAE weights")
    p.add_argument("--rnn", default=config.RNN_PATH, help="MDN-RNN weights")
    p.add_argument("--initial-z", default=config.INITIAL_Z_PATH, help="initial_z.json")
    p.add_argument("--video", default=None, help="write this mp4/gif instead of opening a window")
    p.add_argument("--gif", nargs="?", const="", default=None, metavar="PATH",
                   help="also write a small 128x128 gif (default path videos/dream_<seed>.gif)")
    p.add_argument("--print-every", type=int, default=1, metavar="N",
                   help="print the action and sum(z^2) every N steps (0: never; default 1)")
    args = p.parse_args(argv)
    if args.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    initial_z = load_initial_z(args.initial_z)  # before the window opens: errors come first
    # V and M always load: random ones would dream nothing but noise
    model, seed = agent_from_args(args.file, args.seed, args.vae, args.rnn, random_vm=False)
    print(f"temperature {args.temperature:g}")

    window, path = window_or_video(args.video, os.path.join("videos", f"dream_{seed}.mp4"))
    env = CarRacingDream(model.vae, model.rnn, initial_z, temperature=args.temperature,
                         max_frames=args.max_frames, render_mode="human" if window else "rgb_array")
    gif_path = None if args.gif is None else (args.gif or os.path.join("videos", f"dream_{seed}.gif"))
    video = VideoWriter(path, fps=FPS) if path else None
    gif = VideoWriter(gif_path, fps=FPS // GIF_EVERY) if gif_path else None
    t0 = time.time()
    try:
        steps = run_dream(model, env, seed, video=video, gif=gif, print_every=args.print_every)
    finally:
        for writer in (video, gif):
            if writer is not None:
                writer.close()
        env.close()
    how = "the window was closed" if env.closed_by_user else f"max frames {args.max_frames}"
    print(f"dream ended after {steps} frames ({how}) in {time.time() - t0:.1f}s")
    if video is not None:
        print(f"video: {path} ({video.frames} frames)")
    if gif is not None:
        print(f"gif: {gif_path} ({gif.frames} frames)")


if __name__ == "__main__":
    main_guard(main)
