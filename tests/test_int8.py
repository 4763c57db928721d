"""V's int8 encoder (vae/int8.py): close to float32, batch-independent, cached, and usable by
every script that drives the agent (--encoder int8)."""
import os
import subprocess

import numpy as np
import pytest

import config
import model
import vae.int8 as int8
from common import UserError
from conftest import PYTHON, ROOT
from env import make_env
from vae.vae import ConvVAE


@pytest.fixture(scope="module")
def frames():
    """Real observations: a few tracks, driven a little so the car and tiles vary."""
    out, rng = [], np.random.default_rng(0)
    env = make_env(renderer="exact")
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        for t in range(60):
            obs, *_ = env.step(np.array([rng.uniform(-1, 1), 0.6, 0.0]))
            if t % 12 == 0:
                out.append(obs)
    env.close()
    return np.stack(out)


@pytest.fixture(scope="module")
def shipped_vae():
    vae = ConvVAE(z_size=config.Z_SIZE)
    vae.load_json(config.VAE_PATH)
    return vae


def test_int8_is_close_to_float32_on_real_frames(shipped_vae, frames):
    mu, logvar = shipped_vae.encode_mu_logvar(frames)
    mu8, logvar8 = int8.Int8Encoder(shipped_vae).encode_mu_logvar(frames)
    sigma = np.exp(logvar / 2)
    # far below the posterior noise z is drawn with (sigma, mostly 0.1 to 1)
    assert np.abs(mu8 - mu).mean() < 0.03 and np.abs(logvar8 - logvar).mean() < 0.03
    assert np.abs(mu8 - mu).max() < 0.25 * sigma.mean()
    assert not np.array_equal(mu8, mu)  # it is really the quantised model that ran


def test_a_batch_gives_the_rows_of_frames_one_at_a_time(shipped_vae, frames):
    enc = int8.Int8Encoder(shipped_vae)
    mu, logvar = enc.encode_mu_logvar(frames)
    for i in (0, 3, len(frames) - 1):
        m1, l1 = enc.encode_mu_logvar(frames[i])  # one (64,64,3) frame, batch size changes
        np.testing.assert_array_equal(m1[0], mu[i])
        np.testing.assert_array_equal(l1[0], logvar[i])
    as_float = frames.astype(np.float32) * np.float32(1 / 255)  # the uint8 path, same rounding
    np.testing.assert_array_equal(enc.encode_mu_logvar(as_float)[0], mu)


def test_conversion_is_cached_by_weights(shipped_vae, monkeypatch):
    path = int8.tflite_path(shipped_vae)
    assert os.path.exists(path)

    def no_conversion(*a, **k):
        raise AssertionError("converted again although the cache holds this encoder")

    monkeypatch.setattr(int8.subprocess, "run", no_conversion)
    assert int8.tflite_path(shipped_vae) == path
    other = ConvVAE(z_size=config.Z_SIZE, seed=5)
    with pytest.raises(AssertionError):
        int8.tflite_path(other)  # other weights: another file


def test_model_rebuilds_it_when_v_changes(random_models):
    agent = model.make_model(vae_path=random_models[0], rnn_path=random_models[1], encoder="int8")
    first = agent.encoder
    assert isinstance(first, int8.Int8Encoder) and agent.encoder is first
    agent.vae.set_weights([w * 0.5 for w in agent.vae.weights])
    assert agent.encoder is not first and agent.encoder.path != first.path
    assert model.make_model(vae_path=random_models[0], rnn_path=random_models[1]).encoder.__class__ is ConvVAE


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(config, "INT8_CACHE", str(blocker / "cache"))
    with pytest.raises(UserError, match="WM_INT8_CACHE"):
        int8.tflite_path(ConvVAE(z_size=config.Z_SIZE, seed=6))


def test_failed_conversion_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(int8.sys, "executable", "/bin/false")
    with pytest.raises(UserError, match="--encoder numpy"):
        int8.tflite_path(ConvVAE(z_size=config.Z_SIZE, seed=7), cache_dir=str(tmp_path))


def test_model_py_and_train_py_take_encoder_int8(random_models, tmp_path):
    vae_path, rnn_path = random_models
    out = subprocess.run([PYTHON, "model.py", "norender", "3", "--episodes", "2", "--max-frames", "20",
                          "--workers", "2", "--encoder", "int8", "--vae", vae_path, "--rnn", rnn_path],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "average_reward" in out.stdout and "INFO:" not in out.stderr
    out = subprocess.run([PYTHON, "train.py", "-n", "2", "--num_episode", "1", "--max_len", "20",
                          "--generations", "1", "--eval_steps", "1", "--num_eval_episode", "1",
                          "--processes", "2", "--encoder", "int8", "--vae", vae_path, "--rnn", rnn_path,
                          "--log-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert os.path.exists(tmp_path / "carracing.cma.1.2.best.json")
