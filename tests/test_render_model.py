"""render_model.py: the real frame beside V's reconstruction, driven as model.simulate drives."""
import subprocess
import time

import numpy as np
import pytest

import config
import model
import render_model
from conftest import PYTHON, ROOT
from test_dream import dream, headless_env, read_video, send_wm_delete  # noqa: F401 (dream: a fixture)


def test_side_by_side_layout():
    rng = np.random.default_rng(0)
    real, recon = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    pic = render_model.side_by_side(real, recon, labels=False)
    assert pic.shape == (256, 512, 3) and pic.dtype == np.uint8
    np.testing.assert_array_equal(pic[::4, :256:4], real)
    np.testing.assert_array_equal(pic[::4, 256::4], recon)
    labelled = render_model.side_by_side(real, recon)
    changed = np.any(labelled != pic, axis=2)
    assert changed[:20].any() and not changed[40:].any()  # captions only along the top


def test_render_model_drives_as_simulate(dream):
    agent = model.make_model(vae_path=dream.vae_path, rnn_path=dream.rnn_path)
    agent.load_model(dream.ctrl)
    agent.make_env(renderer="exact", max_frames=25)
    shown = []
    total, steps = render_model.run(agent, 9, lambda f: shown.append(f) or True, max_frames=25, labels=False)
    rewards, ts = model.simulate(agent, num_episode=1, seed=9)
    assert steps == 25 == ts[0] and total == pytest.approx(rewards[0])
    assert len(shown) == 25 and shown[0].shape == (256, 512, 3)
    real = shown[-1][::4, :256:4]
    _, mu, _ = agent.encode_obs(real)
    np.testing.assert_array_equal(shown[-1][::4, 256::4], render_model.reconstruct(agent.vae, mu))
    assert np.abs(real.astype(float) - shown[0][::4, :256:4]).mean() > 1  # the car moved


def test_render_model_headless_writes_side_by_side_video(dream, tmp_path):
    path = tmp_path / "rv.mp4"
    out = subprocess.run([PYTHON, "render_model.py", dream.ctrl, "3", "--max-frames", "10", "--renderer",
                          "exact", "--video", str(path), "--vae", dream.vae_path, "--rnn", dream.rnn_path],
                         cwd=ROOT, env=headless_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "timesteps 10" in out.stdout and f"video: {path} (10 frames)" in out.stdout
    frames = read_video(path)
    assert frames.shape == (10, 256, 512, 3)
    assert frames[:, 40:, :256].std() > 10  # a real track, not an empty picture


def test_render_model_window_opens_and_closes_cleanly(dream, window_app):
    wid = window_app.start(["render_model.py", dream.ctrl, "2", "--renderer", "exact", "--vae", dream.vae_path,
                            "--rnn", dream.rnn_path], "VAE reconstruction", {"OMP_NUM_THREADS": "1"})
    time.sleep(1)
    send_wm_delete(window_app.env["DISPLAY"], wid)
    stdout, stderr = window_app.communicate()
    proc = window_app.proc
    assert proc.returncode == 0, stderr
    assert "total reward" in stdout and "video:" not in stdout
    steps = int(stdout.split("timesteps")[1].split()[0])
    assert 0 < steps < config.MAX_FRAMES
