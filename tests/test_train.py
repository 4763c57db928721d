"""train.py: tiny runs with and without MPI write the original's log files; SIGKILL + --resume
loses and repeats nothing; a failing worker stops the run at once with its message."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT

PYTHON = sys.executable
MPIEXEC = os.path.join(os.path.dirname(PYTHON), "mpiexec")
TRAIN = os.path.join(ROOT, "train.py")
BASE = "carracing.cma.2.4"
RENDERER = "exact"
TINY = ["-n", "4", "--num_episode", "2", "--max_len", "50", "--generations", "2", "--eval_steps", "1",
        "--num_eval_episode", "2", "--renderer", RENDERER]


def tiny_args(random_models, log_dir, *extra):
    vae, rnn = random_models
    return TINY + ["--vae", vae, "--rnn", rnn, "--log-dir", str(log_dir), *extra]


def run(cmd, env=None, timeout=120):
    env = dict(os.environ, **(env or {}))
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return p, time.time() - t0


def check_logs(log_dir, generations=2):
    """Every file in the original's format; returns the history rows."""
    prefix = os.path.join(str(log_dir), BASE)
    with open(prefix + ".hist.json") as f:
        hist = json.load(f)
    assert [row[0] for row in hist] == list(range(1, generations + 1))
    for row in hist:
        assert len(row) == 9 and all(isinstance(v, (int, float)) for v in row)
        gen, seconds, mean, low, high, std, rms, mean_steps, max_steps = row
        assert low <= mean <= high and std >= 0 and 0 < rms < 0.2 and 0 < mean_steps <= max_steps <= 50
    with open(prefix + ".hist_best.json") as f:
        hist_best = json.load(f)
    assert [row[0] for row in hist_best] == list(range(1, generations + 1))
    for row in hist_best:
        assert len(row) == 10 and row[2::2] == ["improvement", "curr", "prev", "best"]
        assert isinstance(row[5], float) and row[9] == max(r[5] for r in hist_best[:hist_best.index(row) + 1])
    assert hist_best[0][3] is None and hist_best[0][7] is None  # no previous evaluation
    with open(prefix + ".log.json") as f:
        eval_log = json.load(f)
    assert [(g, r) for g, r, _ in eval_log] == [(row[0], row[5]) for row in hist_best]
    assert all(len(p) == 867 for _, _, p in eval_log)
    with open(prefix + ".best.json") as f:
        best_params, best_reward = json.load(f)
    assert len(best_params) == 867 and best_reward == hist_best[-1][9]
    assert all(round(v, 4) == v for v in best_params)
    with open(prefix + ".json") as f:
        current = json.load(f)
    assert len(current) == 1 and len(current[0]) == 867
    events = os.listdir(os.path.join(str(log_dir), "tb", BASE))
    assert events and all(e.startswith("events.out.tfevents.") for e in events)
    return hist


@pytest.fixture(scope="module")
def process_run(random_models, tmp_path_factory):
    """The reference run without MPI: 2 worker processes."""
    log_dir = tmp_path_factory.mktemp("log_processes")
    p, seconds = run([PYTHON, TRAIN, *tiny_args(random_models, log_dir, "--processes", "2")])
    assert p.returncode == 0, p.stdout + p.stderr
    return log_dir, p.stdout


def test_processes_run_writes_original_logs(process_run, random_models):
    log_dir, stdout = process_run
    assert "gen 2 " in stdout and "eval gen 2" in stdout
    check_logs(log_dir)
    import model

    m = model.make_model(vae_path=random_models[0], rnn_path=random_models[1])
    for ext in ("best.json", "json"):  # controller files load as the original's did
        m.load_model(os.path.join(str(log_dir), f"{BASE}.{ext}"))
    with open(os.path.join(str(log_dir), f"{BASE}.best.json")) as f:
        assert np.allclose(m.get_model_params(), json.load(f)[0])
    from common import read_scalars

    scalars = read_scalars(os.path.join(str(log_dir), "tb", BASE))
    hist = json.load(open(os.path.join(str(log_dir), f"{BASE}.hist.json")))
    assert [s for s, _ in scalars["fitness/mean"]] == [row[0] for row in hist]
    assert np.allclose([v for _, v in scalars["fitness/mean"]], [row[2] for row in hist])


def test_mpi_run_matches_processes(process_run, random_models, tmp_path):
    cmd = [MPIEXEC, "-n", "3", PYTHON, "-m", "mpi4py.futures", TRAIN, *tiny_args(random_models, tmp_path)]
    p, _ = run(cmd)
    assert p.returncode == 0, p.stdout + p.stderr
    hist = check_logs(tmp_path)
    reference = check_logs(process_run[0])
    assert [row[2:] for row in hist] == [row[2:] for row in reference]  # same seeds, same fitness


def test_sigkill_then_resume(process_run, random_models, tmp_path):
    cmd = [PYTHON, TRAIN, *tiny_args(random_models, tmp_path, "--processes", "2")]
    ckpt = os.path.join(str(tmp_path), BASE + ".ckpt.pkl")
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        deadline = time.time() + 90
        while not os.path.exists(ckpt):
            assert p.poll() is None and time.time() < deadline, p.stdout.read().decode()
            time.sleep(0.05)
        time.sleep(0.5)  # into generation 2
        assert p.poll() is None, "the run finished before it could be killed"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    with open(ckpt, "rb") as f:
        st = pickle.load(f)
    assert st["generation"] == 1 and st["flags"]["max_len"] == 50 and st["flags"]["renderer"] == RENDERER

    again, _ = run(cmd)  # an existing run is never overwritten by accident
    assert again.returncode == 2 and "--resume" in again.stderr

    # a bare --resume: the episode length, renderer, V and M come from the checkpoint
    resumed, _ = run([PYTHON, TRAIN, "-n", "4", "--num_episode", "2", "--generations", "2", "--log-dir", str(tmp_path),
                      "--processes", "2", "--resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "after generation 1" in resumed.stdout and "gen 1 " not in resumed.stdout
    assert "resume: the run's flags from its checkpoint:" in resumed.stdout and "--max_len 50" in resumed.stdout
    hist = check_logs(tmp_path)
    reference = check_logs(process_run[0])
    assert [row[2:] for row in hist] == [row[2:] for row in reference]


@pytest.mark.parametrize("how", ["processes", "inline", "mpi"])
def test_worker_error_fails_fast(random_models, tmp_path, how):
    broken = tmp_path / "rnn.json"
    broken.write_text("[[1]]")  # the workers load M: each raises on it
    args = tiny_args((random_models[0], str(broken)), tmp_path)
    if how == "mpi":
        cmd = [MPIEXEC, "-n", "3", PYTHON, "-m", "mpi4py.futures", TRAIN, *args]
    else:
        cmd = [PYTHON, TRAIN, *args, "--processes", "2" if how == "processes" else "1"]
    p, seconds = run(cmd, timeout=60)
    assert p.returncode != 0
    assert "a worker failed: UserError: " in p.stderr and "rnn.json" in p.stderr
    assert seconds < 20


def test_worker_death_fails_fast(random_models, tmp_path):
    import psutil

    cmd = [PYTHON, TRAIN, *tiny_args(random_models, tmp_path, "--processes", "2")]
    cmd[cmd.index("--generations") + 1] = "1000"
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = os.path.join(str(tmp_path), BASE + ".ckpt.pkl")
    deadline = time.time() + 90
    while not os.path.exists(ckpt):  # the pool's workers are up
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.1)
    master = psutil.Process(p.pid)
    workers = [q for c in master.children() for q in c.children()]  # the forkserver's children
    assert workers
    t0 = time.time()
    workers[0].kill()
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "BrokenProcessPool" in err and time.time() - t0 < 20


def test_retrain_starts_from_the_saved_mean(random_models, tmp_path):
    with open(os.path.join(str(tmp_path), "carracing.cma.1.2.json"), "w") as f:
        json.dump([[1.0] * 867], f)
    vae, rnn = random_models
    cmd = [PYTHON, TRAIN, "-n", "2", "--num_episode", "1", "--max_len", "5", "--generations", "1",
           "--processes", "1", "--renderer", "obs64", "--vae", vae, "--rnn", rnn,
           "--log-dir", str(tmp_path), "--retrain", "1"]  # (and train.py drives with obs64)
    p, _ = run(cmd)
    assert p.returncode == 0, p.stdout + p.stderr
    with open(os.path.join(str(tmp_path), "carracing.cma.1.2.json")) as f:
        mean = np.array(json.load(f)[0])
    assert abs(mean.mean() - 1.0) < 0.2  # one CMA step of sigma 0.1 from 1.0, not from 0


def test_help_shows_mpi_usage():
    p, _ = run([PYTHON, TRAIN, "--help"])
    assert p.returncode == 0 and "mpiexec -n" in p.stdout and "mpi4py.futures" in p.stdout


def test_a_generation_drives_the_hard_tracks(monkeypatch):
    import train
    from fitness import TRAIN_SEED_LOW
    from workers import InlineExecutor

    class Zeros:
        def ask(self):
            return np.zeros((4, 867))

        def tell(self, ranking):
            pass

    driven = []

    def fake_evaluate(params, seeds, *rest):
        driven.append(list(seeds))
        return [0.0] * len(seeds), [1] * len(seeds)

    monkeypatch.setattr(train, "evaluate", fake_evaluate)
    pool = (2 ** 21 + 7, 2 ** 21 + 9, 2 ** 21 + 11)
    _, _, episodes = train.run_generation(Zeros(), InlineExecutor(), np.random.default_rng(0), 3, False, 20,
                                          ("v", "r", "turbo", "numpy"), True, 0, 0, pool, 2)
    assert episodes == 12 and len(driven) == 4
    assert all(s[0] >= TRAIN_SEED_LOW and s[0] not in pool and set(s[1:]) <= set(pool) for s in driven)


def test_hard_tracks_run_writes_original_logs(random_models, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("".join(f"seed {2 ** 21 + i} reward {500 + i} steps 1000\n" for i in range(3)))
    p, _ = run([PYTHON, TRAIN, *tiny_args(random_models, tmp_path, "--processes", "1", "--hard_episodes", "1",
                                          "--hard_tracks", str(pool))])
    assert p.returncode == 0, p.stdout + p.stderr
    check_logs(tmp_path)


def test_hard_pool_is_the_training_tracks_scored_below_the_line(random_models, tmp_path):
    import train

    vae, rnn = random_models
    scores = tmp_path / "pool.txt"
    scores.write_text("model size 867\n" + "".join(f"seed {2 ** 21 + i} reward {r} steps 1000\n"
                                                  for i, r in enumerate([912.0, 640.5, 799.9, 800.0, 310.2])))
    args = train.parse_args(["--vae", vae, "--rnn", rnn, "--num_episode", "4", "--hard_episodes", "2",
                             "--hard_tracks", str(scores)])
    assert args.hard_pool == (2 ** 21 + 1, 2 ** 21 + 2, 2 ** 21 + 4)
    from common import UserError

    with pytest.raises(UserError, match="3 tracks below --hard_below 800.0, fewer than --hard_episodes 4"):
        train.parse_args(["--vae", vae, "--rnn", rnn, "--num_episode", "4", "--hard_episodes", "4",
                          "--hard_tracks", str(scores)])
    scores.write_text("seed 20005 reward 500.0 steps 1000\n")  # a validation track
    with pytest.raises(UserError, match="has seed 20005: training tracks are seeds >= 1048576"):
        train.parse_args(["--vae", vae, "--rnn", rnn, "--hard_episodes", "1", "--hard_tracks", str(scores)])


def test_killing_the_master_leaves_no_process_of_the_run(random_models, tmp_path):
    import psutil

    cmd = [PYTHON, TRAIN, *tiny_args(random_models, tmp_path, "--processes", "2")]
    cmd[cmd.index("--generations") + 1] = "1000"
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    master = psutil.Process(p.pid)
    ckpt = os.path.join(str(tmp_path), BASE + ".ckpt.pkl")
    deadline = time.time() + 90
    while not os.path.exists(ckpt):  # workers are up and busy
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.1)
    family = master.children(recursive=True)
    assert len(family) >= 3  # forkserver (and resource tracker) + 2 workers
    p.send_signal(signal.SIGKILL)  # the master alone, as `kill -9 PID` does
    p.wait()
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [(q.pid, q.cmdline()) for q in alive]


def test_screening_drives_the_rest_only_for_the_better_half(random_models):
    import train
    from fitness import generation_seeds
    from workers import InlineExecutor

    class Recorder:  # an optimiser that keeps what it is told
        def ask(self):
            return np.random.default_rng(0).normal(0, 0.3, (6, 867))

        def tell(self, ranking):
            self.ranking = ranking

    opt = Recorder()
    fitness, steps, episodes = train.run_generation(opt, InlineExecutor(), np.random.default_rng(1), 3, False, 20,
                                                    (*random_models, "turbo", "numpy"), True, 0, 1)
    assert episodes == 6 * 1 + 3 * 2 and len(fitness) == len(steps) == 6
    top = np.argsort(-opt.ranking)[:3]
    # the better half is the one the first track picks: drive every candidate on it again
    first = generation_seeds(np.random.default_rng(1), 6, 3, False, True)[0][:1]
    screened = [train.evaluate(p, first, 20, *random_models, "turbo", "numpy")[0][0] for p in opt.ask()]
    assert set(top) == set(np.argsort(-np.array(screened), kind="stable")[:3])
    assert np.all(opt.ranking[top] == fitness[top]) and opt.ranking[top].min() > np.delete(opt.ranking, top).max()


def test_screen_episodes_run_writes_original_logs(random_models, tmp_path):
    p, _ = run([PYTHON, TRAIN, *tiny_args(random_models, tmp_path, "--processes", "1", "--screen_episodes", "1")])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "episodes 6" in p.stdout  # 4 candidates x 1 track + the better 2 x 1 more
    check_logs(tmp_path)


def test_resume_takes_the_runs_flags_from_its_checkpoint_unless_given_again(random_models, tmp_path):
    import train
    from common import UserError
    from train_state import run_flags

    vae, rnn = random_models
    first = train.parse_args(tiny_args(random_models, tmp_path, "--common_tracks", "1", "--stall_frames", "5"))
    flags = run_flags(first)
    assert flags["encoder"] is not None and flags["vae"] == os.path.realpath(vae)  # outside the project: absolute

    def checkpoint(**changes):
        with open(tmp_path / f"{BASE}.ckpt.pkl", "wb") as f:
            pickle.dump({"flags": dict(flags, **changes), "generation": 1}, f)

    checkpoint(unknown_old_flag=3)  # a flag a later version dropped: ignored
    bare = ["-n", "4", "--num_episode", "2", "--log-dir", str(tmp_path), "--resume"]
    resumed = train.parse_args(bare)  # not even --vae/--rnn: they are the run's too
    assert run_flags(resumed) == flags
    assert resumed.resume_state["generation"] == 1  # read once: train() resumes from it
    out = resumed.resume_notes[0]  # printed by train(), on the master only
    assert "--common_tracks 1" in out and "--stall_frames 5" in out and f"--vae {flags['vae']}" in out
    changed = train.parse_args(bare + ["--stall_frames", "7", "--max-frames", "40"])
    assert changed.stall_frames == 7 and changed.max_len == 40 and changed.common_tracks == 1
    notes = "\n".join(changed.resume_notes)
    assert "--stall_frames changed from 5 to 7" in notes and "--max_len changed from 50 to 40" in notes
    assert "--max_len" not in changed.resume_notes[0]  # given again: not also "taken"

    pool = tmp_path / "pool.txt"
    pool.write_text("".join(f"seed {2 ** 21 + i} reward {500 + i} steps 1000\n" for i in range(3)))
    checkpoint(hard_tracks=str(pool), hard_episodes=1, hard_below=600.0)
    assert train.parse_args(bare).hard_pool == (2 ** 21, 2 ** 21 + 1, 2 ** 21 + 2)
    off = train.parse_args(bare + ["--hard_episodes", "0"])  # turning the pool off needs no other flag
    assert off.hard_pool == () and off.hard_tracks is None and "is not taken" in "\n".join(off.resume_notes)
    checkpoint(renderer="a_renderer_since_removed")
    with pytest.raises(UserError, match="holds --renderer a_renderer_since_removed, not one of"):
        train.parse_args(bare)
    with open(tmp_path / f"{BASE}.ckpt.pkl", "wb") as f:
        pickle.dump({"generation": 1}, f)  # written before the flags were kept: as before
    assert train.parse_args(tiny_args(random_models, tmp_path, "--resume")).resume_notes == []
    os.remove(tmp_path / f"{BASE}.ckpt.pkl")
    assert train.parse_args(tiny_args(random_models, tmp_path, "--resume")).resume_state is None


def test_a_run_on_other_z_noise_says_so_in_its_controller_files(random_models, tmp_path):
    import model

    p, _ = run([PYTHON, TRAIN, *tiny_args(random_models, tmp_path, "--processes", "1", "--z_noise", "0",
                                          "--generations", "1", "--renderer", "obs64")])
    assert p.returncode == 0, p.stdout + p.stderr
    prefix = os.path.join(str(tmp_path), BASE)
    for ext in ("json", "best.json"):
        with open(f"{prefix}.{ext}") as f:
            assert json.load(f)[-1] == {"z_noise": 0.0}
    with open(f"{prefix}.ckpt.pkl", "rb") as f:
        assert pickle.load(f)["flags"]["z_noise"] == 0.0  # --resume keeps it
    agent = model.make_model(vae_path=random_models[0], rnn_path=random_models[1])
    agent.load_model(f"{prefix}.best.json")
    assert agent.z_noise == 0.0
    p, _ = run([PYTHON, TRAIN, *tiny_args(random_models, tmp_path / "bad", "--z_noise", "-1")])
    assert p.returncode != 0 and "--z_noise -1.0: must be a number >= 0" in p.stderr
    assert "Traceback" not in p.stderr
