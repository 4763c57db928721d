"""The project's benchmark: every performance figure the README quotes, measured in one run.

    python -m benchmark                 # everything (~15-25 min on 2 cores)
    python -m benchmark --quick         # smaller samples (~5 min), same sections
    python -m benchmark --only env,agent

Prints a table and writes benchmark/results.json (machine, date, every figure). Ratios are
taken within the run, since these machines are noisy from one run to the next.
Sections: env (stock / exact / turbo / obs64 steps/s, physics alone, turbo's and obs64's
fidelity), inference (V, M, C per step; V in NumPy and int8), agent (agent steps/s in
simulate and simulate_batch vs raw env, each renderer and encoder, and the physics + agent
limit), generation (one CMA-ES generation, with either encoder), vae (training
frames/s streamed vs in memory, peak memory vs episodes), rnn (training step), mpi (CPU time
of idle MPI ranks).
"""
import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import time

import config

config.one_blas_thread()  # per-core figures, as rollout workers run
import numpy as np  # noqa: E402

from benchmark.train_bench import shipped_vm
from common import atomic_write_json, main_guard

SECTIONS = ["env", "inference", "agent", "generation", "vae", "rnn", "mpi"]


def machine():
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def bench_env(r, quick):
    from benchmark import env_bench

    steps = 300 if quick else 1000
    for name in ("stock", "exact", "turbo", "obs64"):
        r[f"env_{name}_steps_per_s"] = env_bench.steps_per_sec(name, steps=steps)
    r["exact_vs_stock"] = r["env_exact_steps_per_s"] / r["env_stock_steps_per_s"]
    r["turbo_vs_stock"] = r["env_turbo_steps_per_s"] / r["env_stock_steps_per_s"]
    r["obs64_vs_turbo"] = r["env_obs64_steps_per_s"] / r["env_turbo_steps_per_s"]
    # what the agent gets: 64x64 frames (turbo's state through the crop and resize), and
    # the limit of any renderer: physics alone, nothing drawn; alternating rounds
    best = {}
    for _ in range(2):
        for name in ("turbo", "obs64", "physics"):
            sps = env_bench.steps_per_sec(name, steps=steps, repeats=1, observation=True)
            best[name] = max(best.get(name, 0.0), sps)
    for name, sps in best.items():
        r[f"env_{name}_observation_steps_per_s"] = sps
    r["obs64_vs_turbo_observation"] = best["obs64"] / best["turbo"]
    fid = env_bench.fidelity(seeds=[0, 1] if quick else [0, 1, 2], steps=300 if quick else 1000)
    r.update({f"turbo_fidelity_{k}": v for k, v in fid.items()})
    if shipped_vm() and os.path.exists(env_bench.SHIPPED_CONTROLLER):
        fid = env_bench.observation_fidelity(seeds=[20000, 20001] if quick else [20000, 20001, 20002, 20003],
                                             steps=300 if quick else 1000)
        r.update({f"obs64_fidelity_{k}": v for k, v in fid.items()})


def _per_call_ms(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


def bench_inference(r, quick):
    import model
    from rnn.rnn import rnn_init_state, rnn_next_state, rnn_output

    agent = model.make_model(load_model=shipped_vm())
    obs = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    z = np.zeros(32, np.float32)
    state = rnn_init_state(agent.rnn)
    n = 100 if quick else 500
    r["numpy_vae_encode_ms"] = _per_call_ms(lambda: agent.vae.encode_mu_logvar(obs[None]), n)
    r["numpy_lstm_step_ms"] = _per_call_ms(lambda: rnn_next_state(agent.rnn, z, np.zeros(3), state), n)
    feats = rnn_output(state, z)
    r["numpy_controller_ms"] = _per_call_ms(lambda: model.controller_action(feats, agent.weight, agent.bias), n)
    r["numpy_agent_step_ms"] = _per_call_ms(lambda: (agent.encode_obs(obs), agent.get_action(z)), n)
    batch = np.repeat(obs[None], 16, axis=0)
    r["numpy_vae_encode_ms_per_frame_batch16"] = _per_call_ms(
        lambda: agent.vae.encode_mu_logvar(batch), n // 10) / 16
    int8 = model.make_model(load_model=shipped_vm(), encoder="int8").encoder
    r["int8_vae_encode_ms"] = _per_call_ms(lambda: int8.encode_mu_logvar(obs[None]), n)
    r["int8_vae_encode_ms_per_frame_batch16"] = _per_call_ms(
        lambda: int8.encode_mu_logvar(batch), n // 10) / 16


class _Replayer:
    """Twin envs that replay the agent's actions in chunks, in the middle of the agent's run.

    Timing an episode and then its replay puts seconds between the two, and this machine's
    speed drifts by several percent over seconds. Replaying every CHUNK steps inside the run
    (that time taken out of the agent's) sets the two side by side. Twins of simulate_batch's
    envs replay in the same lockstep, since stepping 8 envs in turn costs the envs something
    on their own (more cache misses than one env alone)."""

    CHUNK = 100

    def __init__(self, renderer, n):
        from env import make_env

        self.renderer = renderer
        self.twins = [make_env(renderer=renderer) for _ in range(n)]
        self.pending = [[] for _ in range(n)]
        self.actions = [[] for _ in range(n)]  # every action of the episodes, kept for replays apart
        self.seeds = [None] * n
        self.live = set()
        self.env_seconds = 0.0  # the twins' steps: the env alone
        self.excluded = 0.0  # time spent inside the agent's run that was not the agent's

    def start_round(self):
        self.env_seconds = self.excluded = 0.0

    def flush(self):
        t0 = time.perf_counter()
        for k in range(max(map(len, self.pending))):
            for twin, actions in zip(self.twins, self.pending):
                if k < len(actions):
                    twin.step(actions[k])
        seconds = time.perf_counter() - t0
        self.env_seconds += seconds
        self.pending = [[] for _ in self.twins]
        return seconds

    def one_by_one_seconds(self):
        """The recorded episodes' env steps again, each on a fresh env of its own (no lockstep)."""
        from env import make_env

        total = 0.0
        for seed, actions in zip(self.seeds, self.actions):
            e = make_env(renderer=self.renderer)
            e.reset(seed=seed)
            with _gc_off():
                t0 = time.perf_counter()
                for a in actions:
                    e.step(a)
                total += time.perf_counter() - t0
            e.close()
        return total


class _Recorder:
    """Wraps env i of a _Replayer's set: its twin is reset with it and replays its actions; the
    resets (track generation is not a step) and the replays are timed and taken out."""

    def __init__(self, env, replayer, i):
        self.env, self.replayer, self.i = env, replayer, i

    def reset(self, seed=None, **kw):
        rp = self.replayer
        t0 = time.perf_counter()
        out = self.env.reset(seed=seed, **kw)
        rp.twins[self.i].reset(seed=seed)
        rp.pending[self.i], rp.actions[self.i], rp.seeds[self.i] = [], [], seed
        rp.live.add(self.i)
        rp.excluded += time.perf_counter() - t0
        return out

    def step(self, action):
        rp = self.replayer
        if self.i == min(rp.live) and len(rp.pending[self.i]) >= rp.CHUNK:  # a lockstep round begins
            rp.excluded += rp.flush()
        action = np.array(action)
        rp.pending[self.i].append(action)
        rp.actions[self.i].append(action)
        out = self.env.step(action)
        if out[2] or out[3]:
            rp.live.discard(self.i)
        return out

    def __getattr__(self, name):
        return getattr(self.env, name)


@contextlib.contextmanager
def _gc_off():
    """The garbage collector off while timing (as timeit does): its passes land at random on
    either side of a comparison and only add noise."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _timed(run, replayer):
    """(agent seconds, env-alone seconds) of run(), which steps the replayer's recorded envs."""
    replayer.start_round()
    with _gc_off():
        t0 = time.perf_counter()
        out = run()
        agent = time.perf_counter() - t0 - replayer.excluded
        replayer.flush()  # the last chunk, after the run
    return agent, replayer.env_seconds, out


def bench_agent(r, quick, renderer, encoder="numpy"):
    """Agent steps/s (V + M + C + env) against the env alone replaying the agent's own
    actions (rendering cost depends on what is on screen), one core, resets excluded.

    The replays run interleaved with the agent (see _Replayer); a few rounds each, and each
    figure is the rounds' median (the per-round shares are kept too, to show the spread)."""
    import model

    steps, rounds, n = (300, 1, 8) if quick else (1000, 3, 8)
    agent = model.make_model(load_model=shipped_vm(), encoder=encoder)
    agent.set_model_params(np.random.default_rng(0).normal(0, 0.1, agent.param_count))
    agent.encoder  # an int8 model is converted (once, cached) before any timing
    one = _Replayer(renderer, 1)
    agent.env = _Recorder(agent.make_env(renderer=renderer), one, 0)
    model.simulate(agent, train_mode=True, num_episode=1, seed=1, max_len=20)  # warm caches
    many = _Replayer(renderer, n)
    model.simulate_batch(agent, list(range(100, 100 + n)), max_len=5, renderer=renderer)  # builds envs
    agent._batch_envs = [_Recorder(e, many, i) for i, e in enumerate(agent._batch_envs)]
    single, replay, batched, replay_b = [], [], [], []
    for _ in range(rounds):
        a, e, _ = _timed(lambda: model.simulate(agent, train_mode=True, num_episode=1, seed=0,
                                                max_len=steps), one)
        single.append(a)
        replay.append(e)
        a, e, (_, st) = _timed(lambda: model.simulate_batch(agent, list(range(n)), max_len=steps // 2,
                                                            renderer=renderer), many)
        batched.append(a)
        replay_b.append(e)
    count, count_b = len(one.actions[0]), int(st.sum())
    one_by_one = many.one_by_one_seconds()
    single, replay, batched, replay_b = map(np.array, (single, replay, batched, replay_b))
    key = f"agent_{renderer}" + ("" if encoder == "numpy" else f"_{encoder}")
    share, share_b = 1 - replay / single, 1 - replay_b / batched
    r[f"{key}_env_alone_steps_per_s"] = float(np.median(count / replay))
    r[f"{key}_simulate_steps_per_s"] = float(np.median(count / single))
    r[f"{key}_simulate_batch{n}_steps_per_s"] = float(np.median(count_b / batched))
    r[f"{key}_overhead_simulate"] = float(np.median(share))
    r[f"{key}_overhead_simulate_batch{n}"] = float(np.median(share_b))
    r[f"{key}_overhead_rounds"] = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(share, share_b))
    # what lockstep costs the envs themselves: the same episodes stepped one env at a time
    r[f"{key}_lockstep_env_cost"] = float(np.median(replay_b) / one_by_one - 1)
    # what the agent itself costs per step, batched: its time beyond the env's
    r[f"{key}_agent_ms_per_step_batch{n}"] = float(np.median(batched - replay_b) / count_b * 1000)


def bench_generation(r, quick):
    from benchmark import train_bench

    pop, eps, max_len = (8, 2, 200) if quick else (16, 4, 1000)
    workers = os.cpu_count() or 1
    r["generation_config"] = f"population {pop} x {eps} episodes x {max_len} steps, {workers} workers, turbo"
    r["generation_seconds"] = train_bench.generation_seconds(pop, eps, max_len, workers)
    r["generation_agent_steps_per_s"] = pop * eps * max_len / r["generation_seconds"]
    r["generation_seconds_int8"] = train_bench.generation_seconds(pop, eps, max_len, workers, encoder="int8")
    r["generation_int8_vs_numpy"] = r["generation_seconds"] / r["generation_seconds_int8"]
    r["generation_seconds_obs64_int8"] = train_bench.generation_seconds(pop, eps, max_len, workers,
                                                                        renderer="obs64", encoder="int8")
    r["generation_obs64_vs_turbo_int8"] = r["generation_seconds_int8"] / r["generation_seconds_obs64_int8"]


def bench_vae(r, quick):
    from benchmark import vae_bench

    steps = 5 if quick else 20
    r["vae_train_frames_per_s_memory"] = vae_bench.vae_train_fps(stream=False, steps=steps)
    r["vae_train_frames_per_s_stream"] = vae_bench.vae_train_fps(stream=True, steps=steps)
    r["vae_stream_vs_memory"] = r["vae_train_frames_per_s_stream"] / r["vae_train_frames_per_s_memory"]
    n = 20 if quick else 40
    r[f"vae_train_peak_rss_mb_{n}_episodes"] = vae_bench.peak_rss_mb(n)
    r[f"vae_train_peak_rss_mb_{2 * n}_episodes"] = vae_bench.peak_rss_mb(2 * n)


def bench_rnn(r, quick):
    from benchmark import rnn_bench

    r["rnn_train_step_s_batch100_seq999"] = rnn_bench.rnn_train_step_s(batch=100, seq_len=999,
                                                                       steps=1 if quick else 3)


def bench_mpi(r, quick):
    from benchmark import train_bench

    r["mpi_idle_rank_cpu_s_in_3s"] = train_bench.idle_mpi_cpu_seconds(wait_s=3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller samples")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    p.add_argument("--out", default=os.path.join(config.ROOT, "benchmark", "results.json"))
    args = p.parse_args(argv)
    config.tensorflow_on_cpu()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    r = {"machine": machine(), "quick": args.quick}
    for s in sections:
        t0 = time.time()
        print(f"[{s}] ...", flush=True)
        if s == "agent":
            for renderer in ("exact", "turbo", "obs64"):
                for encoder in ("numpy", "int8"):
                    bench_agent(r, args.quick, renderer, encoder)
            for encoder in ("", "_int8"):  # train.py's configuration: simulate_batch of 8
                rate = {ren: r[f"agent_{ren}{encoder}_simulate_batch8_steps_per_s"] for ren in ("turbo", "obs64")}
                r[f"agent_obs64{encoder}_vs_turbo_batch8"] = rate["obs64"] / rate["turbo"]
                if "env_physics_observation_steps_per_s" in r:  # physics + agent, nothing drawn
                    limit = 1 / (1 / r["env_physics_observation_steps_per_s"]
                                 + r[f"agent_obs64{encoder}_agent_ms_per_step_batch8"] / 1000)
                    r[f"agent{encoder}_physics_limit_steps_per_s"] = limit
        else:
            globals()[f"bench_{s}"](r, args.quick)
        print(f"[{s}] {time.time() - t0:.0f}s", flush=True)
    print()
    for k, v in r.items():
        if k != "machine":
            print(f"{k:50s} {v:12.3f}" if isinstance(v, float) else f"{k:50s} {v}")
    old = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
    old.update(r)  # a partial run (--only) refreshes its own figures and keeps the rest
    atomic_write_json(args.out, old, indent=1)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main_guard(main)
