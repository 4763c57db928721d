"""V for training: the ConvVAE as Keras 3 models, its loss and a compiled train step.

The layers and kernel shapes are those of vae/vae.py (Conv2D kernels (4,4,in,out),
Conv2DTranspose kernels (k,k,out,in), Dense (in,out)), so weights copy between the two as a
list in vae.json order with no reshaping. Every TensorFlow import of the project's V lives
here: import this module only where training happens.
"""
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN is off by default on AMD CPUs: 6x slower
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vae.vae import DEC_DECONVS, ENC_CONVS, param_layout  # noqa: E402

layers = keras.layers


class KerasVAE:
    """encoder: frames (N,64,64,3) float -> (mu, logvar); decoder: z -> frames in [0,1]."""

    def __init__(self, z_size=32, kl_tolerance=0.5, learning_rate=1e-4):
        self.z_size = z_size
        self.kl_tolerance = kl_tolerance
        x = keras.Input((64, 64, 3), name="x")
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
        self.variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        self._train_step = None

    def ordered_layers(self):
        """The Keras layers holding (kernel, bias) in vae.json order."""
        names = [f"enc_conv{i + 1}" for i in range(4)] + ["enc_fc_mu", "enc_fc_log_var"]
        enc = [self.encoder.get_layer(n) for n in names]
        dec = [self.decoder.get_layer(n) for n in ["dec_fc"] + [f"dec_deconv{i + 1}" for i in range(4)]]
        return enc + dec

    def train_step(self, x_uint8, noise_seed):
        """One Adam step on a uint8 batch; noise_seed (2 int64) makes the z sample reproducible
        so a resumed run repeats an uninterrupted one. Returns (loss, r_loss, kl_loss)."""
        if self._train_step is None:
            self._train_step = tf.function(self._step, reduce_retracing=True)
        return self._train_step(x_uint8, noise_seed)

    def _step(self, x_uint8, noise_seed):
        x = tf.cast(x_uint8, tf.float32) / 255.0
        with tf.GradientTape() as tape:
            mu, logvar = self.encoder(x, training=True)
            eps = tf.random.stateless_normal(tf.shape(mu), seed=noise_seed)
            z = mu + tf.exp(logvar / 2.0) * eps
            y = self.decoder(z, training=True)
            loss, r_loss, kl_loss = vae_loss(x, y, mu, logvar, self.kl_tolerance)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return loss, r_loss, kl_loss

    # --- optimizer state, for checkpoints -------------------------------------------------
    def optimizer_state(self):
        """[(path, value)] of every Adam variable (step count, moments); builds it if needed."""
        if not self.optimizer.built:
            self.optimizer.build(self.variables)
        # paths without the optimizer's own name, which Keras numbers per process (adam, adam_1..)
        return [(v.path.split("/", 1)[-1], v.numpy()) for v in self.optimizer.variables]

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
    z_size = mu.shape[-1]
    r_loss = tf.reduce_mean(tf.reduce_sum(tf.square(x - y), axis=[1, 2, 3]))
    kl = -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=1)
    kl_loss = tf.reduce_mean(tf.maximum(kl, kl_tolerance * z_size))
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
