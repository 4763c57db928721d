"""Train M, the MDN-RNN, on the latent series of the recorded episodes (docs/models.md).

Reads  series/series.npz: mu, logvar float16 (N,T,32), action float16 (N,T,3), length int32 (N,).
Writes tf_rnn/rnn.json (every --save-every steps and at the end, atomically),
       tf_rnn/rnn_checkpoint.npz (weights, Adam state, step, seed: for --resume),
       tf_rnn/rnn_log.json (loss and learning rate per step; with --holdout N also holdout_loss, M's loss
       on the last N episodes, which it never trains on, at the start and every save, and holdout_floor, the
       entropy of V's sampling noise on them, no M's expected loss being lower), tf_rnn/tb/ (TensorBoard),
       tf_initial_z/initial_z.json ([mu, logvar] of the first frame of the first 1000 episodes, x10000 ints).

Each step takes --batch-size random episodes (drawn from the seed and the step number; the
next batch is made in a thread while this one trains) at least --seq-len + 1 frames long, samples
z = mu + exp(logvar/2) * eps afresh, feeds [z, action] at t = 0..seq_len-1 and scores the mixture
against z at t = 1..seq_len (teacher forcing). A NaN or inf loss stops training with the last
good rnn.json left on disk. Then `python install_models.py` copies the results where the
controller looks for them.

Tiny run: python rnn_train.py --num-steps 3 --batch-size 4 --seq-len 10 --out-dir /tmp/r --initial-z-out /tmp/r/iz.json
"""
import argparse
import os
import time
import zipfile

import config  # noqa: E402

config.tensorflow_on_cpu()  # before the first TensorFlow import (done lazily below)

import numpy as np  # noqa: E402

from records import prefetch  # noqa: E402
from common import (ScalarWriter, UserError, atomic_write_json, claim_outputs,  # noqa: E402
                    load_checkpoint, main_guard, read_json, save_checkpoint, training_device)

CHECKPOINT = "rnn_checkpoint.npz"
LOG = "rnn_log.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", default=os.path.join(config.SERIES_DIR, "series.npz"), help="input (series.py's output)")
    p.add_argument("--out-dir", default=os.path.dirname(config.TF_RNN_PATH), help="where rnn.json, the checkpoint and logs go")
    p.add_argument("--initial-z-out", default=config.TF_INITIAL_Z_PATH, help="initial_z.json to write")
    p.add_argument("--num-steps", type=int, default=config.RNN_NUM_STEPS, help="total training steps (with --resume too)")
    p.add_argument("--batch-size", type=int, default=config.RNN_BATCH_SIZE, help="episodes per step")
    p.add_argument("--seq-len", type=int, default=config.RNN_SEQ_LEN, help="inputs per sequence (targets shifted by one)")
    p.add_argument("--lr", type=float, default=config.RNN_LEARNING_RATE, help="Adam learning rate")
    p.add_argument("--decay-rate", type=float, default=config.RNN_DECAY_RATE, help="lr decay per step (1.0: constant)")
    p.add_argument("--min-lr", type=float, default=config.RNN_MIN_LEARNING_RATE, help="floor of the decayed lr")
    p.add_argument("--grad-clip", type=float, default=config.RNN_GRAD_CLIP, help="clip gradients by value to [-c, c]")
    p.add_argument("--max-minutes", type=float, default=0,
                   help="stop (saving everything) after this many minutes of training in this run (0: no limit)")
    p.add_argument("--seed", type=int, default=0, help="seeds weight init, episode choice and z sampling")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/" + CHECKPOINT)
    p.add_argument("--init", help="start from these rnn.json weights with a fresh Adam (to train an M "
                                  "further on new data, e.g. rnn/rnn.json); a checkpoint resumed wins")
    p.add_argument("--save-every", type=int, default=100, help="save rnn.json and the checkpoint every this many steps")
    p.add_argument("--holdout", type=int, default=0,
                   help="keep the last N usable episodes out of training and log M's loss on them (at the "
                        "start and at every save): shows whether M still learns or only memorises its episodes")
    a = p.parse_args(argv)
    for flag in ("num_steps", "batch_size", "seq_len", "save_every"):
        if getattr(a, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(a, flag)}")
    if a.holdout < 0:
        raise UserError(f"--holdout must be 0 or more, got {a.holdout}")
    for flag in ("lr", "min_lr"):  # 0 is allowed: no learning (the tests use it)
        if not getattr(a, flag) >= 0:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(a, flag)}: must be >= 0")
    if not a.grad_clip > 0:
        raise UserError(f"--grad-clip {a.grad_clip}: must be > 0")
    if not 0 < a.decay_rate <= 1:
        raise UserError(f"--decay-rate {a.decay_rate}: must be in (0, 1]")
    if a.seed < 0 or a.max_minutes < 0:
        raise UserError("--seed and --max-minutes must be >= 0")
    return a


def load_series(path):
    """series.npz -> dict of arrays (kept float16 in memory), checked for keys, shapes and finite values."""
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist: run series.py first (or pass --series)")
    try:
        with np.load(path) as f:
            missing = [k for k in ("mu", "logvar", "action") if k not in f.files]
            if missing:
                raise UserError(f"{path} lacks {', '.join(missing)}: re-create it with series.py")
            s = {k: f[k] for k in ("mu", "logvar", "action")}
            n, t = s["mu"].shape[:2]
            s["length"] = f["length"].astype(np.int64) if "length" in f.files else np.full(n, t, np.int64)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is not a readable .npz file ({type(e).__name__}: {e}); re-create it with series.py")
    n, t = s["mu"].shape[:2]
    want = {"mu": (n, t, config.Z_SIZE), "logvar": (n, t, config.Z_SIZE), "action": (n, t, config.ACTION_SIZE),
            "length": (n,)}
    for k, shape in want.items():
        if s[k].shape != shape:
            raise UserError(f"{path}: {k} has shape {s[k].shape}, expected {shape}")
    for k in ("mu", "logvar", "action"):
        if not np.isfinite(s[k]).all():
            raise UserError(f"{path}: {k} holds NaN or inf values; re-create it with series.py")
    return s


def usable_episodes(series, seq_len, path):
    """Indices of episodes with at least seq_len + 1 frames; a clear error if there are none."""
    length = np.minimum(series["length"], series["mu"].shape[1])
    ok = np.flatnonzero(length >= seq_len + 1)
    if len(ok) == 0:
        raise UserError(f"{path}: no episode has the {seq_len + 1} frames that --seq-len {seq_len} needs "
                        f"(lengths {length.min()}..{length.max()}); record longer episodes or lower --seq-len")
    dropped = len(length) - len(ok)
    print(f"{path}: {len(length)} episodes, {len(ok)} used" +
          (f", {dropped} dropped as shorter than {seq_len + 1} frames" if dropped else ""))
    return ok


def write_initial_z(series, path):
    n = min(config.INITIAL_Z_EPISODES, series["mu"].shape[0])
    to_int = lambda a: np.round(a[:n, 0].astype(np.float64) * 10000).astype(np.int64).tolist()  # noqa: E731
    atomic_write_json(path, [to_int(series["mu"]), to_int(series["logvar"])], separators=(",", ":"))
    print(f"wrote {path} ({n} initial latents)")


def make_batch(series, idx, seq_len, rng):
    """Inputs [z, a] at t=0..seq_len-1 and target z at t=1..seq_len, z sampled from mu/logvar."""
    mu = series["mu"][idx, :seq_len + 1].astype(np.float32)
    logvar = series["logvar"][idx, :seq_len + 1].astype(np.float32)
    z = mu + np.exp(logvar / 2) * rng.standard_normal(mu.shape, dtype=np.float32)
    action = series["action"][idx, :seq_len].astype(np.float32)
    return np.concatenate([z[:, :-1], action], axis=-1), z[:, 1:]


def batches(series, usable, args, start):
    """The (x, y) of every step from `start` on. Step s draws from default_rng([seed, s]), so a
    resumed run repeats an uninterrupted one, and batches can be made ahead in a thread."""
    for step in range(start, args.num_steps):
        rng = np.random.default_rng([args.seed, step])
        idx = rng.choice(usable, size=args.batch_size, replace=len(usable) < args.batch_size)
        yield make_batch(series, idx, args.seq_len, rng)


def holdout_loss(series, held, args, trainer):
    """Mean MDN loss on the held-out episodes, z sampled from a fixed stream so that two
    evaluations differ only by the weights."""
    rng = np.random.default_rng([args.seed, 1, 0])  # a stream no training step draws
    total = 0.0
    for i in range(0, len(held), args.batch_size):
        idx = held[i:i + args.batch_size]
        x, y = make_batch(series, idx, args.seq_len, rng)
        total += trainer.test_loss(x, y) * len(idx)
    return total / len(held)


def noise_floor(series, held, args):
    """The loss of an M that knew every next mu exactly: the entropy of the sampled targets
    z = mu + exp(logvar/2) * eps, mean over the held-out targets and dims. No M's expected loss is lower."""
    logvar = series["logvar"][held, 1:args.seq_len + 1].astype(np.float64)
    return float(np.mean(0.5 * np.log(2 * np.pi * np.e) + logvar / 2))


def save_all(out_dir, model, trainer, step, log, args):
    """rnn.json (TF1 layout), then the checkpoint, then the log; each written atomically."""
    from rnn.keras_rnn import keras_to_weights
    from rnn.rnn import MDNRNN

    m = MDNRNN()
    m.set_weights(keras_to_weights(model))
    m.save_json(os.path.join(out_dir, "rnn.json"))
    meta = {"step": step, "seed": args.seed, "seq_len": args.seq_len,
            "batch_size": args.batch_size, "series": os.path.abspath(args.series)}
    save_checkpoint(os.path.join(out_dir, CHECKPOINT), model.get_weights(), trainer.optimizer_state(), meta)
    atomic_write_json(os.path.join(out_dir, LOG), log)


def main(argv=None):
    args = parse_args(argv)
    series = load_series(args.series)
    usable = usable_episodes(series, args.seq_len, args.series)
    held = usable[:0]
    if args.holdout:
        if args.holdout >= len(usable):
            raise UserError(f"--holdout {args.holdout} leaves no episode to train on ({len(usable)} usable)")
        usable, held = usable[:-args.holdout], usable[-args.holdout:]
        print(f"held out the last {len(held)} episodes; training on {len(usable)}")
    ckpt_path = os.path.join(args.out_dir, CHECKPOINT)
    claim_outputs(args.out_dir, "rnn_train", ["rnn.json", CHECKPOINT, LOG])
    if args.resume and not os.path.exists(ckpt_path):
        print(f"--resume: no checkpoint {ckpt_path}; starting from scratch")
        args.resume = False
    write_initial_z(series, args.initial_z_out)

    import keras
    from tqdm import tqdm

    from rnn.keras_rnn import Trainer, build_rnn

    print(f"training M with {training_device()}")
    keras.utils.set_random_seed(args.seed)
    model = build_rnn()
    trainer = Trainer(model, lr=args.lr, decay=args.decay_rate, min_lr=args.min_lr, clip=args.grad_clip)
    log, start = [], 0
    if args.resume:
        meta, weights, opt = load_checkpoint(ckpt_path, "rnn_train.py")
        try:
            model.set_weights(weights)
            trainer.set_optimizer_state(opt)
        except ValueError as e:
            raise UserError(f"{ckpt_path} does not fit this model ({e}); start again without --resume")
        if meta.get("seed", args.seed) != args.seed:
            print(f"note: the checkpoint was trained with --seed {meta['seed']}; continuing with {args.seed}")
        start = int(meta["step"])
        log_path = os.path.join(args.out_dir, LOG)
        if os.path.exists(log_path):
            log = [r for r in read_json(log_path, "training log") if r["step"] <= start]
        if (meta["seq_len"], meta["batch_size"]) != (args.seq_len, args.batch_size):
            print(f"note: the checkpoint was trained with --seq-len {meta['seq_len']} --batch-size "
                  f"{meta['batch_size']}; continuing with {args.seq_len} / {args.batch_size}")
        print(f"resuming from {ckpt_path} at step {start} (optimizer step {trainer.iterations})")
        if start >= args.num_steps:
            print(f"already at step {start} >= --num-steps {args.num_steps}: nothing to do")
            return 0
    elif os.path.exists(ckpt_path):
        print(f"starting afresh: {ckpt_path} will be overwritten (use --resume to continue it)")
    if args.init and not args.resume:
        from rnn.keras_rnn import weights_to_keras
        from rnn.rnn import MDNRNN

        m = MDNRNN()
        m.load_json(args.init)  # a clear error naming the file
        weights_to_keras(model, m.weights)
        print(f"starting from the weights of {args.init}")

    writer = ScalarWriter(os.path.join(args.out_dir, "tb"))

    def evaluate(step):
        if len(held):
            h = holdout_loss(series, held, args, trainer)
            writer.scalars(step, {"holdout_loss": h})
            print(f"step {step}: loss on the {len(held)} held-out episodes {h:.4f}")
            return {"holdout_loss": round(h, 6)}
        return {}

    if len(held) and not (log and "holdout_loss" in log[-1]):  # the loss before this run trains
        if not (log and log[-1]["step"] == start):
            log.append({"step": start})
        floor = noise_floor(series, held, args)
        print(f"noise floor of the held-out episodes {floor:.4f} "
              "(the entropy of V's sampling noise: no M's expected loss is lower)")
        log[-1].update(evaluate(start), holdout_floor=round(floor, 6))
    last_saved = start if args.resume else None
    t0 = time.time()
    bar = tqdm(range(start, args.num_steps), initial=start, total=args.num_steps, desc="rnn", unit="step")
    for step, (x, y) in zip(bar, prefetch(batches(series, usable, args, start))):
        lr = trainer.lr_at(step)
        loss, weights_finite = trainer.train_step(x, y)
        if not (np.isfinite(loss) and weights_finite):
            bar.close()
            atomic_write_json(os.path.join(args.out_dir, LOG), log)
            kept = (f"{args.out_dir}/rnn.json holds the last good weights (step {last_saved}); "
                    f"continue from there with --resume" if last_saved is not None else "no weights were saved")
            what = f"the loss became {loss}" if not np.isfinite(loss) else "the weights became NaN or inf"
            raise UserError(f"{what} at step {step + 1} (lr {lr:g}); training stopped and the "
                            f"bad weights were not saved; {kept}. Try a lower --lr or check {args.series}")
        writer.scalars(step + 1, {"loss": loss, "lr": lr})
        log.append({"step": step + 1, "loss": round(loss, 6), "lr": lr, "seconds": round(time.time() - t0, 3)})
        bar.set_postfix(loss=f"{loss:.4f}")
        late = args.max_minutes > 0 and time.time() - t0 > args.max_minutes * 60
        if (step + 1) % args.save_every == 0 or step + 1 == args.num_steps or late:
            log[-1].update(evaluate(step + 1))
            save_all(args.out_dir, model, trainer, step + 1, log, args)
            last_saved = step + 1
        if late:
            print(f"--max-minutes {args.max_minutes:g} reached at step {step + 1}; continue with --resume")
            break
    bar.close()
    writer.close()
    print(f"saved {os.path.join(args.out_dir, 'rnn.json')} at step {last_saved}"
          + (f", last loss {log[-1]['loss']:.4f}" if log else ""))
    return 0


if __name__ == "__main__":
    main_guard(main)
