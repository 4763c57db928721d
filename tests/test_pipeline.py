"""The whole training pipeline at toy scale, each stage run as a user runs it:
extract -> vae_train -> series -> rnn_train -> install_models, then the agent loads the result."""
import json
import subprocess

import numpy as np

from conftest import PYTHON, ROOT


def run(*args, timeout=600):
    out = subprocess.run([PYTHON, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args[0]} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_tiny_pipeline_end_to_end(tmp_path):
    rec, tf_vae, tf_rnn = tmp_path / "record", tmp_path / "tf_vae", tmp_path / "tf_rnn"
    run("extract.py", "--out-dir", str(rec), "--num-episodes", "3", "--max-frames", "24")
    run("vae_train.py", "--record-dir", str(rec), "--out", str(tf_vae / "vae.json"),
        "--batch-size", "8", "--max-steps", "3")
    run("series.py", "--record-dir", str(rec), "--vae", str(tf_vae / "vae.json"),
        "--out", str(tmp_path / "series" / "series.npz"))
    with np.load(tmp_path / "series" / "series.npz") as s:
        assert s["mu"].shape == (3, 24, 32) and s["action"].shape == (3, 24, 3)
    iz = tmp_path / "tf_initial_z" / "initial_z.json"
    run("rnn_train.py", "--series", str(tmp_path / "series" / "series.npz"), "--out-dir", str(tf_rnn),
        "--initial-z-out", str(iz), "--num-steps", "2", "--batch-size", "2", "--seq-len", "12")
    dst = tmp_path / "installed"
    paths = {"vae": dst / "vae" / "vae.json", "rnn": dst / "rnn" / "rnn.json",
             "initial-z": dst / "initial_z" / "initial_z.json"}
    run("install_models.py", "--vae-src", str(tf_vae / "vae.json"), "--rnn-src", str(tf_rnn / "rnn.json"),
        "--initial-z-src", str(iz), *[a for k, v in paths.items() for a in (f"--{k}-dst", str(v))])
    mu, logvar = json.load(open(paths["initial-z"]))
    assert np.array(mu).shape == (3, 32) and np.array(logvar).shape == (3, 32)

    import model

    agent = model.make_model(vae_path=str(paths["vae"]), rnn_path=str(paths["rnn"]))
    agent.set_model_params(np.random.default_rng(0).normal(0, 0.1, agent.param_count))
    rewards, steps = model.simulate_batch(agent, [1, 2], max_len=15)
    assert list(steps) == [15, 15] and np.isfinite(rewards).all()
    # and the reconstruction picture of issue 4 can be drawn from these weights
    png = tmp_path / "recon.png"
    out = run("plot_reconstructions.py", "--vae", str(paths["vae"]), "--record-dir", str(rec),
              "--out", str(png), "-n", "3")
    from PIL import Image

    assert Image.open(png).size[0] > 3 * 64 and "mean abs error" in out
