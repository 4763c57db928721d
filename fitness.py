"""Which tracks each candidate of a generation drives, and how its episodes rank it (train.py).

Training tracks are seeds in [TRAIN_SEED_LOW, TRAIN_SEED_HIGH): the mean is evaluated on seeds
0, 1, 2, ..., validation uses 20000+ and test 10000+, so training never sees them. A hard pool
(--hard_tracks) is a set of training tracks an agent drove badly; --hard_episodes takes the last
tracks of every fitness from it, so that failures rarer than 1 track in 20 still weigh in the
ranking. Screening (--screen_episodes) drives every candidate on its first tracks and only the
better half on the rest.
"""
import numpy as np

from common import UserError

TRAIN_SEED_LOW = 2 ** 20  # evaluation uses seeds 0..num_eval_episode-1, training seeds above
TRAIN_SEED_HIGH = 2 ** 31 - 2 ** 16
HARD_BELOW = 800.0  # --hard_below's default: a track scored under it is in the hard pool


def generation_seeds(rng, popsize, num_episode, antithetic, common=False, pool=(), hard=0):
    """Per candidate, the tracks of its episodes; with antithetic, pairs share them; with
    common, every candidate drives the same tracks. hard = K > 0: the last K of each candidate's
    tracks are drawn from `pool` instead (distinct, shared in the same way)."""
    base = rng.integers(TRAIN_SEED_LOW, TRAIN_SEED_HIGH, size=popsize)
    picks = np.zeros((popsize, 0), dtype=np.int64)  # no draw without a pool: the RNG stream stays as it was
    if hard:
        picks = np.array([rng.choice(pool, size=hard, replace=False) for _ in range(popsize)])
    for a in (base, picks):
        if common:
            a[:] = a[0]
        elif antithetic:
            a[1:popsize - popsize % 2:2] = a[0:popsize - popsize % 2:2]
    return [[int(b) + j for j in range(num_episode - hard)] + [int(p) for p in ps] for b, ps in zip(base, picks)]


def better_half(scores):
    """Indices of the better half of a population by `scores`, best first (ties: lower index)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:len(scores) // 2]


def screened_ranking(fitness, screened, top):
    """What the optimiser is told under --screen_episodes: the better half (`top`) keeps its
    full mean; the rest rank below all of it, in the order of their screening means."""
    ranking = np.asarray(fitness, dtype=np.float64).copy()
    rest = np.setdiff1d(np.arange(len(ranking)), top)
    if len(rest):  # 1 below, so CMA-ES's small weight decay cannot reorder the halves
        ranking[rest] = ranking[top].min() - 1.0 - (screened[rest].max() - screened[rest])
    return ranking


def hard_pool(hard_tracks, hard_below, hard_episodes, num_episode, screen_episodes):
    """The sorted seeds of the file `hard_tracks` scored below `hard_below` (() when
    hard_episodes is 0); every misuse of the --hard_* flags is one UserError naming the flag."""
    if not hard_episodes:
        if hard_tracks or hard_below != HARD_BELOW:
            raise UserError(f"--hard_tracks/--hard_below need --hard_episodes K (1..{num_episode})")
        return ()
    if not 0 < hard_episodes <= num_episode:
        raise UserError(f"--hard_episodes {hard_episodes}: must be 0 (off) or 1..{num_episode}")
    if not hard_tracks:
        raise UserError("--hard_episodes needs --hard_tracks FILE (the output of `python model.py norender "
                        f"CONTROLLER {2 * TRAIN_SEED_LOW} --episodes 500 | tee FILE`)")
    if screen_episodes:
        raise UserError("--hard_episodes and --screen_episodes exclude each other (the hard tracks come last, "
                        "so only the screened-in half would drive them): drop one")
    from compare_scores import read_scores

    try:
        scores = read_scores(hard_tracks)
    except UserError as e:
        raise UserError(f"--hard_tracks: {e} (drive training tracks, seeds >= {TRAIN_SEED_LOW})") from None
    low = [s for s in scores if s < TRAIN_SEED_LOW]
    if low:
        raise UserError(f"--hard_tracks {hard_tracks} has seed {min(low)}: training tracks are seeds >= "
                        f"{TRAIN_SEED_LOW} (below are evaluation, validation 20000+ and test 10000+ tracks)")
    pool = tuple(sorted(s for s, (r, *_) in scores.items() if r < hard_below))
    if len(pool) < hard_episodes:
        raise UserError(f"--hard_tracks {hard_tracks}: {len(pool)} tracks below --hard_below "
                        f"{hard_below}, fewer than --hard_episodes {hard_episodes}; drive more tracks "
                        "or raise --hard_below")
    return pool
