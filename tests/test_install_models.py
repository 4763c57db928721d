"""install_models.py: the original's manual copy of V, M and initial_z into place, checked."""
import json

import numpy as np
import pytest

import install_models
from common import UserError
from rnn.rnn import MDNRNN
from vae.vae import ConvVAE


def test_install_models_copies_and_refuses_to_overwrite(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    rng = np.random.default_rng(0)
    m = MDNRNN()
    m.set_model_params([rng.integers(-100, 100, s) for s in m.shapes])
    m.save_json(str(src / "rnn.json"))
    (src / "initial_z.json").write_text(json.dumps(rng.integers(-9999, 9999, (2, 5, 32)).tolist()))
    ConvVAE(seed=0).save_json(str(src / "vae.json"))
    argv = []
    for name in ("vae", "rnn", "initial_z"):
        flag = name.replace("_", "-")
        argv += [f"--{flag}-src", str(src / f"{name}.json"), f"--{flag}-dst", str(dst / name / f"{name}.json")]
    install_models.main(argv)
    for name in ("vae", "rnn", "initial_z"):
        assert (dst / name / f"{name}.json").read_bytes() == (src / f"{name}.json").read_bytes()
    install_models.main(argv)   # unchanged files: fine
    assert "already up to date" in capsys.readouterr().out

    m.set_model_params([rng.integers(-100, 100, s) for s in m.shapes])
    m.save_json(str(src / "rnn.json"))
    old = (dst / "rnn" / "rnn.json").read_bytes()
    with pytest.raises(UserError, match=r"rnn\.json.*differ.*--force"):
        install_models.main(argv)
    assert (dst / "rnn" / "rnn.json").read_bytes() == old
    install_models.main(argv + ["--force"])
    assert (dst / "rnn" / "rnn.json").read_bytes() == (src / "rnn.json").read_bytes()

    (src / "initial_z.json").write_text(json.dumps([[[1, 2]]]))
    with pytest.raises(UserError, match=r"initial_z\.json: shape \(1, 1, 2\)"):
        install_models.main(argv + ["--force"])


def test_nan_weights_are_never_installed(tmp_path):
    (tmp_path / "iz.json").write_text("[[[NaN" + ", 0" * 31 + "]], [[0" + ", 0" * 31 + "]]]")
    with pytest.raises(UserError, match="NaN or inf"):
        install_models.check_initial_z(str(tmp_path / "iz.json"))
