"""The processes that drive episodes in parallel: train.py's candidates (a process pool, MPI
ranks, or this process) and model.py norender's scoring (run_episodes).

A task that raises or a worker that dies stops the run at once with its message (run_tasks,
abort_workers); pool workers also die with their master, even when it is killed with SIGKILL.
"""
import contextlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ProcessPoolExecutor, wait

import config
from common import UserError


class InlineExecutor(Executor):
    """Runs each task at submit() in this process (--processes 1: easy to debug and profile)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - handed back like a pool would
            future.set_exception(e)
        return future


class WorkerError(Exception):
    pass


def run_tasks(executor, fn, tasks):
    """fn(*task) for every task, on the workers; results in order. Fails fast on the first error."""
    futures = [executor.submit(fn, *t) for t in tasks]
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for f in futures:
        if f in done and f.exception() is not None:
            e = f.exception()
            cause = e.__cause__  # a process pool attaches the worker's traceback here
            detail = f"\n{cause}" if cause is not None else ""
            raise WorkerError(f"{type(e).__name__}: {e}{detail}")
    return [f.result() for f in futures]


def under_mpi():
    """True when started by mpiexec with more than one rank (or through mpi4py.futures)."""
    if "mpi4py.futures" in sys.modules:
        return True
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        if int(os.environ.get(var, "1") or 1) > 1:
            return True
    return False


@contextlib.contextmanager
def open_executor(use_mpi, processes, mpi_usage=""):
    """Yields an Executor on the master; None on an MPI worker rank once the run is over."""
    if use_mpi:
        from mpi4py import MPI
        from mpi4py.futures import MPICommExecutor, MPIPoolExecutor, _core

        if getattr(_core, "SharedPool", None) is not None:  # python -m mpi4py.futures train.py
            with MPIPoolExecutor() as executor:
                yield executor
            return
        if MPI.COMM_WORLD.Get_size() < 2:
            raise UserError("--mpi needs worker ranks: " + mpi_usage)
        with MPICommExecutor(MPI.COMM_WORLD, root=0) as executor:
            yield executor  # worker ranks serve tasks inside __enter__ and get None
        return
    if processes == 1:
        yield InlineExecutor()
        return
    # forkserver, not fork: workers start clean, with one BLAS thread even if the caller
    # imported NumPy multi-threaded (forked OpenBLAS threads spin and starve the cores)
    config.one_blas_thread()
    executor = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=die_with_master, initargs=(os.getpid(),))
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def die_with_master(master_pid):
    """Pool worker start-up: exit when the master dies, even by SIGKILL (a pool worker is the
    forkserver's child, so nothing else tells it; it would sit on ~250 MB for minutes)."""
    import ctypes
    import signal
    import threading

    try:  # Linux: the kernel kills us when our parent, the forkserver, goes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch():  # everywhere: poll the master itself
        while True:
            try:
                os.kill(master_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def abort_workers(executor):
    """Stop every worker now (fail fast): MPI_Abort, or terminate the pool's processes."""
    sys.stdout.flush()
    sys.stderr.flush()
    if isinstance(executor, ProcessPoolExecutor):
        for p in list((getattr(executor, "_processes", None) or {}).values()):
            p.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
    elif "mpi4py" in sys.modules:
        from mpi4py import MPI

        # mpiexec forwards each rank's output through a proxy that MPI_Abort kills at once:
        # without this pause the error just printed is often lost on a busy machine.
        time.sleep(1.0)
        MPI.COMM_WORLD.Abort(1)


_WORKER_AGENTS = {}  # in a worker process: the agent, built once for all its chunks


def _evaluate_chunk(args):
    """Worker: a chunk of evaluation episodes, batched, with the agent rebuilt as in main()."""
    from model import agent_from_args, simulate_batch

    filename, seed, seeds, vae_path, rnn_path, renderer, max_frames, encoder = args
    key = (filename, seed, vae_path, rnn_path, encoder)
    if key not in _WORKER_AGENTS:
        _WORKER_AGENTS[key] = agent_from_args(filename, seed, vae_path, rnn_path, random_vm=True,
                                              verbose=False, encoder=encoder)[0]
    laps = []
    rewards, steps = simulate_batch(_WORKER_AGENTS[key], seeds, max_len=max_frames, renderer=renderer, laps=laps)
    return rewards.tolist(), steps.tolist(), laps


def run_episodes(model, filename, seed, seeds, vae_path, rnn_path, renderer=None, workers=1,
                 max_frames=config.MAX_FRAMES, progress=False):
    """(return, steps, lap finished) of one episode per seed: on `model` here, or spread over
    `workers` processes that rebuild it from (filename, seed), in chunks of up to 8 episodes
    driven in lockstep (a return does not depend on the chunk it is driven in)."""
    from tqdm import tqdm

    from model import simulate_batch

    size = max(1, min(8, -(-len(seeds) // workers)))
    chunks = [seeds[i:i + size] for i in range(0, len(seeds), size)]
    tasks = [(filename, seed, c, vae_path, rnn_path, renderer, max_frames, model.encoder_kind)
             for c in chunks]
    bar = tqdm(total=len(seeds), unit="episode", disable=not progress, dynamic_ncols=True)
    results = []
    if workers == 1:
        for c in chunks:
            laps = []
            rewards, steps = simulate_batch(model, c, max_len=max_frames, renderer=renderer, laps=laps)
            results.append((rewards.tolist(), steps.tolist(), laps))
            bar.update(len(c))
    else:
        model.encoder  # an int8 encoder is converted once here, not by every worker at once
        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            for c, result in zip(chunks, pool.map(_evaluate_chunk, tasks)):
                results.append(result)
                bar.update(len(c))
    bar.close()
    by_seed = {}
    for chunk, (rewards, steps, laps) in zip(chunks, results):
        by_seed.update({s: (r, t, lap) for s, r, t, lap in zip(chunk, rewards, steps, laps)})
    return [by_seed[s] for s in seeds]
