"""The benchmark command runs and writes its JSON (a small section only: timings are never tested)."""
import json
import subprocess

from conftest import PYTHON, ROOT


def test_benchmark_inference_section_writes_results(tmp_path):
    out = tmp_path / "results.json"
    p = subprocess.run([PYTHON, "-m", "benchmark", "--quick", "--only", "inference", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["machine"]["cores"] >= 1
    for key in ("numpy_vae_encode_ms", "int8_vae_encode_ms", "numpy_lstm_step_ms", "numpy_agent_step_ms"):
        assert r[key] > 0, key
        assert key in p.stdout
    # a second partial run keeps the figures of the first
    p = subprocess.run([PYTHON, "-m", "benchmark", "--quick", "--only", "mpi", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert "numpy_vae_encode_ms" in r and r["mpi_idle_rank_cpu_s_in_3s"] >= 0


def test_vae_step_benchmark_writes_its_figures(tmp_path):
    out = tmp_path / "vae_step.json"
    p = subprocess.run([PYTHON, "-m", "benchmark.vae_step", "--batch-sizes", "4,8", "--steps", "1",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert set(r["batches"]) == {"4", "8"}
    for size, b in r["batches"].items():
        assert b["train_step_ms"] > 0 and b["train_on_batch_on_device_ms"] > 0
        assert abs(b["frames_per_s"] - int(size) / b["train_step_ms"] * 1e3) < 1e-6
    bad = subprocess.run([PYTHON, "-m", "benchmark.vae_step", "--batch-sizes", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--batch-sizes" in bad.stderr


def test_agent_replay_twins_follow_the_agents_envs(random_models, monkeypatch):
    """The agent section's env-alone reference: twins replaying the agent's actions in chunks,
    in lockstep, must end where the agent's envs are (else it times another trajectory)."""
    import numpy as np

    import model
    from benchmark.__main__ import _Recorder, _Replayer, _timed

    vae_path, rnn_path = random_models
    agent = model.make_model(vae_path=vae_path, rnn_path=rnn_path)
    agent.set_model_params(np.random.default_rng(0).normal(0, 0.1, agent.param_count))
    monkeypatch.setattr(_Replayer, "CHUNK", 7)  # several chunks in a short run
    n = 3
    many = _Replayer("exact", n)
    model.simulate_batch(agent, [100, 101, 102], max_len=2, renderer="exact")
    agent._batch_envs = [_Recorder(e, many, i) for i, e in enumerate(agent._batch_envs)]
    one = _Replayer("exact", 1)
    agent.env = _Recorder(agent.make_env(renderer="exact"), one, 0)
    for replayer, run in ((many, lambda: model.simulate_batch(agent, [5, 6, 7], max_len=30, renderer="exact")),
                          (one, lambda: model.simulate(agent, train_mode=True, num_episode=1, seed=5, max_len=30))):
        agent_s, env_s, _ = _timed(run, replayer)
        assert agent_s > 0 and env_s > 0 and replayer.excluded > 0
        assert [len(a) for a in replayer.actions] == [30] * len(replayer.twins)
        assert all(not p for p in replayer.pending)
        envs = agent._batch_envs if replayer is many else [agent.env]
        for env, twin in zip(envs, replayer.twins):
            action = np.array([0.3, 0.5, 0.0])
            assert np.array_equal(env.env.step(action)[0], twin.step(action)[0])


def test_env_bench_physics_and_observation_fidelity():
    """The env section's new figures: physics alone (nothing drawn) and obs64 against exact on
    frames the shipped agent drives; their twin must follow the agent's env step for step."""
    from benchmark import env_bench

    assert env_bench.steps_per_sec("physics", steps=30, repeats=1, observation=True) > 0
    assert env_bench.steps_per_sec("obs64", steps=30, repeats=1, observation=True) > 0
    fid = env_bench.observation_fidelity(seeds=(20000,), steps=80)
    assert fid["frames"] == 80
    assert fid["mean_abs"] < 2.0 and fid["p99"] <= 16  # the zoom-in frames are the hardest


def test_savings_replays_the_rules_on_a_checkpoints_population(random_models, tmp_path):
    import pickle

    from benchmark import savings
    from es import make_es

    ckpt = tmp_path / "run.ckpt.pkl"
    es = make_es("cma", 867, 6, 0.1, 1.0, False, seed=0)
    ckpt.write_bytes(pickle.dumps({"es": es, "generation": 7}))
    vae, rnn = random_models
    out = tmp_path / "s"
    args = [str(ckpt), "--vae", vae, "--rnn", rnn, "--renderer", "turbo", "--encoder", "numpy", "--populations", "2",
            "--num_episode", "2", "--max_len", "40", "--stall", "5,30", "--processes", "1", "--out", str(out)]
    savings.main(args)
    first = json.loads((tmp_path / "s.json").read_text())
    assert first["source"] == str(ckpt) and first["generation"] == 7 and pickle.loads(ckpt.read_bytes())["generation"] == 7
    rules = first["rules"]
    assert list(rules) == ["full 2", "full 1", "stall 5", "stall 30", "screen 1"]
    assert rules["full 2"]["frames"] == 1.0 and rules["full 1"]["frames"] == 0.5
    assert rules["screen 1"]["frames"] == 0.75 and rules["stall 5"]["frames"] <= rules["stall 30"]["frames"] <= 1.0
    assert all(len(r["gains"]) == 4 for r in rules.values())  # A -> B and B -> A, 2 populations
    sig = first["signal"]
    assert len(sig["corr_a_b"]) == 2 and sig["noise_var_per_episode"] >= 0
    corr = [sig["ranking_corr_with_quality"][n] for n in ("1", "2")]
    assert 0 <= corr[0] <= corr[1] <= 1
    savings.main(["--traces", str(tmp_path / "s.npz"), "--stall", "5,30"])  # the same figures from the saved traces
    assert json.loads((tmp_path / "s.json").read_text())["rules"] == rules
    import pytest
    from common import UserError

    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"generation": 1}))
    with pytest.raises(UserError, match="not a train.py checkpoint"):
        savings.main([str(tmp_path / "other.pkl"), *args[1:]])
    with pytest.raises(UserError, match="not both"):
        savings.main(args + ["--traces", str(tmp_path / "s.npz")])
