"""CarRacingDream: the "generated environment" of World Models, a CarRacing dreamed by V and M.

Reads initial_z/initial_z.json (`[mu_list, logvar_list]`, each n x 32 ints x10000, written by
rnn_train.py); writes nothing. Used by dream_model.py.

The dream, as in the paper: z0 is drawn from the VAE posterior of the first frame of a random
recorded episode; every step the LSTM of the MDN-RNN steps on [z, action] and the next z is
sampled from its mixture output at temperature tau (sample_next_z). The observation is z itself
(32 float32s), not a picture: the agent acts on z (and h, given in info) directly, as the
original's dream agent did, so no VAE encoding happens inside the dream. render() decodes z
with the VAE into the 64x64 frame M imagines, shown 8x enlarged (512x512).

The reward is always 0: the CarRacing M predicts only the next z, not the reward or the end of
the episode (the Doom experiment's M did predict "done"). An episode is truncated after
max_frames steps, or when the user closes the window (or presses Esc) in "human" mode.
"""
import json
import os

import gymnasium as gym
import numpy as np

import config
from common import FPS, UserError, Window
from rnn.rnn import rnn_init_state, rnn_next_state, sample_next_z


def load_initial_z(path=config.INITIAL_Z_PATH):
    """initial_z.json -> (mu, logvar), float32 arrays (n, 32); UserError naming the file otherwise."""
    if not os.path.exists(path):
        raise UserError(f"initial_z file {path} not found: rnn_train.py writes it (tf_initial_z/), "
                        "install_models.py copies it into initial_z/; or pass --initial-z PATH")
    try:
        with open(path) as f:
            data = json.load(f)
        a = np.asarray(data, dtype=np.float64)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"initial_z file {path} is not a JSON [mu_list, logvar_list] ({e}); "
                        "re-create it with rnn_train.py")
    if a.ndim != 3 or a.shape[0] != 2 or a.shape[1] < 1 or a.shape[2] != config.Z_SIZE:
        raise UserError(f"initial_z file {path}: shape {a.shape}, expected (2, n, {config.Z_SIZE}) "
                        "= [mu_list, logvar_list]; re-create it with rnn_train.py")
    if not np.isfinite(a).all():
        raise UserError(f"initial_z file {path} holds NaN or inf: re-create it with rnn_train.py")
    a = (a / 10000.0).astype(np.float32)
    return a[0], a[1]


class CarRacingDream(gym.Env):
    """CarRacing as M dreams it. Observation: z (32,) float32; action: CarRacing's [steer, gas, brake].

    vae: a ConvVAE (render only); rnn: an MDNRNN; initial_z: a path to initial_z.json or a pair
    (mu, logvar) of float arrays (n, 32) already divided by 10000. info carries the LSTM state
    ("h", "c") that the controller reads beside z, and the step count "t".
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": FPS}

    def __init__(self, vae, rnn, initial_z=config.INITIAL_Z_PATH,
                 temperature=config.DREAM_TEMPERATURE, max_frames=config.DREAM_MAX_FRAMES,
                 render_mode=None, scale=config.DREAM_SCALE):
        if render_mode not in (None, "human", "rgb_array"):
            raise UserError(f"render_mode {render_mode!r}: use None, 'human' or 'rgb_array'")
        if not temperature >= 0:
            raise UserError(f"temperature must be >= 0 (the original used {config.DREAM_TEMPERATURE}), "
                            f"got {temperature}")
        if int(max_frames) < 1:
            raise UserError(f"max_frames must be at least 1, got {max_frames}")
        if isinstance(initial_z, (str, os.PathLike)):
            mu, logvar = load_initial_z(os.fspath(initial_z))
        else:
            mu, logvar = (np.asarray(a, dtype=np.float32) for a in initial_z)
            if mu.ndim != 2 or mu.shape[1] != config.Z_SIZE or logvar.shape != mu.shape:
                raise UserError(f"initial_z arrays: mu {mu.shape} and logvar {logvar.shape}, "
                                f"expected two equal (n, {config.Z_SIZE}) arrays")
        self.vae, self.rnn = vae, rnn
        self.initial_mu, self.initial_logvar = mu, logvar
        self.temperature = float(temperature)
        self.max_frames = int(max_frames)
        self.render_mode = render_mode
        self.scale = int(scale)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (config.Z_SIZE,), dtype=np.float32)
        self.action_space = gym.spaces.Box(np.array([-1, 0, 0], np.float32),
                                           np.array([1, 1, 1], np.float32), dtype=np.float32)
        self.window = None
        self.closed_by_user = False
        self.z = None
        self.state = rnn_init_state(rnn)
        self.t = 0
        self._frame = None

    def _info(self):
        return {"h": self.state.h.copy(), "c": self.state.c.copy(), "t": self.t}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        i = self.np_random.integers(len(self.initial_mu))
        eps = self.np_random.standard_normal(config.Z_SIZE)
        self.z = (self.initial_mu[i] + np.exp(self.initial_logvar[i] / 2.0) * eps).astype(np.float32)
        self.state = rnn_init_state(self.rnn)
        self.t = 0
        self._frame = None
        self.closed_by_user = False
        if self.render_mode == "human":
            self.render()
        return self.z.copy(), self._info()

    def step(self, action):
        if self.z is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32).reshape(3)
        self.state = rnn_next_state(self.rnn, self.z, action, self.state)
        self.z = sample_next_z(self.rnn, self.state.h, self.temperature, rng=self.np_random).astype(np.float32)
        self.t += 1
        self._frame = None
        if self.render_mode == "human":
            self.render()
        truncated = self.t >= self.max_frames or self.closed_by_user
        # reward 0 and never terminated: M predicts neither (see the module docstring)
        return self.z.copy(), 0.0, False, truncated, self._info()

    def small_frame(self):
        """The VAE decoding of the current z: (64, 64, 3) uint8."""
        if self._frame is None:
            if self.z is None:
                raise RuntimeError("call reset() before rendering")
            pixels = self.vae.decode(self.z)[0]
            self._frame = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
        return self._frame

    def frame(self):
        """The current frame enlarged `scale` times with nearest neighbour: (512, 512, 3) uint8."""
        small = self.small_frame()
        return np.repeat(np.repeat(small, self.scale, axis=0), self.scale, axis=1)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.frame()
        if self.render_mode == "human":
            if self.window is None and not self.closed_by_user:
                size = self.scale * config.FRAME_SIZE
                self.window = Window((size, size), f"World Models: CarRacing dream (temperature "
                                     f"{self.temperature:g}) - Esc quits", fps=self.metadata["render_fps"])
            if self.window is not None and not self.window.show(self.frame()):
                self.closed_by_user = True
                self.close()
            return None
        gym.logger.warn("CarRacingDream.render() without a render_mode: pass render_mode='rgb_array' "
                        "or 'human' (frame() returns the picture in any mode)")
        return None

    def close(self):
        if self.window is not None:
            self.window.close()
            self.window = None
