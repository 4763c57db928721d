"""es.py: every optimiser climbs a simple objective; the original's bugs stay fixed; state round-trips."""
import os
import pickle

import numpy as np
import pytest

import es


def objective(solutions):
    """Higher is better; the optimum is x = 3 in every dimension."""
    return -np.sum((np.asarray(solutions) - 3.0) ** 2, axis=1)


OPTIMISERS = {
    "cma": lambda: es.CMAES(10, sigma_init=0.5, popsize=16, weight_decay=0.0, seed=0),
    "ga": lambda: es.SimpleGA(10, sigma_init=0.5, popsize=32, weight_decay=0.0, seed=0),
    "oes": lambda: es.OpenES(10, sigma_init=0.5, learning_rate=0.3, popsize=32, antithetic=True,
                             weight_decay=0.0, seed=0),
    "pepg": lambda: es.PEPG(10, sigma_init=0.5, learning_rate=0.3, popsize=32, weight_decay=0.0, seed=0),
    "pepg_mu_baseline": lambda: es.PEPG(10, sigma_init=0.5, learning_rate=0.3, popsize=32,
                                        average_baseline=False, weight_decay=0.0, seed=0),
    "ses": lambda: es.PEPG(10, sigma_init=0.5, elite_ratio=0.1, popsize=33, average_baseline=False,
                           weight_decay=0.0, seed=0),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_optimiser_improves(name):
    opt = OPTIMISERS[name]()
    first = None
    for _ in range(60):
        solutions = opt.ask()
        assert solutions.shape == (opt.popsize, 10)
        reward = objective(solutions)
        first = reward.mean() if first is None else first
        opt.tell(reward)
    assert first < -60  # start near 0: about -90
    assert reward.mean() > -10, f"{name}: mean fitness {reward.mean():.1f} after 60 generations"
    assert objective([opt.current_param()])[0] > -6
    best_param, best_reward, curr_reward, sigma = opt.result()
    assert best_param.shape == (10,) and np.isfinite(best_reward) and np.isfinite(curr_reward)
    assert np.allclose(opt.best_param(), best_param)
    assert 0 < opt.rms_stdev() < 0.5 * 1.01


def test_cmaes_writes_no_files_and_leaves_global_rng(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    opt = es.CMAES(20, sigma_init=0.1, popsize=8, seed=1)
    for _ in range(5):
        opt.tell(objective(opt.ask()))
    assert np.random.rand() == expected, "pycma consumed or reseeded NumPy's global RNG"
    assert os.listdir(tmp_path) == []


def test_weight_decay_penalises_large_weights():
    params = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert np.allclose(es.compute_weight_decay(0.5, params), [0.0, -2.0])
    # with constant rewards only the decay matters: every optimiser must shrink the weights
    for make in (lambda: es.CMAES(5, sigma_init=0.3, popsize=10, weight_decay=1.0, seed=0),
                 lambda: es.OpenES(5, sigma_init=0.3, learning_rate=0.1, popsize=10, weight_decay=1.0,
                                   rank_fitness=False, seed=0),
                 lambda: es.PEPG(5, sigma_init=0.3, learning_rate=0.1, popsize=10, weight_decay=1.0,
                                 rank_fitness=False, seed=0)):
        opt = make()
        opt.set_mu(np.full(5, 3.0))
        for _ in range(30):
            opt.ask()
            opt.tell(np.zeros(opt.popsize))
        assert np.abs(opt.current_param()).mean() < 2.0, type(opt).__name__
    cma = es.CMAES(5, sigma_init=0.3, popsize=10, weight_decay=1.0, seed=0)
    solutions = cma.ask()
    cma.tell(np.zeros(10))
    smallest = solutions[np.argmin(np.mean(solutions ** 2, axis=1))]
    assert np.allclose(cma.best_param(), smallest)
    assert cma.result()[1] == pytest.approx(-np.mean(smallest ** 2))


@pytest.mark.parametrize("forget_best", [False, True])
def test_simple_ga_forget_best(forget_best):
    ga = es.SimpleGA(3, sigma_init=0.1, popsize=4, elite_ratio=0.25, forget_best=forget_best,
                     weight_decay=0.0, seed=0)
    great = ga.ask()[0].copy()
    ga.tell([10.0, 0.0, 0.0, 0.0])
    second = ga.ask()
    ga.tell([-100.0, -50.0, -100.0, -100.0])
    if forget_best:  # elites come from the new population only
        assert np.allclose(ga.current_param(), second[1])
        assert ga.result()[1] == -50.0
    else:  # the previous elite survives
        assert np.allclose(ga.current_param(), great)
        assert np.allclose(ga.best_param(), great)
        assert ga.result()[1] == 10.0


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_state_round_trip_gives_identical_ask(name):
    opt = OPTIMISERS[name]()
    for _ in range(3):
        opt.tell(objective(opt.ask()))
    restored = pickle.loads(pickle.dumps(opt))
    a, b = opt.ask(), restored.ask()
    assert np.array_equal(a, b)
    reward = objective(a)
    opt.tell(reward)
    restored.tell(reward)
    assert np.array_equal(opt.ask(), restored.ask())


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_set_mu_moves_the_samples(name):
    opt = OPTIMISERS[name]()
    opt.tell(objective(opt.ask()))
    mu = np.full(10, 7.0)
    opt.set_mu(mu)
    samples = opt.ask()
    assert np.abs(samples.mean(axis=0) - 7.0).max() < 1.0
    if name != "ga":  # the GA's current param is its best elite once a generation is told
        assert np.allclose(opt.current_param(), mu)


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="even population"):
        es.OpenES(4, popsize=5, antithetic=True)
    opt = es.CMAES(4, popsize=6, seed=0)
    opt.ask()
    with pytest.raises(ValueError, match="6"):
        opt.tell([1.0, 2.0])
