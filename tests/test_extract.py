"""extract.py: well-formed episodes, reproducible by seed, resumable, failures skipped."""
import json
import os
import subprocess

import numpy as np

import pytest

import extract
from common import UserError
from conftest import PYTHON, ROOT
from env import make_env


def run_extract(out_dir, *args):
    return subprocess.run([PYTHON, "extract.py", "--out-dir", str(out_dir), "--max-frames", "30", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_tiny_extract_is_well_formed_and_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    out = run_extract(a, "--num-episodes", "2", "--seed-start", "100")
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(a)) == ["100.npz", "101.npz"]
    with np.load(a / "100.npz") as d:
        obs, action = d["obs"], d["action"]
    assert obs.shape == (30, 64, 64, 3) and obs.dtype == np.uint8
    assert action.shape == (30, 3) and action.dtype == np.float16
    assert (action[:, 0] >= -1).all() and (action[:, 0] <= 1).all()
    assert (action[:, 1:] >= 0).all() and (action[:, 1:] <= 1).all()
    assert len(np.unique(action[:, 0])) > 1 and obs.std() > 5  # a real episode, not constant
    # worker 1 with 1 episode per worker starts at seed 101: the same episode again
    out = run_extract(b, "--num-episodes", "1", "--seed-start", "100", "--worker", "1")
    assert out.returncode == 0, out.stderr
    with np.load(b / "101.npz") as d1, np.load(a / "101.npz") as d2:
        np.testing.assert_array_equal(d1["obs"], d2["obs"])
        np.testing.assert_array_equal(d1["action"], d2["action"])
    with np.load(a / "100.npz") as d1, np.load(a / "101.npz") as d2:
        assert not np.array_equal(d1["action"], d2["action"])
    # a rerun resumes: existing files are skipped, not rewritten
    out = run_extract(a, "--num-episodes", "3", "--seed-start", "100")
    assert "skipped 2 already present" in out.stdout and (a / "102.npz").exists()
    assert extract.count_record(str(a)) == (3, 90)


def test_a_failed_episode_is_logged_and_skipped(tmp_path, monkeypatch):
    calls = []
    real = extract.record_episode

    def flaky(model, env, seed, max_frames, *policy):
        calls.append(seed)
        if seed == 1:
            raise RuntimeError("simulated crash")
        return real(model, env, seed, 5)

    monkeypatch.setattr(extract, "record_episode", flaky)
    extract.main(["--out-dir", str(tmp_path), "--num-episodes", "3", "--max-frames", "5"])
    assert calls == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["0.npz", "2.npz"]


def test_extract_bash_runs_workers_and_reports(tmp_path):
    env = dict(os.environ, WORKERS="2", EPISODES="1", OUT=str(tmp_path / "rec"), LOGS=str(tmp_path / "logs"))
    out = subprocess.run(["bash", "extract.bash", "--max-frames", "20"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{tmp_path / 'rec'}: 2 episodes, 40 frames" in out.stdout
    assert sorted(os.listdir(tmp_path / "logs")) == ["worker_0.log", "worker_1.log"]


def test_every_episode_failing_is_an_error(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(extract, "record_episode", broken)
    with pytest.raises(UserError, match="every episode failed"):
        extract.main(["--out-dir", str(tmp_path), "--num-episodes", "2", "--max-frames", "5"])


@pytest.mark.parametrize("flags, message", [
    (["--max-frames", "0"], "--max-frames 0"),
    (["--num-episodes", "0"], "--num-episodes 0"),
    (["--noise", "-1", "--policy", "wander", "--seed-start", "100000"], "--noise -1"),
    (["--policy", "follow"], "seeds 0..0 must lie in"),              # a test or eval track
    (["--policy", "wander", "--seed-start", str(2 ** 20)], "must lie in"),  # C's training tracks
    (["--policy", "agent", "--seed-start", "100000"], "needs --controller"),
    (["--policy", "agent", "--seed-start", "100000", "--controller", "nope.json"], "nope.json not found"),
])
def test_bad_flags_stop_before_any_work(tmp_path, flags, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        extract.main(["--out-dir", str(tmp_path / "out"), "--num-episodes", "1", *flags])
    assert not (tmp_path / "out").exists()


def tiles_after(policy, frames, seed=100000):
    env = make_env(full_episode=True, renderer="turbo")
    obs, action = extract.record_episode(None, env, seed, frames, policy, noise=0.0)
    assert obs.shape == (frames, 64, 64, 3) and action.shape == (frames, 3)
    assert (action[:, 0] >= -1).all() and (action[:, 0] <= 1).all()
    assert (action[:, 1:] >= 0).all() and (action[:, 1:] <= 1).all()
    return env.unwrapped.tile_visited_count


def test_follow_drives_along_the_track_and_wander_does_not():
    # the scripted driver is there to show V and M the road at speed: it must really follow it
    assert tiles_after("follow", 250) >= 40
    assert tiles_after("wander", 250) < 40


def test_driving_policies_write_who_made_the_episode(tmp_path, random_models):
    vae_path, rnn_path = random_models
    controller = tmp_path / "c.json"
    controller.write_text(json.dumps([np.random.default_rng(0).normal(0, 0.1, 867).round(4).tolist(), 0.0]))
    for policy in ("wander", "agent"):
        extract.main(["--out-dir", str(tmp_path / policy), "--num-episodes", "1", "--max-frames", "20",
                      "--seed-start", "100000", "--policy", policy, "--controller", str(controller),
                      "--vae", vae_path, "--rnn", rnn_path, "--noise", "0.5", "--renderer", "obs64"])
        with np.load(tmp_path / policy / "100000.npz") as d:
            assert str(d["policy"]) == policy and int(d["seed"]) == 100000
            assert d["obs"].shape == (20, 64, 64, 3) and len(np.unique(d["action"][:, 0])) > 1


def test_ou_noise_is_correlated_with_the_asked_scale():
    noise = extract.OUNoise(np.random.default_rng(0), np.array([0.3, 0.15, 0.09]))
    x = np.array([noise().copy() for _ in range(20000)])
    np.testing.assert_allclose(x[2000:].std(axis=0), [0.3, 0.15, 0.09], rtol=0.15)
    lag1 = np.corrcoef(x[:-1, 0], x[1:, 0])[0, 1]
    assert lag1 > 0.8  # neighbouring steps move together: swerves, not jitter
