"""Speed and fidelity of the CarRacing renderers (stock | exact | turbo | obs64).

Functions only (no CLI); the defaults run in about a minute on 2 cores each
(observation_fidelity, which drives the agent, in a few minutes):
    from benchmark.env_bench import steps_per_sec, compare_speed, fidelity, observation_fidelity
    steps_per_sec("turbo")                  # env steps per second, render_mode=None
    steps_per_sec("turbo", observation=True)  # the same, with the agent's 64x64 crop and resize
    steps_per_sec("physics")                # nothing drawn: physics and rewards alone
    compare_speed()                         # {"stock": .., "exact": .., "turbo": .., "turbo_x": ..}
    fidelity(seeds=(0,), steps=300)         # turbo vs stock on state rows 0:84
    observation_fidelity()                  # obs64 vs exact 64x64 observations, agent driving
Reads the shipped V, M and controller (observation_fidelity); writes nothing.
"""
import os
import time

import numpy as np

from common import headless

SHIPPED_CONTROLLER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "log", "carracing.cma.16.64.best.json")


def actions(seed, steps):
    """A fixed, seeded action sequence: random (steer, gas, brake) held for a while,
    with sharp turns and some braking."""
    rng = np.random.default_rng(seed)
    out, a = np.zeros((steps, 3)), np.array([0.0, 0.5, 0.0])
    for t in range(steps):
        if rng.random() < 0.08:
            a = np.array([rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0]), rng.uniform(0.0, 1.0),
                          rng.choice([0.0, 0.0, 0.0, 0.8])])
        out[t] = a
    return out


def _make(renderer, observation=False):
    """An env of `renderer` ("physics": exact's physics with nothing drawn); with observation,
    wrapped to give the agent's 64x64 frames (the crop and resize, or obs64's own)."""
    headless()
    import env

    if renderer == "physics":
        from renderers.exact import ExactCarRacing

        blank = np.zeros((64, 64, 3), np.uint8)
        cls = type("PhysicsOnly", (ExactCarRacing,), {"_state_pixels": lambda self: blank})
    else:
        cls = env.car_racing_class(renderer)
    e = cls(render_mode=None)
    return env.CarRacingWrapper(e, full_episode=True) if observation else e


def _warm_up(e, seed):
    """One short episode first: turbo's per-process caches (the grass texture, car sprites)
    fill once, then serve every later episode of a rollout worker."""
    e.reset(seed=seed + 1000)
    for a in actions(seed + 1000, 150):
        e.step(a)


def _episode_time(e, seed, acts):
    t0 = time.perf_counter()
    e.reset(seed=seed)
    for a in acts:
        e.step(a)
    return time.perf_counter() - t0


def steps_per_sec(renderer, steps=1000, seed=0, repeats=2, observation=False):
    """Env steps per second over one episode from reset(seed) (the reset counted), with
    render_mode=None and a fixed action sequence, after a warm-up; best of `repeats`."""
    e, acts = _make(renderer, observation), actions(seed, steps)
    _warm_up(e, seed)
    best = min(_episode_time(e, seed, acts) for _ in range(repeats))
    e.close()
    return steps / best


def compare_speed(steps=1000, seed=0, renderers=("stock", "exact", "turbo"), rounds=2):
    """Steps per second of each renderer (as steps_per_sec) measured in alternating rounds,
    so that a busy machine slows them alike, and the speed-ups over stock:
    {renderer: steps/s, "<renderer>_x": speed-up}. One env per process is what rollout
    workers run; stepping envs in lockstep instead would thrash the caches."""
    envs = {r: _make(r) for r in renderers}
    for e in envs.values():
        _warm_up(e, seed)
    acts = actions(seed, steps)
    best = dict.fromkeys(renderers, float("inf"))
    for _ in range(rounds):
        for r, e in envs.items():
            best[r] = min(best[r], _episode_time(e, seed, acts))
    out = {r: steps / best[r] for r in renderers}
    if "stock" in out:
        out.update({f"{r}_x": out[r] / out["stock"] for r in renderers if r != "stock"})
    return out


def fidelity(seeds=(0,), steps=300, renderer="turbo"):
    """Absolute differences (0-255) between `renderer` and stock states, rows 0:84, over
    episodes driven with the same seeds and actions (frames after the car left the
    playfield, where stock draws garbage, are left out): dict(mean_abs, p99, max)."""
    from gymnasium.envs.box2d.car_racing import PLAYFIELD

    diffs = []
    for seed in seeds:
        stock, fast = _make("stock"), _make(renderer)
        a0, b0 = stock.reset(seed=seed)[0], fast.reset(seed=seed)[0]
        diffs.append(np.abs(a0[:84].astype(np.int16) - b0[:84]).ravel())
        for a in actions(seed, steps):
            sa, ra, ta = stock.step(a)[:3]
            sb, rb, tb = fast.step(a)[:3]
            assert ra == rb and ta == tb, "physics differ"
            x, y = stock.car.hull.position
            if abs(x) > PLAYFIELD or abs(y) > PLAYFIELD:
                break
            diffs.append(np.abs(sa[:84].astype(np.int16) - sb[:84]).ravel())
            if ta:
                break
    d = np.concatenate(diffs)
    return dict(mean_abs=float(d.mean()), p99=float(np.percentile(d, 99)), max=int(d.max()))


def observation_fidelity(seeds=(20000, 20001, 20002, 20003), steps=1000, renderer="obs64"):
    """Absolute differences (0-255) between `renderer`'s 64x64 observations and the exact
    renderer's, on episodes the shipped agent drives (V, M, C as shipped; its env is exact,
    a twin of `renderer` replays its actions, physics being the same): dict(mean_abs, p99,
    max, frames). Frames after the car left the playfield are left out, as in fidelity()."""
    from gymnasium.envs.box2d.car_racing import PLAYFIELD

    import env
    import model

    agent = model.make_model(load_model=True)
    agent.load_model(SHIPPED_CONTROLLER)
    diffs = []
    for seed in seeds:
        exact, twin = env.make_env(renderer="exact"), env.make_env(renderer=renderer)

        def compare(t, obs, mu, action):
            x, y = exact.unwrapped.car.hull.position
            if abs(x) > PLAYFIELD or abs(y) > PLAYFIELD:
                return False
            diffs.append(np.abs(obs.astype(np.int16) - twin_obs[0]).ravel())
            twin_obs[0] = twin.step(action)[0]
            a, b = twin.unwrapped, exact.unwrapped  # the running totals and positions agree
            assert a.reward == b.reward and a.car.hull.position == b.car.hull.position, "physics differ"

        try:
            twin_obs = [twin.reset(seed=seed)[0]]
            model.rollout(agent, exact, seed, steps, on_step=compare)
        finally:
            exact.close()
            twin.close()
    d = np.concatenate(diffs)
    return dict(mean_abs=float(d.mean()), p99=float(np.percentile(d, 99)), max=int(d.max()),
                frames=len(diffs))
