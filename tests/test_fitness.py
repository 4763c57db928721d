"""fitness.py: which tracks the candidates of a generation drive, and the screened ranking."""
import numpy as np

import fitness  # conftest puts the project root on sys.path


def test_generation_tracks_independent_antithetic_or_common():
    def seeds(**kw):
        return fitness.generation_seeds(np.random.default_rng(3), 6, 2, **kw)

    alone, pairs, common = seeds(antithetic=False), seeds(antithetic=True), seeds(antithetic=True, common=True)
    assert all(s[1] == s[0] + 1 and s[0] >= fitness.TRAIN_SEED_LOW for s in alone + pairs + common)
    assert len({s[0] for s in alone}) == 6
    assert pairs[0::2] == pairs[1::2] and len({s[0] for s in pairs}) == 3
    assert common == [alone[0]] * 6  # the same draws: switching the flag keeps the run's RNG stream


def test_hard_tracks_fill_the_last_episodes_from_the_pool_shared_like_the_rest():
    pool = tuple(range(2 ** 21, 2 ** 21 + 5))

    def seeds(**kw):
        return fitness.generation_seeds(np.random.default_rng(3), 6, 4, pool=pool, hard=2, **kw)

    alone, pairs, common = seeds(antithetic=False), seeds(antithetic=True), seeds(antithetic=True, common=True)
    for s in alone + pairs + common:
        assert s[1] == s[0] + 1 and s[0] >= fitness.TRAIN_SEED_LOW  # two random tracks, as without the pool
        assert set(s[2:]) <= set(pool) and s[2] != s[3]
    plain = fitness.generation_seeds(np.random.default_rng(3), 6, 4, False)
    assert [s[:2] for s in alone] == [s[:2] for s in plain]  # the pool draws come after the random ones
    assert alone[0][2:] != alone[1][2:] and len({tuple(s[2:]) for s in alone}) > 3
    assert pairs[0::2] == pairs[1::2] and common == [common[0]] * 6
    odd = fitness.generation_seeds(np.random.default_rng(3), 5, 4, True, pool=pool, hard=2)
    assert odd[0] == odd[1] and odd[2] == odd[3] and odd[4] not in odd[:4]  # the odd one out drives its own


def test_screened_ranking_puts_the_screened_out_half_below_in_screening_order():
    means = np.array([700.0, 650.0, 300.0, 900.0, 200.0, 500.0])  # the bottom half's are screening means
    screened = np.array([680.0, 660.0, 300.0, 880.0, 200.0, 500.0])
    top = np.array([3, 0, 1])
    ranking = fitness.screened_ranking(means, screened, top)
    assert list(np.argsort(-ranking)) == [3, 0, 1, 5, 2, 4]
    np.testing.assert_array_equal(ranking[top], means[top])
    assert ranking[[2, 4, 5]].max() <= 650.0 - 1.0
