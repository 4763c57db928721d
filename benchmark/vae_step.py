"""Where V's training step goes on the machine at hand (a GPU above all): step time by batch size.

    python -m benchmark.vae_step                         # batch 100 and 1000, 40 steps each
    KERAS_BACKEND=torch python -m benchmark.vae_step --profile --jit

For each batch size: KerasVAE.train_step as vae_train.py calls it (uint8 NumPy batch in, the
noise seed assigned), then Keras's train_on_batch on a batch already on the device. Under the
torch backend, --profile adds a plain torch loop (forward, backward, Adam) over the same layers
and torch.profiler's split of a step into host (Python, kernel launches) and device time;
--jit times train_on_batch compiled (jit_compile=True: XLA under TensorFlow, torch.compile
under torch). Random frames: the step's cost does not depend on what the pixels show.
Prints a line per figure and writes them as JSON to --out (default: nothing written).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import config  # noqa: E402

config.tensorflow_on_cpu()

import numpy as np  # noqa: E402

from common import atomic_write_json, keras_backend, main_guard, training_device  # noqa: E402


def _timer(sync):
    def timeit(fn, steps):
        for _ in range(min(3, steps)):  # warm-up: cuDNN's algorithm search, allocations
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return (time.perf_counter() - t0) / steps * 1e3
    return timeit


def _torch_extras(kv, x, xt, steps, timeit, r, say):
    """A plain torch training loop over the same layers (on xt, the batch x on the device),
    and the profiler's host/device split of kv.train_step(x)."""
    import torch

    model = kv.model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-8)

    def plain():
        y, mu, logvar, xf = model(xt, training=True)
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
        loss = ((xf - y) ** 2).sum((1, 2, 3)).mean() + kl.clamp(min=kv.kl_tolerance * kv.z_size).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    r["plain_torch_loop_ms"] = ms = timeit(plain, steps)
    say(f"  plain torch loop (forward, backward, Adam), same layers: {ms:.2f} ms/step")
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    seed = np.array([0, 1], np.int64)
    n = 10
    with profile(activities=acts) as prof:
        for _ in range(n):
            kv.train_step(x, seed)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    ev = prof.key_averages()
    r["profile_host_ms"] = sum(e.self_cpu_time_total for e in ev) / n / 1e3
    r["profile_device_ms"] = sum(getattr(e, "self_device_time_total", 0) or 0 for e in ev) / n / 1e3
    say(f"  profiler, per train_step: host {r['profile_host_ms']:.2f} ms, device {r['profile_device_ms']:.2f} ms")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", default="100,1000", help="comma list (default: 100,1000)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per figure (default: 40)")
    p.add_argument("--profile", action="store_true", help="torch backend: plain loop and profiler split")
    p.add_argument("--jit", action="store_true", help="also time jit_compile=True (first step: compile time)")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1 or args.steps < 1:
        p.error("--batch-sizes takes positive integers like 100,1000 and --steps a positive integer")
    backend = keras_backend()
    if args.profile and backend != "torch":
        p.error("--profile needs KERAS_BACKEND=torch")
    from vae.keras_vae import KerasVAE

    def sync():
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()

    timeit = _timer(sync)
    say = lambda s: print(s, flush=True)  # noqa: E731
    r = {"backend": backend, "device": training_device(), "steps": args.steps, "batches": {}}
    say(f"V training step, Keras backend {backend}, {r['device']}")
    rng = np.random.default_rng(0)
    for bs in sizes:
        kv = KerasVAE()
        x = rng.integers(0, 256, (bs, 64, 64, 3), dtype=np.uint8)
        seed = np.array([0, 1], np.int64)
        b = r["batches"][str(bs)] = {}
        b["train_step_ms"] = ms = timeit(lambda: kv.train_step(x, seed), args.steps)
        b["frames_per_s"] = bs / ms * 1e3
        say(f"batch {bs}: KerasVAE.train_step {ms:.2f} ms/step, {b['frames_per_s']:.0f} frames/s")
        # the same step without the seed assignment and the host-to-device copy
        if backend == "torch":
            import torch

            xt = torch.as_tensor(x, device=next(kv.model.parameters()).device)
        else:
            xt = x
        b["train_on_batch_on_device_ms"] = ms = timeit(lambda: kv.model.train_on_batch(xt, return_dict=True), args.steps)
        say(f"  train_on_batch, batch already on the device: {ms:.2f} ms/step")
        if args.profile:
            _torch_extras(kv, x, xt, args.steps, timeit, b, say)
        if args.jit:
            kj = KerasVAE()
            kj.model.compile(optimizer=kj.optimizer, jit_compile=True)
            t0 = time.perf_counter()
            kj.model.train_on_batch(x)
            b["jit_first_step_s"] = time.perf_counter() - t0
            b["jit_train_on_batch_ms"] = ms = timeit(lambda: kj.model.train_on_batch(x, return_dict=True), args.steps)
            say(f"  jit_compile=True: {ms:.2f} ms/step (first step, compiling: {b['jit_first_step_s']:.1f} s)")
    if args.out:
        atomic_write_json(args.out, r, indent=1)
        say(f"written {args.out}")


if __name__ == "__main__":
    main_guard(main)
