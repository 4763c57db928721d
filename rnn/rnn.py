"""M, the MDN-RNN, for inference in pure NumPy (rollout workers import this: no TensorFlow here).

Reads and writes `rnn.json` (docs/formats.md): a JSON list of four nested int lists, each value
round(p * 10000), in the TF1 creation order output_w (256,480), output_b (480,),
kernel (291,1024), bias (1024,). The LSTM is TF1's BasicLSTMCell: kernel rows are
[input 35; hidden 256], gate columns i, j, f, o, and a forget bias of 1.0 is added at run time.

The module functions keep the original's names (rnn_init_state, rnn_next_state, rnn_output,
rnn_output_size) and accept unbatched (z (32,), a (3,), c/h (256,)) or batched ((B,32), (B,3),
(B,256)) arrays. Training lives in rnn/keras_rnn.py and rnn_train.py.
"""
import json
from collections import namedtuple

import numpy as np

import config
from common import UserError, atomic_write_bytes, read_json

HyperParams = namedtuple("HyperParams", [
    "num_steps", "max_seq_len", "input_seq_width", "output_seq_width", "rnn_size", "batch_size",
    "grad_clip", "num_mixture", "learning_rate", "decay_rate", "min_learning_rate",
    "use_layer_norm", "use_recurrent_dropout", "recurrent_dropout_prob", "use_input_dropout",
    "input_dropout_prob", "use_output_dropout", "output_dropout_prob", "is_training"])


def default_hps():
    return HyperParams(
        num_steps=config.RNN_NUM_STEPS,
        max_seq_len=config.RNN_SEQ_LEN + 1,     # 999 inputs + the one-step shift of the targets
        input_seq_width=config.Z_SIZE + config.ACTION_SIZE,
        output_seq_width=config.Z_SIZE,
        rnn_size=config.RNN_SIZE,
        batch_size=config.RNN_BATCH_SIZE,
        grad_clip=config.RNN_GRAD_CLIP,
        num_mixture=config.NUM_MIXTURE,
        learning_rate=config.RNN_LEARNING_RATE,
        decay_rate=config.RNN_DECAY_RATE,
        min_learning_rate=config.RNN_MIN_LEARNING_RATE,
        use_layer_norm=0,
        use_recurrent_dropout=0,
        recurrent_dropout_prob=0.90,
        use_input_dropout=0,
        input_dropout_prob=0.90,
        use_output_dropout=0,
        output_dropout_prob=0.90,
        is_training=1)


hps_model = default_hps()
hps_sample = hps_model._replace(batch_size=1, max_seq_len=1, is_training=0)

# the controller's input mode, numbered as the original numbered it: [z, h]. The original's
# other modes ([z, c, h], [z, c], z) were never used for CarRacing and are not kept.
MODE_ZH = 4

LSTMState = namedtuple("LSTMState", ["c", "h"])

VAR_NAMES = ("output_w", "output_b", "kernel", "bias")


def var_shapes(hps=hps_sample):
    """Shapes of the four variables in rnn.json order."""
    n_in, n_h = hps.input_seq_width, hps.rnn_size
    n_out = hps.output_seq_width * hps.num_mixture * 3
    return [(n_h, n_out), (n_out,), (n_in + n_h, 4 * n_h), (4 * n_h,)]


class MDNRNN:
    """The MDN-RNN's weights plus the original's parameter API; stepping is done by the module functions.

    gpu_mode and reuse are accepted for the original's call signature and ignored.
    The weight arrays are read-only: change them through set_weights / set_model_params /
    load_json so that the precomputed step matrices stay in sync.
    """

    def __init__(self, hps=hps_sample, gpu_mode=False, reuse=False):
        self.hps = hps
        self.gpu_mode = gpu_mode
        self.shapes = var_shapes(hps)
        self.names = list(VAR_NAMES)
        # TF1's defaults: glorot-uniform matrices, zero biases; a fresh MDNRNN is a working random network
        rng = np.random.default_rng()
        self.set_weights([rng.uniform(-1, 1, s) * np.sqrt(6.0 / sum(s)) if len(s) == 2 else np.zeros(s)
                          for s in self.shapes])

    # ---- float access -------------------------------------------------------------------
    @property
    def weights(self):
        return [self.output_w, self.output_b, self.kernel, self.bias]

    def set_weights(self, weights, source="weights"):
        """Set the four float arrays (rnn.json order); a wrong count or shape raises UserError naming `source`."""
        weights = list(weights)
        if len(weights) != len(self.shapes):
            raise UserError(f"{source}: expected {len(self.shapes)} arrays ({', '.join(self.names)}), "
                            f"got {len(weights)}; is this an MDN-RNN rnn.json?")
        arrays = []
        for name, shape, w in zip(self.names, self.shapes, weights):
            a = np.array(w, dtype=np.float32)
            if a.shape != tuple(shape):
                raise UserError(f"{source}: variable {name} has shape {a.shape}, expected {tuple(shape)}")
            if not np.isfinite(a).all():
                raise UserError(f"{source}: variable {name} holds NaN or inf: these weights are broken "
                                "(a diverged training?); retrain M or restore a good rnn.json")
            a.setflags(write=False)
            arrays.append(a)
        self.output_w, self.output_b, self.kernel, self.bias = arrays
        self._precompute()

    def _precompute(self):
        """Step matrices: gate columns reordered to [i, f, o, j], the forget bias folded in, and the
        sigmoid gates' columns halved so that one tanh gives all gates (sigmoid(x) = (1 + tanh(x/2)) / 2)."""
        n = self.hps.rnn_size
        i, j, f, o = (slice(k * n, (k + 1) * n) for k in range(4))
        cols = np.r_[i, f, o, j]
        scale = np.ones(4 * n, np.float32)
        scale[:3 * n] = 0.5                   # exact in float32: a power of two
        bias = self.bias.astype(np.float32)   # a copy
        bias[f] += config.RNN_FORGET_BIAS
        self._kernel = np.ascontiguousarray(self.kernel[:, cols] * scale)
        self._bias = np.ascontiguousarray(bias[cols] * scale)
        self._n = n

    # ---- the original's parameter API (ints x10000) -------------------------------------
    def get_model_params(self):
        """(params as nested int lists x10000, shapes, names) in rnn.json order."""
        if not all(np.isfinite(w).all() for w in self.weights):
            raise UserError("refusing to save MDN-RNN weights that hold NaN or inf")
        params = [np.round(w.astype(np.float64) * 10000).astype(np.int64).tolist() for w in self.weights]
        return params, [tuple(s) for s in self.shapes], list(self.names)

    def set_model_params(self, params, source="params"):
        """Set from arrays on the x10000 scale (as in rnn.json): each is divided by 10000."""
        self.set_weights([np.asarray(p, dtype=np.float64) / 10000.0 for p in params], source)

    def get_random_model_params(self, stdev=0.5):
        """Cauchy-distributed arrays times stdev, one per variable (meant for set_model_params)."""
        return [np.random.standard_cauchy(s) * stdev for s in self.shapes]

    def set_random_params(self, stdev=0.5):
        self.set_model_params(self.get_random_model_params(stdev))

    def load_json(self, jsonfile=config.RNN_PATH):
        params = read_json(jsonfile, "MDN-RNN weights file")
        if not isinstance(params, list):
            raise UserError(f"{jsonfile}: expected a JSON list of {len(self.shapes)} arrays")
        try:
            arrays = [np.asarray(p, dtype=np.float64) for p in params]
        except ValueError as e:
            raise UserError(f"{jsonfile}: a variable is not a rectangular number array ({e})")
        self.set_model_params(arrays, source=jsonfile)

    def save_json(self, jsonfile=config.RNN_PATH):
        params, _, _ = self.get_model_params()
        atomic_write_bytes(jsonfile, json.dumps(params, separators=(",", ":")).encode())


# ---- stepping -------------------------------------------------------------------------------
def _f32(x):
    return np.asarray(x, dtype=np.float32)


def rnn_init_state(rnn, batch_size=None):
    """Zero LSTMState: (256,) arrays, or (batch_size, 256)."""
    shape = (rnn.hps.rnn_size,) if batch_size is None else (batch_size, rnn.hps.rnn_size)
    return LSTMState(np.zeros(shape, np.float32), np.zeros(shape, np.float32))


def rowwise_matmul(x, w):
    """x @ w computed row by row ((..., 1, k) slices), so a row's result does not depend on
    the batch around it: BLAS rounds a (n, k) @ (k, m) product differently for different n,
    and a chaotic rollout turns one differing bit into a different episode. It is also
    faster than the 2-D product for the small batches of rollouts."""
    return np.matmul(x[..., None, :], w)[..., 0, :]


def rnn_next_state(rnn, z, a, prev_state):
    """One LSTM step on input [z, a]; returns the new LSTMState(c, h)."""
    x = np.concatenate([_f32(z), _f32(a), _f32(prev_state.h)], axis=-1)
    g = rowwise_matmul(x, rnn._kernel)
    g += rnn._bias
    np.tanh(g, out=g)
    n = rnn._n
    s = g[..., :3 * n] * 0.5
    s += 0.5                                       # sigmoid of i, f, o
    c = _f32(prev_state.c) * s[..., n:2 * n]
    c += s[..., :n] * g[..., 3 * n:]
    h = np.tanh(c)
    h *= s[..., 2 * n:]
    return LSTMState(c, h)


def rnn_output_size(mode=MODE_ZH):
    if mode != MODE_ZH:
        raise ValueError(f"unknown controller mode {mode!r}: only MODE_ZH ([z, h]) is supported")
    return config.Z_SIZE + config.RNN_SIZE


def rnn_output(state, z, mode=MODE_ZH):
    """The controller's input [z, h]: (288,) or (B, 288)."""
    rnn_output_size(mode)  # checks the mode
    return np.concatenate([_f32(z), _f32(state.h)], axis=-1)


# ---- mixture density output -----------------------------------------------------------------
def mdn_coef(rnn, h):
    """h (...,256) -> (logmix, mean, logstd), each (...,32,5); logmix normalised (log-probabilities)."""
    out = _f32(h) @ rnn.output_w + rnn.output_b
    k = rnn.hps.num_mixture
    out = out.reshape(out.shape[:-1] + (rnn.hps.output_seq_width, 3 * k))
    logmix, mean, logstd = out[..., :k], out[..., k:2 * k], out[..., 2 * k:]
    top = logmix.max(axis=-1, keepdims=True)
    logmix = logmix - (top + np.log(np.exp(logmix - top).sum(axis=-1, keepdims=True)))
    return logmix, mean, logstd


def sample_next_z(rnn, h, temperature=config.DREAM_TEMPERATURE, rng=None):
    """Sample z (...,32) from the mixture given h: per dimension a component drawn from
    softmax(logmix / tau), then mean + exp(logstd) * N(0,1) * sqrt(tau).
    tau == 0 takes the most likely component's mean, without noise.
    rng: a numpy Generator or RandomState; None uses the global np.random."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    rng = np.random if rng is None else rng
    logmix, mean, logstd = mdn_coef(rnn, h)
    if temperature == 0:
        k = logmix.argmax(axis=-1)[..., None]
        return np.take_along_axis(mean, k, axis=-1)[..., 0]
    logits = logmix / temperature
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(cdf.shape[:-1] + (1,)) * cdf[..., -1:]
    k = np.minimum((cdf < u).sum(axis=-1), rnn.hps.num_mixture - 1)[..., None]
    mu = np.take_along_axis(mean, k, axis=-1)[..., 0]
    sd = np.exp(np.take_along_axis(logstd, k, axis=-1)[..., 0])
    eps = rng.standard_normal(mu.shape)
    return (mu + sd * eps * np.sqrt(temperature)).astype(np.float32)
