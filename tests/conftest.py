"""Shared fixtures: a headless SDL by default, programs in windows on Xvfb displays, random models."""
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


def start_xvfb():
    """Start Xvfb on a display it picks itself; returns (server process, env dict with DISPLAY set).

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
        stop_process(proc)
        errors.seek(0)
        pytest.fail(f"Xvfb did not become ready within 60 s (exit code {proc.returncode}):\n"
                    + errors.read().decode(errors="replace")[-2000:])
    errors.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    env["DISPLAY"] = f":{int(number)}"
    return proc, env


def stop_process(proc, kill=False):
    if proc is not None and proc.poll() is None:
        proc.kill() if kill else proc.terminate()
        proc.wait(timeout=10)


class WindowApp:
    """A program that opens a window on its own fresh Xvfb display (see `window_app`)."""

    def __init__(self):
        self.server = self.proc = self.env = None

    def start(self, args, name, extra_env=None, timeout=60):
        """Run `args` (after python) and return the X id of its window titled `name`.

        Twice in full CI runs (never alone, in dozens of reruns) a program drew its frames for 60 s
        while xdotool saw no window of it (the one window listed is there on a bare Xvfb too); the
        program and the display are then started once more, and a second miss says what was seen.
        """
        for attempt in (1, 2):
            self.stop()
            self.server, self.env = start_xvfb()
            self.env.update(extra_env or {})
            self.proc = subprocess.Popen([PYTHON, *args], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
            try:
                return wait_for_window(self.env, name, self.proc, timeout)
            except AssertionError as e:
                if attempt == 2:
                    raise
                print(f"retrying once on a fresh display: {e}"[:3000])

    def communicate(self, timeout=60):
        return self.proc.communicate(timeout=timeout)

    def stop(self):
        stop_process(self.proc, kill=True)
        stop_process(self.server)
        self.server = self.proc = None


@pytest.fixture
def window_app():
    app = WindowApp()
    yield app
    app.stop()


def xdotool(env, *args, check=True):
    """Run xdotool on the Xvfb display of `env` (the xvfb fixture's dict)."""
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, check=check)


def focus_and_key(env, wid, key):
    """Focus window `wid` and press `key` in it (there is no window manager to focus it)."""
    xdotool(env, "windowfocus", "--sync", wid, check=False)
    xdotool(env, "key", key)


def wait_for_window(env, name, proc, timeout=60):
    """Window id of the first window of program `proc` whose title contains `name`, waiting for it.

    `xdotool search --name` misses SDL's UTF-8 titles, so every window's name is read instead.
    Fails at once with the program's output if it exits first.
    """
    started = time.time()
    titles, search = [], None
    while time.time() < started + timeout:
        search = xdotool(env, "search", "--classname", "", check=False)
        ids = search.stdout.split()
        titles = [xdotool(env, "getwindowname", wid, check=False).stdout.strip() for wid in ids]
        for wid, title in zip(ids, titles):
            if name in title:
                return wid
        by_name = xdotool(env, "search", "--name", name, check=False).stdout.split()  # ASCII titles
        if by_name:
            return by_name[0]
        if time.time() > started + 10:  # the program's own visible window, should its title stay unreadable
            mine = xdotool(env, "search", "--onlyvisible", "--pid", str(proc.pid), check=False).stdout.split()
            if mine:
                return mine[0]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    why = f"within {timeout}s"
    if proc.poll() is None:
        proc.kill()
    else:
        why = "before the program exited"
    out, err = proc.communicate(timeout=30)
    searched = "" if search is None else (f"\nlast `xdotool search`: exit code {search.returncode}, "
                                          f"{len(search.stdout.split())} windows, stderr {search.stderr[-500:]!r}")
    raise AssertionError(f"no window named {name!r} appeared on {env['DISPLAY']} {why} "
                         f"(windows there: {[t for t in titles if t]}){searched}\nprogram exit code "
                         f"{proc.returncode}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}")


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    """Random-weight vae.json and rnn.json (no training needed)."""
    import model

    return model.write_random_models(str(tmp_path_factory.mktemp("models")))
