"""Reading record/: the episodes extract.py writes (`obs` uint8 (T,64,64,3), `action` (T,3)),
checked before use so a damaged file is reported and skipped, never a crash mid-run; and a
prefetching thread that overlaps file reading with compute. Used by vae_train.py, series.py,
rnn_train.py and plot_reconstructions.py.
"""
import os
import queue
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import config
from common import UserError

FRAME_SHAPE = (config.FRAME_SIZE, config.FRAME_SIZE, 3)


class BadRecord(Exception):
    """An npz in record/ that cannot be used; the message says why."""


def list_records(record_dir, num_episodes=None):
    """The first num_episodes *.npz of record_dir in sorted order, as the original took them."""
    if not os.path.isdir(record_dir):
        raise UserError(f"record folder {record_dir} does not exist: run extract.py first or pass --record-dir")
    names = sorted(n for n in os.listdir(record_dir) if n.endswith(".npz"))
    if not names:
        raise UserError(f"no .npz episodes in {record_dir}: run extract.py first or pass --record-dir")
    return [os.path.join(record_dir, n) for n in names[:num_episodes]]


def npz_headers(path):
    """{member: (shape, dtype)} read from the .npy headers only: no frame is decompressed."""
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                with zf.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                out[member[:-4] if member.endswith(".npy") else member] = (shape, dtype)
    except Exception as e:  # zip and npy readers raise many types on damaged files
        raise BadRecord(f"{type(e).__name__}: {e}") from None
    return out


def check_headers(path, with_action=False):
    """Episode length T from the headers; BadRecord if obs (or action) has the wrong form."""
    heads = npz_headers(path)
    if "obs" not in heads:
        raise BadRecord(f"no 'obs' array (has {sorted(heads)})")
    shape, dtype = heads["obs"]
    if len(shape) != 4 or tuple(shape[1:]) != FRAME_SHAPE or dtype != np.uint8 or shape[0] < 1:
        raise BadRecord(f"'obs' is {dtype} {shape}, expected uint8 (T,64,64,3) with T >= 1")
    if with_action:
        if "action" not in heads:
            raise BadRecord("no 'action' array")
        ashape, _ = heads["action"]
        if tuple(ashape) != (shape[0], config.ACTION_SIZE):
            raise BadRecord(f"'action' is {ashape}, expected ({shape[0]}, {config.ACTION_SIZE})")
    return int(shape[0])


def scan_records(paths, report, with_action=False):
    """(usable paths, their lengths); each unusable file is reported with the reason."""
    good, lengths = [], []
    for path in paths:
        try:
            lengths.append(check_headers(path, with_action))
            good.append(path)
        except BadRecord as e:
            report(f"skipping {path}: {e}")
    return good, lengths


def load_episode(path, with_action=False):
    """obs uint8 (T,64,64,3) [and action (T,3)], fully read and checked; BadRecord if damaged."""
    try:
        with np.load(path, allow_pickle=False) as d:
            obs = d["obs"]
            action = d["action"] if with_action else None
    except Exception as e:  # truncated zips, CRC errors, missing keys: all mean "unusable"
        raise BadRecord(f"{type(e).__name__}: {e}") from None
    if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[1:] != FRAME_SHAPE or len(obs) < 1:
        raise BadRecord(f"'obs' is {obs.dtype} {obs.shape}, expected uint8 (T,64,64,3)")
    if with_action:
        if action.shape != (len(obs), config.ACTION_SIZE):
            raise BadRecord(f"'action' is {action.shape}, expected ({len(obs)}, {config.ACTION_SIZE})")
        return obs, action
    return obs


def load_many(paths, with_action=False, threads=None):
    """load_episode of each path, in order, read by parallel threads (zlib releases the GIL:
    one thread inflates ~40k frames/s, short of a GPU's appetite); a damaged file gives its
    BadRecord in place of the episode."""
    def one(path):
        try:
            return load_episode(path, with_action)
        except BadRecord as e:
            return e

    threads = min(threads or os.cpu_count() or 1, 8, len(paths))
    if threads <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, paths))


def prefetch(iterable, ahead=2):
    """Run `iterable` in a thread that keeps at most `ahead` items made beyond the one in
    use: file reading overlaps compute (zlib, BLAS and TF release the GIL) with bounded
    memory. Exceptions of the producer are raised here."""
    q = queue.Queue()
    slots = threading.Semaphore(ahead)  # a slot is given back when the consumer asks for the next item
    stop = threading.Event()
    done = object()

    def work():
        try:
            it = iter(iterable)
            while True:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(it)
                except StopIteration:
                    q.put((True, done))
                    return
                q.put((True, item))
        except BaseException as e:
            q.put((False, e))

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
            item = None
            slots.release()
    finally:
        stop.set()
