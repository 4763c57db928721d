"""V's encoder with int8 weights, run by LiteRT: the opt-in fast path of rollouts (--encoder int8).

The NumPy encoder (vae/vae.py) needs ~29 MFLOP per frame, ~0.55 ms on one core in float32,
close to what the core can do. Dynamic-range quantisation (int8 weights, each input row
quantised on the fly, integer dot products) runs the same network in ~0.12 ms. mu and logvar
differ from float32 by ~0.01 on average, far below the posterior noise z is sampled with.
Each frame is quantised on its own, so a batch gives the same rows as frames one at a time.

The .tflite file is derived from the encoder weights and cached under vae/int8_cache/ by
their hash; TensorFlow's converter makes it once, in a child process (`python -m vae.int8`),
so rollout processes never import TensorFlow: LiteRT loads in 0.15 s and 35 MB.
"""
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np

import config
from common import UserError, atomic_write_bytes
from vae.vae import NUM_ENCODER_VARS, as_float_frames


def _key(weights):
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w, np.float32).tobytes())
    return h.hexdigest()[:20]


def tflite_path(vae, cache_dir=None):
    """The cached model file for this ConvVAE's encoder, converted first if missing."""
    cache_dir = cache_dir or config.INT8_CACHE
    weights = vae.weights[:NUM_ENCODER_VARS]
    path = os.path.join(cache_dir, f"encoder.{_key(weights)}.int8.tflite")
    if os.path.exists(path):
        return path
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the int8 encoder cache {cache_dir}: {e.strerror}; "
                        "set WM_INT8_CACHE to a writable folder or use --encoder numpy")
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "encoder.npz")
        np.savez(npz, *weights)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="1")
        done = subprocess.run([sys.executable, "-m", "vae.int8", npz, path], cwd=config.ROOT,
                              env=env, capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(path):
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise UserError("converting the VAE encoder to int8 failed:\n  " + "\n  ".join(tail) +
                        "\nuse --encoder numpy, or check that TensorFlow works (./setup.sh)")
    return path


@contextlib.contextmanager
def _without_info_lines():
    """LiteRT's C++ prints "INFO: Created ... delegate" on stderr in every worker, whatever
    TF_CPP_MIN_LOG_LEVEL says: catch file descriptor 2 and pass on all but INFO lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if not line.startswith("INFO: "):
                    print(line, file=sys.stderr)


class Int8Encoder:
    """encode_mu_logvar as ConvVAE's, through the int8 LiteRT model of that VAE's encoder."""

    def __init__(self, vae, cache_dir=None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError("--encoder int8 needs the ai-edge-litert package: run ./setup.sh "
                            "(or pip install -r requirements.txt), or use --encoder numpy")
        self.z_size = vae.z_size
        self.path = tflite_path(vae, cache_dir)
        with _without_info_lines():
            self._interp = Interpreter(model_path=self.path, num_threads=1)
            self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._batch = None

    def encode_mu_logvar(self, x):
        x = as_float_frames(x)
        if x.shape[0] != self._batch:  # episodes end: the batch shrinks now and then
            self._interp.resize_tensor_input(self._in, x.shape)
            self._interp.allocate_tensors()
            self._batch = x.shape[0]
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        out = self._interp.get_tensor(self._out)
        return out[:, :self.z_size].copy(), out[:, self.z_size:].copy()


def make_encoder(vae, kind):
    """The encoder rollouts use: the ConvVAE itself (numpy) or its Int8Encoder (int8)."""
    if kind == "numpy":
        return vae
    if kind == "int8":
        return Int8Encoder(vae)
    raise UserError(f"unknown encoder {kind!r}: use numpy or int8")


def prepare(vae_path):
    """Convert the encoder of vae_path now (rollout workers then find it in the cache)."""
    from vae.vae import ConvVAE

    vae = ConvVAE(z_size=config.Z_SIZE)
    vae.load_json(vae_path)
    return tflite_path(vae)


def _convert(npz, out):
    """Child process: Keras encoder with these weights -> dynamic-range int8 .tflite at out."""
    import warnings

    warnings.filterwarnings("ignore")
    import keras
    import tensorflow as tf

    from vae.keras_vae import KerasVAE

    with np.load(npz) as f:
        weights = [f[f"arr_{i}"] for i in range(NUM_ENCODER_VARS)]
    kv = KerasVAE(z_size=weights[-1].shape[0])
    for j, layer in enumerate(kv.ordered_layers()[:NUM_ENCODER_VARS // 2]):
        layer.set_weights([weights[2 * j], weights[2 * j + 1]])
    # one output [mu, logvar]: a model's output order is then not left to the converter
    enc = keras.Model(kv.encoder.input, keras.layers.Concatenate()(kv.encoder.outputs))
    conv = tf.lite.TFLiteConverter.from_keras_model(enc)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    atomic_write_bytes(out, conv.convert())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m vae.int8 ENCODER_WEIGHTS.npz OUT.tflite (called by Int8Encoder)")
    _convert(sys.argv[1], sys.argv[2])
