"""The project's benchmark: every performance figure the README quotes, measured in one run.

    python -m benchmark                 # everything (~15-25 min on 2 cores)
    python -m benchmark --quick         # smaller samples (~5 min), same sections
    python -m benchmark --only env,agent

Prints a table and writes benchmark/results.json (machine, date, every figure). Ratios are
taken within the run, since these machines are noisy from one run to the next.
Sections: env (stock / exact / turbo steps/s, turbo fidelity), inference (V, M, C per step;
V in NumPy and int8), agent (agent steps/s in simulate and simulate_batch vs raw env, with
either encoder), generation (one CMA-ES generation, with either encoder), vae (training
frames/s streamed vs in memory, peak memory vs episodes), rnn (training step), mpi (CPU time
of idle MPI ranks).
"""
import argparse
import datetime
import json
import os
import platform
import time

# Per-core figures: one BLAS thread, as rollout workers run (model.py, train.py set the same).
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import config
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
    for name in ("stock", "exact", "turbo"):
        r[f"env_{name}_steps_per_s"] = env_bench.steps_per_sec(name, steps=steps)
    r["exact_vs_stock"] = r["env_exact_steps_per_s"] / r["env_stock_steps_per_s"]
    r["turbo_vs_stock"] = r["env_turbo_steps_per_s"] / r["env_stock_steps_per_s"]
    fid = env_bench.fidelity(seeds=[0, 1] if quick else [0, 1, 2], steps=300 if quick else 1000)
    r.update({f"turbo_fidelity_{k}": v for k, v in fid.items()})


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


class _Recorder:
    """Wraps an env; keeps the actions it was given (for an exact replay without the agent)
    and the time its resets took (track generation is not a step: it is taken out)."""

    def __init__(self, env):
        self.env, self.actions, self.reset_s = env, [], 0.0

    def reset(self, **kw):
        self.actions = []
        t0 = time.perf_counter()
        out = self.env.reset(**kw)
        self.reset_s += time.perf_counter() - t0
        return out

    def step(self, action):
        self.actions.append(np.array(action))
        return self.env.step(action)

    def __getattr__(self, name):
        return getattr(self.env, name)


def _replay_seconds(renderer, seed, actions):
    """Time of the same episode's env steps alone: same track, same actions, same frames."""
    from env import make_env

    e = make_env(renderer=renderer)
    e.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        e.step(a)
    return time.perf_counter() - t0


def bench_agent(r, quick, renderer, encoder="numpy"):
    """Agent steps/s (V + M + C + env) against the env alone replaying the agent's own
    trajectory (rendering cost depends on what is on screen), one core, resets excluded."""
    import model

    steps = 300 if quick else 1000
    agent = model.make_model(load_model=shipped_vm(), encoder=encoder)
    agent.set_model_params(np.random.default_rng(0).normal(0, 0.1, agent.param_count))
    agent.encoder  # an int8 model is converted (once, cached) before any timing
    agent.env = _Recorder(agent.make_env(renderer=renderer))
    model.simulate(agent, train_mode=True, num_episode=1, seed=1, max_len=20)  # warm caches
    agent.env.reset_s = 0.0
    t0 = time.perf_counter()
    _, ts = model.simulate(agent, train_mode=True, num_episode=1, seed=0, max_len=steps)
    single = time.perf_counter() - t0 - agent.env.reset_s
    actions = agent.env.actions
    replay = _replay_seconds(renderer, 0, actions)

    n = 8
    model.simulate_batch(agent, list(range(100, 100 + n)), max_len=5, renderer=renderer)  # builds envs
    agent._batch_envs = [_Recorder(e) for e in agent._batch_envs]
    seeds = list(range(n))
    t0 = time.perf_counter()
    _, st = model.simulate_batch(agent, seeds, max_len=steps // 2, renderer=renderer)
    batched = time.perf_counter() - t0 - sum(e.reset_s for e in agent._batch_envs)
    replay_b = sum(_replay_seconds(renderer, s, e.actions) for s, e in zip(seeds, agent._batch_envs))
    key = f"agent_{renderer}" + ("" if encoder == "numpy" else f"_{encoder}")
    r[f"{key}_env_alone_steps_per_s"] = len(actions) / replay
    r[f"{key}_simulate_steps_per_s"] = len(actions) / single
    r[f"{key}_simulate_batch{n}_steps_per_s"] = st.sum() / batched
    r[f"{key}_overhead_simulate"] = 1 - replay / single
    r[f"{key}_overhead_simulate_batch{n}"] = 1 - replay_b / batched
    # what the agent itself costs per step, batched: its time beyond the env's
    r[f"{key}_agent_ms_per_step_batch{n}"] = (batched - replay_b) / st.sum() * 1000


def bench_generation(r, quick):
    from benchmark import train_bench

    pop, eps, max_len = (8, 2, 200) if quick else (16, 4, 1000)
    workers = os.cpu_count() or 1
    r["generation_config"] = f"population {pop} x {eps} episodes x {max_len} steps, {workers} workers, turbo"
    r["generation_seconds"] = train_bench.generation_seconds(pop, eps, max_len, workers)
    r["generation_agent_steps_per_s"] = pop * eps * max_len / r["generation_seconds"]
    r["generation_seconds_int8"] = train_bench.generation_seconds(pop, eps, max_len, workers, encoder="int8")
    r["generation_int8_vs_numpy"] = r["generation_seconds"] / r["generation_seconds_int8"]


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
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    r = {"machine": machine(), "quick": args.quick}
    for s in sections:
        t0 = time.time()
        print(f"[{s}] ...", flush=True)
        if s == "agent":
            for renderer in ("exact", "turbo"):
                for encoder in ("numpy", "int8"):
                    bench_agent(r, args.quick, renderer, encoder)
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
