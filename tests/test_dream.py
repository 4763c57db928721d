"""The dream (dream_env, dream_model.py), on random models.

Random default VAE weights decode every z to flat grey, so the fixture scales the decoder's
kernels by 3 (frames then span most of 0..255) and gives M random weights, so that the LSTM
and the mixture both shape the dream.
"""
import copy
import ctypes
import ctypes.util
import json
import os
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest

import config
import dream_model
import model
from common import UserError, VideoWriter
from conftest import PYTHON, ROOT, focus_and_key
from dream_env import CarRacingDream, load_initial_z
from rnn.rnn import MDNRNN, rnn_init_state, rnn_next_state, sample_next_z
from vae.vae import ConvVAE


def write_initial_z(path, mu, logvar):
    to_int = lambda a: np.round(np.asarray(a, np.float64) * 10000).astype(int).tolist()  # noqa: E731
    with open(path, "w") as f:
        json.dump([to_int(mu), to_int(logvar)], f)


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    d = tmp_path_factory.mktemp("dream")
    vae_path, rnn_path = model.write_random_models(str(d))
    vae = ConvVAE()
    vae.load_json(vae_path)
    vae.set_weights([w * 3 if i >= 12 and w.ndim > 1 else w for i, w in enumerate(vae.get_weights())])
    vae.save_json(vae_path)
    rng = np.random.default_rng(1)
    rnn = MDNRNN()
    rnn.set_weights([rng.normal(0, 0.15, w.shape) for w in rnn.weights])
    rnn.save_json(rnn_path)
    vae.load_json(vae_path)  # exactly what the scripts load (the files are rounded to 1e-4)
    rnn.load_json(rnn_path)
    iz = str(d / "initial_z.json")
    write_initial_z(iz, rng.normal(0, 1.5, (6, 32)), np.full((6, 32), -3.0))
    ctrl = str(d / "controller.json")
    with open(ctrl, "w") as f:
        json.dump([np.round(rng.normal(0, 0.5, config.CONTROLLER_PARAMS), 4).tolist(), 0.0], f)
    return SimpleNamespace(dir=d, vae=vae, rnn=rnn, vae_path=vae_path, rnn_path=rnn_path, iz=iz, ctrl=ctrl)


def make(dream, **kwargs):
    kwargs.setdefault("render_mode", "rgb_array")
    return CarRacingDream(dream.vae, dream.rnn, dream.iz, **kwargs)


def action_at(t):
    return np.array([np.sin(t / 5.0), 0.5 + 0.5 * np.cos(t / 7.0), 0.1], np.float32)


def rollout(env, seed, steps):
    z, _ = env.reset(seed=seed)
    zs, frames = [z], [env.render()]
    for t in range(steps):
        z, *_ = env.step(action_at(t))
        zs.append(z)
        frames.append(env.render())
    return np.array(zs), np.array(frames)


def headless_env():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", OMP_NUM_THREADS="1")
    return env


def read_video(path):
    import imageio.v2 as imageio

    with imageio.get_reader(str(path)) as reader:
        return np.array([frame for frame in reader])  # not list(): the reader's len() can be inf


# --- the environment ------------------------------------------------------------------------

def test_seeded_dream_is_reproducible(dream):
    za, fa = rollout(make(dream), seed=11, steps=25)
    zb, fb = rollout(make(dream), seed=11, steps=25)
    np.testing.assert_array_equal(za, zb)
    np.testing.assert_array_equal(fa, fb)
    zc, fc = rollout(make(dream), seed=12, steps=25)
    assert not np.allclose(za[1:], zc[1:]) and not np.array_equal(fa, fc)
    env = make(dream)  # re-seeding one instance restarts the same dream
    rollout(env, seed=3, steps=5)
    np.testing.assert_array_equal(rollout(env, seed=11, steps=25)[0], za)


def test_frames_are_8x_decodings_that_change_and_are_not_blank(dream):
    env = make(dream)
    zs, frames = rollout(env, seed=2, steps=30)
    assert frames.shape == (31, 512, 512, 3) and frames.dtype == np.uint8
    blocks = frames[-1].reshape(64, 8, 64, 8, 3)
    np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[:, :1, :, :1], blocks.shape))  # nearest 8x
    np.testing.assert_array_equal(frames[-1][::8, ::8], env.small_frame())
    expected = np.clip(np.rint(dream.vae.decode(zs[-1])[0] * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(env.small_frame(), expected)  # the frame is decode(z)
    f = frames.astype(np.float64)
    assert f.std(axis=(1, 2, 3)).min() > 10, "a frame is (nearly) one flat colour"
    assert np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3)).min() > 3, "the dream stands still"


def test_step_is_lstm_on_z_and_action_then_mdn_sample(dream):
    env = make(dream, temperature=0.9)
    z, info = env.reset(seed=4)
    np.testing.assert_array_equal(info["h"], np.zeros(config.RNN_SIZE))
    state = rnn_init_state(dream.rnn)
    for t in range(5):
        rng = copy.deepcopy(env.np_random)
        state = rnn_next_state(dream.rnn, z, action_at(t), state)
        expected = sample_next_z(dream.rnn, state.h, 0.9, rng=rng)
        z, reward, terminated, truncated, info = env.step(action_at(t))
        assert z.shape == (32,) and z.dtype == np.float32
        np.testing.assert_allclose(z, expected, rtol=1e-6)
        np.testing.assert_allclose(info["h"], state.h, rtol=1e-6)
        assert reward == 0.0 and not terminated and not truncated and info["t"] == t + 1


def test_temperature_sets_the_spread_of_z(dream):
    def spread(tau):
        env = make(dream, temperature=tau, render_mode=None)
        zs = [rollout_z(env, seed) for seed in range(3)]
        return np.concatenate(zs).std(axis=0).mean()

    def rollout_z(env, seed):
        env.reset(seed=seed)
        return np.array([env.step(action_at(t))[0] for t in range(100)])

    low, mid, high = spread(0.1), spread(config.DREAM_TEMPERATURE), spread(1.2)
    assert low < mid < high and low < 0.75 * high, (low, mid, high)


def test_episode_is_truncated_at_max_frames(dream):
    env = make(dream, max_frames=7, render_mode=None)
    env.reset(seed=0)
    ends = [env.step(action_at(t))[2:4] for t in range(7)]
    assert ends == [(False, False)] * 6 + [(False, True)]
    assert make(dream, render_mode=None).max_frames == config.DREAM_MAX_FRAMES == 1200


def test_initial_z_draws_entries_with_their_spread(dream, tmp_path):
    mu = np.random.default_rng(5).normal(0, 2, (5, 32))
    env = CarRacingDream(dream.vae, dream.rnn, (mu, np.full((5, 32), -30.0)), render_mode=None)
    picked = set()
    for seed in range(20):
        z0, _ = env.reset(seed=seed)
        i = int(np.abs(mu - z0).sum(axis=1).argmin())
        np.testing.assert_allclose(z0, mu[i], atol=1e-5)  # exp(-15) noise: the entry itself
        picked.add(i)
    assert len(picked) >= 3
    wide = CarRacingDream(dream.vae, dream.rnn, (mu, np.zeros((5, 32))), render_mode=None)
    z0, _ = wide.reset(seed=0)
    assert np.abs(mu - z0).min(axis=1).max() > 0.01  # logvar 0: z0 = mu + N(0,1), not mu
    path = tmp_path / "iz.json"
    write_initial_z(path, mu, np.zeros((5, 32)))
    got_mu, got_logvar = load_initial_z(str(path))
    np.testing.assert_allclose(got_mu, mu, atol=1e-4)
    assert got_mu.shape == got_logvar.shape == (5, 32)


@pytest.mark.parametrize("content", [None, "not json", "[[[1, 2]], [[3, 4]]]", "{}"])
def test_bad_initial_z_names_the_file(dream, tmp_path, content):
    path = tmp_path / "initial_z.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match="initial_z file .*initial_z.json"):
        CarRacingDream(dream.vae, dream.rnn, str(path))


def test_gymnasium_env_checker(dream):
    from gymnasium.utils.env_checker import check_env

    env = make(dream, max_frames=20)
    check_env(env, skip_render_check=False)
    assert env.observation_space.shape == (32,) and env.action_space.shape == (3,)
    np.testing.assert_array_equal(env.action_space.low, [-1, 0, 0])
    np.testing.assert_array_equal(env.action_space.high, [1, 1, 1])


def test_headless_dream_writes_a_decodable_video(dream, tmp_path):
    env = make(dream, max_frames=15)
    path = tmp_path / "dream.mp4"
    frames = []
    with VideoWriter(str(path)) as video:
        env.reset(seed=1)
        done = False
        while not done:
            frames.append(env.render())
            video.append(frames[-1])
            done = env.step(action_at(len(frames)))[3]
    back = read_video(path)
    assert back.shape == (15, 512, 512, 3)
    assert np.abs(back.astype(float) - np.array(frames)).mean() < 6  # lossy, but the same pictures


# --- dream_model.py -------------------------------------------------------------------------

def test_dream_model_end_to_end_headless(dream, tmp_path):
    args = [dream.ctrl, "5", "--max-frames", "12", "--vae", dream.vae_path, "--rnn", dream.rnn_path,
            "--initial-z", dream.iz, "--gif"]
    out = subprocess.run([PYTHON, os.path.join(ROOT, "dream_model.py")] + args, cwd=tmp_path,
                         env=headless_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the same dream in-process gives the same lines: seed, controller and [z, h] all as documented
    agent = model.make_model(vae_path=dream.vae_path, rnn_path=dream.rnn_path)
    agent.load_model(dream.ctrl)
    expected = []
    steps = dream_model.run_dream(agent, make(dream, max_frames=12), 5, log=lambda s, **_: expected.append(s))
    lines = [line for line in out.stdout.splitlines() if line.startswith("step")]
    assert steps == 12 and lines == expected and len(lines) == 12
    assert all("action [" in line and "sum(z^2)" in line for line in lines)
    actions = np.array([[float(x) for x in line.split("[")[1].split("]")[0].split()] for line in lines])
    assert np.ptp(actions[:, 0]) > 0.01, "the controller's steering never changes"
    assert "video: videos/dream_5.mp4 (12 frames)" in out.stdout
    assert read_video(tmp_path / "videos" / "dream_5.mp4").shape == (12, 512, 512, 3)
    assert read_video(tmp_path / "videos" / "dream_5.gif").shape[:3] == (6, 128, 128)


def test_dream_model_random_controller_and_print_every(dream, tmp_path):
    path = tmp_path / "out" / "d.mp4"
    out = subprocess.run([PYTHON, "dream_model.py", "8", "--max-frames", "11", "--print-every", "5",
                          "--video", str(path), "--vae", dream.vae_path, "--rnn", dream.rnn_path,
                          "--initial-z", dream.iz, "--temperature", "1.1"],
                         cwd=ROOT, env=headless_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "random controller weights" in out.stdout and "seed 8" in out.stdout
    assert [line.split()[1] for line in out.stdout.splitlines() if line.startswith("step")] == ["0", "5", "10"]
    assert f"video: {path} (11 frames)" in out.stdout
    assert read_video(path).shape == (11, 512, 512, 3)


def test_dream_model_missing_files_are_clear_errors(dream, tmp_path):
    missing = str(tmp_path / "nope.json")
    base = ["--vae", dream.vae_path, "--rnn", dream.rnn_path, "--initial-z", dream.iz, "--video", "x.mp4"]
    for args, words in ([[dream.ctrl, "--vae", missing], ["VAE", missing, "train"]],
                        [["--rnn", missing], ["MDN-RNN", missing, "train"]],
                        [["--initial-z", missing], ["initial_z", missing, "rnn_train.py"]],
                        [[missing], ["controller file", missing, "train"]],
                        [["--temperature", "-1"], ["--temperature"]]):
        with pytest.raises(UserError) as e:
            dream_model.main(base + args)
        assert all(w in str(e.value) for w in words), str(e.value)
    out = subprocess.run([PYTHON, "dream_model.py", "--vae", missing, "--initial-z", dream.iz], cwd=ROOT,
                         env=headless_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and missing in out.stderr and "Traceback" not in out.stderr


# --- render_model.py ------------------------------------------------------------------------

# --- real windows (Xvfb) --------------------------------------------------------------------

def send_wm_delete(display, wid):
    """What a window manager sends when the user clicks the close button: WM_DELETE_WINDOW.

    (`xdotool windowclose` destroys the window under SDL's feet instead: Xlib then aborts the
    program with BadWindow, which no user action can cause.)"""
    lib = ctypes.util.find_library("X11")
    if not lib:
        pytest.skip("libX11 not found")
    x11 = ctypes.CDLL(lib)

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                    ("message_type", ctypes.c_ulong), ("format", ctypes.c_int), ("l", ctypes.c_long * 5)]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                               ctypes.POINTER(XEvent)]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open display {display}"
    event = XEvent()
    msg = event.xclient
    msg.type, msg.display, msg.window, msg.format = 33, dpy, int(wid), 32  # 33: ClientMessage
    msg.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
    msg.l[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
    x11.XSendEvent(dpy, msg.window, 0, 0, ctypes.byref(event))
    x11.XFlush(dpy)
    x11.XCloseDisplay(dpy)


@pytest.mark.parametrize("how", ["close button", "Escape", "episode end"])
def test_dream_window_opens_and_exits_cleanly(dream, window_app, how):
    frames = "150" if how == "episode end" else "100000"
    wid = window_app.start(["dream_model.py", dream.ctrl, "1", "--max-frames", frames, "--print-every", "50",
                            "--vae", dream.vae_path, "--rnn", dream.rnn_path, "--initial-z", dream.iz],
                           "dream", {"OMP_NUM_THREADS": "1"})
    if how == "close button":
        time.sleep(1)
        send_wm_delete(window_app.env["DISPLAY"], wid)
    elif how == "Escape":
        time.sleep(1)
        focus_and_key(window_app.env, wid, "Escape")
    stdout, stderr = window_app.communicate()
    proc = window_app.proc
    assert proc.returncode == 0, stderr
    assert "video:" not in stdout  # a window, not a video
    if how == "episode end":
        assert "dream ended after 150 frames (max frames 150)" in stdout
    else:
        assert "(the window was closed)" in stdout
