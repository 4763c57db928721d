"""rnn_train.py on a tiny synthetic series.npz (resume, NaN stop, short episodes) and install_models.py."""
import json
import os

import numpy as np
import pytest

import rnn_train
from common import UserError
from rnn.rnn import MDNRNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--batch-size", "4", "--seq-len", "10", "--seed", "3"]


def write_series(path, lengths=(15, 15, 12, 15, 8, 15), t=15, seed=0):
    rng = np.random.default_rng(seed)
    n = len(lengths)
    mu = (rng.standard_normal((n, t, 32)) * 0.5).astype(np.float16)
    logvar = np.full((n, t, 32), -3.0, np.float16)
    action = rng.uniform(-1, 1, (n, t, 3)).astype(np.float16)
    for k, length in enumerate(lengths):   # zero-padded past the true length, as series.py writes
        mu[k, length:] = logvar[k, length:] = action[k, length:] = 0
    np.savez_compressed(path, mu=mu, logvar=logvar, action=action, length=np.array(lengths, np.int32),
                        files=np.array([f"{k}.npz" for k in range(n)]))
    return mu, logvar


def train(tmp, name, *extra):
    out = tmp / name
    rnn_train.main(["--series", str(tmp / "series.npz"), "--out-dir", str(out),
                    "--initial-z-out", str(out / "initial_z.json")] + TINY + list(extra))
    return out


def checkpoint(out):
    with np.load(out / rnn_train.CHECKPOINT) as f:
        meta = json.loads(str(f["meta"]))
        return meta, [f[k] for k in sorted(f.files) if k.startswith("w")], f["opt000"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 6-step run, and a run stopped after 3 steps then resumed to 6."""
    tmp = tmp_path_factory.mktemp("rnn_train")
    mu, logvar = write_series(tmp / "series.npz")
    full = train(tmp, "full", "--num-steps", "6", "--save-every", "2")
    part = train(tmp, "part", "--num-steps", "3")
    meta3, weights3, _ = checkpoint(part)
    train(tmp, "part", "--num-steps", "6", "--resume")
    return dict(tmp=tmp, mu=mu, logvar=logvar, full=full, part=part, meta3=meta3, weights3=weights3)


def test_tiny_run_writes_loadable_outputs(runs):
    out = runs["full"]
    m = MDNRNN()
    m.load_json(str(out / "rnn.json"))
    assert np.isfinite(m.kernel).all() and np.abs(m.kernel).sum() > 0
    iz = np.array(json.load(open(out / "initial_z.json")))
    assert iz.shape == (2, 6, 32) and iz.dtype.kind == "i"
    np.testing.assert_array_equal(iz[0], np.round(runs["mu"][:, 0].astype(np.float64) * 10000))
    np.testing.assert_array_equal(iz[1], np.round(runs["logvar"][:, 0].astype(np.float64) * 10000))
    log = json.load(open(out / rnn_train.LOG))
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["lr"] == 1e-3 for r in log)
    from common import read_scalars

    tb = read_scalars(str(out / "tb"))
    assert [s for s, _ in tb["loss"]] == [1, 2, 3, 4, 5, 6]  # resumed run appends steps 4..6
    assert np.allclose([v for _, v in tb["loss"]], [r["loss"] for r in log], atol=1e-5)


def test_resume_continues_with_optimizer_state(runs):
    assert runs["meta3"]["step"] == 3
    meta, weights, opt_iterations = checkpoint(runs["part"])
    assert meta["step"] == 6 and int(opt_iterations) == 6   # Adam's step count carried over
    _, full_weights, _ = checkpoint(runs["full"])
    # the resumed run ends where the uninterrupted one did: same batches, same Adam moments
    for a, b, before in zip(weights, full_weights, runs["weights3"]):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert max(np.abs(a - b).max() for a, b in zip(weights, runs["weights3"])) > 1e-3  # it did train on
    log = json.load(open(runs["part"] / rnn_train.LOG))
    full_log = json.load(open(runs["full"] / rnn_train.LOG))
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["loss"] for r in log], [r["loss"] for r in full_log], atol=1e-4)


def test_nan_stops_and_keeps_last_good_weights(runs, monkeypatch):
    from rnn.keras_rnn import Trainer

    real, calls = Trainer.train_step, []

    def train_step(self, x, y):  # the 3rd step is fed NaN inputs, as a diverging run would produce
        calls.append(1)
        return real(self, np.full_like(x, np.nan) if len(calls) == 3 else x, y)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    tmp = runs["tmp"]
    out = tmp / "nan"
    with pytest.raises(UserError) as e:
        train(tmp, "nan", "--num-steps", "6", "--save-every", "2")
    assert "loss became nan at step 3" in str(e.value) and "last good weights (step 2)" in str(e.value)
    monkeypatch.setattr(Trainer, "train_step", real)
    meta, _, _ = checkpoint(out)
    assert meta["step"] == 2
    # rnn.json on disk is the step-2 save: equal to the uninterrupted run's weights after 2 steps
    good = train(tmp, "two", "--num-steps", "2")
    kept, want = MDNRNN(), MDNRNN()
    kept.load_json(str(out / "rnn.json"))
    want.load_json(str(good / "rnn.json"))
    for a, b in zip(kept.weights, want.weights):   # identical up to one rnn.json quantum
        np.testing.assert_allclose(a, b, rtol=0, atol=1.01e-4)
    assert [r["step"] for r in json.load(open(out / rnn_train.LOG))] == [1, 2]


def test_too_short_episodes_are_a_clear_error(tmp_path):
    write_series(tmp_path / "series.npz", lengths=(8, 9), t=10)
    with pytest.raises(UserError, match=r"series\.npz: no episode has the 11 frames.*lengths 8\.\.9"):
        rnn_train.main(["--series", str(tmp_path / "series.npz"), "--out-dir", str(tmp_path / "o")] + TINY)
    with pytest.raises(UserError, match="missing.npz does not exist"):
        rnn_train.main(["--series", str(tmp_path / "missing.npz")])



def test_resume_with_no_checkpoint_starts_fresh_like_the_other_trainers(tmp_path, capsys):
    write_series(tmp_path / "series.npz")
    rnn_train.main(["--series", str(tmp_path / "series.npz"), "--out-dir", str(tmp_path / "o"),
                    "--initial-z-out", str(tmp_path / "iz.json"), "--resume", "--num-steps", "1"] + TINY)
    assert "no checkpoint" in capsys.readouterr().out
    assert (tmp_path / "o" / rnn_train.CHECKPOINT).exists() and (tmp_path / "iz.json").exists()


def test_max_minutes_stops_with_everything_saved(runs, capsys):
    out = train(runs["tmp"], "timed", "--num-steps", "50", "--save-every", "20", "--max-minutes", "1e-6")
    meta, _, opt_iterations = checkpoint(out)
    assert meta["step"] == 1 and int(opt_iterations) == 1  # saved at the step it stopped, not at 20
    assert "--max-minutes 1e-06 reached at step 1" in capsys.readouterr().out
    assert [r["step"] for r in json.load(open(out / rnn_train.LOG))] == [1]


def test_holdout_episodes_are_scored_and_never_trained_on(runs, monkeypatch):
    """Lengths (15, 15, 12, 15, 8, 15): episode 4 is too short, so the usable ones are 0 1 2 3 5
    and --holdout 2 keeps 3 and 5 out of every training batch."""
    drawn, real = [], rnn_train.make_batch
    monkeypatch.setattr(rnn_train, "make_batch", lambda s, idx, *a: drawn.append(set(idx.tolist())) or real(s, idx, *a))
    out = train(runs["tmp"], "held", "--num-steps", "4", "--save-every", "2", "--holdout", "2")
    log = json.load(open(out / rnn_train.LOG))
    scored = [r for r in log if "holdout_loss" in r]
    assert [r["step"] for r in scored] == [0, 2, 4] and all(np.isfinite(r["holdout_loss"]) for r in scored)
    # logvar is -3 everywhere: the entropy of N(mu, e^-3) is log(2 pi e) / 2 - 3 / 2
    assert log[0]["holdout_floor"] == pytest.approx(0.5 * np.log(2 * np.pi * np.e) - 1.5, abs=1e-6)
    assert drawn[0] == {3, 5} and drawn.count({3, 5}) == 3  # evaluated at steps 0, 2 and 4
    training = [d for d in drawn if d != {3, 5}]
    assert len(training) == 4 and not set().union(*training) & {3, 5}

    # the same weights score the same: resuming re-evaluates nothing, a fresh evaluation matches
    drawn.clear()
    train(runs["tmp"], "held", "--num-steps", "4", "--holdout", "2", "--resume")
    assert drawn == []
    with pytest.raises(UserError, match="--holdout 5 leaves no episode to train on"):
        train(runs["tmp"], "held2", "--num-steps", "1", "--holdout", "5")


def test_init_starts_from_given_weights(runs):
    """With lr 0 Adam moves nothing, so the saved M is the --init M, and without --init it is not."""
    start = runs["tmp"] / "start.json"
    m = MDNRNN()
    m.set_random_params(stdev=0.1)
    m.save_json(str(start))
    a = train(runs["tmp"], "init_a", "--num-steps", "1", "--lr", "0", "--init", str(start))
    b = train(runs["tmp"], "init_b", "--num-steps", "1", "--lr", "0")
    assert (a / "rnn.json").read_bytes() == start.read_bytes()
    assert (b / "rnn.json").read_bytes() != start.read_bytes()
    with pytest.raises(UserError, match="missing.json"):
        train(runs["tmp"], "init_c", "--num-steps", "1", "--init", str(runs["tmp"] / "missing.json"))
