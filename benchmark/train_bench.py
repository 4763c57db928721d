"""Timings of the controller's training (train.py): one CMA-ES generation, and idle MPI ranks.

Functions only (no CLI):
    from benchmark.train_bench import generation_seconds, idle_mpi_cpu_seconds
    generation_seconds(16, 4, 1000, workers=2)   # seconds of one generation, random C
                                                 # (encoder="int8": V's int8 encoder)
    idle_mpi_cpu_seconds(wait_s=3)               # CPU seconds all 3 ranks burn while idle
                                                 # (~0.25 s with mpi4py.futures,
                                                 #  3.1 s for a blocking-Recv loop)
Writes only temporary folders, removed afterwards.
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped_vm():
    """True where the shipped V and M exist: benchmarks use them rather than random weights,
    whose int8 encoder would be converted (and cached) anew on every run."""
    sys.path.insert(0, ROOT)
    import config

    return os.path.exists(config.VAE_PATH) and os.path.exists(config.RNN_PATH)


def generation_seconds(popsize, num_episode, max_len, workers, renderer="turbo", seed=0, encoder="numpy"):
    """Wall-clock seconds of one CMA-ES generation (ask, popsize x num_episode episodes of at
    most max_len steps on `workers` processes, tell) with random C (and V, M if none are shipped).

    The workers load V and M before the timing starts (train.py does that once per run).
    """
    sys.path.insert(0, ROOT)
    import config
    import es as es_lib
    import model
    import train
    import workers as workers_lib

    with tempfile.TemporaryDirectory() as tmp:
        vm = (config.VAE_PATH, config.RNN_PATH) if shipped_vm() else model.write_random_models(tmp)
        models = (*vm, renderer, encoder)
        if encoder == "int8":
            from vae.int8 import prepare
            prepare(models[0])
        with workers_lib.open_executor(False, workers) as executor:
            zeros = np.zeros(config.CONTROLLER_PARAMS)
            workers_lib.run_tasks(executor, train.evaluate, [(zeros, [0], 1, *models)] * workers)  # warm up every worker
            optimizer = es_lib.make_es("cma", config.CONTROLLER_PARAMS, popsize, config.ES_SIGMA_INIT,
                                       config.ES_SIGMA_DECAY, True, seed=seed)
            rng = np.random.default_rng(seed)
            t0 = time.perf_counter()
            train.run_generation(optimizer, executor, rng, num_episode, True, max_len, models)
            return time.perf_counter() - t0


IDLE_SCRIPT = textwrap.dedent("""
    import sys, time
    from mpi4py.futures import MPIPoolExecutor
    if __name__ == "__main__":  # worker ranks import this file too
        with MPIPoolExecutor() as executor:
            list(executor.map(abs, range(16)))  # every worker rank is up and has served
            print("ready", flush=True)
            time.sleep(float(sys.argv[1]))
""")


def idle_mpi_cpu_seconds(wait_s=3, ranks=3):
    """CPU seconds (user + system, summed over all ranks) used during wait_s seconds in which
    the master of `mpiexec -n ranks python -m mpi4py.futures` sleeps and its workers wait."""
    import psutil

    tmp = tempfile.TemporaryDirectory()
    script = os.path.join(tmp.name, "idle.py")  # mpi4py.futures workers re-import the script: no -c
    with open(script, "w") as f:
        f.write(IDLE_SCRIPT)
    bin_dir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bin_dir, "mpiexec"), "-n", str(ranks), sys.executable, "-m", "mpi4py.futures",
           script, str(wait_s + 3)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{' '.join(cmd[:5])} ... did not start")
        mpiexec = psutil.Process(proc.pid)
        python = os.path.basename(sys.executable)
        rank_procs = [p for p in mpiexec.children(recursive=True) if p.name().startswith(python[:6])]
        if len(rank_procs) != ranks:
            raise RuntimeError(f"found {len(rank_procs)} rank processes, expected {ranks}")

        def cpu():
            return sum(sum(p.cpu_times()[:2]) for p in rank_procs)

        before = cpu()
        time.sleep(wait_s)
        return cpu() - before
    finally:
        proc.wait(timeout=wait_s + 60)
        tmp.cleanup()
