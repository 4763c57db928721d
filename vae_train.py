"""Train V, the ConvVAE, on the random-rollout frames of record/ (docs/models.md).

Reads record/*.npz (`obs` uint8 (T,64,64,3), written by extract.py) as a stream: each epoch
visits the files in a new random order, in blocks of --shuffle-episodes episodes whose frames
are shuffled together into batches; memory holds two blocks (one served, the next being
read), whatever the number of episodes.
Writes (in the folder of --out, default tf_vae/):
  vae.json       the weights in the original's format, atomically, every --save-every steps,
                 at each epoch end and at the end;
  vae_ckpt.npz   weights + Adam state + epoch/step counters, for --resume;
  vae_log.json   loss, r_loss, kl_loss every --log-every steps; with --holdout N also "holdout":
                 the same losses on frames of the last N episodes, which V never trains on, at
                 the start and every save (does more data help V, or does it memorise?);
                 tb/ the same for TensorBoard.
Corrupt or truncated npz files are reported and skipped. Uses a GPU if Keras's backend sees one:
TensorFlow by default, or PyTorch with KERAS_BACKEND=torch.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import config
from common import ScalarWriter, UserError, atomic_write_json, claim_outputs, main_guard, training_device
from records import FRAME_SHAPE, BadRecord, list_records, load_many, prefetch, scan_records
HOLDOUT_FRAMES = 4000  # held-out frames scored at each save (--holdout)


# --- V's training stream -------------------------------------------------------------------
class FrameStream:
    """Shuffled batches of frames without holding the data set: epoch e visits the files in
    a permutation seeded by (seed, e), loads them `block` at a time, and yields the block's
    frames shuffled together in batches. Each block's last partial batch is dropped (a
    different few frames every epoch). Deterministic, so a resumed run sees the same batches."""

    def __init__(self, paths, lengths, batch_size, seed=0, block=16, report=print):
        self.paths, self.lengths = list(paths), list(lengths)
        self.batch_size, self.seed, self.block, self.report = batch_size, seed, max(1, block), report
        self.bad = set()

    def _plan(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.paths))
        blocks = [order[i:i + self.block] for i in range(0, len(order), self.block)]
        return rng, blocks

    def steps_per_epoch(self, epoch):
        _, blocks = self._plan(epoch)
        return sum(sum(self.lengths[i] for i in b) // self.batch_size for b in blocks)

    def epoch(self, epoch, skip=0):
        """Batches uint8 (batch_size,64,64,3) of one epoch, the first `skip` left out (resume).
        The next block is read in a thread while this one is served (memory: 2 blocks)."""
        bs = self.batch_size
        for buf, perm, first in prefetch(self._blocks(epoch, skip), ahead=1):
            for k in range(first, len(perm) // bs):
                yield buf[np.sort(perm[k * bs:(k + 1) * bs])]

    def _blocks(self, epoch, skip):
        """(frames, their shuffled order, first batch to serve) per block."""
        rng, blocks = self._plan(epoch)
        bs = self.batch_size
        for b in blocks:
            n = sum(self.lengths[i] for i in b)
            if n // bs <= skip:  # a block wholly before the resume point: not even read
                rng.permutation(n)
                skip -= n // bs
                continue
            buf = np.empty((n,) + FRAME_SHAPE, np.uint8)
            filled = 0
            for i, obs in zip(b, load_many([self.paths[i] for i in b])):
                if isinstance(obs, BadRecord):
                    if i not in self.bad:
                        self.bad.add(i)
                        self.report(f"skipping {self.paths[i]}: {obs}")
                    continue
                obs = obs[: self.lengths[i]]
                buf[filled:filled + len(obs)] = obs
                filled += len(obs)
            perm = rng.permutation(n)
            yield buf, (perm[perm < filled] if filled < n else perm), skip
            skip = 0


def holdout_frames(paths, report):
    """Every k-th frame of the held-out episodes, at most HOLDOUT_FRAMES of them (a fixed set:
    the same frames at every evaluation, cheap enough to score on a CPU at each save)."""
    episodes = [o for o in load_many(paths) if not isinstance(o, BadRecord)]
    if len(episodes) < len(paths):
        report(f"note: {len(paths) - len(episodes)} held-out episodes are damaged and not scored")
    if not episodes:
        return np.zeros((0,) + FRAME_SHAPE, np.uint8)
    frames = np.concatenate(episodes)
    return frames[::-(-len(frames) // HOLDOUT_FRAMES)]


# --- training -----------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--record-dir", default=config.RECORD_DIR, help="folder of episode .npz files")
    p.add_argument("--num-episodes", type=int, default=config.VAE_NUM_EPISODES,
                   help="use the first N files (sorted)")
    p.add_argument("--epochs", type=int, default=config.VAE_NUM_EPOCH)
    p.add_argument("--batch-size", type=int, default=config.VAE_BATCH_SIZE)
    p.add_argument("--lr", type=float, default=config.VAE_LEARNING_RATE, help="Adam learning rate")
    p.add_argument("--kl-tolerance", type=float, default=config.VAE_KL_TOLERANCE)
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop when the step counter reaches this (0: no limit; counts resumed steps)")
    p.add_argument("--max-minutes", type=float, default=0,
                   help="stop (saving everything) after this many minutes of training in this run (0: no limit)")
    p.add_argument("--out", default=config.TF_VAE_PATH, help="vae.json to write; logs go beside it")
    p.add_argument("--resume", action="store_true", help="continue from vae_ckpt.npz beside --out")
    p.add_argument("--init", help="start from these vae.json weights with a fresh Adam (to train a V "
                                  "further on new data, e.g. vae/vae.json); a checkpoint resumed wins")
    p.add_argument("--save-every", type=int, default=1000, help="save vae.json + checkpoint every N steps")
    p.add_argument("--log-every", type=int, default=10, help="log mean losses every N steps")
    p.add_argument("--shuffle-episodes", type=int, default=16,
                   help="episodes whose frames are shuffled together (memory: ~12 MB each)")
    p.add_argument("--holdout", type=int, default=0,
                   help="keep the last N episodes out of training and log V's loss on them at each save")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.holdout < 0:
        raise UserError(f"--holdout must be 0 or more, got {args.holdout}")
    for flag in ("epochs", "batch_size", "num_episodes", "save_every", "log_every", "shuffle_episodes"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    for flag in ("max_steps", "max_minutes", "seed"):  # max_steps, max_minutes: 0 is no limit
        if getattr(args, flag) < 0:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 0")
    if not args.lr >= 0 or not args.kl_tolerance >= 0:
        raise UserError(f"--lr {args.lr} and --kl-tolerance {args.kl_tolerance} must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    def report(msg):
        tqdm.write(msg, file=sys.stderr)

    paths, lengths = scan_records(list_records(args.record_dir, args.num_episodes), report)
    if not paths:
        raise UserError(f"no usable episodes in {args.record_dir} (all damaged, see above): "
                        "re-run extract.py")
    held = []
    if args.holdout:
        if args.holdout >= len(paths):
            raise UserError(f"--holdout {args.holdout} leaves no episode to train on ({len(paths)} usable)")
        held, paths, lengths = paths[-args.holdout:], paths[:-args.holdout], lengths[:-args.holdout]
    if sum(lengths) < args.batch_size:
        raise UserError(f"{sum(lengths)} frames in {args.record_dir} are fewer than --batch-size {args.batch_size}")
    stream = FrameStream(paths, lengths, args.batch_size, args.seed, args.shuffle_episodes, report)

    config.tensorflow_on_cpu()  # before TensorFlow loads
    from vae.keras_vae import build_vae, keras_to_weights, load_checkpoint, save_checkpoint, save_json
    import keras

    out_dir = os.path.dirname(os.path.abspath(args.out))
    ckpt_path = os.path.join(out_dir, "vae_ckpt.npz")
    log_path = os.path.join(out_dir, "vae_log.json")
    claim_outputs(out_dir, "vae_train", [os.path.basename(args.out), "vae_ckpt.npz", "vae_log.json"], report)
    keras.utils.set_random_seed(args.seed)
    model = build_vae(config.Z_SIZE, args.kl_tolerance, args.lr)
    data_id = {"files": len(paths), "frames": int(sum(lengths)), "batch_size": args.batch_size,
               "shuffle_episodes": args.shuffle_episodes, "seed": args.seed}
    step, epoch, step_in_epoch, entries, holdout_log, elapsed0 = 0, 0, 0, [], [], 0.0
    if args.resume and os.path.exists(ckpt_path):
        meta = load_checkpoint(ckpt_path, model)
        model.optimizer.learning_rate.assign(args.lr)
        step, epoch, step_in_epoch = meta["step"], meta["epoch"], meta["step_in_epoch"]
        elapsed0 = meta.get("seconds", 0.0)
        if meta.get("data") != data_id:
            report(f"note: record/ or batch flags changed since {ckpt_path} "
                   f"({meta.get('data')} -> {data_id}); the position inside epoch {epoch} is approximate")
        if os.path.exists(log_path):
            with open(log_path) as f:
                old = json.load(f)
            entries = [e for e in old.get("entries", []) if e["step"] <= step]
            holdout_log = [e for e in old.get("holdout", []) if e["step"] <= step]
        print(f"resuming {ckpt_path}: epoch {epoch}, step {step}")
    elif args.resume:
        report(f"note: no checkpoint {ckpt_path}; starting from scratch")
    elif os.path.exists(ckpt_path):
        report(f"note: starting from scratch; {ckpt_path} will be overwritten (pass --resume to continue it)")

    if args.init and not step:
        from vae.keras_vae import weights_to_keras
        from vae.vae import ConvVAE

        v = ConvVAE(z_size=config.Z_SIZE)
        v.load_json(args.init)  # a clear error naming the file
        weights_to_keras(model, v.get_weights())
        print(f"starting from the weights of {args.init}")
    device = training_device()
    print(f"training V on {device}: {len(paths)} episodes, {sum(lengths)} frames, "
          f"batch {args.batch_size}, {args.epochs} epochs, lr {args.lr}")
    writer = ScalarWriter(os.path.join(out_dir, "tb"))
    held_frames = holdout_frames(held, report)

    def evaluate():
        if len(held_frames) and not (holdout_log and holdout_log[-1]["step"] == step):
            loss, r_loss, kl_loss = model.eval_losses(held_frames, np.array([args.seed, -1], np.int64))
            holdout_log.append({"step": step, "loss": round(loss, 4), "r_loss": round(r_loss, 4),
                                "kl_loss": round(kl_loss, 4), "frames": len(held_frames)})
            writer.scalars(step, {"holdout_loss": loss, "holdout_r_loss": r_loss, "holdout_kl_loss": kl_loss})
            report(f"held-out ({len(held_frames)} frames of {len(held)} episodes) at step {step}: "
                   f"loss {loss:.2f} (r {r_loss:.2f}, kl {kl_loss:.2f})")

    evaluate()  # before this run trains
    t_start = time.time()

    last_saved = None

    def diverged(what):  # nothing of this step is saved: the last checkpoint and vae.json stay good
        bar.close()
        last = f"step {last_saved[0]}" if last_saved else "none in this run"
        return UserError(f"V diverged at step {step + 1}: {what}. Nothing of it was saved (last save: {last}); "
                         "lower --lr, then --resume")

    def save():
        nonlocal last_saved
        if last_saved == (step, epoch):
            return
        last_saved = (step, epoch)
        if not all(np.isfinite(w).all() for w in keras_to_weights(model)):
            raise diverged("the weights became NaN or inf")
        meta = {"step": step, "epoch": epoch, "step_in_epoch": step_in_epoch, "data": data_id,
                "seconds": elapsed0 + time.time() - t_start}
        evaluate()
        save_checkpoint(ckpt_path, model, meta)
        save_json(args.out, model)
        log = {"args": vars(args), "device": device, "entries": entries}
        if held:
            log["holdout"] = holdout_log
        atomic_write_json(log_path, log, indent=1)

    total = sum(stream.steps_per_epoch(e) for e in range(args.epochs))
    if args.max_steps:
        total = min(total, args.max_steps)
    bar = tqdm(total=total, initial=min(step, total), unit="step", dynamic_ncols=True)
    sums, n_sum, t_log = np.zeros(3), 0, time.time()

    first_step = step

    def out_of_time():  # a run trains at least one step
        return args.max_minutes > 0 and step > first_step and time.time() - t_start > args.max_minutes * 60

    try:
        while epoch < args.epochs:
            if (args.max_steps and step >= args.max_steps) or out_of_time():
                break
            trained = 0
            for batch in prefetch(stream.epoch(epoch, skip=step_in_epoch)):
                losses = [float(v) for v in model.train_step(batch, np.array([args.seed, step], np.int64))]
                if not np.isfinite(losses).all():
                    raise diverged(f"the loss became {losses[0]}")
                sums += losses
                n_sum += 1
                step += 1
                step_in_epoch += 1
                bar.update(1)
                if step % args.log_every == 0:
                    loss, r_loss, kl_loss = (sums / n_sum).tolist()
                    fps = n_sum * args.batch_size / (time.time() - t_log)
                    entries.append({"step": step, "epoch": epoch, "loss": loss, "r_loss": r_loss,
                                    "kl_loss": kl_loss, "frames_per_s": round(fps, 1),
                                    "seconds": round(elapsed0 + time.time() - t_start, 1)})
                    writer.scalars(step, {"loss": loss, "r_loss": r_loss, "kl_loss": kl_loss})
                    bar.set_postfix(loss=f"{loss:.1f}", r=f"{r_loss:.1f}", kl=f"{kl_loss:.1f}",
                                    fps=f"{fps:.0f}")
                    sums, n_sum, t_log = np.zeros(3), 0, time.time()
                if step % args.save_every == 0:
                    save()
                trained += 1
                if (args.max_steps and step >= args.max_steps) or out_of_time():
                    break
            else:
                if not trained and not step_in_epoch:
                    raise UserError(f"no batch of {args.batch_size} frames could be formed from {args.record_dir}: "
                                    "damaged files (see above) or blocks of --shuffle-episodes too short")
                epoch += 1
                step_in_epoch = 0
                save()
    except KeyboardInterrupt:
        bar.close()
        save()
        print(f"interrupted at step {step}: saved {ckpt_path}; continue with --resume", file=sys.stderr)
        raise
    bar.close()
    save()
    if out_of_time() and epoch < args.epochs:
        print(f"--max-minutes {args.max_minutes:g} reached; continue with --resume")
    print(f"saved {args.out} at epoch {epoch}, step {step}")
    return step


if __name__ == "__main__":
    main_guard(main)
