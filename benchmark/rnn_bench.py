"""Timings of M: the NumPy LSTM step of rollouts and the Keras training step.

Functions only (no CLI); pass small arguments (or quick=True) for a fast run:
    from benchmark.rnn_bench import lstm_step_ms, rnn_train_step_s
    lstm_step_ms(batch=1)                         # ~0.03 ms on 2 cores
    rnn_train_step_s(batch=100, seq_len=999)      # ~2.7 s on 2 cores with oneDNN
Reads and writes nothing.
"""
import time

import numpy as np

import config

config.tensorflow_on_cpu()


def lstm_step_ms(batch=1, steps=2000, quick=False):
    """Milliseconds per rnn_next_state + rnn_output call (median of 3 runs); unbatched arrays for batch 1."""
    from rnn.rnn import MDNRNN, rnn_init_state, rnn_next_state, rnn_output

    if quick:
        steps = 200
    rng = np.random.default_rng(0)
    m = MDNRNN()
    m.set_weights([rng.standard_normal(s) * 0.05 for s in m.shapes])
    shape = () if batch == 1 else (batch,)
    z = rng.standard_normal(shape + (32,)).astype(np.float32)
    a = rng.uniform(-1, 1, shape + (3,)).astype(np.float32)
    times = []
    for _ in range(3):
        state = rnn_init_state(m, None if batch == 1 else batch)
        t0 = time.perf_counter()
        for _ in range(steps):
            state = rnn_next_state(m, z, a, state)
            rnn_output(state, z)
        times.append((time.perf_counter() - t0) / steps * 1e3)
    return float(np.median(times))


def rnn_train_step_s(batch=100, seq_len=999, steps=2, quick=False):
    """Seconds per Keras training step (after one warm-up step that traces the graph), on random data."""
    from rnn.keras_rnn import Trainer, build_rnn

    if quick:
        batch, seq_len, steps = 4, 20, 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, seq_len, 35)).astype(np.float32)
    y = rng.standard_normal((batch, seq_len, 32)).astype(np.float32)
    trainer = Trainer(build_rnn())
    trainer.train_step(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(x, y)
    return (time.perf_counter() - t0) / steps
