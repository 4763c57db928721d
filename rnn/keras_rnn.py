"""The MDN-RNN as a Keras 3 model for training, and conversion to and from rnn.json's layout.

Model: input [z, a] (B, T, 35) -> LSTM(256, return_sequences) -> Dense(480). The 480 outputs
of a step are 32 rows of 15 = [logmix 5, mean 5, logstd 5].

Layouts. rnn.json holds TF1's BasicLSTMCell: kernel (291, 1024) with rows [input 35; hidden 256]
and gate columns i, j, f, o, bias (1024,), and a forget bias of 1.0 added at run time. Keras's
LSTM holds kernel (35, 1024) and recurrent_kernel (256, 1024) with gate columns i, f, c(=j), o,
and bias (1024,) with no run-time forget bias: keras_bias_f = tf1_bias_f + 1.0. Keras's default
unit_forget_bias initialisation (forget bias 1, the rest 0) is exactly TF1's zero bias.

Written in keras.ops only: it trains with the TensorFlow backend (the default) or with
KERAS_BACKEND=torch (cuDNN's LSTM on a GPU machine without TensorFlow). Only this module (and
rnn_train.py / benchmarks through it) imports Keras.
"""

import config  # noqa: E402

config.tensorflow_on_cpu()  # oneDNN makes the LSTM several times faster

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import config  # noqa: E402
from common import keras_backend  # noqa: E402
from rnn.rnn import hps_model  # noqa: E402

keras_backend()  # a clear error for a backend the train step is not tested on

LOG_SQRT_2PI = float(0.5 * np.log(2.0 * np.pi))


def build_rnn(hps=hps_model):
    """The Keras training model; sequences of any length."""
    n_in = hps.input_seq_width
    inp = keras.Input(shape=(None, n_in), name="z_action")
    x = keras.layers.LSTM(hps.rnn_size, return_sequences=True, name="lstm")(inp)
    out = keras.layers.Dense(hps.output_seq_width * hps.num_mixture * 3, name="mdn")(x)
    return keras.Model(inp, out, name="mdn_rnn")


# ---- layout conversion ----------------------------------------------------------------------
def _gate_perm(n):
    """Column order taking TF1 gates (i, j, f, o) to Keras gates (i, f, c=j, o); it is its own inverse."""
    return np.r_[0:n, 2 * n:3 * n, n:2 * n, 3 * n:4 * n]


def tf1_to_keras_arrays(weights, hps=hps_model):
    """[output_w, output_b, kernel, bias] (TF1) -> ([kernel, recurrent_kernel, bias], [dense_w, dense_b]) (Keras)."""
    output_w, output_b, kernel, bias = [np.asarray(w, np.float32) for w in weights]
    n, n_in = hps.rnn_size, hps.input_seq_width
    perm = _gate_perm(n)
    k = kernel[:, perm]
    b = bias[perm].copy()
    b[n:2 * n] += config.RNN_FORGET_BIAS
    return [k[:n_in], k[n_in:], b], [output_w, output_b]


def keras_to_tf1_arrays(lstm_weights, dense_weights, hps=hps_model):
    """Inverse of tf1_to_keras_arrays: -> [output_w, output_b, kernel, bias] float32 in rnn.json order."""
    k_in, k_rec, b = [np.asarray(w, np.float32) for w in lstm_weights]
    n = hps.rnn_size
    perm = _gate_perm(n)
    b = b.copy()
    b[n:2 * n] -= config.RNN_FORGET_BIAS
    kernel = np.concatenate([k_in, k_rec], axis=0)[:, perm]
    return [np.asarray(dense_weights[0], np.float32), np.asarray(dense_weights[1], np.float32),
            np.ascontiguousarray(kernel), b[perm]]


def weights_to_keras(model, weights, hps=hps_model):
    """Load rnn.json-order TF1 weights (e.g. MDNRNN.weights) into the Keras model."""
    lstm_w, dense_w = tf1_to_keras_arrays(weights, hps)
    model.get_layer("lstm").set_weights(lstm_w)
    model.get_layer("mdn").set_weights(dense_w)


def keras_to_weights(model, hps=hps_model):
    """The Keras model's weights as [output_w, output_b, kernel, bias] in TF1 layout (for MDNRNN.set_weights)."""
    return keras_to_tf1_arrays(model.get_layer("lstm").get_weights(),
                               model.get_layer("mdn").get_weights(), hps)


# ---- loss and training ----------------------------------------------------------------------
def mdn_loss(z_next, y_pred, num_mixture=config.NUM_MIXTURE):
    """Mean over batch, time and dims of -log sum_k pi_k N(z_next; mean_k, exp(logstd_k)).
    z_next (B, T, 32); y_pred (B, T, 32 * 3 * K)."""
    z_next = ops.convert_to_tensor(z_next, "float32")
    out = ops.reshape(y_pred, tuple(ops.shape(z_next)) + (3 * num_mixture,))
    logmix, mean, logstd = ops.split(out, 3, axis=-1)
    logmix = logmix - ops.logsumexp(logmix, axis=-1, keepdims=True)
    y = ops.expand_dims(z_next, -1)
    log_normal = -0.5 * ops.square((y - mean) * ops.exp(-logstd)) - logstd - LOG_SQRT_2PI
    return -ops.mean(ops.logsumexp(logmix + log_normal, axis=-1))


class DecayedLR(keras.optimizers.schedules.LearningRateSchedule):
    """max(lr * decay ** step, min_lr); decay 1.0 keeps lr constant."""

    def __init__(self, lr, decay, min_lr):
        self.lr, self.decay, self.min_lr = float(lr), float(decay), float(min_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return ops.maximum(self.lr * ops.power(self.decay, step), self.min_lr)

    def value(self, step):
        return max(self.lr * self.decay ** step, self.min_lr)

    def get_config(self):
        return {"lr": self.lr, "decay": self.decay, "min_lr": self.min_lr}


class Trainer:
    """Adam (TF1's epsilon 1e-8) with the decayed learning rate, gradients clipped by value;
    Keras's own train step computes the gradients, whichever the backend."""

    def __init__(self, model, lr=config.RNN_LEARNING_RATE, decay=config.RNN_DECAY_RATE,
                 min_lr=config.RNN_MIN_LEARNING_RATE, clip=config.RNN_GRAD_CLIP, hps=hps_model):
        self.model = model
        self.schedule = DecayedLR(lr, decay, min_lr)
        self.optimizer = keras.optimizers.Adam(learning_rate=self.schedule, epsilon=1e-8, clipvalue=clip)
        self.optimizer.build(model.trainable_variables)
        model.compile(optimizer=self.optimizer, loss=lambda y, pred: mdn_loss(y, pred, hps.num_mixture),
                      jit_compile=False)

    def train_step(self, x, y):
        """One update on inputs x (B,T,35) and targets y (B,T,32); returns (loss, weights_all_finite)."""
        loss = float(self.model.train_on_batch(np.asarray(x, np.float32), np.asarray(y, np.float32)))
        # one reduction and one device-to-host read, not one per variable
        finite = bool(ops.all(ops.stack([ops.all(ops.isfinite(v)) for v in self.model.trainable_variables])))
        return loss, finite

    def test_loss(self, x, y):
        """The loss on inputs x and targets y, weights left as they are."""
        return float(self.model.test_on_batch(np.asarray(x, np.float32), np.asarray(y, np.float32)))

    @property
    def iterations(self):
        return int(ops.convert_to_numpy(self.optimizer.iterations))

    def lr_at(self, step):
        return self.schedule.value(step)

    def optimizer_state(self):
        """The optimizer's variables (step count, Adam moments) as NumPy arrays, in a fixed order."""
        return [np.array(ops.convert_to_numpy(v)) for v in self.optimizer.variables]

    def set_optimizer_state(self, arrays):
        variables = self.optimizer.variables
        if len(arrays) != len(variables):
            raise ValueError(f"optimizer state has {len(arrays)} arrays, expected {len(variables)}")
        for v, a in zip(variables, arrays):
            v.assign(np.asarray(a).reshape(v.shape).astype(v.dtype))
