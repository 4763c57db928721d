"""Shared fixtures: a headless SDL by default, an Xvfb display for window tests, random models."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PYTHON = sys.executable

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# int8 encoders of the tests' random weights go to a throwaway cache, not vae/int8_cache/
os.environ["WM_INT8_CACHE"] = os.path.join(tempfile.mkdtemp(prefix="wm_int8_"), "cache")


@pytest.fixture
def xvfb():
    """Start Xvfb on a free display; yields an env dict for subprocesses with DISPLAY set."""
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.skip("Xvfb and xdotool are needed for window tests (apt-get install -y xvfb xdotool)")
    for n in range(90, 140):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    display = f":{n}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(f"/tmp/.X11-unix/X{n}"):
            break
        time.sleep(0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    env["DISPLAY"] = display
    yield env
    proc.terminate()
    proc.wait(timeout=10)


def xdotool(env, *args, check=True):
    """Run xdotool on the Xvfb display of `env` (the xvfb fixture's dict)."""
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, check=check)


def focus_and_key(env, wid, key):
    """Focus window `wid` and press `key` in it (there is no window manager to focus it)."""
    xdotool(env, "windowfocus", "--sync", wid, check=False)
    xdotool(env, "key", key)


def wait_for_window(env, name, timeout=60):
    """Window id of the first window whose title contains `name`, waiting for it to appear.

    `xdotool search --name` misses SDL's UTF-8 titles, so every window's name is read instead.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        ids = xdotool(env, "search", "--classname", "", check=False).stdout.split()
        for wid in ids:
            title = xdotool(env, "getwindowname", wid, check=False).stdout
            if name in title:
                return wid
        time.sleep(0.2)
    raise AssertionError(f"no window named {name!r} appeared within {timeout}s")


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    """Random-weight vae.json and rnn.json (no training needed)."""
    import model

    return model.write_random_models(str(tmp_path_factory.mktemp("models")))
