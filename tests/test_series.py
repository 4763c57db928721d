"""series.py: every recorded episode encoded into latent series for M, on the tiny record/ of test_vae_train."""
import numpy as np
import pytest

import series
from common import UserError
from test_vae_train import LENGTHS, damaged_record, record  # noqa: F401 (fixtures)
from vae.vae import ConvVAE


def test_series_pads_unequal_episodes(damaged_record, tmp_path, capsys):
    v = ConvVAE(seed=0)
    v.save_json(str(tmp_path / "vae.json"))
    out = tmp_path / "series" / "series.npz"
    series.main(["--record-dir", str(damaged_record), "--vae", str(tmp_path / "vae.json"),
                 "--out", str(out), "--batch-size", "16"])
    captured = capsys.readouterr()
    assert "trunc.npz" in captured.err and "zcrc.npz" in captured.err
    assert "3 of 4 episodes are shorter than 40" in captured.out
    d = np.load(out)
    assert d["mu"].shape == d["logvar"].shape == (4, 40, 32) and d["mu"].dtype == np.float16
    assert d["action"].shape == (4, 40, 3) and d["action"].dtype == np.float16
    assert d["length"].dtype == np.int32 and d["length"].tolist() == LENGTHS
    assert d["files"].tolist() == [f"ep{i}.npz" for i in range(4)]
    with np.load(damaged_record / "ep2.npz") as ep:
        ref = ConvVAE()
        ref.load_json(str(tmp_path / "vae.json"))
        mu, logvar = ref.encode_mu_logvar(ep["obs"])
        np.testing.assert_array_equal(d["action"][2, :25], ep["action"])
    np.testing.assert_allclose(d["mu"][2, :25], mu, atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(d["logvar"][2, :25], logvar, atol=2e-3, rtol=2e-3)
    assert not d["mu"][2, 25:].any() and not d["action"][2, 25:].any()  # padding, never shifted data


def test_series_keras_encoder_matches_numpy(record, tmp_path):
    pytest.importorskip("keras")
    v = ConvVAE(seed=1)
    v.save_json(str(tmp_path / "vae.json"))
    common = ["--record-dir", str(record), "--vae", str(tmp_path / "vae.json"), "--batch-size", "16"]
    series.main(common + ["--out", str(tmp_path / "np.npz")])
    series.main(common + ["--out", str(tmp_path / "keras.npz"), "--keras"])
    a, b = np.load(tmp_path / "np.npz"), np.load(tmp_path / "keras.npz")
    assert a["files"].tolist() == b["files"].tolist() and a["length"].tolist() == b["length"].tolist()
    np.testing.assert_array_equal(a["action"], b["action"])
    for k in ("mu", "logvar"):   # float16 storage: a few units in the last place
        np.testing.assert_allclose(a[k].astype(np.float32), b[k].astype(np.float32), atol=2e-3, rtol=2e-3)
    assert np.abs(a["mu"].astype(np.float32)).max() > 0.01  # a real encoding, not zeros


def test_series_refuses_non_finite_latents(record, tmp_path):
    v = ConvVAE(seed=0)
    w = v.get_weights()
    w[9] = w[9] + 1e6  # mu's bias far beyond float16's range
    v.set_weights(w)
    v.save_json(str(tmp_path / "vae.json"))
    with pytest.raises(UserError, match="NaN or inf latents"):
        series.main(["--record-dir", str(record), "--vae", str(tmp_path / "vae.json"),
                     "--out", str(tmp_path / "series.npz")])
    assert not (tmp_path / "series.npz").exists()
