"""M: the NumPy MDN-RNN (rnn/rnn.py) against TF1's equations and Keras, rnn.json, the MDN loss and sampling."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from common import UserError
from rnn import rnn as R

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_rnn(seed=0, scale=1000):
    """An MDNRNN whose weights are random ints / 10000 (values exactly representable in rnn.json)."""
    rng = np.random.default_rng(seed)
    m = R.MDNRNN()
    m.set_model_params([rng.integers(-scale, scale + 1, s) for s in m.shapes])
    return m


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def tf1_step(kernel, bias, x, c, h):
    """BasicLSTMCell as TF1 computed it (float64), written out independently of rnn.py."""
    pre = np.concatenate([x, h]) @ kernel + bias
    i, j, f, o = np.split(pre, 4)
    c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)
    return c, np.tanh(c) * sigmoid(o)


def test_hyperparameters_and_shapes():
    assert R.hps_model.rnn_size == 256 and R.hps_model.num_mixture == 5
    assert R.hps_model.input_seq_width == 35 and R.hps_model.output_seq_width == 32
    assert (R.hps_sample.batch_size, R.hps_sample.max_seq_len, R.hps_sample.is_training) == (1, 1, 0)
    m = R.MDNRNN()
    assert [w.shape for w in m.weights] == [(256, 480), (480,), (291, 1024), (1024,)]
    assert all(w.dtype == np.float32 for w in m.weights)
    assert R.rnn_output_size(R.MODE_ZH) == 288


def test_json_round_trip_is_exact(tmp_path):
    m = random_rnn()
    path = str(tmp_path / "rnn.json")
    m.save_json(path)
    m2 = R.MDNRNN()
    m2.load_json(path)
    for a, b in zip(m.weights, m2.weights):
        np.testing.assert_array_equal(a, b)
    params, shapes, names = m2.get_model_params()
    assert names == ["output_w", "output_b", "kernel", "bias"] and shapes[2] == (291, 1024)
    with open(path) as f:
        assert json.load(f) == params
    m2.save_json(str(tmp_path / "again.json"))
    assert open(path, "rb").read() == open(tmp_path / "again.json", "rb").read()


def test_wrong_shape_or_count_names_the_file(tmp_path):
    m = random_rnn()
    params, _, _ = m.get_model_params()
    bad = tmp_path / "bad_rnn.json"
    bad.write_text(json.dumps([params[0], params[1], [[1, 2], [3, 4]], params[3]]))
    with pytest.raises(UserError, match=r"bad_rnn\.json.*kernel.*\(2, 2\).*\(291, 1024\)"):
        R.MDNRNN().load_json(str(bad))
    bad.write_text(json.dumps(params[:3]))
    with pytest.raises(UserError, match=r"bad_rnn\.json.*expected 4 arrays"):
        R.MDNRNN().load_json(str(bad))
    with pytest.raises(UserError, match="nothere"):
        R.MDNRNN().load_json(str(tmp_path / "nothere.json"))


def test_set_model_params_divides_by_10000():
    m = R.MDNRNN()
    m.set_model_params([np.full(s, 12345) for s in m.shapes])
    assert all(np.allclose(w, 1.2345) for w in m.weights)
    rand = m.get_random_model_params(stdev=0.5)
    assert [r.shape for r in rand] == [tuple(s) for s in m.shapes]
    m.set_model_params(rand)  # the random data policy's route: Cauchy draws shrunk 10000x
    np.testing.assert_allclose(m.kernel, (rand[2] / 10000).astype(np.float32))
    with pytest.raises(ValueError):
        m.kernel[0, 0] = 1.0  # read-only: in-place edits would bypass the precomputed step matrices


def test_original_layout_file_matches_tf1_equations(tmp_path):
    """A weights file in the original layout, built from random numbers and loaded through load_json,
    steps exactly as the TF1 BasicLSTMCell equations say."""
    rng = np.random.default_rng(1)
    shapes = [(256, 480), (480,), (291, 1024), (1024,)]
    ints = [rng.integers(-1500, 1501, s) for s in shapes]
    path = tmp_path / "orig_rnn.json"
    path.write_text(json.dumps([a.tolist() for a in ints]))
    m = R.MDNRNN()
    m.load_json(str(path))
    kernel, bias = ints[2] / 10000.0, ints[3] / 10000.0
    c = h = np.zeros(256)
    state = R.rnn_init_state(m)
    for _ in range(8):
        z, a = rng.standard_normal(32), rng.uniform(-1, 1, 3)
        c, h = tf1_step(kernel, bias, np.concatenate([z, a]), c, h)
        state = R.rnn_next_state(m, z, a, state)
        np.testing.assert_allclose(state.c, c, atol=1e-5)
        np.testing.assert_allclose(state.h, h, atol=1e-5)
    np.testing.assert_array_equal(R.rnn_output(state, z), np.concatenate([z, state.h]).astype(np.float32))
    # the mixture read-out: 32 rows of 15 = [logmix 5, mean 5, logstd 5]
    out = (h @ (ints[0] / 10000.0) + ints[1] / 10000.0).reshape(32, 15)
    logmix, mean, logstd = R.mdn_coef(m, state.h)
    np.testing.assert_allclose(mean, out[:, 5:10], atol=1e-4)
    np.testing.assert_allclose(logstd, out[:, 10:], atol=1e-4)
    lm = out[:, :5] - np.log(np.exp(out[:, :5]).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(logmix, lm, atol=1e-4)


def test_batched_and_unbatched_agree():
    m = random_rnn(2)
    rng = np.random.default_rng(3)
    z, a = rng.standard_normal((4, 32)), rng.uniform(-1, 1, (4, 3))
    sb = R.rnn_init_state(m, 4)
    sb = R.rnn_next_state(m, z, a, R.rnn_next_state(m, z, a, sb))
    for k in range(4):
        s = R.rnn_init_state(m)
        s = R.rnn_next_state(m, z[k], a[k], R.rnn_next_state(m, z[k], a[k], s))
        np.testing.assert_allclose(sb.h[k], s.h, atol=1e-6)
        np.testing.assert_allclose(sb.c[k], s.c, atol=1e-6)
        ob = R.rnn_output(sb, z)
        assert ob.shape == (4, R.rnn_output_size())
        np.testing.assert_allclose(ob[k], R.rnn_output(s, z[k]), atol=1e-6)
        for got, want in zip(R.mdn_coef(m, sb.h), R.mdn_coef(m, s.h)):
            np.testing.assert_allclose(got[k], want, atol=1e-5)
        np.testing.assert_allclose(R.sample_next_z(m, sb.h, 0.0)[k], R.sample_next_z(m, s.h, 0.0), atol=1e-5)
    assert R.sample_next_z(m, sb.h, 0.7, np.random.default_rng(0)).shape == (4, 32)
    assert R.sample_next_z(m, s.h, 0.7, np.random.default_rng(0)).shape == (32,)


def test_temperature_sampling():
    m = random_rnn(4)
    h = R.rnn_next_state(m, np.ones(32), np.zeros(3), R.rnn_init_state(m)).h
    logmix, mean, logstd = R.mdn_coef(m, h)
    best = mean[np.arange(32), logmix.argmax(axis=1)]
    np.testing.assert_array_equal(R.sample_next_z(m, h, 0.0), best)
    tiny = R.sample_next_z(m, h, 1e-8, np.random.default_rng(0))
    np.testing.assert_allclose(tiny, best, atol=1e-2)
    hb = np.repeat(h[None], 4000, axis=0)
    spread = [R.sample_next_z(m, hb, t, np.random.default_rng(5)).std(axis=0).mean() for t in (0.1, 0.7, 1.5)]
    assert spread[0] < spread[1] < spread[2]


def test_component_frequencies_follow_the_mixture():
    """At tau = 1, component k is drawn with probability exp(logmix_k): checked with near-zero stds."""
    m = R.MDNRNN()
    w, b = np.zeros((256, 480)), np.zeros(480)
    rows = b.reshape(32, 15)
    rows[:, :5] = np.log([0.1, 0.2, 0.3, 0.15, 0.25])
    rows[:, 5:10] = np.arange(5)
    rows[:, 10:] = -20.0
    m.set_weights([w, b, m.kernel, m.bias])
    z = R.sample_next_z(m, np.zeros((500, 256)), 1.0, np.random.default_rng(0))
    freq = np.bincount(np.rint(z).astype(int).ravel(), minlength=5) / z.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.15, 0.25], atol=0.01)
    # tau = 2 flattens the mixture: the rarest component gets more often picked
    z2 = R.sample_next_z(m, np.zeros((500, 256)), 2.0, np.random.default_rng(0))
    assert (np.rint(z2) == 0).mean() > freq[0] + 0.02


def test_numpy_module_does_not_import_tensorflow():
    code = "import sys, rnn.rnn; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ---- Keras twin ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def K():
    pytest.importorskip("tensorflow")
    from rnn import keras_rnn

    return keras_rnn


def test_numpy_step_matches_keras_lstm(K):
    import keras

    m = random_rnn(6, scale=800)
    model = K.build_rnn()
    K.weights_to_keras(model, m.weights)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 20, 35)).astype(np.float32)
    lstm_out = keras.Model(model.input, model.get_layer("lstm").output)
    hk, yk = keras.ops.convert_to_numpy(lstm_out(x)), keras.ops.convert_to_numpy(model(x))
    state = R.rnn_init_state(m, 3)
    for t in range(20):
        state = R.rnn_next_state(m, x[:, t, :32], x[:, t, 32:], state)
        np.testing.assert_allclose(state.h, hk[:, t], atol=1e-5)
        np.testing.assert_allclose(state.h @ m.output_w + m.output_b, yk[:, t], atol=1e-4)


def test_layout_conversion_round_trip(K):
    m = random_rnn(8)
    model = K.build_rnn()
    K.weights_to_keras(model, m.weights)
    k_in, k_rec, b = model.get_layer("lstm").get_weights()
    # Keras gate order i, f, c, o; forget bias folded in
    np.testing.assert_array_equal(k_in[:, 256:512], m.kernel[:35, 512:768])
    np.testing.assert_array_equal(k_rec[:, 512:768], m.kernel[35:, 256:512])
    np.testing.assert_allclose(b[256:512], m.bias[512:768] + 1.0, atol=1e-7)
    back = K.keras_to_weights(model)
    for name, got, want in zip(R.VAR_NAMES, back, m.weights):
        if name == "bias":
            # exact except where +1 then -1 rounds in float32 (forget gate), which rnn.json's 1e-4 grid absorbs
            np.testing.assert_array_equal(np.delete(got, np.s_[512:768]), np.delete(want, np.s_[512:768]))
            np.testing.assert_allclose(got, want, rtol=0, atol=1.2e-7)
        else:
            np.testing.assert_array_equal(got, want)
    m2 = R.MDNRNN()
    m2.set_weights(back)
    assert m2.get_model_params()[0] == m.get_model_params()[0]


def test_mdn_loss_by_hand(K):
    """One dim, two steps, two components, written out with math.log / math.exp."""
    z_next = np.array([[[0.5], [-1.0]]], np.float32)              # (B=1, T=2, 1)
    pred = np.array([[[0.3, -0.2, 0.0, 1.0, -0.5, 0.2],           # logmix 2, mean 2, logstd 2
                      [1.0, 1.0, -1.0, 2.0, 0.0, 0.1]]], np.float32)
    total = 0.0
    for t in range(2):
        lm, mu, ls = pred[0, t, :2], pred[0, t, 2:4], pred[0, t, 4:]
        norm = math.log(math.exp(lm[0]) + math.exp(lm[1]))
        y = float(z_next[0, t, 0])
        like = sum(math.exp(lm[k] - norm) * math.exp(-0.5 * ((y - mu[k]) / math.exp(ls[k])) ** 2)
                   / (math.exp(ls[k]) * math.sqrt(2 * math.pi)) for k in range(2))
        total += -math.log(like)
    got = float(K.mdn_loss(z_next, pred, num_mixture=2))
    assert got == pytest.approx(total / 2, abs=1e-5)


def test_learning_rate_schedule(K):
    s = K.DecayedLR(1e-3, 0.5, 1e-4)
    assert [s.value(k) for k in (0, 1, 2, 10)] == [1e-3, 5e-4, 2.5e-4, 1e-4]
    assert float(s(3)) == pytest.approx(1.25e-4)
    assert K.DecayedLR(1e-3, 1.0, 1e-5).value(4000) == 1e-3
