"""Encode every recorded episode into latent series for training M.

Reads record/*.npz (`obs` uint8 (T,64,64,3), `action` (T,3)) and the VAE weights
tf_vae/vae.json (--vae); writes series/series.npz (--out), atomically:
  mu, logvar  float16 (N, T, 32)   the encoder's mean and log-variance of every frame
  action      float16 (N, T, 3)
  length      int32 (N,)           the true length of each episode
  files       str (N,)             the episode file names
T is the longest episode; shorter ones are zero-padded after their `length` frames, so the
rows stay aligned in time. Memory holds the output arrays and one episode, not all frames.
Damaged npz files are reported and skipped.
"""
import argparse
import os
import sys

import numpy as np

import config
from common import UserError, atomic_savez, claim_outputs, main_guard
from vae.vae import ConvVAE
from records import BadRecord, list_records, load_many, prefetch, scan_records


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--record-dir", default=config.RECORD_DIR, help="folder of episode .npz files")
    p.add_argument("--vae", default=config.TF_VAE_PATH, help="VAE weights (vae.json format)")
    p.add_argument("--out", default=os.path.join(config.SERIES_DIR, "series.npz"))
    p.add_argument("--num-episodes", type=int, default=None, help="encode only the first N files (sorted)")
    p.add_argument("--batch-size", type=int, default=200, help="frames per encoder call")
    p.add_argument("--keras", action="store_true",
                   help="encode with the Keras twin of V (a GPU when Keras's backend has one; "
                        "KERAS_BACKEND=torch works too) instead of NumPy on the CPU")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.num_episodes is not None and args.num_episodes < 1:
        raise UserError("--num-episodes must be at least 1")
    return args


def keras_encoder(vae):
    """frames uint8 (N,64,64,3) -> (mu, logvar) through the Keras encoder holding vae's weights."""
    from vae.keras_vae import build_vae, weights_to_keras
    from vae.vae import as_float_frames

    model = build_vae(config.Z_SIZE)
    weights_to_keras(model, vae.weights)

    def encode(frames):
        mu, logvar = model.encoder.predict_on_batch(as_float_frames(frames))
        return mu, logvar

    return encode


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    def report(msg):
        tqdm.write(msg, file=sys.stderr)

    if not os.path.exists(args.vae):
        raise UserError(f"VAE weights {args.vae} do not exist: train V with vae_train.py or pass --vae")
    vae = ConvVAE(z_size=config.Z_SIZE)
    vae.load_json(args.vae)
    encode = keras_encoder(vae) if args.keras else vae.encode_mu_logvar

    claim_outputs(os.path.dirname(os.path.abspath(args.out)), "series", [os.path.basename(args.out)], report)
    paths, lengths = scan_records(list_records(args.record_dir, args.num_episodes), report, with_action=True)
    if not paths:
        raise UserError(f"no usable episodes in {args.record_dir} (see above): re-run extract.py")
    n, t_max, z = len(paths), max(lengths), config.Z_SIZE
    mu = np.zeros((n, t_max, z), np.float16)
    logvar = np.zeros((n, t_max, z), np.float16)
    action = np.zeros((n, t_max, config.ACTION_SIZE), np.float16)
    length = np.zeros(n, np.int32)
    files = []

    def episodes(chunk=16):
        for i in range(0, len(paths), chunk):
            yield from zip(paths[i:i + chunk], load_many(paths[i:i + chunk], with_action=True))

    k = 0  # rows are filled in order; a damaged file leaves no gap
    for path, episode in tqdm(prefetch(episodes()), total=n, unit="episode", dynamic_ncols=True):
        if isinstance(episode, BadRecord):
            report(f"skipping {path}: {episode}")
            continue
        obs, act = episode
        t = len(obs)
        for s in range(0, t, args.batch_size):
            m, lv = encode(obs[s:s + args.batch_size])
            mu[k, s:s + len(m)] = m
            logvar[k, s:s + len(m)] = lv
        if not (np.isfinite(mu[k, :t]).all() and np.isfinite(logvar[k, :t]).all()):
            raise UserError(f"{args.vae} encodes {path} to NaN or inf latents (beyond float16's range): "
                            "these V weights are broken; retrain V (vae_train.py) before series.py")
        action[k, :t] = act
        length[k] = t
        files.append(os.path.basename(path))
        k += 1
    if k == 0:
        raise UserError(f"no episode of {args.record_dir} could be read (see above): re-run extract.py")
    t_out = int(length[:k].max())
    shorter = int(np.sum(length[:k] < t_out))
    if shorter:
        print(f"{shorter} of {k} episodes are shorter than {t_out} frames: zero-padded, "
              f"true lengths in `length` (min {int(length[:k].min())})")
    atomic_savez(args.out, mu=mu[:k, :t_out], logvar=logvar[:k, :t_out], action=action[:k, :t_out],
                 length=length[:k], files=np.array(files))
    print(f"wrote {args.out}: {k} episodes x {t_out} frames")
    return args.out


if __name__ == "__main__":
    main_guard(main)
