"""Evolution strategies with the original's ask/tell interface: CMAES, SimpleGA, OpenES, PEPG.

    es = CMAES(num_params, sigma_init=0.1, popsize=64)
    while True:
        solutions = es.ask()                 # (popsize, num_params)
        es.tell(rewards)                     # one fitness per solution, HIGHER IS BETTER
        best_param, best_reward, curr_reward, sigma = es.result()

make_es(name, ...) builds the one train.py's -o flag names. Every optimiser also has
current_param() (the mean, or the best elite for SimpleGA), best_param(), rms_stdev() (root
mean square of the sampling standard deviations) and set_mu(mu) (move the mean, e.g. to
retrain from saved parameters).

weight_decay PENALISES large weights: each solution's fitness is
reward - weight_decay * mean(x**2). (The original CMAES wrapper added the term with the
wrong sign, rewarding large weights; its SimpleGA had forget_best inverted; both fixed.)

State: every optimiser pickles (pickle.dumps(es) / pickle.loads) together with its random
generator, so a restored optimiser asks exactly the samples the original would have asked.
CMAES pickles through pycma's own es.pickle_dumps(). Each optimiser draws from its own
RandomState (argument `seed`, None = fresh entropy); pycma is given that generator too, so
nothing here reseeds or consumes NumPy's global RNG. pycma writes no files (verb_log=0).

Reads and writes nothing. Needs only numpy and cma.
"""
import numpy as np


def compute_ranks(x):
    """Ranks 0..len(x)-1 of a 1-D array (0 = smallest)."""
    x = np.asarray(x)
    ranks = np.empty(len(x), dtype=np.int64)
    ranks[x.argsort()] = np.arange(len(x))
    return ranks


def compute_centered_ranks(x):
    """Ranks rescaled to [-0.5, 0.5]: fitness shaping that ignores the reward scale."""
    x = np.asarray(x).ravel()
    if len(x) < 2:
        return np.zeros(len(x))
    return compute_ranks(x) / (len(x) - 1.0) - 0.5


def compute_weight_decay(weight_decay, model_param_list):
    """The L2 penalty to ADD to each solution's reward: -weight_decay * mean(x**2)."""
    params = np.asarray(model_param_list, dtype=np.float64)
    return -weight_decay * np.mean(params * params, axis=1)


class Adam:
    """Adam ascent on a parameter vector held by the optimiser (mu)."""

    def __init__(self, num_params, stepsize, beta1=0.99, beta2=0.999, epsilon=1e-8):
        self.stepsize, self.beta1, self.beta2, self.epsilon = stepsize, beta1, beta2, epsilon
        self.m = np.zeros(num_params)
        self.v = np.zeros(num_params)
        self.t = 0

    def step(self, gradient):
        """Returns the change to ADD to the parameters to climb `gradient`."""
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * gradient
        self.v = self.beta2 * self.v + (1 - self.beta2) * gradient * gradient
        lr = self.stepsize * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        return lr * self.m / (np.sqrt(self.v) + self.epsilon)


def _fitness(reward_table, solutions, weight_decay, popsize):
    reward = np.asarray(reward_table, dtype=np.float64).ravel()
    if reward.size != popsize:
        raise ValueError(f"tell() got {reward.size} rewards for a population of {popsize}")
    if weight_decay > 0:
        reward = reward + compute_weight_decay(weight_decay, solutions)
    return reward


class CMAES:
    """CMA-ES through pycma (full covariance), maximising."""

    def __init__(self, num_params, sigma_init=0.10, popsize=255, weight_decay=0.01, seed=None,
                 inopts=None):
        import cma

        self.num_params = num_params
        self.sigma_init = sigma_init
        self.popsize = popsize
        self.weight_decay = weight_decay
        self.solutions = None
        self.curr_best_reward = None
        opts = {"popsize": popsize, "verb_log": 0, "verb_disp": 0, "verbose": -9,
                # seed=nan: pycma leaves NumPy's global RNG alone; it samples from our own
                # RandomState instead, which pickles with it (identical ask() after restore).
                "seed": np.nan, "randn": np.random.RandomState(seed).randn}
        opts.update(inopts or {})
        self.es = cma.CMAEvolutionStrategy(np.zeros(num_params), sigma_init, opts)

    def rms_stdev(self):
        return float(np.sqrt(np.mean(np.square(self.es.result.stds))))

    def ask(self):
        self.solutions = self.es.ask()
        return np.array(self.solutions)

    def tell(self, reward_table_result):
        reward = _fitness(reward_table_result, self.solutions, self.weight_decay, self.popsize)
        self.curr_best_reward = float(reward.max())
        self.es.tell(self.solutions, (-reward).tolist())  # pycma minimises

    def current_param(self):
        return np.array(self.es.result.xfavorite)

    def set_mu(self, mu):
        mu = np.asarray(mu, dtype=np.float64).ravel()
        if mu.size != self.num_params:
            raise ValueError(f"set_mu got {mu.size} values, expected {self.num_params}")
        self.es.mean = self.es.gp.geno(mu.copy())

    def best_param(self):
        xbest = self.es.result.xbest
        return self.current_param() if xbest is None else np.array(xbest)

    def result(self):
        r = self.es.result
        best_reward = None if r.xbest is None else -float(r.fbest)
        return self.best_param(), best_reward, self.curr_best_reward, np.array(r.stds)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["es"] = self.es.pickle_dumps()
        return state

    def __setstate__(self, state):
        import pickle

        state = dict(state)
        state["es"] = pickle.loads(state["es"])
        self.__dict__.update(state)


class SimpleGA:
    """Genetic algorithm: elites breed by uniform crossover plus gaussian mutation.

    forget_best=False keeps the previous elites (with their old fitness) in the next
    selection, so the best solution found so far survives; forget_best=True selects the
    elites from the new population only and best_param() is this generation's best.
    """

    def __init__(self, num_params, sigma_init=0.1, sigma_decay=0.999, sigma_limit=0.01,
                 popsize=256, elite_ratio=0.1, forget_best=False, weight_decay=0.01, seed=None):
        self.num_params = num_params
        self.sigma = sigma_init
        self.sigma_init, self.sigma_decay, self.sigma_limit = sigma_init, sigma_decay, sigma_limit
        self.popsize = popsize
        self.elite_ratio = elite_ratio
        self.elite_popsize = max(1, int(popsize * elite_ratio))
        self.forget_best = forget_best
        self.weight_decay = weight_decay
        self.rng = np.random.RandomState(seed)
        self.mu = np.zeros(num_params)
        self.elite_params = np.zeros((self.elite_popsize, num_params))
        self.elite_rewards = np.zeros(self.elite_popsize)
        self.best_param_ = np.zeros(num_params)
        self.best_reward = None
        self.curr_best_reward = None
        self.first_iteration = True
        self.solutions = None

    def rms_stdev(self):
        return float(self.sigma)

    def ask(self):
        noise = self.rng.randn(self.popsize, self.num_params) * self.sigma
        if self.first_iteration:
            self.solutions = self.mu + noise
        else:
            a = self.elite_params[self.rng.randint(self.elite_popsize, size=self.popsize)]
            b = self.elite_params[self.rng.randint(self.elite_popsize, size=self.popsize)]
            mask = self.rng.rand(self.popsize, self.num_params) < 0.5
            self.solutions = np.where(mask, a, b) + noise
        return self.solutions.copy()

    def tell(self, reward_table_result):
        reward = _fitness(reward_table_result, self.solutions, self.weight_decay, self.popsize)
        params = self.solutions
        if not (self.forget_best or self.first_iteration):
            reward = np.concatenate([reward, self.elite_rewards])
            params = np.concatenate([params, self.elite_params])
        idx = np.argsort(reward)[::-1][:self.elite_popsize]
        self.elite_rewards, self.elite_params = reward[idx], params[idx].copy()
        self.curr_best_reward = float(self.elite_rewards[0])
        if self.forget_best or self.best_reward is None or self.curr_best_reward > self.best_reward:
            self.best_reward = self.curr_best_reward
            self.best_param_ = self.elite_params[0].copy()
        self.first_iteration = False
        if self.sigma > self.sigma_limit:
            self.sigma *= self.sigma_decay

    def current_param(self):
        return self.mu.copy() if self.first_iteration else self.elite_params[0].copy()

    def set_mu(self, mu):
        """The next generation is sampled around mu (as the first generation is)."""
        self.mu = np.asarray(mu, dtype=np.float64).ravel().copy()
        self.first_iteration = True

    def best_param(self):
        return self.best_param_.copy()

    def result(self):
        return self.best_param(), self.best_reward, self.curr_best_reward, self.sigma


class _MeanSearch:
    """What OpenES and PEPG share: a mean `mu` moved by gradient steps, and the best mean seen."""

    def current_param(self):
        return self.mu.copy()

    def set_mu(self, mu):
        self.mu = np.asarray(mu, dtype=np.float64).ravel().copy()

    def best_param(self):
        return self.best_mu.copy()


class OpenES(_MeanSearch):
    """OpenAI-style ES (Salimans et al. 2017): isotropic gaussian, Adam on the estimated gradient."""

    def __init__(self, num_params, sigma_init=0.1, sigma_decay=0.999, sigma_limit=0.01,
                 learning_rate=0.01, learning_rate_decay=0.9999, learning_rate_limit=0.001,
                 popsize=256, antithetic=False, weight_decay=0.01, rank_fitness=True,
                 forget_best=True, seed=None):
        if antithetic and popsize % 2:
            raise ValueError(f"antithetic sampling needs an even population, got {popsize}")
        self.num_params = num_params
        self.sigma = sigma_init
        self.sigma_init, self.sigma_decay, self.sigma_limit = sigma_init, sigma_decay, sigma_limit
        self.learning_rate = learning_rate
        self.learning_rate_decay, self.learning_rate_limit = learning_rate_decay, learning_rate_limit
        self.popsize = popsize
        self.antithetic = antithetic
        self.weight_decay = weight_decay
        self.rank_fitness = rank_fitness
        self.forget_best = forget_best
        self.rng = np.random.RandomState(seed)
        self.mu = np.zeros(num_params)
        self.optimizer = Adam(num_params, learning_rate)
        self.best_mu = np.zeros(num_params)
        self.best_reward = None
        self.curr_best_reward = None
        self.epsilon = None
        self.solutions = None

    def rms_stdev(self):
        return float(self.sigma)

    def ask(self):
        if self.antithetic:
            half = self.rng.randn(self.popsize // 2, self.num_params)
            self.epsilon = np.concatenate([half, -half])
        else:
            self.epsilon = self.rng.randn(self.popsize, self.num_params)
        self.solutions = self.mu + self.sigma * self.epsilon
        return self.solutions.copy()

    def tell(self, reward_table_result):
        reward = _fitness(reward_table_result, self.solutions, self.weight_decay, self.popsize)
        idx = int(np.argmax(reward))
        self.curr_best_reward = float(reward[idx])
        if self.forget_best or self.best_reward is None or self.curr_best_reward > self.best_reward:
            self.best_reward = self.curr_best_reward
            self.best_mu = self.solutions[idx].copy()
        if self.rank_fitness:
            shaped = compute_centered_ranks(reward)
        else:
            std = reward.std()
            shaped = (reward - reward.mean()) / (std if std > 0 else 1.0)
        gradient = self.epsilon.T @ shaped / (self.popsize * self.sigma)
        self.optimizer.stepsize = self.learning_rate
        self.mu = self.mu + self.optimizer.step(gradient)
        if self.sigma > self.sigma_limit:
            self.sigma *= self.sigma_decay
        if self.learning_rate > self.learning_rate_limit:
            self.learning_rate *= self.learning_rate_decay

    def result(self):
        return self.best_mu.copy(), self.best_reward, self.curr_best_reward, self.sigma


class PEPG(_MeanSearch):
    """Parameter-exploring policy gradients (Sehnke et al. 2010): symmetric sampling and a
    per-parameter sigma that adapts to the rewards.

    average_baseline=True: the baseline is the population's mean fitness (even popsize).
    average_baseline=False: the first one or two solutions are mu itself and their mean
    fitness is the baseline (popsize - 2*((popsize-1)//2) of them). elite_ratio > 0 moves
    mu to the mean of the best perturbations instead of following the gradient.
    """

    def __init__(self, num_params, sigma_init=0.10, sigma_alpha=0.20, sigma_decay=0.999,
                 sigma_limit=0.01, sigma_max_change=0.2, learning_rate=0.01,
                 learning_rate_decay=0.9999, learning_rate_limit=0.01, elite_ratio=0,
                 popsize=256, average_baseline=True, weight_decay=0.01, rank_fitness=True,
                 forget_best=True, seed=None):
        if average_baseline and popsize % 2:
            raise ValueError(f"PEPG with average_baseline needs an even population, got {popsize}")
        self.num_params = num_params
        self.sigma_init, self.sigma_alpha = sigma_init, sigma_alpha
        self.sigma_decay, self.sigma_limit, self.sigma_max_change = sigma_decay, sigma_limit, sigma_max_change
        self.learning_rate = learning_rate
        self.learning_rate_decay, self.learning_rate_limit = learning_rate_decay, learning_rate_limit
        self.popsize = popsize
        self.average_baseline = average_baseline
        self.batch_size = popsize // 2 if average_baseline else (popsize - 1) // 2
        self.n_base = popsize - 2 * self.batch_size
        self.elite_ratio = elite_ratio
        self.elite_popsize = int(2 * self.batch_size * elite_ratio)
        self.weight_decay = weight_decay
        self.rank_fitness = rank_fitness
        self.forget_best = forget_best
        self.rng = np.random.RandomState(seed)
        self.mu = np.zeros(num_params)
        self.sigma = np.full(num_params, float(sigma_init))
        self.optimizer = Adam(num_params, learning_rate)
        self.best_mu = np.zeros(num_params)
        self.best_reward = None
        self.curr_best_reward = None
        self.epsilon_half = None
        self.solutions = None

    def rms_stdev(self):
        return float(np.sqrt(np.mean(self.sigma * self.sigma)))

    def ask(self):
        self.epsilon_half = self.rng.randn(self.batch_size, self.num_params) * self.sigma
        epsilon = np.concatenate([np.zeros((self.n_base, self.num_params)),
                                  self.epsilon_half, -self.epsilon_half])
        self.solutions = self.mu + epsilon
        return self.solutions.copy()

    def tell(self, reward_table_result):
        reward = _fitness(reward_table_result, self.solutions, self.weight_decay, self.popsize)
        idx = int(np.argmax(reward))
        self.curr_best_reward = float(reward[idx])
        if self.forget_best or self.best_reward is None or self.curr_best_reward > self.best_reward:
            self.best_reward = self.curr_best_reward
            self.best_mu = self.solutions[idx].copy()
        shaped = compute_centered_ranks(reward) if self.rank_fitness else reward
        baseline = shaped.mean() if self.average_baseline else shaped[:self.n_base].mean()
        paired = shaped[self.n_base:]
        plus, minus = paired[:self.batch_size], paired[self.batch_size:]
        if self.elite_popsize > 0:
            epsilon = np.concatenate([self.epsilon_half, -self.epsilon_half])
            elite = np.argsort(paired)[::-1][:self.elite_popsize]
            self.mu = self.mu + epsilon[elite].mean(axis=0)
        else:
            gradient = (plus - minus) @ self.epsilon_half / (2 * self.batch_size)
            self.optimizer.stepsize = self.learning_rate
            self.mu = self.mu + self.optimizer.step(gradient)
        if self.sigma_alpha > 0:
            scale = 1.0 if self.rank_fitness else (paired.std() or 1.0)
            s = (self.epsilon_half ** 2 - self.sigma ** 2) / self.sigma
            delta = ((plus + minus) / 2.0 - baseline) @ s / (2 * self.batch_size * scale)
            limit = self.sigma_max_change * self.sigma
            self.sigma = self.sigma + np.clip(self.sigma_alpha * delta, -limit, limit)
        if self.sigma_decay < 1:
            self.sigma[self.sigma > self.sigma_limit] *= self.sigma_decay
        if self.learning_rate > self.learning_rate_limit:
            self.learning_rate *= self.learning_rate_decay

    def result(self):
        return self.best_mu.copy(), self.best_reward, self.curr_best_reward, self.sigma.copy()


def make_es(name, num_params, popsize, sigma_init, sigma_decay, antithetic, seed):
    """The optimiser train.py's -o NAME picks, with the original's settings for it."""
    if name == "cma":
        return CMAES(num_params, sigma_init=sigma_init, popsize=popsize, seed=seed)
    if name == "ses":
        return PEPG(num_params, sigma_init=sigma_init, sigma_decay=sigma_decay, sigma_alpha=0.2,
                    sigma_limit=0.02, elite_ratio=0.1, weight_decay=0.005, popsize=popsize,
                    average_baseline=False, seed=seed)
    if name == "pepg":
        return PEPG(num_params, sigma_init=sigma_init, sigma_decay=sigma_decay, sigma_alpha=0.2,
                    sigma_limit=0.02, learning_rate=0.01, learning_rate_decay=1.0,
                    learning_rate_limit=0.01, weight_decay=0.005, popsize=popsize,
                    average_baseline=popsize % 2 == 0, seed=seed)
    if name == "ga":
        return SimpleGA(num_params, sigma_init=sigma_init, sigma_decay=sigma_decay, sigma_limit=0.02,
                        elite_ratio=0.1, weight_decay=0.005, popsize=popsize, seed=seed)
    if name == "oes":
        return OpenES(num_params, sigma_init=sigma_init, sigma_decay=sigma_decay, sigma_limit=0.02,
                      learning_rate=0.01, learning_rate_decay=1.0, learning_rate_limit=0.01,
                      antithetic=antithetic and popsize % 2 == 0, weight_decay=0.005,
                      popsize=popsize, seed=seed)
    raise ValueError(f"unknown optimizer {name!r}: use cma, ses, pepg, ga or oes")
