"""iterate.bash: a tiny round of iterative training runs every stage (each stage's own resume is
tested with the stage)."""
import json
import os
import subprocess

import numpy as np

from conftest import ROOT


def test_tiny_round_runs_every_stage(tmp_path, random_models):
    out = tmp_path / "round"
    vae, rnn = random_models
    controller = tmp_path / "c.json"
    controller.write_text(json.dumps([np.random.default_rng(0).normal(0, 0.1, 867).round(4).tolist(), 0.0]))
    env = dict(os.environ, OUT=str(out), WORKERS="2", VAE=vae, RNN=rnn, CONTROLLER=str(controller), ENCODER="numpy", RANDOM_EPS="2", WANDER_EPS="2", FOLLOW_EPS="2",
               AGENT_EPS="2", HOLDOUT="1", POP="4", EXTRACT_FLAGS="--max-frames 30",
               V_FLAGS="--max-steps 2 --batch-size 8 --shuffle-episodes 2",
               M_FLAGS="--num-steps 2 --batch-size 2 --seq-len 10",
               C_FLAGS="--generations 1 --max_len 20 --processes 2")
    p = subprocess.run(["bash", "iterate.bash"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    names = sorted(os.listdir(out / "record"))
    assert len(names) == 8
    policies = {str(np.load(out / "record" / n)["policy"]) for n in names}
    assert policies == {"random", "wander", "follow", "agent"}
    agent_stage = next(line for line in p.stdout.splitlines() if line.startswith("== data-agent"))
    assert f"--vae {vae} --rnn {rnn}" in agent_stage  # the controller drives on its own V and M
    assert "retraining from the mean" in p.stdout  # C starts from CONTROLLER
    for f in ("vae/vae.json", "series/series.npz", "rnn/rnn.json", "initial_z/initial_z.json",
              "log/carracing.cma.2.4.json", "log/carracing.cma.2.4.ckpt.pkl"):
        assert (out / f).exists(), f
    stages = [line.split()[0] for line in (out / "times.txt").read_text().splitlines()]
    assert stages == ["data-random", "data-wander", "data-follow", "data-agent", "V", "series", "M", "C"]
