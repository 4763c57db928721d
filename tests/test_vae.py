"""V: the NumPy ConvVAE (sizes, vae.json format, original param semantics) and its Keras twin."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common import UserError
from vae.vae import ConvVAE, count_params, param_layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def noisy_vae(seed=0):
    """A ConvVAE whose biases are non-zero too, so every weight shows up in the outputs."""
    v = ConvVAE(seed=seed)
    rng = np.random.default_rng(seed)
    v.set_weights([w if w.ndim > 1 else rng.normal(0, 0.05, w.shape) for w in v.weights])
    return v


def frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_param_counts():
    assert count_params() == (755_744, 3_592_803)
    v = ConvVAE()
    sizes = [w.size for w in v.weights]
    assert sum(sizes[:12]) == 755_744 and sum(sizes[12:]) == 3_592_803
    assert [w.shape for w in v.weights][:2] == [(4, 4, 3, 32), (32,)]
    assert v.weights[14].shape == (5, 5, 128, 1024)  # conv2d_transpose layout (k, k, out, in)
    assert len(param_layout()) == 22


def test_shapes_and_ranges():
    v = noisy_vae()
    mu, logvar = v.encode_mu_logvar(frames(3))
    assert mu.shape == logvar.shape == (3, 32) and mu.dtype == np.float32
    z = v.encode(frames(3))
    assert z.shape == (3, 32) and not np.allclose(z, mu)
    y = v.decode(np.random.default_rng(0).normal(size=(2, 32)))
    assert y.shape == (2, 64, 64, 3) and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert v.decode(np.zeros(32)).shape == (1, 64, 64, 3)


def test_uint8_and_float_input_agree():
    v = noisy_vae()
    x = frames(4)
    mu_u, lv_u = v.encode_mu_logvar(x)
    mu_f, lv_f = v.encode_mu_logvar(x.astype(np.float32) / 255.0)
    np.testing.assert_allclose(mu_u, mu_f, atol=1e-6)
    np.testing.assert_allclose(lv_u, lv_f, atol=1e-6)
    mu_1, _ = v.encode_mu_logvar(x[2])  # one frame (64,64,3) -> (1, 32)
    assert mu_1.shape == (1, 32)
    np.testing.assert_allclose(mu_1[0], mu_u[2], atol=1e-5)


def test_json_round_trip_is_exact(tmp_path):
    v = noisy_vae(1)
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    v.save_json(str(p1))
    w = ConvVAE(seed=2)
    w.load_json(str(p1))
    for orig, loaded in zip(v.weights, w.weights):
        expected = (np.round(orig.astype(np.float64) * 10000) / 10000).astype(np.float32)
        np.testing.assert_array_equal(loaded, expected)
    w.save_json(str(p2))
    assert p1.read_bytes() == p2.read_bytes()
    data = json.loads(p1.read_text())
    assert len(data) == 22 and isinstance(data[1][0], int)
    assert np.array(data[0]).shape == (4, 4, 3, 32)


def test_bad_json_names_file_and_variable(tmp_path):
    v = ConvVAE()
    params, shapes, names = v.get_model_params()
    params[2] = np.zeros((4, 4, 64, 32), int).tolist()  # enc_conv2 kernel with in/out swapped
    bad = tmp_path / "bad_vae.json"
    bad.write_text(json.dumps(params))
    with pytest.raises(UserError) as e:
        ConvVAE().load_json(str(bad))
    msg = str(e.value)
    assert str(bad) in msg and "enc_conv2/kernel" in msg and "(4, 4, 32, 64)" in msg and "(4, 4, 64, 32)" in msg
    short = tmp_path / "short.json"
    short.write_text(json.dumps(params[:10]))
    with pytest.raises(UserError, match="short.json.*22 arrays.*found 10"):
        ConvVAE().load_json(str(short))
    with pytest.raises(UserError, match="missing.json"):
        ConvVAE().load_json(str(tmp_path / "missing.json"))


def test_original_param_semantics():
    v = ConvVAE()
    params, shapes, names = v.get_model_params()
    assert shapes[0] == (4, 4, 3, 32) and names[0].endswith("enc_conv1/kernel:0")
    assert params[0][0][0][0][0] == int(round(float(v.weights[0][0, 0, 0, 0]) * 10000))
    v.set_model_params([np.full(s, 12345) for s in shapes])
    assert all(np.all(w == np.float32(1.2345)) for w in v.weights)
    np.random.seed(0)
    rand = v.get_random_model_params(stdev=0.5)
    assert [r.shape for r in rand] == [tuple(s) for s in shapes]
    v.set_random_params(stdev=0.5)  # Cauchy * 0.5, then / 10000: tiny weights, as the original
    med = np.median(np.abs(np.concatenate([w.ravel() for w in v.weights])))
    assert 2e-5 < med < 1e-4


def test_numpy_module_does_not_import_tensorflow():
    code = "import sys, vae.vae, vae; assert 'tensorflow' not in sys.modules, 'tf imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.fixture(scope="module")
def keras_vae():
    return pytest.importorskip("vae.keras_vae")


def test_numpy_matches_keras(keras_vae):
    v = noisy_vae(3)
    model = keras_vae.build_vae()
    keras_vae.weights_to_keras(model, v.weights)
    for a, b in zip(keras_vae.keras_to_weights(model), v.weights):
        np.testing.assert_array_equal(a, b)
    x = frames(5)
    mu, logvar = v.encode_mu_logvar(x)
    from keras.ops import convert_to_numpy as to_np

    kmu, klogvar = model.encoder(x.astype(np.float32) / 255.0)
    np.testing.assert_allclose(mu, to_np(kmu), atol=1e-5)
    np.testing.assert_allclose(logvar, to_np(klogvar), atol=1e-5)
    z = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
    np.testing.assert_allclose(v.decode(z), to_np(model.decoder(z)), atol=1e-5)


def test_kl_floor(keras_vae):
    x = np.zeros((2, 64, 64, 3), np.float32)
    y = np.full((2, 64, 64, 3), 0.5, np.float32)  # squared error per image: 12288 * 0.25 = 3072
    mu = np.zeros((2, 32), np.float32)
    mu[1, :20] = 2.0  # KL = 0.5 * sum(mu^2) = 40 nats: above the floor of 16
    logvar = np.zeros((2, 32), np.float32)
    logvar[0] = np.log(2.0)  # KL = 32 * 0.5 * (2 - 1 - ln 2) = 4.91: floored to 16
    loss, r, kl = [float(t) for t in keras_vae.vae_loss(x, y, mu, logvar, 0.5)]
    assert r == pytest.approx(3072.0)
    assert kl == pytest.approx((16.0 + 40.0) / 2)  # per-image floor, then the batch mean
    assert loss == pytest.approx(3072.0 + 28.0)
    _, _, kl_above = keras_vae.vae_loss(x[1:], y[1:], mu[1:], logvar[1:], 0.5)
    _, _, kl_below = keras_vae.vae_loss(x[:1], y[:1], mu[:1], logvar[:1], 0.5)
    assert float(kl_above) == pytest.approx(40.0) and float(kl_below) == pytest.approx(16.0)
