"""The real game beside what V makes of it, while the agent drives (the original's render_env.py / render_model.py).

    python render_model.py log/carracing.cma.16.64.best.json [seed]   # a window, or a video if headless
    python render_model.py FILE 3 --video videos/real_vs_vae.mp4      # a video instead of the window
    python render_model.py                                            # random controller weights

Reads vae/vae.json, rnn/rnn.json (flags override) and a controller file. Each shown frame is the
64x64 frame the agent sees (left) next to the VAE's reconstruction decode(mu) (right), both 4x
enlarged: 512x256. With no display, or with --video, writes an mp4/gif (default
videos/real_vs_vae_<seed>.mp4) instead of opening a window.

The agent runs exactly as model.py's simulate() does for the same seed (z sampled from the
posterior with the same noise), so the printed reward matches `python model.py render FILE seed`.
With no controller file the controller weights are random; V and M are the installed ones.
"""
import argparse
import os
import time

import config

# batch-1 inference gains nothing from BLAS threads, and on a busy machine they cost
# 100x (VAE encode measured 0.5 ms with one thread, 46 ms with two on 2 shared cores)
config.one_blas_thread()

import numpy as np  # noqa: E402

from common import FPS, UserError, VideoWriter, Window, main_guard, window_or_video
from model import agent_from_args, rollout

SCALE = 4


def _label(image, text, x):
    """Small white text with a dark outline, so it reads on road and on grass."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image)
    ImageDraw.Draw(img).text((x + 4, 3), text, fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(img)


def side_by_side(real, recon, scale=SCALE, labels=True):
    """Two 64x64x3 uint8 frames -> one (64*scale, 128*scale, 3) uint8 picture, nearest-neighbour enlarged."""
    both = np.concatenate([real, recon], axis=1)
    big = np.repeat(np.repeat(both, scale, axis=0), scale, axis=1)
    if labels:
        big = _label(_label(big, "real", 0), "VAE decode(mu)", 64 * scale)
    return big


def reconstruct(vae, mu):
    """decode(mu) as a (64, 64, 3) uint8 frame."""
    return np.clip(np.rint(vae.decode(mu)[0] * 255.0), 0, 255).astype(np.uint8)


def run(model, seed, show, max_frames=config.MAX_FRAMES, labels=True, log=print):
    """One episode as model.simulate runs it; each step's picture goes to show(frame), which
    returns False to stop (a closed window). Returns (total_reward, steps)."""
    def on_step(t, obs, mu, action):
        if (t + 1) % 100 == 0:
            log(f"step {t + 1}", flush=True)
        return show(side_by_side(obs, reconstruct(model.vae, mu), labels=labels))

    total, steps, _ = rollout(model, model.env, seed, max_frames, on_step=on_step)
    return total, steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default=None, help="controller file (default: random weights; a lone number is taken as the seed)")
    p.add_argument("seed", nargs="?", type=int, default=None, help="track seed (default: random)")
    p.add_argument("--max-frames", type=int, default=config.MAX_FRAMES, help="episode length cap")
    p.add_argument("--vae", default=config.VAE_PATH, help="VAE weights")
    p.add_argument("--rnn", default=config.RNN_PATH, help="MDN-RNN weights")
    p.add_argument("--renderer", default=None, choices=config.RENDERERS,
                   help=f"CarRacing renderer (default {config.RENDERER})")
    p.add_argument("--video", default=None, help="write this mp4/gif instead of opening a window")
    p.add_argument("--no-labels", action="store_true", help="leave out the 'real' / 'VAE' captions")
    args = p.parse_args(argv)
    if args.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {args.max_frames}")
    model, seed = agent_from_args(args.file, args.seed, args.vae, args.rnn, random_vm=False)

    window = video = None
    use_window, path = window_or_video(args.video, os.path.join("videos", f"real_vs_vae_{seed}.mp4"))
    if use_window:
        # before make_env, which switches SDL to its off-screen driver for the 96x96 drawing
        window = Window((128 * SCALE, 64 * SCALE), "World Models: real frame vs VAE reconstruction"
                        " - Esc quits", fps=FPS)
        show = window.show
    else:
        video = VideoWriter(path, fps=FPS)
        show = lambda frame: video.append(frame) or True  # noqa: E731
    model.make_env(render_mode=None, renderer=args.renderer, max_frames=args.max_frames)
    t0 = time.time()
    try:
        total, steps = run(model, seed, show, max_frames=args.max_frames, labels=not args.no_labels)
    finally:
        if video is not None:
            video.close()
        if window is not None:
            window.close()
        model.env.close()
    print(f"total reward {total:.2f} timesteps {steps} ({time.time() - t0:.1f}s)")
    if video is not None:
        print(f"video: {video.path} ({video.frames} frames)")


if __name__ == "__main__":
    main_guard(main)
