"""extract.py: well-formed episodes, reproducible by seed, resumable, failures skipped."""
import os
import subprocess

import numpy as np

import extract
from conftest import PYTHON, ROOT


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

    def flaky(model, env, seed, max_frames):
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
