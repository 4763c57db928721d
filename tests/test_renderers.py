"""The fast CarRacing renderers against stock Gymnasium (renderers/exact.py, turbo.py, obs64.py).

Three seeded 1000-step episodes are driven in lockstep by stock, ExactCarRacing,
TurboCarRacing and Obs64CarRacing: exact must give the very same 96x96 states, turbo states
close to them (rows 0:84, the part the agent sees), obs64 64x64 observations close to the
crop and resize of stock's, all the same rewards and terminations.
"""
import os
import re

import numpy as np
import pytest

import config
import env
from conftest import ROOT

env.headless()
import pygame  # noqa: E402  (after SDL is told to stay headless)
from gymnasium.envs.box2d.car_racing import PLAYFIELD, CarRacing  # noqa: E402

from renderers import exact as carracing_fast  # noqa: E402
from renderers import obs64 as carracing_obs64  # noqa: E402
from renderers import turbo as carracing_turbo  # noqa: E402

STEPS = 1000
TURBO_MEAN, TURBO_P99 = 0.25, 4
OBS64_MEAN, OBS64_P99 = 1.0, 8   # on the 64x64 observation (0-255), against stock's


def pinned_pygame():
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        m = re.search(r"^pygame-ce==(\S+)", f.read(), re.M)
    assert m, "requirements.txt pins no pygame-ce version"
    return m.group(1)


def test_pygame_ce_is_the_pinned_version():
    want = pinned_pygame()
    have = pygame.version.ver
    assert have == want, (
        f"pygame-ce {have} is installed but requirements.txt pins {want}: ExactCarRacing is only "
        f"bit-identical to stock for the pinned version. Run: pip install pygame-ce=={want}")


def episode_actions(kind, seed, steps=STEPS):
    """Seeded actions held for a while. 'sharp': hard turns, gas and hard braking; 'grass':
    full gas and long hard turns, which take the car off the road and across the grass."""
    rng = np.random.default_rng(seed)
    out, a = np.zeros((steps, 3)), np.array([0.0, 0.6, 0.0])
    for t in range(steps):
        if rng.random() < 0.08:
            if kind == "sharp":
                a = np.array([rng.choice([-1.0, 1.0, 0.0]), rng.uniform(0.3, 1), rng.choice([0.0, 0.0, 0.9])])
            else:
                a = np.array([rng.choice([-1.0, -0.4, 0.4, 1.0]), 1.0, 0.0])
        out[t] = a
    return out


def follow_road(e, rng):
    """'road': steer for the track a few tiles ahead, with seeded noise and some braking,
    so the car stays mostly on the road (tiles change colour, the lap progresses)."""
    x, y = e.car.hull.position
    track = np.array([p[2:4] for p in e.track])
    near = int(np.argmin(((track - (x, y)) ** 2).sum(axis=1)))
    tx, ty = track[(near + 5) % len(track)]
    heading = e.car.hull.angle + np.pi / 2
    err = (np.arctan2(ty - y, tx - x) - heading + np.pi) % (2 * np.pi) - np.pi
    speed = np.hypot(*e.car.hull.linearVelocity)
    steer = np.clip(-2.0 * err + rng.normal(0, 0.3), -1, 1)
    return np.array([steer, 0.5 if speed < 40 else 0.0, 0.4 if rng.random() < 0.05 else 0.0])


EPISODES = [("road", 0), ("sharp", 1), ("grass", 2)]


@pytest.fixture(scope="module")
def lockstep():
    """Per episode: exact frames that differ from stock, turbo |differences| on rows 0:84
    while on the playfield, and whether rewards / terminations / infos always agreed."""
    results = {}
    for kind, seed in EPISODES:
        envs = [CarRacing(), carracing_fast.ExactCarRacing(), carracing_turbo.TurboCarRacing(),
                carracing_obs64.Obs64CarRacing()]
        obs = [e.reset(seed=seed)[0] for e in envs]
        exact_bad, diffs, diffs64, same_physics, on_grass, left = [], [], [], True, 0, None
        acts, rng = episode_actions(kind, seed), np.random.default_rng(seed)
        for t in range(STEPS + 1):
            a = None if t == 0 else follow_road(envs[0], rng) if kind == "road" else acts[t - 1]
            if a is not None:
                steps = [e.step(a) for e in envs]
                obs = [s[0] for s in steps]
                same_physics &= all(s[1:] == steps[0][1:] for s in steps[1:])
            if not np.array_equal(obs[0], obs[1]):
                exact_bad.append(t)
            x, y = envs[0].car.hull.position
            if abs(x) > PLAYFIELD or abs(y) > PLAYFIELD:
                left = t  # stock's frames are garbage from here (16-bit coordinates)
            if left is None:
                diffs.append(np.abs(obs[0][:84].astype(np.int16) - obs[2][:84]))
                diffs64.append(np.abs(env.process_frame(obs[0]).astype(np.int16) - obs[3]))
            on_grass += not any(w.tiles for w in envs[0].car.wheels)
            if a is not None and steps[0][2]:
                break
        results[kind] = dict(exact_bad=exact_bad, diffs=np.array(diffs), diffs64=np.array(diffs64),
                             same_physics=same_physics,
                             steps=t, on_grass=on_grass, tiles=envs[0].tile_visited_count)
    return results


@pytest.mark.parametrize("kind", [k for k, _ in EPISODES])
def test_exact_frames_are_identical_to_stock(lockstep, kind):
    r = lockstep[kind]
    assert not r["exact_bad"], (f"{kind}: ExactCarRacing differs from stock at steps "
                                f"{r['exact_bad'][:10]} (of {r['steps']})")


@pytest.mark.parametrize("kind", [k for k, _ in EPISODES])
def test_rewards_and_terminations_are_identical(lockstep, kind):
    assert lockstep[kind]["same_physics"]


@pytest.mark.parametrize("kind", [k for k, _ in EPISODES])
def test_turbo_frames_are_close_to_stock(lockstep, kind):
    d = lockstep[kind]["diffs"]
    mean, p99 = d.mean(), np.percentile(d, 99)
    assert mean <= TURBO_MEAN and p99 <= TURBO_P99, f"{kind}: turbo mean |diff| {mean:.3f}, p99 {p99}"
    # and no single frame is far off (the zoom-in of the first second included)
    assert d.mean(axis=(1, 2, 3)).max() < 4


@pytest.mark.parametrize("kind", [k for k, _ in EPISODES])
def test_obs64_observations_are_close_to_stock(lockstep, kind):
    d = lockstep[kind]["diffs64"]
    mean, p99 = d.mean(), np.percentile(d, 99)
    assert d.shape[1:] == (config.FRAME_SIZE, config.FRAME_SIZE, 3)
    assert mean <= OBS64_MEAN and p99 <= OBS64_P99, f"{kind}: obs64 mean |diff| {mean:.3f}, p99 {p99}"
    assert d.mean(axis=(1, 2, 3)).max() < 8  # no frame far off, the zoom-in included


def test_obs64_resize_weights_are_pillows():
    """The car reaches 64x64 through resize_matrix: it must be the resize process_frame does."""
    img = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    ours = np.einsum("ri,ijk,cj->rck", carracing_obs64.resize_matrix(84, 64), img[:84].astype(float),
                     carracing_obs64.resize_matrix(96, 64))
    assert np.abs(ours - env.process_frame(img)).max() < 1.0  # Pillow rounds its fixed-point weights


def test_the_episodes_cover_what_they_should(lockstep):
    assert lockstep["road"]["tiles"] > 100 and lockstep["road"]["on_grass"] < 300  # on the road
    assert lockstep["sharp"]["steps"] >= 300
    assert lockstep["grass"]["on_grass"] > 300  # the car really drove on the grass


def test_make_env_observations_match():
    acts = episode_actions("sharp", 7, 150)
    runs = {}
    for renderer in ("stock", "exact", "turbo", "obs64"):
        e = env.make_env(renderer=renderer)
        frames = [e.reset(seed=7)[0]] + [e.step(a)[0] for a in acts]
        runs[renderer] = np.array(frames)
    assert runs["exact"].shape == (151, config.FRAME_SIZE, config.FRAME_SIZE, 3)
    np.testing.assert_array_equal(runs["exact"], runs["stock"])
    d = np.abs(runs["turbo"].astype(np.int16) - runs["stock"])
    assert d.mean() <= TURBO_MEAN and np.percentile(d, 99) <= TURBO_P99
    d = np.abs(runs["obs64"].astype(np.int16) - runs["stock"])
    assert runs["obs64"].shape == runs["stock"].shape and runs["obs64"].dtype == np.uint8
    assert d.mean() <= OBS64_MEAN and np.percentile(d, 99) <= OBS64_P99


@pytest.mark.parametrize("cls", [carracing_fast.ExactCarRacing, carracing_turbo.TurboCarRacing,
                                 carracing_obs64.Obs64CarRacing])
def test_reset_seed_reproduces_the_episode(cls):
    e = cls()
    acts = episode_actions("sharp", 3, 120)
    runs = []
    for _ in range(2):
        frames = [e.reset(seed=11)[0]] + [e.step(a)[0] for a in acts]
        e.reset(seed=12)  # another track in between: no state may leak
        runs.append(np.array(frames))
    np.testing.assert_array_equal(runs[0], runs[1])
    side = config.FRAME_SIZE if cls is carracing_obs64.Obs64CarRacing else 96
    assert runs[0].shape == (121, side, side, 3) and runs[0].dtype == np.uint8


@pytest.mark.parametrize("cls", [carracing_fast.ExactCarRacing, carracing_turbo.TurboCarRacing,
                                 carracing_obs64.Obs64CarRacing])
def test_rgb_array_frames_are_stocks(cls):
    """render() in rgb_array mode (600x400 video frames) is drawn exactly, for all."""
    stock, fast = CarRacing(render_mode="rgb_array"), cls(render_mode="rgb_array")
    stock.reset(seed=4)
    fast.reset(seed=4)
    for a in episode_actions("sharp", 4, 80):
        stock.step(a)
        fast.step(a)
    a, b = stock.render(), fast.render()
    assert a.shape == (400, 600, 3)
    np.testing.assert_array_equal(a, b)


def test_exact_matches_stock_far_off_the_playfield():
    """Stock draws garbage there (16-bit coordinates wrap); exact draws the same garbage."""
    envs = [CarRacing(), carracing_fast.ExactCarRacing(), carracing_turbo.TurboCarRacing(),
            carracing_obs64.Obs64CarRacing()]
    for e in envs:
        e.reset(seed=5)
    for t in range(70):
        if t in (40, 55):  # 400 units out, then ~3000: the playfield's corners pass 32767 px
            for e in envs:
                for b in [e.car.hull] + e.car.wheels:
                    b.position = (b.position[0] + 400 + 2200 * (t == 55), b.position[1] + 300)
        obs = [e.step(np.array([0.3, 1.0, 0.0]))[0] for e in envs]
        np.testing.assert_array_equal(obs[0], obs[1], err_msg=f"step {t}")
        assert obs[2].shape == (96, 96, 3) and obs[2].dtype == np.uint8
        assert obs[3].shape == (64, 64, 3) and obs[3].dtype == np.uint8


def test_domain_randomize_and_human_mode_are_exact(monkeypatch):
    """domain_randomize colours, and the window of render_mode="human" (SDL's dummy video
    driver here): every renderer gives stock's pixels (obs64: the crop and resize of them)."""
    envs = [cls(domain_randomize=True) for cls in
            (CarRacing, carracing_fast.ExactCarRacing, carracing_turbo.TurboCarRacing,
             carracing_obs64.Obs64CarRacing)]
    for e in envs:
        e.reset(seed=3)
    for a in episode_actions("sharp", 3, 60):
        obs = [e.step(a)[0] for e in envs]
        np.testing.assert_array_equal(obs[0], obs[1])
        np.testing.assert_array_equal(obs[0], obs[2])
        np.testing.assert_array_equal(env.process_frame(obs[0]), obs[3])
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    screens = []
    for cls in (CarRacing, carracing_fast.ExactCarRacing, carracing_turbo.TurboCarRacing,
                carracing_obs64.Obs64CarRacing):
        e = cls(render_mode="human")
        e.reset(seed=2)
        for a in episode_actions("sharp", 2, 30):
            e.step(a)
        screens.append(pygame.surfarray.array3d(e.screen))
        e.close()
    assert screens[0].shape == (1000, 800, 3) and screens[0].std() > 10
    np.testing.assert_array_equal(screens[0], screens[1])
    np.testing.assert_array_equal(screens[0], screens[2])
    np.testing.assert_array_equal(screens[0], screens[3])
