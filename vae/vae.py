"""V: the ConvVAE of World Models in pure NumPy, for per-step inference in rollout workers.

Reads and writes `vae.json`: a JSON list with one nested int list per variable, in the TF1
creation order below, each value round(p*10000) (docs/formats.md). No TensorFlow here: the
training twin is vae/keras_vae.py, with the same kernel shapes so weights copy over directly.

Encoder: 4 x (conv 4x4 stride 2 valid, relu) 32,64,128,256 filters: 64->31->14->6->2,
flatten (h, w, c) = 1024 -> dense mu (32), dense logvar (32).
Decoder: dense 1024 -> (1,1,1024) -> conv-transpose k5,k5,k6,k6 stride 2 valid, relu x3 and
sigmoid: 1->5->13->30->64, filters 128,64,32,3.
"""
import json

import numpy as np

import config

from common import UserError, atomic_write_bytes

IMAGE_SHAPE = (config.FRAME_SIZE, config.FRAME_SIZE, 3)
if config.FRAME_SIZE != 64:  # the layer sizes below turn 64 into 2 and back, and nothing else
    raise ImportError(f"config.FRAME_SIZE is {config.FRAME_SIZE}: V's layers are built for 64x64 frames")
ENC_CONVS = [(3, 32), (32, 64), (64, 128), (128, 256)]          # (in, out), kernel 4
DEC_DECONVS = [(1024, 128, 5), (128, 64, 5), (64, 32, 6), (32, 3, 6)]  # (in, out, kernel)


def param_layout(z_size=32):
    """[(name, shape)] of every variable in the TF1 creation order of vae.json."""
    layout = []
    for i, (cin, cout) in enumerate(ENC_CONVS):
        layout += [(f"conv_vae/enc_conv{i + 1}/kernel:0", (4, 4, cin, cout)),
                   (f"conv_vae/enc_conv{i + 1}/bias:0", (cout,))]
    for name in ("enc_fc_mu", "enc_fc_log_var"):
        layout += [(f"conv_vae/{name}/kernel:0", (1024, z_size)), (f"conv_vae/{name}/bias:0", (z_size,))]
    layout += [("conv_vae/dec_fc/kernel:0", (z_size, 1024)), ("conv_vae/dec_fc/bias:0", (1024,))]
    for i, (cin, cout, k) in enumerate(DEC_DECONVS):
        # conv2d_transpose stores its kernel as (k, k, out, in)
        layout += [(f"conv_vae/dec_deconv{i + 1}/kernel:0", (k, k, cout, cin)),
                   (f"conv_vae/dec_deconv{i + 1}/bias:0", (cout,))]
    return layout


NUM_ENCODER_VARS = 12  # 4 convs + mu + logvar, kernel and bias each


def _glorot(shape, rng):
    """Glorot-uniform, as tf.layers and Keras initialise kernels by default."""
    if len(shape) == 2:
        fan_in, fan_out = shape
    else:
        field = shape[0] * shape[1]
        fan_in, fan_out = field * shape[2], field * shape[3]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def _conv_valid(x, kmat, bias, k, stride=2):
    """Conv k x k, stride, valid padding, NHWC: im2col through a strided view, one matmul."""
    n, h, w, c = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    sn, sh, sw, sc = x.strides
    # view (n, ho, wo, k, k, c): the patch order (ky, kx, c) matches the kernel's rows
    patches = np.lib.stride_tricks.as_strided(
        x, (n, ho, wo, k, k, c), (sn, sh * stride, sw * stride, sh, sw, sc), writeable=False)
    # one product per frame: a frame's z must not depend on the batch it is in (see
    # rnn.rowwise_matmul); it costs nothing here, each frame is a full-sized product already
    out = patches.reshape(n, ho * wo, k * k * c) @ kmat
    out += bias
    return out.reshape(n, ho, wo, -1)


def _deconv_valid(x, kmat, bias, k, cout, stride=2):
    """TF conv2d_transpose, valid padding: every input pixel scatters a k x k x cout patch."""
    n, h, w, _ = x.shape
    ho, wo = (h - 1) * stride + k, (w - 1) * stride + k
    cols = (x.reshape(n * h * w, -1) @ kmat).reshape(n, h, w, k, k, cout)
    out = np.zeros((n, ho, wo, cout), np.float32)
    for ky in range(k):
        for kx in range(k):
            out[:, ky:ky + stride * (h - 1) + 1:stride, kx:kx + stride * (w - 1) + 1:stride] += cols[:, :, :, ky, kx]
    out += bias
    return out


class ConvVAE:
    """The World Models ConvVAE for NumPy inference. Only z_size matters; the other
    arguments are kept so code written against the original constructs it unchanged."""

    def __init__(self, z_size=32, batch_size=1, learning_rate=0.0001, kl_tolerance=0.5,
                 is_training=False, reuse=False, gpu_mode=False, seed=None):
        self.z_size = z_size
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.kl_tolerance = kl_tolerance
        self.is_training = is_training
        self.reuse = reuse
        self.gpu_mode = gpu_mode
        self.layout = param_layout(z_size)
        self.names = [name for name, _ in self.layout]
        self.shapes = [shape for _, shape in self.layout]
        rng = np.random.default_rng(seed)
        self.set_weights([_glorot(s, rng) if len(s) > 1 else np.zeros(s, np.float32)
                          for s in self.shapes])

    # --- weights -------------------------------------------------------------------------
    def set_weights(self, weights):
        """Float weights (list of arrays in vae.json order); shapes are checked."""
        if len(weights) != len(self.shapes):
            raise UserError(f"ConvVAE expects {len(self.shapes)} arrays, got {len(weights)}")
        checked = []
        for i, (w, (name, shape)) in enumerate(zip(weights, self.layout)):
            w = np.asarray(w, dtype=np.float32)
            if w.shape != shape:
                raise UserError(f"variable {i} ({name}): expected shape {shape}, found {w.shape}")
            if not np.isfinite(w).all():
                raise UserError(f"variable {i} ({name}) holds NaN or inf: these weights are broken "
                                "(a diverged training?); retrain V or restore a good vae.json")
            checked.append(np.ascontiguousarray(w))
        self.weights = checked
        self._prepare()

    def _prepare(self):
        """Kernels reshaped once for the matmuls of encode/decode."""
        w = self.weights
        self._enc = [(w[2 * i].reshape(-1, cout), w[2 * i + 1]) for i, (_, cout) in enumerate(ENC_CONVS)]
        # both heads in one matmul
        self._heads = (np.ascontiguousarray(np.concatenate([w[8], w[10]], axis=1)),
                       np.concatenate([w[9], w[11]]))
        self._dec_fc = (w[12], w[13])
        self._dec = []
        for i, (cin, cout, k) in enumerate(DEC_DECONVS):
            kern = w[14 + 2 * i]  # (k, k, out, in) -> (in, k*k*out)
            kmat = np.ascontiguousarray(kern.transpose(3, 0, 1, 2).reshape(cin, k * k * cout))
            self._dec.append((kmat, w[15 + 2 * i], k, cout))

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def get_model_params(self):
        """(params, shapes, names) as the original: params are round(p*10000) nested int lists."""
        params = [quantise(w).tolist() for w in self.weights]
        return params, [tuple(s) for s in self.shapes], list(self.names)

    def set_model_params(self, params):
        """Set from values in the x10000 scale of vae.json: each is divided by 10000.

        The original's random-data policy feeds standard_cauchy*stdev through here, so its
        random VAEs get weights 10000 times smaller than the draw: that is intended."""
        self.set_weights([np.asarray(p, dtype=np.float64) / 10000.0 for p in params])

    def get_random_model_params(self, stdev=0.5):
        return [np.random.standard_cauchy(s) * stdev for s in self.shapes]

    def set_random_params(self, stdev=0.5):
        self.set_model_params(self.get_random_model_params(stdev))

    def load_json(self, jsonfile="vae.json"):
        try:
            with open(jsonfile) as f:
                params = json.load(f)
        except OSError as e:
            raise UserError(f"cannot read VAE weights {jsonfile}: {e.strerror}; train V with "
                            "vae_train.py or pass the right path")
        except ValueError as e:
            raise UserError(f"VAE weights {jsonfile} are not valid JSON ({e}); re-create them")
        if not isinstance(params, list) or len(params) != len(self.shapes):
            found = len(params) if isinstance(params, list) else type(params).__name__
            raise UserError(f"VAE weights {jsonfile}: expected a list of {len(self.shapes)} arrays "
                            f"(z_size={self.z_size}), found {found}")
        try:
            arrays = [np.asarray(p, dtype=np.float64) for p in params]
        except ValueError as e:
            raise UserError(f"VAE weights {jsonfile}: ragged or non-numeric array ({e})")
        try:
            self.set_model_params(arrays)
        except UserError as e:
            raise UserError(f"VAE weights {jsonfile}: {e}")

    def save_json(self, jsonfile="vae.json"):
        params, _, _ = self.get_model_params()
        atomic_write_bytes(jsonfile, json.dumps(params, separators=(",", ":")).encode())

    # --- inference -----------------------------------------------------------------------
    def encode_mu_logvar(self, x):
        """Frames (N,64,64,3) or one (64,64,3), uint8 or float in [0,1] -> mu, logvar (N, z)."""
        h = as_float_frames(x)
        for kmat, bias in self._enc:
            h = _conv_valid(h, kmat, bias, 4)
            np.maximum(h, 0, out=h)
        h = h.reshape(h.shape[0], 1, -1)
        out = (h @ self._heads[0])[:, 0]
        out += self._heads[1]
        return out[:, :self.z_size].copy(), out[:, self.z_size:].copy()

    def encode(self, x):
        """A sample z = mu + exp(logvar/2) * eps, eps ~ N(0,1) from np.random."""
        mu, logvar = self.encode_mu_logvar(x)
        return mu + np.exp(logvar / 2.0) * np.random.randn(*mu.shape).astype(np.float32)

    def decode(self, z):
        """z (N, z_size) or (z_size,) -> frames (N,64,64,3) float32 in [0,1]."""
        z = np.asarray(z, dtype=np.float32).reshape(-1, self.z_size)
        h = z @ self._dec_fc[0] + self._dec_fc[1]
        h = h.reshape(-1, 1, 1, 1024)
        for i, (kmat, bias, k, cout) in enumerate(self._dec):
            h = _deconv_valid(h, kmat, bias, k, cout)
            if i < len(self._dec) - 1:
                np.maximum(h, 0, out=h)
        # sigmoid that never overflows exp
        return (0.5 * (1.0 + np.tanh(0.5 * h))).astype(np.float32)


def as_float_frames(x):
    """Frames (N,64,64,3) or one (64,64,3), uint8 or float in [0,1] -> float32 (N,64,64,3)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"frames must be (N,64,64,3) or (64,64,3), got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.ascontiguousarray(x, dtype=np.float32)


def quantise(w):
    """round(p*10000) as int64, computed in float64 so a loaded file saves back identically."""
    w = np.asarray(w, dtype=np.float64)
    if not np.isfinite(w).all() or np.abs(w).max(initial=0.0) * 10000.0 >= 2.0 ** 62:
        raise UserError("refusing to save weights that hold NaN, inf or absurd values")
    return np.rint(np.asarray(w, dtype=np.float64) * 10000.0).astype(np.int64)


def count_params(z_size=32):
    """(encoder, decoder) parameter counts."""
    sizes = [int(np.prod(s)) for _, s in param_layout(z_size)]
    return sum(sizes[:NUM_ENCODER_VARS]), sum(sizes[NUM_ENCODER_VARS:])
