"""Originals above, VAE reconstructions below: a picture of how well V sees the road.

    python plot_reconstructions.py [--vae tf_vae/vae.json] [--record-dir record] [--out docs/reconstructions.png]
    python plot_reconstructions.py --score --vae vae/vae.json --record-dir DIR   # a number, no picture

Reads a vae.json and record/*.npz; writes one PNG (nothing else). Frames are drawn from
different episodes and times, chosen by --seed. --score instead decodes every frame of DIR
from mu and prints V's squared error per frame (summed over the 64x64x3 pixels in [0, 1], as
V's r_loss): its mean and 90th percentile. Run it on episodes the agent drove to see how well
V knows what the agent sees.
"""
import argparse
import os

import numpy as np

import config
from common import UserError, atomic_write_bytes, main_guard


def pick_frames(record_dir, n, seed, off_field=False):
    """n frames from n different episodes (uint8 (n,64,64,3)) and their names. Unless
    off_field, frames with road in view are preferred: the random policy spends most of its
    time on grass or past the playfield (all black), which says little about the road."""
    from records import BadRecord, list_records, load_episode

    files = list_records(record_dir)  # raises a clear UserError when there are none
    rng = np.random.default_rng(seed)
    frames, names = [], []
    for path in rng.permutation(files):
        try:
            obs = load_episode(path)
        except BadRecord:
            continue
        t = int(rng.integers(len(obs)))
        if not off_field:
            o = obs.astype(np.int16)
            grey = (np.abs(o[..., 0] - o[..., 1]) < 12) & (o[..., 0] > 80) & (o[..., 0] < 130)
            road = np.flatnonzero(grey.mean(axis=(1, 2)) > 0.05)
            t = int(rng.choice(road)) if len(road) else t
        frames.append(obs[t])
        names.append(f"{os.path.basename(path)}:{t}")
        if len(frames) == n:
            break
    return np.array(frames), names


def grid(originals, reconstructions, scale=3, gap=4):
    """Two rows of images (uint8) with gaps, enlarged `scale` times (nearest)."""
    n, h, w, _ = originals.shape
    H, W = h * scale, w * scale
    out = np.full((2 * H + 3 * gap, n * (W + gap) + gap, 3), 255, np.uint8)
    for row, imgs in enumerate((originals, reconstructions)):
        for i, img in enumerate(imgs):
            big = img.repeat(scale, 0).repeat(scale, 1)
            y, x = gap + row * (H + gap), gap + i * (W + gap)
            out[y:y + H, x:x + W] = big
    return out


def score(vae, record_dir, name, batch=500):
    """V's squared error per frame (decoded from mu) over every frame of record_dir."""
    from records import BadRecord, list_records, load_episode

    errors = []
    for path in list_records(record_dir):
        try:
            obs = load_episode(path)
        except BadRecord as e:
            print(f"skipping {path}: {e}")
            continue
        for i in range(0, len(obs), batch):
            x = obs[i:i + batch].astype(np.float32) / 255.0
            mu, _ = vae.encode_mu_logvar(obs[i:i + batch])
            errors.append(((vae.decode(mu) - x) ** 2).sum(axis=(1, 2, 3)))
    errors = np.concatenate(errors)
    mean, p90 = float(errors.mean()), float(np.percentile(errors, 90))
    print(f"{name} on {record_dir}: {len(errors)} frames, squared error per frame mean {mean:.2f}, "
          f"90th percentile {p90:.2f}")
    return mean, p90


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vae", default=config.TF_VAE_PATH, help="VAE weights")
    p.add_argument("--record-dir", default=config.RECORD_DIR, help="episodes to draw frames from")
    p.add_argument("--out", default=os.path.join("docs", "reconstructions.png"), help="PNG to write")
    p.add_argument("-n", type=int, default=8, help="number of frames")
    p.add_argument("--seed", type=int, default=0, help="chooses the frames")
    p.add_argument("--off-field", action="store_true", help="also pick frames off the playfield (black)")
    p.add_argument("--score", action="store_true", help="print V's squared error over all frames of --record-dir")
    args = p.parse_args(argv)
    if args.n < 1:
        raise UserError(f"-n {args.n}: must be at least 1")
    from PIL import Image

    from vae.vae import ConvVAE

    vae = ConvVAE(z_size=config.Z_SIZE)
    if not os.path.exists(args.vae):
        raise UserError(f"VAE weights {args.vae} not found: train with vae_train.py or pass --vae")
    vae.load_json(args.vae)
    if args.score:
        return score(vae, args.record_dir, args.vae)
    frames, names = pick_frames(args.record_dir, args.n, args.seed, args.off_field)
    mu, _ = vae.encode_mu_logvar(frames)
    recon = (vae.decode(mu) * 255).round().astype(np.uint8)
    err = np.abs(recon.astype(float) - frames).mean()
    import io

    buf = io.BytesIO()
    Image.fromarray(grid(frames, recon)).save(buf, format="PNG")
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"{args.out}: {len(frames)} frames ({', '.join(names)}), mean abs error {err:.1f}/255")


if __name__ == "__main__":
    main_guard(main)
