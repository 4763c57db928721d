"""Every top-level script answers --help with its usage and says what it reads and writes."""
import ast
import glob
import os
import subprocess

import pytest

from conftest import PYTHON, ROOT


def _read(path):
    with open(path) as f:
        return f.read()


SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(f"{ROOT}/*.py") if '__name__ == "__main__"' in _read(p))


def test_the_scripts_are_found():
    assert {"env.py", "model.py", "train.py", "extract.py", "vae_train.py", "compare_scores.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script):
    doc = ast.get_docstring(ast.parse(_read(f"{ROOT}/{script}")))
    assert doc and len(doc) > 40, f"{script} needs a module docstring saying what it reads and writes"
    out = subprocess.run([PYTHON, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:") and "-h, --help" in out.stdout, out.stdout[:300]
