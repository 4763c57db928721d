"""records.py + vae_train.py (streamed training, checkpoints, resume, damaged files), on a
tiny synthetic record/ of 4 episodes of unequal length."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import records
import vae_train
from common import UserError
from vae.vae import ConvVAE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENGTHS = [30, 40, 25, 35]


def write_episode(path, episode, length):
    """Frames whose pixel (0,0) holds (episode, t) so every frame can be identified."""
    rng = np.random.default_rng(episode)
    obs = rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8)
    obs[:, 0, 0, 0] = episode
    obs[:, 0, 0, 1] = np.arange(length)
    action = rng.uniform(-1, 1, (length, 3)).astype(np.float16)
    np.savez_compressed(path, obs=obs, action=action)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    d = tmp_path_factory.mktemp("record")
    for i, n in enumerate(LENGTHS):
        write_episode(d / f"ep{i}.npz", i, n)
    return d


@pytest.fixture
def damaged_record(record, tmp_path):
    """record/ plus a truncated file (caught by the header scan) and one with a corrupted
    compressed body (zip directory intact: only the full read fails)."""
    d = tmp_path / "record"
    shutil.copytree(record, d)
    data = (record / "ep1.npz").read_bytes()
    (d / "trunc.npz").write_bytes(data[: len(data) // 2])
    body = bytearray(data)
    mid = len(body) // 2
    body[mid:mid + 64] = bytes(64)
    (d / "zcrc.npz").write_bytes(bytes(body))
    (d / "wrong.npz").write_bytes(b"")
    np.savez(d / "wshape.npz", obs=np.zeros((5, 32, 32, 3), np.uint8), action=np.zeros((5, 3), np.float16))
    return d


def tiny_args(record, out, *extra):
    return ["--record-dir", str(record), "--out", str(out / "vae.json"), "--batch-size", "8",
            "--log-every", "1", "--shuffle-episodes", "2", *extra]


def test_frame_stream_shuffles_across_episodes_and_skips_exactly(record):
    paths, lengths = records.scan_records(records.list_records(str(record)), print)
    assert lengths == LENGTHS
    stream = vae_train.FrameStream(paths, lengths, 8, seed=0, block=4)
    e0 = list(stream.epoch(0))
    assert len(e0) == sum(LENGTHS) // 8 == stream.steps_per_epoch(0)
    ids = [(int(f[0, 0, 0]), int(f[0, 0, 1])) for b in e0 for f in b]
    assert len(set(ids)) == len(ids)  # no frame twice in an epoch
    assert all(len({int(f[0, 0, 0]) for f in b}) > 1 for b in e0)  # batches mix episodes
    e1 = list(stream.epoch(1))
    assert [b[:, 0, 0, :2].tolist() for b in e1] != [b[:, 0, 0, :2].tolist() for b in e0]
    blocked = vae_train.FrameStream(paths, lengths, 8, seed=0, block=2)
    full = list(blocked.epoch(0))
    for skip in (3, len(full) - 1):  # inside the second block / inside the first
        tail = list(blocked.epoch(0, skip=skip))
        assert len(tail) == len(full) - skip
        assert all(np.array_equal(a, b) for a, b in zip(tail, full[skip:]))


def test_tiny_run_writes_loadable_json(record, tmp_path):
    steps = vae_train.main(tiny_args(record, tmp_path, "--max-steps", "3"))
    assert steps == 3
    v = ConvVAE()
    v.load_json(str(tmp_path / "vae.json"))
    assert v.encode_mu_logvar(np.zeros((1, 64, 64, 3), np.uint8))[0].shape == (1, 32)
    log = json.loads((tmp_path / "vae_log.json").read_text())
    assert [e["step"] for e in log["entries"]] == [1, 2, 3]
    assert {"loss", "r_loss", "kl_loss"} <= set(log["entries"][0])
    from common import read_scalars

    tb = read_scalars(str(tmp_path / "tb"))
    assert [s for s, _ in tb["r_loss"]] == [1, 2, 3]
    assert np.allclose([v for _, v in tb["kl_loss"]], [e["kl_loss"] for e in log["entries"]])


def test_resume_continues_steps_and_optimizer_state(record, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    vae_train.main(tiny_args(record, full, "--max-steps", "8"))
    vae_train.main(tiny_args(record, part, "--max-steps", "5"))  # "interrupted" inside block 2
    assert vae_train.main(tiny_args(record, part, "--max-steps", "8", "--resume")) == 8
    a, b = np.load(full / "vae_ckpt.npz"), np.load(part / "vae_ckpt.npz")
    assert json.loads(str(b["meta"]))["step"] == 8
    paths = list(b["opt_paths"])
    assert int(b[f"opt{paths.index('iteration'):03d}"]) == 8  # Adam went on counting
    # same batches, same noise, same Adam moments: the resumed run is the uninterrupted one
    for k in a.files:
        if k.startswith("w") or (k.startswith("opt") and k != "opt_paths"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)
    log = json.loads((part / "vae_log.json").read_text())
    assert [e["step"] for e in log["entries"]] == list(range(1, 9))


def test_damaged_files_are_reported_and_skipped(damaged_record, tmp_path, capsys):
    vae_train.main(tiny_args(damaged_record, tmp_path, "--max-steps", "16", "--shuffle-episodes", "8"))
    err = capsys.readouterr().err
    for name in ("trunc.npz", "zcrc.npz", "wrong.npz", "wshape.npz"):
        assert f"{name}:" in err, name
    assert "(T,64,64,3)" in err


def test_no_usable_files_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no .npz episodes"):
        vae_train.main(["--record-dir", str(tmp_path), "--out", str(tmp_path / "o" / "vae.json")])
    (tmp_path / "a.npz").write_bytes(b"not a zip")
    r = subprocess.run([sys.executable, "vae_train.py", "--record-dir", str(tmp_path),
                        "--out", str(tmp_path / "o" / "vae.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "a.npz" in r.stderr and "no usable episodes" in r.stderr


def test_max_minutes_stops_with_everything_saved(record, tmp_path, capsys):
    assert vae_train.main(tiny_args(record, tmp_path, "--max-minutes", "1e-6")) == 1
    assert "--max-minutes 1e-06 reached" in capsys.readouterr().out
    with np.load(tmp_path / "vae_ckpt.npz") as d:
        assert json.loads(str(d["meta"]))["step"] == 1
    ConvVAE().load_json(str(tmp_path / "vae.json"))


def test_init_starts_from_given_weights(record, tmp_path):
    """With lr 0 Adam moves nothing, so the saved V is the --init V, and without --init it is not."""
    start = tmp_path / "start.json"
    ConvVAE(seed=5).save_json(str(start))
    vae_train.main(tiny_args(record, tmp_path / "a", "--max-steps", "1", "--lr", "0", "--init", str(start)))
    vae_train.main(tiny_args(record, tmp_path / "b", "--max-steps", "1", "--lr", "0"))
    assert (tmp_path / "a" / "vae.json").read_bytes() == start.read_bytes()
    assert (tmp_path / "b" / "vae.json").read_bytes() != start.read_bytes()
    with pytest.raises(UserError, match="missing.json"):
        vae_train.main(tiny_args(record, tmp_path / "c", "--max-steps", "1", "--init", str(tmp_path / "missing.json")))


def test_holdout_scores_the_last_episodes_it_never_trains_on(record, tmp_path):
    start = tmp_path / "start.json"
    ConvVAE(seed=5).save_json(str(start))
    vae_train.main(tiny_args(record, tmp_path, "--max-steps", "4", "--save-every", "2", "--lr", "0",
                             "--init", str(start), "--holdout", "1"))
    with np.load(tmp_path / "vae_ckpt.npz") as d:  # trained on ep0-ep2 only
        assert json.loads(str(d["meta"]))["data"]["frames"] == sum(LENGTHS[:3])
    held = json.loads((tmp_path / "vae_log.json").read_text())["holdout"]
    assert [h["step"] for h in held] == [0, 2, 4] and {h["frames"] for h in held} == {LENGTHS[3]}
    # lr 0 and a fixed noise seed: the same score each time; the KL term needs no noise, so NumPy's
    # encoder gives it: the per-frame KL floored at kl_tolerance * z_size, averaged over ep3's frames
    assert len({(h["r_loss"], h["kl_loss"]) for h in held}) == 1
    v = ConvVAE()
    v.load_json(str(start))
    with np.load(record / "ep3.npz") as ep:
        mu, logvar = v.encode_mu_logvar(ep["obs"])
    kl = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1)
    assert held[0]["kl_loss"] == pytest.approx(np.maximum(kl, 0.5 * 32).mean(), rel=1e-3)
    assert 0 < held[0]["r_loss"] < 64 * 64 * 3
    assert held[0]["loss"] == pytest.approx(held[0]["r_loss"] + held[0]["kl_loss"], abs=1e-3)
    with pytest.raises(UserError, match="--holdout 4 leaves no episode"):
        vae_train.main(tiny_args(record, tmp_path / "b", "--holdout", "4"))


def test_divergence_stops_and_keeps_the_last_good_save(record, tmp_path):
    vae_train.main(tiny_args(record, tmp_path, "--max-steps", "2"))
    good = {n: (tmp_path / n).read_bytes() for n in ("vae.json", "vae_ckpt.npz")}
    with pytest.raises(UserError, match="V diverged at step .*lower --lr"):
        vae_train.main(tiny_args(record, tmp_path, "--max-steps", "30", "--resume", "--lr", "1e6"))
    assert {n: (tmp_path / n).read_bytes() for n in good} == good  # nothing broken was written
