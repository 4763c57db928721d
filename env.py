"""The CarRacing environment as the agent sees it, and keyboard play.

`make_env()` returns Gymnasium's CarRacing-v3 whose observations are 64x64x3 uint8 frames:
rows 0:84 of the 96x96 state (the indicator bar dropped), resized with Pillow's bilinear
filter. `python env.py` lets you drive with the arrow keys (Enter restarts, Esc quits);
`python env.py --random` drives one episode with random actions, in a window or, with no
display, into a video file.

Reads nothing; writes a video only with --random and no display (or --video).
"""
import argparse
import os
import time

import gymnasium as gym
import numpy as np

import config
from common import UserError, VideoWriter, has_display, headless, main_guard, window_or_video


def process_frame(state):
    """96x96x3 CarRacing state -> 64x64x3 uint8: crop rows 0:84, bilinear resize. (The obs64
    renderer's state is that observation already: it passes through.)"""
    if state.shape[:2] == (config.FRAME_SIZE, config.FRAME_SIZE):
        return state
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(state[: config.CROP_ROWS]))
    img = img.resize((config.FRAME_SIZE, config.FRAME_SIZE), Image.Resampling[config.RESIZE_FILTER])
    return np.asarray(img, dtype=np.uint8)


def car_racing_class(renderer):
    """The CarRacing class drawing frames with `renderer` (one of config.RENDERERS)."""
    if renderer == "stock":
        from gymnasium.envs.box2d.car_racing import CarRacing

        return CarRacing
    if renderer == "exact":
        from renderers.exact import ExactCarRacing

        return ExactCarRacing
    if renderer == "turbo":
        from renderers.turbo import TurboCarRacing

        return TurboCarRacing
    if renderer == "obs64":
        from renderers.obs64 import Obs64CarRacing

        return Obs64CarRacing
    raise UserError(f"unknown renderer {renderer!r}: use {', '.join(config.RENDERERS)}")


class CarRacingWrapper(gym.Wrapper):
    """64x64 observations, a 1000-step time limit and the original's full-episode mode.

    With full_episode=True nothing terminates the episode before max_frames: the car may
    leave the playfield (stock then terminates with -100) and the episode still runs on, as
    the original's data extraction did.
    """

    def __init__(self, env, full_episode=False, max_frames=config.MAX_FRAMES):
        super().__init__(env)
        self.full_episode = full_episode
        self.max_frames = max_frames
        self.observation_space = gym.spaces.Box(
            0, 255, (config.FRAME_SIZE, config.FRAME_SIZE, 3), dtype=np.uint8)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        state, info = self.env.reset(seed=seed, options=options)
        if self.env.unwrapped.render_mode == "human":  # the window exists now; pygame calls it "pygame window"
            import pygame

            pygame.display.set_caption("CarRacing (World Models)")
        self.t = 0
        return process_frame(state), info

    def step(self, action):
        state, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float64))
        self.t += 1
        if self.full_episode:
            terminated = False
        truncated = truncated or self.t >= self.max_frames
        return process_frame(state), float(reward), bool(terminated), bool(truncated), info


def make_env(env_name=config.ENV_NAME, seed=-1, render_mode=None, full_episode=False,
             renderer=None, max_frames=config.MAX_FRAMES):
    """CarRacing-v3 with 64x64x3 uint8 observations.

    seed >= 0 fixes the first track (the next reset() with no seed draws new ones from it);
    render_mode None | "human" (a window) | "rgb_array" (600x400 frames from render()).
    renderer: one of config.RENDERERS: stock Gymnasium drawing, "exact" (the same pixels,
    faster), "turbo" (close, faster still) or "obs64" (only the 64x64 observation, fastest).
    """
    if env_name != config.ENV_NAME:
        raise UserError(f"unknown env_name {env_name!r}: only {config.ENV_NAME!r} is supported")
    if render_mode != "human":
        headless()  # the 96x96 state is drawn with pygame even with no window
    cls = car_racing_class(renderer or config.RENDERER)
    env = CarRacingWrapper(cls(render_mode=render_mode), full_episode=full_episode, max_frames=max_frames)
    if seed is not None and seed >= 0:
        env.reset(seed=int(seed))
    return env


# --- keyboard play --------------------------------------------------------------------------

def play(renderer="stock", seed=None):
    """Drive with the arrow keys in a window, as the original `python env.py`."""
    if not has_display():
        raise UserError("no display: keyboard play needs a window. Run it on a desktop, or under "
                        "Xvfb (xvfb-run python env.py); `python env.py --random` writes a video instead")
    import pygame

    env = make_env(render_mode="human", renderer=renderer)
    action = np.zeros(3)
    quit_ = False
    episode = 0
    while not quit_:
        env.reset(seed=None if seed is None else seed + episode)
        pygame.display.set_caption("CarRacing: arrows drive, Enter restarts, Esc quits")
        episode += 1
        total, steps, restart = 0.0, 0, False
        while True:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    quit_ = True
                elif event.type == pygame.KEYDOWN:
                    if event.key == pygame.K_LEFT:
                        action[0] = -1.0
                    elif event.key == pygame.K_RIGHT:
                        action[0] = +1.0
                    elif event.key == pygame.K_UP:
                        action[1] = +1.0
                    elif event.key == pygame.K_DOWN:
                        action[2] = config.PLAY_BRAKE
                    elif event.key == pygame.K_RETURN:
                        restart = True
                    elif event.key == pygame.K_ESCAPE:
                        quit_ = True
                elif event.type == pygame.KEYUP:
                    if event.key == pygame.K_LEFT and action[0] < 0:
                        action[0] = 0.0
                    elif event.key == pygame.K_RIGHT and action[0] > 0:
                        action[0] = 0.0
                    elif event.key == pygame.K_UP:
                        action[1] = 0.0
                    elif event.key == pygame.K_DOWN:
                        action[2] = 0.0
            _, reward, terminated, truncated, _ = env.step(action)
            total += reward
            steps += 1
            done = terminated or truncated
            if steps % 200 == 0 or done or restart or quit_:
                print(f"action {action.round(2).tolist()}  step {steps}  total_reward {total:+0.2f}",
                      flush=True)
            if done or restart or quit_:
                break
        print(f"episode {episode} ended: {steps} steps, total_reward {total:+0.2f}", flush=True)
    env.close()


def drive_random(seed=0, video=None, renderer=None, max_frames=config.MAX_FRAMES):
    """One episode with random actions: a window where there is a display, else a video."""
    window, path = window_or_video(video, os.path.join("videos", "random.mp4"))
    env = make_env(render_mode="human" if window else "rgb_array", renderer=renderer,
                   max_frames=max_frames)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    writer = None if window else VideoWriter(path)
    total, t0 = 0.0, time.time()
    try:
        done = False
        while not done:
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            total += r
            done = terminated or truncated
            if writer:
                writer.append(env.render())
    finally:
        if writer:
            writer.close()
        env.close()
    where = "window" if window else f"video {writer.path} ({writer.frames} frames)"
    print(f"random actions, seed {seed}: {env.t} steps in {time.time() - t0:.1f}s -> {where}")
    print(f"total_reward {total:.2f}")
    return total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random", action="store_true", help="drive one episode with random actions")
    p.add_argument("--seed", type=int, default=None, help="track seed (default: a new track each time)")
    p.add_argument("--video", default=None, help="with --random: write this mp4/gif instead of a window")
    p.add_argument("--renderer", default=None, choices=config.RENDERERS,
                   help="frame renderer (default: stock for play, config.RENDERER otherwise)")
    p.add_argument("--max-frames", type=int, default=config.MAX_FRAMES, help="episode length cap")
    args = p.parse_args(argv)
    if args.random:
        drive_random(seed=0 if args.seed is None else args.seed, video=args.video,
                     renderer=args.renderer, max_frames=args.max_frames)
    else:
        play(renderer=args.renderer or "stock", seed=args.seed)


if __name__ == "__main__":
    main_guard(main)
