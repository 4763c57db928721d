"""Timings and memory of V: the NumPy encoder of rollouts and vae_train.py's training.

Functions only (no CLI); each runs in well under a minute with its defaults:
    from benchmark.vae_bench import numpy_encode_ms, numpy_decode_ms, vae_train_fps, peak_rss_mb
    numpy_encode_ms(batch=1)          # ms per frame; ~0.5 ms on 2 cores
    vae_train_fps(stream=True)        # frames/s of batch-100 steps read through FrameStream
    vae_train_fps(stream=False)       # the same from an array in memory; ~480 on 2 cores
    peak_rss_mb(40), peak_rss_mb(80)  # vae_train.py's peak memory: flat in the episode count
Writes only temporary folders, removed afterwards.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import config

config.tensorflow_on_cpu()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def numpy_encode_ms(batch=1, reps=None):
    """Milliseconds per frame of ConvVAE.encode_mu_logvar on uint8 frames (median of 3 runs).
    BLAS threads are whatever the process has: set OMP_NUM_THREADS=1 to time a rollout worker."""
    from vae.vae import ConvVAE

    v = ConvVAE(seed=0)
    x = np.random.default_rng(0).integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
    reps = reps or max(5, 400 // batch)
    return _median_ms(lambda: v.encode_mu_logvar(x), reps) / batch


def numpy_decode_ms(batch=1, reps=None):
    """Milliseconds per frame of ConvVAE.decode (the dream's per-step cost)."""
    from vae.vae import ConvVAE

    v = ConvVAE(seed=0)
    z = np.random.default_rng(0).normal(size=(batch, 32)).astype(np.float32)
    reps = reps or max(3, 100 // batch)
    return _median_ms(lambda: v.decode(z), reps) / batch


def _median_ms(fn, reps):
    fn()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t0) / reps * 1e3)
    return float(np.median(times))


def synthetic_frames(n, seed=0):
    """(n,64,64,3) uint8 frames with some structure (blocky colour fields + noise), which
    compress about as real CarRacing frames do, so writing many episodes stays quick."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    frames[:, ::7, ::5] = rng.integers(0, 256, frames[:, ::7, ::5].shape, dtype=np.uint8)
    return frames


def write_record(folder, episodes, frames=1000):
    """episodes synthetic record/*.npz files as extract.py writes them (compressed)."""
    os.makedirs(folder, exist_ok=True)
    base = synthetic_frames(frames)
    action = np.zeros((frames, 3), np.float16)
    for i in range(episodes):
        # a cheap per-episode change: every file holds different bytes
        np.savez_compressed(os.path.join(folder, f"{i}.npz"), obs=np.roll(base, i, axis=0), action=action)
    return folder


def vae_train_fps(stream=True, steps=10, batch=100, episodes=4, frames=300):
    """Frames/s of vae_train's training step at batch `batch` on this machine's CPU/GPU, after
    two warm-up steps. stream=True reads batches through vae_train's FrameStream + prefetch
    from a temporary record folder; stream=False indexes an array already in memory."""
    import records
    import vae_train
    from vae.keras_vae import build_vae

    model = build_vae()
    with tempfile.TemporaryDirectory() as tmp:
        if stream:
            write_record(tmp, episodes, frames)
            paths, lengths = records.scan_records(records.list_records(tmp), print)
            stream_ = vae_train.FrameStream(paths, lengths, batch, seed=0, block=2)

            def batches():
                epoch = 0
                while True:
                    yield from stream_.epoch(epoch)
                    epoch += 1
            source = records.prefetch(batches())
        else:
            data = synthetic_frames(episodes * frames)
            rng = np.random.default_rng(0)
            source = (data[np.sort(rng.choice(len(data), batch, replace=False))] for _ in iter(int, 1))
        for i in range(2):
            model.train_step(next(source), np.array([0, i], np.int64))
        t0 = time.perf_counter()
        for i in range(steps):
            [float(v) for v in model.train_step(next(source), np.array([0, i + 2], np.int64))]
        fps = steps * batch / (time.perf_counter() - t0)
        if stream:
            source.close()
    return fps


def peak_rss_mb(num_episodes, frames=1000, steps=3, batch=100, shuffle_episodes=16):
    """Peak resident memory (MB) of `vae_train.py` run in a subprocess for `steps` steps over
    num_episodes synthetic episodes of `frames` frames. The data set is streamed, so this
    stays flat when num_episodes doubles (it grows with --shuffle-episodes instead)."""
    with tempfile.TemporaryDirectory() as tmp:
        record = write_record(os.path.join(tmp, "record"), num_episodes, frames)
        cmd = [sys.executable, os.path.join(ROOT, "vae_train.py"), "--record-dir", record,
               "--out", os.path.join(tmp, "tf_vae", "vae.json"), "--max-steps", str(steps),
               "--batch-size", str(batch), "--shuffle-episodes", str(shuffle_episodes), "--epochs", "1"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"vae_train.py failed ({proc.returncode}): {err.decode()[-2000:]}")
    return usage.ru_maxrss / 1024.0  # Linux reports kilobytes
