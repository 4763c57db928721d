"""What survives what: damaged inputs, unwritable folders, a killed save, two runs at once.
Each fault ends in one line naming the file and the fix (exit 2), never a traceback."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import common
import rnn_train
import vae_train
from common import UserError
from conftest import ROOT
from test_rnn_train import TINY, write_series
from test_vae_train import tiny_args, write_episode


def truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def test_truncated_series_and_rnn_checkpoint_are_one_line(tmp_path):
    write_series(tmp_path / "series.npz")
    args = ["--series", str(tmp_path / "series.npz"), "--out-dir", str(tmp_path / "rnn"),
            "--initial-z-out", str(tmp_path / "iz.json"), "--num-steps", "2", *TINY]
    rnn_train.main(args)
    truncate(tmp_path / "rnn" / rnn_train.CHECKPOINT)
    with pytest.raises(UserError, match="rnn_checkpoint.npz is not a checkpoint of rnn_train.py.*BadZipFile"):
        rnn_train.main(args[:-len(TINY) - 2] + ["--num-steps", "4", "--resume", *TINY])
    truncate(tmp_path / "series.npz")
    with pytest.raises(UserError, match="series.npz is not a readable .npz file"):
        rnn_train.main(args)


def test_truncated_cma_checkpoint_is_one_line(random_models, tmp_path):
    vae, rnn = random_models
    base = tmp_path / "carracing.cma.1.2.ckpt.pkl"
    base.write_bytes(pickle.dumps({"generation": 3, "x": np.zeros(1000)})[:100])
    p = subprocess.run([sys.executable, "train.py", "-n", "2", "--num_episode", "1", "--vae", vae, "--rnn", rnn,
                        "--log-dir", str(tmp_path), "--resume", "--processes", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "ckpt.pkl cannot be read" in p.stderr and "delete" in p.stderr


def test_unwritable_output_is_one_line(capsys):
    # (root writes anywhere, so the fault is raised here as a full or read-only disk would raise it)
    def main():
        raise PermissionError(13, "Permission denied", "/data/tf_vae/vae_ckpt.npz.x.tmp")

    with pytest.raises(SystemExit) as e:
        common.main_guard(main)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "cannot write /data/tf_vae/vae_ckpt.npz.x.tmp: Permission denied" in err


def test_video_into_an_unwritable_folder_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match="not writable"):
        common.VideoWriter(str(tmp_path / "v" / "agent.mp4"))


def test_stale_temp_files_are_removed_and_a_second_run_is_refused(tmp_path, capsys):
    record = tmp_path / "record"
    record.mkdir()
    for i in range(2):
        write_episode(record / f"ep{i}.npz", i, 20)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "vae_ckpt.npz.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    foreign = out / "notes.txt.abc.tmp"  # not ours: left alone
    foreign.write_bytes(b"")
    vae_train.main(tiny_args(record, out, "--max-steps", "1"))
    assert not stale.exists() and foreign.exists()
    assert "left by a run killed while saving" in capsys.readouterr().err  # vae_train reports on stderr
    # a second run into the same folder while another process holds it
    code = ("import sys, time; from common import claim_outputs; claim_outputs(sys.argv[1], 'vae_train', []); "
            "print('held', flush=True); time.sleep(60)")
    busy = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", code, str(busy)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"another run \\(pid {holder.pid}\\) is writing into"):
            vae_train.main(tiny_args(record, busy, "--max-steps", "1"))
    finally:
        holder.kill()
        holder.wait()


def test_extract_removes_only_its_own_stale_temps(tmp_path):
    (tmp_path / "5.npz.zz.tmp").write_bytes(b"x")
    (tmp_path / "9.npz.zz.tmp").write_bytes(b"x")  # another worker's seed
    import extract

    extract.main(["--out-dir", str(tmp_path), "--num-episodes", "1", "--seed-start", "5", "--max-frames", "3"])
    assert not (tmp_path / "5.npz.zz.tmp").exists() and (tmp_path / "9.npz.zz.tmp").exists()


@pytest.mark.parametrize("flags, message", [
    (["--processes", "0"], "--processes 0"), (["--sigma_init", "0"], "--sigma_init 0"),
    (["-n", "1"], "population"), (["--max_len", "0"], "--max_len 0"), (["--seed_start", "-1"], "--seed_start -1"),
    (["--stall_frames", "-2"], "--stall_frames -2"),
    (["--screen_episodes", "4", "--num_episode", "4"], "--screen_episodes 4"),
    (["--screen_episodes", "1", "--num_episode", "1"], "nothing to screen"),
    (["--hard_episodes", "1"], "--hard_episodes needs --hard_tracks"),
    (["--hard_episodes", "5", "--num_episode", "4"], "--hard_episodes 5"),
    (["--hard_tracks", "x.txt"], "need --hard_episodes"), (["--hard_below", "700"], "need --hard_episodes"),
    (["--hard_episodes", "1", "--hard_tracks", "no/such.txt"], "--hard_tracks: cannot read no/such.txt"),
    (["--hard_episodes", "1", "--hard_tracks", "x.txt", "--screen_episodes", "1"], "exclude each other"),
])
def test_train_py_flags_are_checked_before_work(random_models, flags, message):
    import train

    vae, rnn = random_models
    with pytest.raises(UserError, match=message):
        train.parse_args(["--vae", vae, "--rnn", rnn, *flags])


@pytest.mark.parametrize("flags, message", [(["--lr", "-1"], "--lr -1"), (["--grad-clip", "-1"], "--grad-clip -1"),
                                            (["--seed", "-3"], "--seed")])
def test_rnn_train_flags_are_checked_before_work(flags, message):
    with pytest.raises(UserError, match=message):
        rnn_train.parse_args(flags)


@pytest.mark.parametrize("flags, message", [(["--max-steps", "-1"], "--max-steps -1"), (["--seed", "-1"], "--seed -1"),
                                            (["--lr", "-1"], "--lr -1")])
def test_vae_train_flags_are_checked_before_work(flags, message):
    with pytest.raises(UserError, match=message):
        vae_train.parse_args(flags)
