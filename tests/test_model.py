"""The agent: controller files, random init, simulate vs simulate_batch, the model.py command line."""
import json
import subprocess

import numpy as np
import pytest

import common
import config
import model
from common import UserError
from conftest import PYTHON, ROOT

SHIPPED = f"{ROOT}/log/carracing.cma.16.64.best.json"


@pytest.fixture
def agent(random_models):
    vae_path, rnn_path = random_models
    return model.make_model(vae_path=vae_path, rnn_path=rnn_path)


def write_controller(path, params, reward=123.0):
    # the original format: [params (867 floats, 4 decimals), reward]
    with open(path, "w") as f:
        json.dump([np.round(params, 4).tolist(), reward], f)


def test_controller_layout_bias_first_then_weight_rows(agent):
    params = np.arange(config.CONTROLLER_PARAMS, dtype=float)
    agent.set_model_params(params)
    assert agent.param_count == 867
    np.testing.assert_array_equal(agent.bias, [0, 1, 2])
    assert agent.weight.shape == (288, 3)
    np.testing.assert_array_equal(agent.weight[0], [3, 4, 5])  # row-major (288, 3)
    np.testing.assert_array_equal(agent.get_model_params(), params)


def test_action_ranges_and_lstm_steps(agent):
    rng = np.random.default_rng(0)
    agent.set_model_params(rng.normal(0, 3, 867))
    agent.reset()
    z = rng.normal(size=32).astype(np.float32)
    a = agent.get_action(z)
    assert a.shape == (3,) and -1 <= a[0] <= 1 and 0 <= a[1] <= 1 and 0 <= a[2] <= 1
    assert np.abs(agent.state.h).sum() > 0  # the LSTM stepped on [z, action]


def test_controller_file_in_the_original_format_loads_and_drives(agent, tmp_path):
    params = np.random.default_rng(1).normal(0, 0.1, 867)
    path = tmp_path / "carracing.cma.16.64.best.json"
    write_controller(path, params)
    agent.load_model(str(path))
    np.testing.assert_allclose(agent.get_model_params(), np.round(params, 4))
    agent.make_env(renderer="stock")
    rewards, steps = model.simulate(agent, train_mode=True, num_episode=1, seed=3, max_len=40)
    assert steps[0] == 40 and np.isfinite(rewards[0])


def test_bad_controller_files_are_reported(agent, tmp_path):
    short = tmp_path / "short.json"
    write_controller(short, np.zeros(10))
    with pytest.raises(UserError, match="short.json"):
        agent.load_model(str(short))
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(UserError, match="junk.json"):
        agent.load_model(str(junk))


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(UserError, match="nothere"):
        model.make_model(vae_path=str(tmp_path / "nothere.json"), rnn_path=str(tmp_path / "x.json"))


def test_random_init_is_the_originals_cauchy_policy(agent):
    np.random.seed(0)
    agent.init_random_model_params(stdev=0.01)
    # V and M weights pass through set_model_params (/10000), the controller's do not
    # (Cauchy: medians, since the tails are huge) |cauchy| has median 1, so 0.01 here
    assert 0.005 < np.median(np.abs(agent.get_model_params())) < 0.02
    assert 0.5e-6 < np.median(np.abs(agent.vae.weights[0])) < 2e-6
    assert 0.5e-6 < np.median(np.abs(agent.rnn.kernel)) < 2e-6


@pytest.mark.parametrize("encoder", ["numpy", "int8"])
def test_batched_rollouts_equal_one_at_a_time(encoder):
    """Bit for bit: the shipped agent drives long enough for one differing bit anywhere in V, M
    or C (BLAS rounds a batch differently from a row) to change a return."""
    agent = model.make_model(encoder=encoder)
    agent.load_model(SHIPPED)
    agent.make_env(renderer="exact")
    seeds = [0, 3, 5, 6]
    single = [model.simulate(agent, train_mode=True, num_episode=1, seed=s, max_len=300)[0][0] for s in seeds]
    batched, steps = model.simulate_batch(agent, seeds, max_len=300, renderer="exact")
    np.testing.assert_array_equal(batched, single)
    assert list(steps) == [300] * len(seeds)


def test_model_py_norender_prints_returns_and_summary(random_models, tmp_path):
    vae_path, rnn_path = random_models
    ctrl = tmp_path / "c.json"
    write_controller(ctrl, np.random.default_rng(3).normal(0, 0.1, 867))
    out = subprocess.run([PYTHON, "model.py", "norender", str(ctrl), "7", "--episodes", "2",
                          "--max-frames", "30", "--vae", vae_path, "--rnn", rnn_path, "--workers", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(l.startswith("seed 7 reward") or l.startswith("seed 8 reward") for l in lines) == 2
    assert any("average_reward" in l and "stdev" in l for l in lines), out.stdout
    # its output is what compare_scores.py reads: the same agent against itself differs by 0
    (tmp_path / "a.txt").write_text(out.stdout)
    cmp = subprocess.run([PYTHON, "compare_scores.py", str(tmp_path / "a.txt"), str(tmp_path / "a.txt")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cmp.returncode == 0, cmp.stderr
    assert "B - A over 2 tracks: +0.00" in cmp.stdout and "no clear difference" in cmp.stdout, cmp.stdout


def test_model_py_render_headless_writes_video(random_models, tmp_path):
    vae_path, rnn_path = random_models
    video = tmp_path / "agent.mp4"
    env = {"SDL_VIDEODRIVER": "dummy", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([PYTHON, "model.py", "render", "nothere.json", "--video", str(video)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2 and "nothere.json not found" in out.stderr and "Traceback" not in out.stderr
    # no FILE, a lone number is the seed: random weights, as the original
    out = subprocess.run([PYTHON, "model.py", "render", "5", "--max-frames", "25", "--video", str(video)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "seed 5" in out.stdout and "terminal reward" in out.stdout
    import imageio.v2 as imageio

    assert sum(1 for _ in imageio.get_reader(str(video))) == 25


def test_non_finite_weights_are_refused_on_load(agent, random_models, tmp_path):
    params = np.random.default_rng(0).normal(0, 0.1, 867).tolist()
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps([params, 1.0]).replace(str(params[5]), "NaN", 1))
    with pytest.raises(UserError, match="NaN or inf"):
        agent.load_model(str(bad))
    vae_path, rnn_path = random_models
    for key, path in (("vae", vae_path), ("rnn", rnn_path)):
        weights = json.loads(open(path).read())
        first = np.array(weights[0], dtype=float)
        first.flat[0] = np.inf
        weights[0] = first.tolist()
        broken = tmp_path / f"{key}.json"
        broken.write_text(json.dumps(weights))  # Python's json writes inf as Infinity
        paths = {"vae_path": vae_path, "rnn_path": rnn_path, f"{key}_path": str(broken)}
        with pytest.raises(UserError, match="NaN or inf"):
            model.make_model(**paths)


def test_a_non_finite_action_fails_instead_of_scoring(agent):
    # NaN actions used to send the car to (nan, nan) and end the episode "lap finished", ~1000 points
    agent.bias = np.array([np.nan, 0.0, 0.0])  # as if V or M produced NaN features
    agent.make_env(renderer="turbo")
    with pytest.raises(model.NonFiniteAction, match="not finite at step 0"):
        model.simulate(agent, train_mode=True, num_episode=1, seed=0, max_len=20)
    with pytest.raises(model.NonFiniteAction):
        model.simulate_batch(agent, [0, 1], max_len=20, renderer="turbo")


def test_stalled_episodes_end_early_and_are_charged_what_the_frames_would_cost(agent):
    # no gas, full brake: the car never reaches a new tile, so each frame costs -0.1 to the end
    params = np.zeros(867)
    params[:3] = [0.0, -50.0, 50.0]
    agent.set_model_params(params)
    full, full_steps = model.simulate_batch(agent, [0, 1], max_len=200, renderer="turbo")
    cut, cut_steps = model.simulate_batch(agent, [0, 1], max_len=200, renderer="turbo", stall=30)
    np.testing.assert_allclose(cut, full, atol=1e-9)
    assert list(full_steps) == [200, 200] and max(cut_steps) <= 31


def test_stall_replayed_from_reward_traces_matches_simulate_batch(agent):
    # benchmark.savings prices --stall_frames from full episodes' rewards per frame
    from benchmark.savings import stalled

    rng = np.random.default_rng(5)
    for _ in range(2):
        agent.set_model_params(rng.normal(0, 0.5, 867))
        traces = []
        full, full_steps = model.simulate_batch(agent, [3, 4], max_len=150, renderer="turbo", traces=traces)
        assert [len(t) for t in traces] == list(full_steps)
        np.testing.assert_allclose([t.sum() for t in traces], full, atol=1e-9)
        for frames in (5, 20, 60):
            cut, cut_steps = model.simulate_batch(agent, [3, 4], max_len=150, renderer="turbo", stall=frames)
            replay = [stalled(t, frames, max_steps=150) for t in traces]
            np.testing.assert_allclose([r for r, _ in replay], cut, atol=1e-6)
            assert [f for _, f in replay] == list(cut_steps)


def test_score_summary_reports_robust_figures():
    line = common.score_summary([100.0, 900.0, 910.0, 920.0, 930.0, 940.0, 950.0, 990.0], [0, 1, 1, 0, 0, 0, 1, 0])
    # middle half: 910..940 -> 925
    assert "interquartile mean 925.00" in line and "median 925.00" in line
    assert "1/8 under 500" in line and "3/8 laps finished" in line and "standard error" in line


@pytest.mark.parametrize("flags, message", [(["--episodes", "0"], "--episodes 0"),
                                            (["--max-frames", "-5"], "--max-frames -5"),
                                            (["--workers", "0"], "--workers 0")])
def test_model_py_bad_flags_are_one_line(flags, message):
    with pytest.raises(UserError, match=message):
        model.main(["norender", SHIPPED, "10000", *flags])


def test_compare_scores_pairs_by_track(tmp_path):
    import compare_scores
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    # B is 10 better on every shared track (20000-20002); 20003 is A's only: left out
    a.write_text("model size 867\nseed 20000 reward 800.00 steps 1000\nseed 20001 reward 300.50 steps 1000\n"
                 "seed 20002 reward 900.00 steps 900 lap finished\nseed 20003 reward 10.00 steps 1000\n")
    b.write_text("seed 20002 reward 910.00 steps 880 lap finished\nseed 20000 reward 810.00 steps 1000\n"
                 "seed 20001 reward 310.50 steps 1000\n")
    seeds, d = compare_scores.paired(compare_scores.read_scores(a), compare_scores.read_scores(b))
    assert seeds == [20000, 20001, 20002] and np.allclose(d, 10.0)
    assert "+10.00 +- 0.00" in compare_scores.difference_summary(d)
    assert "B is better" in compare_scores.difference_summary(d + np.array([1.0, -1.0, 0.0]))
    # noise bigger than the mean difference: no verdict
    assert "no clear difference" in compare_scores.difference_summary(np.array([50.0, -40.0, 10.0]))
    assert "A is better" in compare_scores.difference_summary(np.array([-9.0, -11.0, -10.0]))
    a.write_text(a.read_text() + "seed 20004 reward 905.00 steps 950 lap finished\n")
    b.write_text(b.read_text() + "seed 20004 reward 915.00 steps 850 lap finished\n")
    sa, sb = compare_scores.read_scores(a), compare_scores.read_scores(b)
    assert sb[20004] == (915.0, True, 850)
    # the laps both finished, 20002 (900 -> 880) and 20004 (950 -> 850): -60 +- 40 frames
    assert "on the 2 laps both finished: B - A -60.0 +- 40.0 frames a lap (A 925" in \
        compare_scores.speed_summary(sa, sb, sorted(sa.keys() & sb.keys()))
    (tmp_path / "nothing.txt").write_text("100 episodes in 258s\n")
    with pytest.raises(UserError, match="no 'seed N reward R steps S' lines"):
        compare_scores.read_scores(tmp_path / "nothing.txt")
    with pytest.raises(UserError, match="cannot read"):
        compare_scores.read_scores(tmp_path / "missing.txt")
    c = tmp_path / "c.txt"
    c.write_text("seed 20000 reward 5.00 steps 10\n")
    with pytest.raises(UserError, match="share 1 track seed"):
        compare_scores.main([str(a), str(c)])
    # what a paired comparison must not average silently: one line naming the file
    for text, message in (("seed 5 reward nan steps 10\n", "seed 5 has reward nan"),
                          ("seed 5 reward 1.2.3 steps 10\n", "seed 5 has reward 1.2.3"),
                          ("seed 5 reward 1.0 steps 10\nseed 5 reward 2.0 steps 10\n", "seed 5 twice")):
        c.write_text(text)
        with pytest.raises(UserError, match=message):
            compare_scores.read_scores(c)
    c.write_bytes(b"\x93NUMPY\xff\xfe")
    with pytest.raises(UserError, match="is not text"):
        compare_scores.read_scores(c)
    # a controller passed by mistake: the hint never suggests writing over it
    with pytest.raises(UserError, match="tee a.txt"):
        compare_scores.read_scores(SHIPPED)


def test_z_noise_scales_the_sampling_noise_and_the_controller_file_says_it(agent, tmp_path):
    rng = np.random.default_rng(0)
    mu, logvar, noise = (rng.normal(size=32).astype(np.float32) for _ in range(3))
    np.testing.assert_array_equal(model.sample_z(mu, logvar, noise), mu + np.exp(logvar / 2.0) * noise)
    np.testing.assert_array_equal(model.sample_z(mu, logvar, noise, 0.0), mu)
    np.testing.assert_allclose(model.sample_z(mu, logvar, noise, 0.5) - mu, np.exp(logvar / 2.0) * noise / 2, atol=1e-6)

    params = rng.normal(0, 0.1, 867)
    plain, quiet = tmp_path / "plain.json", tmp_path / "quiet.json"
    write_controller(plain, params)
    quiet.write_text(json.dumps([np.round(params, 4).tolist(), 1.0, {"z_noise": 0}]))
    agent.load_model(str(quiet))
    assert agent.z_noise == 0.0
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    z, mu, _ = agent.encode_obs(frame)
    np.testing.assert_array_equal(z, mu)  # C sees V's mean
    agent.make_env(renderer="obs64")
    single = [model.simulate(agent, train_mode=True, num_episode=1, seed=s, max_len=40)[0][0] for s in (2, 7)]
    np.testing.assert_array_equal(model.simulate_batch(agent, [2, 7], max_len=40, renderer="obs64")[0], single)
    agent.load_model(str(plain))  # a file without it: the original's sampled z
    assert agent.z_noise == 1.0
    for bad in (-1, "loud", True):
        quiet.write_text(json.dumps([params.tolist(), 1.0, {"z_noise": bad}]))
        with pytest.raises(UserError, match="quiet.json: z_noise"):
            agent.load_model(str(quiet))
