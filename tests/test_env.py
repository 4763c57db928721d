"""The CarRacing wrapper: frames, crop, seeds, full episodes, and keyboard play in a real window."""
import os
import subprocess

import numpy as np
import pytest

import config
import env
from conftest import PYTHON, ROOT, xdotool


def drive(e, seed, steps, actions=None):
    frames = [e.reset(seed=seed)[0]]
    for t in range(steps):
        a = actions[t] if actions is not None else np.array([np.sin(t / 20.0), 0.6, 0.0])
        frames.append(e.step(a)[0])
    return np.array(frames)


def test_observation_shape_dtype_and_space():
    e = env.make_env(renderer="stock")
    obs, _ = e.reset(seed=1)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert e.observation_space.shape == (64, 64, 3)
    obs2, r, terminated, truncated, info = e.step(np.array([0.0, 1.0, 0.0]))
    assert obs2.shape == (64, 64, 3) and obs2.dtype == np.uint8
    assert isinstance(r, float) and not terminated and not truncated
    assert 20 < obs.mean() < 235  # a real picture, not blank


def test_crop_drops_the_indicator_bar():
    e = env.make_env(renderer="stock")
    e.reset(seed=2)
    for _ in range(60):
        e.step(np.array([0.2, 1.0, 0.0]))
    state = e.unwrapped.state.copy()
    assert state.shape == (96, 96, 3)
    bar = state[84:]
    assert (bar.max(axis=2) < 60).mean() > 0.5  # the bar is mostly black: it is really there
    frame = env.process_frame(state)
    scribbled = state.copy()
    scribbled[84:] = 255 - scribbled[84:]
    np.testing.assert_array_equal(env.process_frame(scribbled), frame)  # rows 84:96 play no part
    touched = state.copy()
    touched[83] = 255 - touched[83]
    assert not np.array_equal(env.process_frame(touched), frame)  # row 83 does
    assert (frame[-3:].max(axis=2) < 60).mean() < 0.2  # and the frame's bottom is road/grass, not bar


def test_same_seed_same_frames_other_seed_other_track():
    a = drive(env.make_env(renderer="stock"), seed=5, steps=80)
    b = drive(env.make_env(renderer="stock"), seed=5, steps=80)
    c = drive(env.make_env(renderer="stock"), seed=6, steps=80)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _leave_playfield(e, full_episode):
    car = e.unwrapped.car
    for b in [car.hull] + car.wheels:  # move the whole car past the playfield's edge
        b.position = (b.position[0] + 400, b.position[1])


@pytest.mark.parametrize("full_episode", [False, True])
def test_full_episode_runs_1000_frames_off_the_playfield(full_episode):
    e = env.make_env(renderer="stock", full_episode=full_episode)
    e.reset(seed=0)
    steps, rewards = 0, []
    while True:
        if steps == 100:
            _leave_playfield(e, full_episode)
        _, r, terminated, truncated, _ = e.step(np.array([0.0, 1.0, 0.0]))
        steps += 1
        rewards.append(r)
        if terminated or truncated:
            break
    if full_episode:
        assert steps == config.MAX_FRAMES and truncated and not terminated
    else:
        assert steps == 101 and terminated and rewards[-1] == -100


def test_time_limit_truncates():
    e = env.make_env(renderer="stock", max_frames=30)
    e.reset(seed=0)
    for t in range(30):
        _, _, terminated, truncated, _ = e.step(np.array([0.0, 0.0, 0.0]))
    assert truncated and not terminated and e.t == 30


def test_bad_arguments_give_clear_errors():
    from common import UserError

    with pytest.raises(UserError, match="renderer"):
        env.make_env(renderer="fancy")
    with pytest.raises(UserError, match="env_name"):
        env.make_env(env_name="doom")


def test_play_without_display_says_so():
    envv = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([PYTHON, "env.py"], cwd=ROOT, env=envv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no display" in out.stderr and "Traceback" not in out.stderr


def test_random_drive_writes_a_video(tmp_path):
    path = tmp_path / "random.mp4"
    out = subprocess.run([PYTHON, "env.py", "--random", "--seed", "3", "--max-frames", "60", "--video", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "total_reward" in out.stdout
    import imageio.v2 as imageio

    frames = [f for f in imageio.get_reader(str(path))]  # len() of the reader is inf
    assert len(frames) == 60 and frames[0].shape == (400, 600, 3)


def test_keyboard_play_in_a_real_window(window_app):
    """Under Xvfb: holding Up makes the car drive over tiles (reward rises), Esc exits with 0."""
    wid = window_app.start(["env.py", "--seed", "1"], "CarRacing")
    env, proc = window_app.env, window_app.proc
    xdotool(env, "windowfocus", "--sync", wid, check=False)
    xdotool(env, "keydown", "Up")
    first = proc.stdout.readline()  # the progress line of step 200, however slow the machine
    while first and not first.startswith("action"):  # (a banner, if any, comes first)
        first = proc.stdout.readline()
    xdotool(env, "keyup", "Up")
    xdotool(env, "key", "Escape")
    stdout, stderr = window_app.communicate()
    assert proc.returncode == 0, stderr
    assert first.startswith("action") and "step 200" in first, first
    assert "1.0" in first.split("]")[0], f"gas not held at step 200: {first}"
    total = float(first.split("total_reward")[1])
    assert total > 0, f"the car did not pick up tiles while accelerating: {first}"
    assert "episode 1 ended" in stdout
