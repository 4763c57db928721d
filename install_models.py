"""Install the trained models where the controller, model.py and dream_model.py look for them.

This is the original README's manual step "copy vae.json, initial_z.json and rnn.json over to
vae, initial_z and rnn":
    tf_vae/vae.json               -> vae/vae.json
    tf_rnn/rnn.json               -> rnn/rnn.json
    tf_initial_z/initial_z.json   -> initial_z/initial_z.json
Each source is loaded and checked first (a broken file is never installed). An existing
destination that differs is kept unless --force. Nothing is copied unless every chosen file passes.
"""
import argparse
import filecmp
import os


import config
from common import UserError, atomic_write_bytes, main_guard

def check_vae(path):
    from vae.vae import ConvVAE

    ConvVAE().load_json(path)
    return "ConvVAE loads it"


def check_rnn(path):
    from rnn.rnn import MDNRNN

    MDNRNN().load_json(path)
    return "MDNRNN loads it"


def check_initial_z(path):
    from dream_env import load_initial_z

    mu, _ = load_initial_z(path)
    return f"{len(mu)} initial latents"


MODELS = {  # name: (default source, default destination, checker, what makes the source)
    "vae": (config.TF_VAE_PATH, config.VAE_PATH, check_vae, "vae_train.py"),
    "rnn": (config.TF_RNN_PATH, config.RNN_PATH, check_rnn, "rnn_train.py"),
    "initial_z": (config.TF_INITIAL_Z_PATH, config.INITIAL_Z_PATH, check_initial_z, "rnn_train.py"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (src, dst, _, _) in MODELS.items():
        flag = name.replace("_", "-")
        p.add_argument(f"--{flag}-src", default=src, help=f"(default {os.path.relpath(src, config.ROOT)})")
        p.add_argument(f"--{flag}-dst", default=dst, help=f"(default {os.path.relpath(dst, config.ROOT)})")
    p.add_argument("--only", action="append", choices=list(MODELS), help="install only this one (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite destinations that differ")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    chosen = args.only or list(MODELS)
    plan = []
    for name in chosen:
        src = getattr(args, f"{name}_src")
        dst = getattr(args, f"{name}_dst")
        check, maker = MODELS[name][2], MODELS[name][3]
        if not os.path.exists(src):
            raise UserError(f"{src} does not exist: run {maker} first, pass --{name.replace('_', '-')}-src, "
                            f"or leave it out with --only")
        plan.append((name, src, dst, check(src)))
    conflicts = [dst for _, src, dst, _ in plan
                 if os.path.exists(dst) and not filecmp.cmp(src, dst, shallow=False)]
    if conflicts and not args.force:
        raise UserError(f"{', '.join(conflicts)} already exist{'s' if len(conflicts) == 1 else ''} and differ "
                        f"from the new files; pass --force to overwrite (copy them aside first to keep them)")
    for name, src, dst, info in plan:
        if os.path.exists(dst) and filecmp.cmp(src, dst, shallow=False):
            print(f"{name}: {dst} is already up to date ({info})")
            continue
        with open(src, "rb") as f:
            data = f.read()
        replaced = " (replaced the old file)" if os.path.exists(dst) else ""
        atomic_write_bytes(dst, data)
        print(f"{name}: copied {src} -> {dst}{replaced} ({info})")
    return 0


if __name__ == "__main__":
    main_guard(main)
