"""The agent (V + M + C) and the original's way of running it.

    python model.py render   log/carracing.cma.16.64.best.json [seed]   # one episode, window or video
    python model.py norender log/carracing.cma.16.64.best.json [seed]   # 100 episodes, mean and stdev
    python model.py render                                              # random weights, as the original

Reads vae/vae.json, rnn/rnn.json and a controller file ([params, ...] as train.py writes it; a
trailing {"z_noise": s} says C was trained on z = mu + s * sigma * noise, and is driven so);
writes a video (videos/) when there is no display or with --video.

The agent: each frame is encoded by the VAE into z (sampled from mu, logvar), the controller
maps [z, h] (h: the MDN-RNN's hidden state) to an action, then the LSTM steps on [z, action].
V and M run in NumPy; `simulate_batch` drives many episodes in lockstep and batches V and M.
"""
import argparse
import os
import time

import config

config.one_blas_thread()
import numpy as np  # noqa: E402

from common import FPS, UserError, VideoWriter, main_guard, read_json, score_summary, window_or_video
from env import make_env
from rnn.rnn import (MODE_ZH, MDNRNN, hps_sample, rnn_init_state, rnn_next_state, rnn_output,
                     rnn_output_size, rowwise_matmul)
from vae.int8 import make_encoder
from vae.vae import ConvVAE

EXP_MODE = MODE_ZH


def controller_action(features, weight, bias):
    """tanh(features W + b) mapped to CarRacing's ranges: steer [-1,1], gas [0,1], brake [0,1]."""
    action = np.tanh(rowwise_matmul(features, weight) + bias)
    action[..., 1] = (action[..., 1] + 1.0) / 2.0
    action[..., 2] = np.clip(action[..., 2], 0.0, 1.0)
    return action


def sample_z(mu, logvar, noise, z_noise=1.0):
    """z = mu + z_noise * sigma * noise. The noise is drawn whatever the scale, so the tracks' RNG
    streams (and every score at scale 1) stay the same."""
    if z_noise != 1.0:
        noise = noise * np.float32(z_noise)
    return mu + np.exp(logvar / 2.0) * noise


def controller_z_noise(data, filename):
    """The z noise scale a controller file was trained with: its trailing {"z_noise": s}, else 1."""
    meta = data[-1] if isinstance(data, list) and len(data) > 1 and isinstance(data[-1], dict) else {}
    value = meta.get("z_noise", config.Z_NOISE)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise UserError(f"controller file {filename}: z_noise {value!r} must be a number >= 0")
    return float(value)


class Model:
    """Controller over NumPy V and M, with the original's method names."""

    def __init__(self, load_model=True, vae_path=config.VAE_PATH, rnn_path=config.RNN_PATH,
                 encoder=None):
        self.env_name = config.ENV_NAME
        self.encoder_kind = encoder or config.ENCODER
        self._encoder = None
        self.vae = ConvVAE(z_size=config.Z_SIZE, batch_size=1, is_training=False)
        self.rnn = MDNRNN(hps_sample)
        if load_model:
            for what, path, flag in (("VAE", vae_path, "--vae"), ("MDN-RNN", rnn_path, "--rnn")):
                if not os.path.exists(path):
                    raise UserError(f"{what} weights {path} not found: train them (see README) and run "
                                    f"install_models.py, or pass {flag} PATH")
            self.vae.load_json(vae_path)
            self.rnn.load_json(rnn_path)
        self.z_size = config.Z_SIZE
        self.input_size = rnn_output_size(EXP_MODE)
        self.param_count = self.input_size * 3 + 3
        self.weight = np.random.randn(self.input_size, 3)
        self.bias = np.random.randn(3)
        self.state = rnn_init_state(self.rnn)
        self.rng = np.random.default_rng()
        self.z_noise = config.Z_NOISE
        self.env = None
        self.render_mode = None
        self._batch_envs, self._batch_renderer = [], None  # simulate_batch's envs, kept between calls

    def make_env(self, seed=-1, render_mode=None, full_episode=False, renderer=None,
                 max_frames=config.MAX_FRAMES):
        self.render_mode = render_mode
        self.env = make_env(self.env_name, seed=seed, render_mode=render_mode,
                            full_episode=full_episode, renderer=renderer, max_frames=max_frames)
        return self.env

    def reset(self):
        self.state = rnn_init_state(self.rnn)

    @property
    def encoder(self):
        """What encodes frames: the ConvVAE, or its int8 twin, rebuilt when V's weights change."""
        if self._encoder is None or self._encoder[0] is not self.vae.weights:
            self._encoder = (self.vae.weights, make_encoder(self.vae, self.encoder_kind))
        return self._encoder[1]

    def encode_obs(self, obs):
        """64x64x3 uint8 frame(s) -> z sampled from the VAE posterior, mu, logvar."""
        batched = obs.ndim == 4
        mu, logvar = self.encoder.encode_mu_logvar(obs if batched else obs[None])
        z = sample_z(mu, logvar, self.rng.standard_normal(mu.shape, dtype=np.float32), self.z_noise)
        return (z, mu, logvar) if batched else (z[0], mu[0], logvar[0])

    def get_action(self, z):
        """Action for z (and the current LSTM state); then steps the LSTM on [z, action]."""
        action = controller_action(rnn_output(self.state, z, EXP_MODE), self.weight, self.bias)
        self.state = rnn_next_state(self.rnn, z, action, self.state)
        return action

    def set_model_params(self, model_params):
        params = np.asarray(model_params, dtype=np.float64).ravel()
        if params.size != self.param_count:
            raise UserError(f"controller has {params.size} parameters, expected {self.param_count} "
                            f"(3 biases then a {self.input_size}x3 weight matrix)")
        if not np.isfinite(params).all():
            raise UserError("controller parameters hold NaN or inf: this controller is broken "
                            "(retrain it, or use another file)")
        self.bias = params[:3].copy()
        self.weight = params[3:].reshape(self.input_size, 3).copy()

    def get_model_params(self):
        return np.concatenate([self.bias, self.weight.ravel()])

    def load_model(self, filename):
        data = read_json(filename, "controller file")
        try:
            params = np.asarray(data[0], dtype=np.float64)
        except (TypeError, ValueError, IndexError, KeyError):
            raise UserError(f"controller file {filename} is not [params, ...] as train.py writes it")
        try:
            self.set_model_params(params)
        except UserError as e:
            raise UserError(f"controller file {filename}: {e}")
        self.data = data
        self.z_noise = controller_z_noise(data, filename)

    def get_random_model_params(self, stdev=0.1):
        return np.random.standard_cauchy(self.param_count) * stdev

    def init_random_model_params(self, stdev=0.1):
        """The original's random-data policy: Cauchy weights for C, V and M alike.

        V and M take them through set_model_params, which divides by 10000 as the original's
        did: their random weights end up tiny, z is mostly posterior noise and h stays near
        zero. That is the policy that generated the paper's data, so it is kept.
        """
        self.set_model_params(self.get_random_model_params(stdev=stdev))
        self.vae.set_model_params(self.vae.get_random_model_params(stdev=stdev))
        self.rnn.set_model_params(self.rnn.get_random_model_params(stdev=stdev))


def make_model(load_model=True, **kwargs):
    return Model(load_model=load_model, **kwargs)


class NonFiniteAction(UserError):
    """The controller produced NaN or inf: its weights (or V's or M's) are broken."""


def check_finite(action, t):
    """A NaN action sends the car's body to (nan, nan) and the episode ends 'lap finished' with
    ~1000 points: fail instead, so broken weights can never score."""
    if not np.isfinite(action).all():
        raise NonFiniteAction(f"the agent's action is not finite at step {int(t)}: the controller, V or M "
                              "weights hold NaN or inf (retrain, or restore a good file)")


def rollout(model, env, seed=None, max_frames=config.MAX_FRAMES, act=None, on_step=None):
    """The agent's episode loop, which every one-env script drives with (simulate, render_model,
    extract): encode the frame into z, act, step the env. Returns (return, steps, lap finished).

    z is sampled with noise seeded by `seed`, so simulate_batch gives the same returns.
    act(z) replaces C's action (extract's noisy driver; it steps M itself); model=None drives
    with act(None) alone (extract's scripted drivers need no V). on_step(t, obs, mu, action),
    called after the env took the action on the frame obs, returns False to stop the episode.
    """
    if model is not None:
        model.rng = np.random.default_rng(seed)
        model.reset()
    obs, _ = env.reset(seed=seed)
    total, steps, lap = 0.0, 0, False
    while steps < max_frames:
        z = mu = None
        if model is not None:
            z, mu, _ = model.encode_obs(obs)
        action = model.get_action(z) if act is None else act(z)
        check_finite(action, steps)
        next_obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        lap |= bool(info.get("lap_finished", False))
        steps += 1
        if on_step is not None and on_step(steps - 1, obs, mu, action) is False:
            break
        if terminated or truncated:
            break
        obs = next_obs
    return total, steps, lap


def simulate(model, train_mode=False, render_mode=False, num_episode=5, seed=-1, max_len=-1,
             video=None):
    """Episodes one at a time in model.env; returns (reward_list, steps_list), steps as counts.

    seed >= 0 makes episode i use track seed+i (and the same z-sampling noise as
    simulate_batch). train_mode with max_len > 0 caps episode length. render_mode prints each
    return (and shows the env's window if it has one); `video` (a VideoWriter) records it.
    """
    if model.env is None:
        model.make_env()
    max_frames = max_len if (train_mode and max_len > 0) else config.MAX_FRAMES
    record = None if video is None else (lambda *_: video.append(model.env.render()))
    reward_list, steps_list = [], []
    for episode in range(num_episode):
        total, steps, _ = rollout(model, model.env, seed + episode if seed >= 0 else None, max_frames,
                                  on_step=record)
        if render_mode:
            print(f"total reward {total:.2f} timesteps {steps}", flush=True)
        reward_list.append(total)
        steps_list.append(steps)
    return reward_list, steps_list


def simulate_batch(model, seeds, max_len=-1, renderer=None, stall=0, laps=None, traces=None):
    """One env per seed, stepped in lockstep with V and M batched across the live episodes.

    Returns (rewards, steps) arrays; the same as simulate() episode by episode for the same
    seeds and parameters. Envs are kept on the model between calls to save their set-up.
    stall > 0 (training only, never for a reported score): end an episode that has reached no
    new tile for `stall` frames and charge -0.1 for each frame it did not drive, which is what
    those frames would cost if it never reached another tile: the return it gets is the one it
    would most likely get, at a fraction of the frames.
    laps: a list, filled with whether each episode finished its lap.
    traces: a list, filled with each episode's reward per frame (arrays).
    """
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    max_steps = max_len if max_len > 0 else config.MAX_FRAMES
    envs = model._batch_envs
    if model._batch_renderer != renderer:
        for e in envs:
            e.close()
        envs = []
    while len(envs) < n:
        envs.append(make_env(model.env_name, renderer=renderer))
    model._batch_envs, model._batch_renderer = envs, renderer
    rngs = [np.random.default_rng(s) for s in seeds]
    obs = np.stack([envs[i].reset(seed=seeds[i])[0] for i in range(n)])
    state = rnn_init_state(model.rnn, batch_size=n)
    rewards = np.zeros(n)
    steps = np.zeros(n, dtype=np.int64)
    lap = np.zeros(n, dtype=bool)
    since_tile = np.zeros(n, dtype=np.int64)
    live = np.arange(n)
    per_frame = [[] for _ in range(n)] if traces is not None else None
    for _ in range(max_steps):
        mu, logvar = model.encoder.encode_mu_logvar(obs)
        noise = np.stack([rngs[i].standard_normal(config.Z_SIZE, dtype=np.float32) for i in live])
        z = sample_z(mu, logvar, noise, model.z_noise)
        action = controller_action(rnn_output(state, z, EXP_MODE), model.weight, model.bias)
        check_finite(action, steps[live[0]])
        state = rnn_next_state(model.rnn, z, action, state)
        keep = []
        for j, i in enumerate(live):
            obs[j], r, terminated, truncated, info = envs[i].step(action[j])
            lap[i] |= bool(info.get("lap_finished", False))
            rewards[i] += r
            if per_frame is not None:
                per_frame[i].append(r)
            steps[i] += 1
            since_tile[i] = 0 if r > 0 else since_tile[i] + 1  # a step's reward is > 0 only on a new tile
            if stall > 0 and since_tile[i] >= stall and not (terminated or truncated):
                rewards[i] -= 0.1 * (max_steps - steps[i])
                continue
            if not (terminated or truncated):
                keep.append(j)
        if len(keep) < len(live):
            if not keep:
                break
            keep = np.array(keep)
            live, obs = live[keep], obs[keep]
            state = type(state)(*(s[keep] for s in state))
    if laps is not None:
        laps[:] = lap.tolist()
    if traces is not None:
        traces[:] = [np.array(t, dtype=np.float64) for t in per_frame]
    return rewards, steps


def write_random_models(folder):
    """Random-weight vae.json and rnn.json (default initialisation) for tests and demos."""
    os.makedirs(folder, exist_ok=True)
    vae_path, rnn_path = os.path.join(folder, "vae.json"), os.path.join(folder, "rnn.json")
    ConvVAE(z_size=config.Z_SIZE).save_json(vae_path)
    MDNRNN(hps_sample).save_json(rnn_path)
    return vae_path, rnn_path


# --- command line ---------------------------------------------------------------------------

def agent_from_args(file, seed, vae_path, rnn_path, random_vm, verbose=True, encoder=None):
    """(model, seed) for the `SCRIPT [FILE] [seed]` command lines of model.py, dream_model.py
    and render_model.py: the controller in FILE, or random controller weights as the original
    (Cauchy x rand()*0.01, seeded); random_vm=True randomises V and M too instead of loading
    them. A lone number in place of FILE is the seed (`model.py render 7`)."""
    if file is not None and seed is None and file.isdigit() and not os.path.exists(file):
        file, seed = None, int(file)
    if file is not None and not os.path.exists(file):
        raise UserError(f"controller file {file} not found: train one with train.py, or omit FILE "
                        "for random weights")
    seed = seed if seed is not None else int(np.random.randint(10000))
    model = make_model(load_model=not (file is None and random_vm), vae_path=vae_path, rnn_path=rnn_path,
                       encoder=encoder)
    say = print if verbose else (lambda *a: None)
    model.source_file = file  # FILE as understood (None: random weights), for worker processes
    say(f"model size {model.param_count}, seed {seed}")
    if file is not None:
        model.load_model(file)
        say(f"loaded {file}" + ("" if model.z_noise == 1 else f" (trained on z noise x{model.z_noise:g})"))
    else:
        np.random.seed(seed)
        stdev = np.random.rand() * config.RANDOM_STDEV_SCALE
        if random_vm:
            model.init_random_model_params(stdev=stdev)
        else:
            model.set_model_params(model.get_random_model_params(stdev=stdev))
        say(f"no controller file: random {'C, V and M' if random_vm else 'controller'} weights, as the original")
    return model, seed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["render", "norender"], help="render: one episode shown; norender: many, scored")
    p.add_argument("file", nargs="?", default=None, help="controller file (default: random weights)")
    p.add_argument("seed", nargs="?", type=int, default=None, help="first track seed (default: random)")
    p.add_argument("--episodes", type=int, default=None, help="norender episodes (default 100)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"norender: processes to spread episodes over (default: the cores, {os.cpu_count()})")
    p.add_argument("--video", default=None, help="render: write this mp4/gif instead of opening a window")
    p.add_argument("--video-if-headless", default=None, metavar="PATH",
                   help="render with no display: write the video here (default videos/model_<seed>.mp4)")
    p.add_argument("--renderer", default=None, choices=config.RENDERERS,
                   help=f"CarRacing renderer (default {config.RENDERER}; exact gives stock's pixels)")
    p.add_argument("--max-frames", type=int, default=config.MAX_FRAMES, help="episode length cap")
    p.add_argument("--encoder", default=None, choices=["numpy", "int8"],
                   help=f"V's encoder (default {config.ENCODER}; int8 is ~5x faster, see vae/int8.py)")
    p.add_argument("--vae", default=config.VAE_PATH, help="VAE weights")
    p.add_argument("--rnn", default=config.RNN_PATH, help="MDN-RNN weights")
    args = p.parse_args(argv)
    for flag, value in (("--episodes", args.episodes), ("--workers", args.workers),
                        ("--max-frames", args.max_frames)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"seed {args.seed}: track seeds are 0 or more")
    # random weights replace V and M too, as the original did: nothing needs to be loaded
    model, seed = agent_from_args(args.file, args.seed, args.vae, args.rnn, random_vm=True,
                                  encoder=args.encoder)

    if args.mode == "render":
        window, path = window_or_video(args.video, args.video_if_headless or os.path.join("videos", f"model_{seed}.mp4"))
        model.make_env(render_mode="human" if window else "rgb_array", renderer=args.renderer,
                       max_frames=args.max_frames)
        t0 = time.time()
        if window:
            rewards, ts = simulate(model, render_mode=True, num_episode=1, seed=seed)
        else:
            with VideoWriter(path, fps=FPS) as video:
                rewards, ts = simulate(model, render_mode=True, num_episode=1, seed=seed, video=video)
            print(f"video: {path} ({ts[0]} frames, {ts[0] / FPS:.0f} s at {FPS} fps; written in {time.time() - t0:.0f} s)")
        print(f"terminal reward {rewards[0]:.2f} average steps taken {ts[0]}")
        model.env.close()
        return

    episodes = 100 if args.episodes is None else args.episodes
    seeds = [seed + i for i in range(episodes)]
    t0 = time.time()
    from workers import run_episodes

    workers = args.workers or os.cpu_count() or 1
    out = run_episodes(model, model.source_file, seed, seeds, args.vae, args.rnn, renderer=args.renderer,
                       workers=workers, max_frames=args.max_frames, progress=True)
    rewards = np.array([r for r, _, _ in out])
    for s, (r, t, lap) in zip(seeds, out):
        print(f"seed {s} reward {r:.2f} steps {t}{' lap finished' if lap else ''}")
    print(f"{episodes} episodes in {time.time() - t0:.0f}s")
    print(f"seed {seed} average_reward {rewards.mean():.2f} stdev {rewards.std():.2f}")
    print(score_summary(rewards, [lap for _, _, lap in out]))


if __name__ == "__main__":
    main_guard(main)
