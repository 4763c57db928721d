"""Small helpers shared by every script: atomic files, displays, videos, clear errors."""
import errno
import json
import os
import sys
import tempfile
import time
import types

import numpy as np


class UserError(Exception):
    """A problem the user can fix (a missing file, a bad flag); scripts print it without a traceback."""


def die(message):
    """Print a one-line error naming the problem and its fix, then exit 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main_guard(main):
    """Run main(); turn UserError, and a folder that cannot be written, into a clean message and
    exit code 2 (files written before stay whole: every save is atomic)."""
    try:
        return main()
    except UserError as e:
        die(str(e))
    except OSError as e:
        if isinstance(e, PermissionError) or e.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            where = e.filename or "a file"
            die(f"cannot write {where}: {e.strerror}. Free some space or pick a writable folder "
                "(the output flags), then run again (with --resume where the stage has it)")
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _atomic(path, write):
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    _atomic(path, lambda f: f.write(data))


def atomic_write_json(path, obj, **kwargs):
    atomic_write_bytes(path, json.dumps(obj, **kwargs).encode())


def atomic_savez(path, compressed=True, **arrays):
    save = np.savez_compressed if compressed else np.savez
    _atomic(path, lambda f: save(f, **arrays))


_LOCKS = {}  # lock path -> its open file: held until the process exits


def claim_outputs(folder, name, outputs, report=print):
    """Make sure one run at a time writes `outputs` (file names) in `folder`, then delete the temp
    files a killed save of them left behind. The lock (folder/.NAME.lock, flock) is released by
    the kernel when the process ends, however it ends."""
    import fcntl
    import glob

    os.makedirs(folder, exist_ok=True)
    path = os.path.realpath(os.path.join(folder, f".{name}.lock"))
    f = _LOCKS.get(path) or open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise UserError(f"another run (pid {pid}) is writing into {folder}: wait for it to end, or give "
                        "this one another output folder")
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _LOCKS[path] = f
    for out in outputs:
        for tmp in glob.glob(os.path.join(glob.escape(folder), glob.escape(out) + ".*.tmp")):
            os.unlink(tmp)
            report(f"removed {tmp}, left by a run killed while saving")


def save_checkpoint(path, weights, opt_values, meta, opt_paths=None):
    """A trainer's checkpoint (vae_train.py, rnn_train.py): weights, optimizer state and a meta
    dict (step counters, flags) in one uncompressed npz, written atomically."""
    arrays = {f"w{i:03d}": w for i, w in enumerate(weights)}
    arrays.update({f"opt{i:03d}": v for i, v in enumerate(opt_values)})
    if opt_paths is not None:
        arrays["opt_paths"] = np.array(opt_paths)
    atomic_savez(path, compressed=False, meta=np.array(json.dumps(meta)), **arrays)


def load_checkpoint(path, who):
    """(meta, weights, optimizer state) from save_checkpoint's npz; a missing or damaged file is
    one UserError naming it (`who` wrote it)."""
    import zipfile

    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} does not exist")

    def numbered(files, prefix):
        keys = [k for k in files if k.startswith(prefix) and k[len(prefix):].isdigit()]
        return sorted(keys, key=lambda k: int(k[len(prefix):]))
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            return meta, [f[k] for k in numbered(f.files, "w")], [f[k] for k in numbered(f.files, "opt")]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is not a checkpoint of {who} ({type(e).__name__}: {e}); delete it and "
                        "start again without --resume")


def read_json(path, what="file"):
    """json.load with an error that names the file instead of a traceback."""
    if not os.path.exists(path):
        raise UserError(f"{what} {path} does not exist")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}); re-create or replace it")


def standard_error(x):
    """The standard error of x's mean (nan for fewer than two values)."""
    x = np.asarray(x, dtype=np.float64)
    return x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")


def score_summary(rewards, laps):
    """The figures a score is reported with: mean +- std, standard error, interquartile mean
    (the mean of the middle half: robust to a few crashes), median, bad episodes, laps."""
    r = np.sort(np.asarray(rewards, dtype=np.float64))
    n = len(r)
    q = n // 4
    iqm = r[q:n - q].mean() if n - 2 * q > 0 else r.mean()
    se = standard_error(r)
    return (f"mean {r.mean():.2f} +- {r.std():.2f} (standard error {se:.2f}), interquartile mean {iqm:.2f}, "
            f"median {np.median(r):.2f}, {int((r < 500).sum())}/{n} under 500, {int(sum(laps))}/{n} laps finished")


def has_display():
    """True where a window can open (X11 or Wayland), unless SDL was told to stay headless."""
    if os.environ.get("SDL_VIDEODRIVER") in ("dummy", "offscreen"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def window_or_video(video, default_video):
    """Where a run's frames go: (True, None) for a window, where there is a display and no video
    was asked for; else (False, path): the video --video names, or default_video."""
    if video is None and has_display():
        return True, None
    return False, video or default_video


def headless():
    """Make pygame draw off-screen; call before pygame opens anything."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


KERAS_BACKENDS = ("tensorflow", "torch")  # what vae/keras_vae.py and rnn/keras_rnn.py are tested on


def keras_backend():
    """Import Keras and return its backend's name (KERAS_BACKEND, default tensorflow); a clear
    error for a backend the trainers do not support."""
    import keras

    name = keras.backend.backend()
    if name not in KERAS_BACKENDS:
        raise UserError(f"Keras backend {name!r} (KERAS_BACKEND or ~/.keras/keras.json) is not supported "
                        f"for training: use one of {', '.join(KERAS_BACKENDS)}")
    return name


def training_device():
    """Where Keras trains, for logs: 'torch on GPU (NVIDIA H200)', 'tensorflow on CPU (2 cores, oneDNN on)'."""
    name = keras_backend()
    if name == "torch":
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    else:
        import tensorflow as tf

        gpus = [g.name for g in tf.config.list_physical_devices("GPU")]
    if gpus:
        return f"{name} on GPU ({', '.join(gpus)})"
    onednn = f", oneDNN {'on' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '1' else 'off'}" \
        if name == "tensorflow" else ""
    return f"{name} on CPU ({os.cpu_count()} cores{onednn})"


class ScalarWriter:
    """TensorBoard scalars without TensorFlow (tensorboard's own event-file writer)."""

    def __init__(self, folder):
        if "tensorflow" not in sys.modules:
            # tensorboard would import all of TensorFlow (seconds, hundreds of MB) just to open a
            # file; this marker module is its documented switch to the stub (tensorboard.compat)
            sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._w = EventFileWriter(folder)
        self.folder = folder

    def scalars(self, step, values):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
        self._w.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))
        self._w.flush()

    def close(self):
        self._w.close()


def read_scalars(folder):
    """{tag: [(step, value), ...]} from the event files of a folder (for tests and notebooks)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("events.out.tfevents."):
            for event in EventFileLoader(os.path.join(folder, name)).Load():
                for v in event.summary.value:
                    value = v.simple_value if v.HasField("simple_value") else None
                    if value is None:  # TF2 writes tensors
                        import numpy as _np
                        from tensorboard.util import tensor_util

                        value = float(_np.asarray(tensor_util.make_ndarray(v.tensor)))
                    out.setdefault(v.tag, []).append((event.step, value))
    return out


FPS = 50  # CarRacing's render_fps: one simulated step is 1/50 s, in windows and videos alike


class Window:
    """A pygame window showing RGB frames, at most `fps` a second (as CarRacing's human mode).

    show() returns False once the user closed the window or pressed Esc (`closed` stays True).
    Open it before anything calls common.headless() in this process: SDL reads its video driver
    when the display is initialised.
    """

    def __init__(self, size, caption, fps=FPS):
        import pygame

        self.pygame = pygame
        pygame.display.init()
        self.screen = pygame.display.set_mode(size)
        pygame.display.set_caption(caption)
        self.clock = pygame.time.Clock()
        self.fps = fps
        self.closed = False

    def poll(self):
        """Handle pending events; True while the window is open."""
        pg = self.pygame
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                self.closed = True
            elif event.type == pg.WINDOWCLOSE:
                self.closed = True
        return not self.closed

    def show(self, frame):
        if not self.poll():
            return False
        # surfarray is (width, height, 3): swap axes of the (height, width, 3) frame
        surface = self.pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self.screen.blit(surface, (0, 0))
        self.pygame.display.flip()
        self.clock.tick(self.fps)
        return True

    def close(self):
        if self.screen is not None:
            self.pygame.display.quit()
            self.screen = None


class VideoWriter:
    """Frames (H, W, 3) uint8 to an mp4 (H.264 through imageio-ffmpeg) or a gif, by extension."""

    def __init__(self, path, fps=50):
        import imageio.v2 as imageio

        folder = os.path.dirname(os.path.abspath(path)) or "."
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK):  # ffmpeg would only say "Broken pipe" later
            raise UserError(f"cannot write the video {path}: folder {folder} is not writable; "
                            "pass --video with a writable path")
        self.path = path
        if path.endswith(".gif"):
            self._w = imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0)
        else:
            # macro_block_size=1 keeps odd frame sizes (e.g. 600x400 is fine, 96x96 too)
            self._w = imageio.get_writer(path, fps=fps, codec="libx264", quality=7,
                                         macro_block_size=1, pixelformat="yuv420p")
        self.frames = 0

    def append(self, frame):
        self._w.append_data(np.asarray(frame, dtype=np.uint8))
        self.frames += 1

    def close(self):
        self._w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
