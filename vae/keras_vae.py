"""V for training: the ConvVAE as Keras 3 models, its loss and a train step.

The layers and kernel shapes are those of vae/vae.py (Conv2D kernels (4,4,in,out),
Conv2DTranspose kernels (k,k,out,in), Dense (in,out)), so weights copy between the two as a
list in vae.json order with no reshaping. Written in keras.ops only, so it trains with the
TensorFlow backend (the default) or with KERAS_BACKEND=torch (a GPU machine without
TensorFlow); see common.keras_backend. Import this module only where training happens.
"""

import config  # noqa: E402

config.tensorflow_on_cpu()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import common  # noqa: E402
from common import UserError, keras_backend  # noqa: E402
from vae.vae import DEC_DECONVS, ENC_CONVS, IMAGE_SHAPE, ConvVAE, param_layout  # noqa: E402

if keras_backend() == "torch":  # (a clear error for a backend the train step is not tested on)
    import torch

    torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick its fastest convolutions once

layers = keras.layers


class _Trainable(keras.Model):
    """encoder + sampling + decoder as one Keras model, so Keras's own train step (TensorFlow
    or torch) computes the gradients: call() returns (y, mu, logvar, x in [0,1]), compute_loss() the loss."""

    def __init__(self, encoder, decoder, kl_tolerance):
        super().__init__(name="vae")
        self.encoder, self.decoder, self.kl_tolerance = encoder, decoder, kl_tolerance
        self.noise = keras.random.SeedGenerator(0)
        self.r_loss_mean = keras.metrics.Mean(name="r_loss")
        self.kl_loss_mean = keras.metrics.Mean(name="kl_loss")

    def call(self, x_uint8, training=False):
        x = ops.cast(x_uint8, "float32") / 255.0
        mu, logvar = self.encoder(x, training=training)
        z = mu + ops.exp(logvar / 2.0) * keras.random.normal(ops.shape(mu), seed=self.noise)
        return self.decoder(z, training=training), mu, logvar, x

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y_img, mu, logvar, x_float = y_pred  # the input as call() scaled it, not scaled again
        loss, r_loss, kl_loss = vae_loss(x_float, y_img, mu, logvar, self.kl_tolerance)
        self.r_loss_mean.update_state(r_loss)
        self.kl_loss_mean.update_state(kl_loss)
        return loss


class KerasVAE:
    """encoder: frames (N,64,64,3) float -> (mu, logvar); decoder: z -> frames in [0,1];
    model: both, trained by train_step."""

    def __init__(self, z_size=32, kl_tolerance=0.5, learning_rate=1e-4):
        self.z_size = z_size
        self.kl_tolerance = kl_tolerance
        x = keras.Input(IMAGE_SHAPE, name="x")
        h = x
        for i, (_, cout) in enumerate(ENC_CONVS):
            h = layers.Conv2D(cout, 4, strides=2, padding="valid", activation="relu",
                              name=f"enc_conv{i + 1}")(h)
        h = layers.Flatten()(h)  # channels_last: (h, w, c) order, as the TF1 reshape
        mu = layers.Dense(z_size, name="enc_fc_mu")(h)
        logvar = layers.Dense(z_size, name="enc_fc_log_var")(h)
        self.encoder = keras.Model(x, [mu, logvar], name="encoder")

        z = keras.Input((z_size,), name="z")
        h = layers.Dense(1024, name="dec_fc")(z)
        h = layers.Reshape((1, 1, 1024))(h)
        for i, (_, cout, k) in enumerate(DEC_DECONVS):
            last = i == len(DEC_DECONVS) - 1
            h = layers.Conv2DTranspose(cout, k, strides=2, padding="valid",
                                       activation="sigmoid" if last else "relu",
                                       name=f"dec_deconv{i + 1}")(h)
        self.decoder = keras.Model(z, h, name="decoder")
        # TF1's AdamOptimizer defaults (epsilon 1e-8, Keras' is 1e-7)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-8)
        self.model = _Trainable(self.encoder, self.decoder, kl_tolerance)
        self.model.compile(optimizer=self.optimizer, jit_compile=False)
        self.variables = self.model.trainable_variables  # encoder's, then decoder's

    def ordered_layers(self):
        """The Keras layers holding (kernel, bias) in vae.json order."""
        names = [f"enc_conv{i + 1}" for i in range(4)] + ["enc_fc_mu", "enc_fc_log_var"]
        enc = [self.encoder.get_layer(n) for n in names]
        dec = [self.decoder.get_layer(n) for n in ["dec_fc"] + [f"dec_deconv{i + 1}" for i in range(4)]]
        return enc + dec

    def train_step(self, x_uint8, noise_seed):
        """One Adam step on a uint8 batch; noise_seed (2 ints) fixes the z sample, so a resumed
        run repeats an uninterrupted one. Returns (loss, r_loss, kl_loss) as floats."""
        state = self.model.noise.state
        state.assign(np.asarray(noise_seed).astype(state.dtype))
        out = self.model.train_on_batch(x_uint8, return_dict=True)
        return out["loss"], out["r_loss"], out["kl_loss"]

    def eval_losses(self, x_uint8, noise_seed, batch_size=100):
        """(loss, r_loss, kl_loss) of train_step's loss on frames it does not train on (held-out
        frames), z sampled from noise_seed; means over all the frames."""
        state = self.model.noise.state
        state.assign(np.asarray(noise_seed).astype(state.dtype))
        sums = np.zeros(3)
        for i in range(0, len(x_uint8), batch_size):
            x = x_uint8[i:i + batch_size]
            y, mu, logvar, x_float = self.model(x, training=False)
            losses = vae_loss(x_float, y, mu, logvar, self.kl_tolerance)
            sums += len(x) * np.array([float(ops.convert_to_numpy(v)) for v in losses])
        return tuple((sums / max(1, len(x_uint8))).tolist())

    # --- optimizer state, for checkpoints -------------------------------------------------
    def optimizer_state(self):
        """[(path, value)] of every Adam variable (step count, moments); builds it if needed."""
        if not self.optimizer.built:
            self.optimizer.build(self.variables)
        # paths without the optimizer's own name, which Keras numbers per process (adam, adam_1..)
        return [(v.path.split("/", 1)[-1], ops.convert_to_numpy(v)) for v in self.optimizer.variables]

    def set_optimizer_state(self, values):
        if not self.optimizer.built:
            self.optimizer.build(self.variables)
        ovars = self.optimizer.variables
        if len(values) != len(ovars):
            raise ValueError(f"optimizer state has {len(values)} arrays, expected {len(ovars)}")
        for v, value in zip(ovars, values):
            if tuple(v.shape) != tuple(np.shape(value)):
                raise ValueError(f"optimizer variable {v.path}: expected {tuple(v.shape)}, found {np.shape(value)}")
            v.assign(value)


def vae_loss(x, y, mu, logvar, kl_tolerance=0.5):
    """Per-image sum of squared error + KL summed over z with the per-image floor
    max(kl, kl_tolerance*z_size), each averaged over the batch -> (loss, r_loss, kl_loss)."""
    x, y, mu, logvar = [ops.convert_to_tensor(t, "float32") for t in (x, y, mu, logvar)]
    z_size = mu.shape[-1]
    r_loss = ops.mean(ops.sum(ops.square(x - y), axis=[1, 2, 3]))
    kl = -0.5 * ops.sum(1.0 + logvar - ops.square(mu) - ops.exp(logvar), axis=1)
    kl_loss = ops.mean(ops.maximum(kl, kl_tolerance * z_size))
    return r_loss + kl_loss, r_loss, kl_loss


def build_vae(z_size=32, kl_tolerance=0.5, learning_rate=1e-4):
    return KerasVAE(z_size, kl_tolerance, learning_rate)


def keras_to_weights(model):
    """KerasVAE -> list of float32 arrays in vae.json order (for ConvVAE.set_weights)."""
    out = []
    for layer in model.ordered_layers():
        kernel, bias = layer.get_weights()
        out += [np.asarray(kernel, np.float32), np.asarray(bias, np.float32)]
    return out


def weights_to_keras(model, weights):
    """Copy a vae.json-ordered list of float arrays into a KerasVAE; shapes must match exactly."""
    layout = param_layout(model.z_size)
    if len(weights) != len(layout):
        raise ValueError(f"expected {len(layout)} arrays, got {len(weights)}")
    for i, (name, shape) in enumerate(layout):
        if tuple(np.shape(weights[i])) != shape:
            raise ValueError(f"variable {i} ({name}): expected {shape}, found {np.shape(weights[i])}")
    for j, layer in enumerate(model.ordered_layers()):
        layer.set_weights([np.asarray(weights[2 * j], np.float32), np.asarray(weights[2 * j + 1], np.float32)])


# --- files of vae_train.py ----------------------------------------------------------------
def save_checkpoint(path, model, meta):
    """Weights, Adam state and the meta dict (step counters, data identity) in one npz, atomically."""
    opt = model.optimizer_state()
    common.save_checkpoint(path, keras_to_weights(model), [v for _, v in opt], meta, [p for p, _ in opt])


def load_checkpoint(path, model):
    """Restore weights and Adam state into model; returns the meta dict."""
    meta, weights, opt = common.load_checkpoint(path, "vae_train.py")
    try:
        weights_to_keras(model, weights)
        model.set_optimizer_state(opt)
    except Exception as e:
        raise UserError(f"checkpoint {path} does not fit this V ({type(e).__name__}: {e}); "
                        "delete it to start from scratch")
    return meta


def save_json(path, model):
    """The weights as a vae.json (the original's format), atomically."""
    v = ConvVAE(z_size=model.z_size)
    v.set_weights(keras_to_weights(model))
    v.save_json(path)
