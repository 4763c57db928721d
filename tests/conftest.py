"""Shared fixtures: a headless SDL by default, an Xvfb display for window tests, random models."""
import os
import select
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
    """Start Xvfb on a display it picks itself; yields an env dict for subprocesses with DISPLAY set.

    `-displayfd` makes Xvfb choose a free display number (no race with stale lock files or with
    another X server reachable through the abstract socket namespace) and write it to a pipe only
    once it accepts connections, so a window test never starts against a server still booting.
    """
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.skip("Xvfb and xdotool are needed for window tests (apt-get install -y xvfb xdotool)")
    read_fd, write_fd = os.pipe()
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=errors)
    os.close(write_fd)
    number = b""
    deadline = time.time() + 60
    while not number.endswith(b"\n") and time.time() < deadline:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.time()))
        chunk = os.read(read_fd, 16) if ready else b""
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        proc.wait()
        errors.seek(0)
        pytest.fail(f"Xvfb did not become ready within 60 s (exit code {proc.returncode}):\n"
                    + errors.read().decode(errors="replace")[-2000:])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    env["DISPLAY"] = f":{int(number)}"
    yield env
    proc.terminate()
    proc.wait(timeout=10)
    errors.close()


def xdotool(env, *args, check=True):
    """Run xdotool on the Xvfb display of `env` (the xvfb fixture's dict)."""
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, check=check)


def focus_and_key(env, wid, key):
    """Focus window `wid` and press `key` in it (there is no window manager to focus it)."""
    xdotool(env, "windowfocus", "--sync", wid, check=False)
    xdotool(env, "key", key)


def wait_for_window(env, name, proc=None, timeout=60):
    """Window id of the first window whose title contains `name`, waiting for it to appear.

    `xdotool search --name` misses SDL's UTF-8 titles, so every window's name is read instead.
    Given the program `proc` that should open it, fails at once with its output if it exits first.
    """
    deadline = time.time() + timeout
    titles, search = [], None
    while time.time() < deadline:
        search = xdotool(env, "search", "--classname", "", check=False)
        ids = search.stdout.split()
        titles = [xdotool(env, "getwindowname", wid, check=False).stdout.strip() for wid in ids]
        for wid, title in zip(ids, titles):
            if name in title:
                return wid
        by_name = xdotool(env, "search", "--name", name, check=False).stdout.split()  # ASCII titles
        if by_name:
            return by_name[0]
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    output, why = "", f"within {timeout}s"
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
        else:
            why = "before the program exited"
        out, err = proc.communicate(timeout=30)
        output = f"\nprogram exit code {proc.returncode}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}"
    searched = "" if search is None else (f"\nlast `xdotool search`: exit code {search.returncode}, "
                                          f"{len(search.stdout.split())} windows, stderr {search.stderr[-500:]!r}")
    raise AssertionError(f"no window named {name!r} appeared on {env['DISPLAY']} {why} "
                         f"(windows there: {[t for t in titles if t]}){searched}{output}")


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    """Random-weight vae.json and rnn.json (no training needed)."""
    import model

    return model.write_random_models(str(tmp_path_factory.mktemp("models")))
