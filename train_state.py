"""train.py's run state on disk: the checkpoint, and the flags it keeps for --resume.

The checkpoint (<base>.ckpt.pkl) is a pickle of the whole run state: the optimiser with its
RNG, the track RNG, NumPy's global RNG, the histories, the evaluation log, and the flags that
define what the run trains on (RUN_FLAGS). `--resume` takes those flags from it unless the
command line gives them again, so a run resumed with a bare `--resume` drives the same tracks on
the same V and M; paths are kept relative to the project, so a clone elsewhere resumes a
committed run. Checkpoints written before the flags were kept have none: their flags must be
given again.
"""
import argparse
import os
import pickle

import numpy as np

import config
from common import UserError, atomic_write_bytes

# The flags that define what a run trains on: its checkpoint keeps them, and --resume takes those
# not given again on its command line (a run resumed without them would change its fitness silently).
RUN_FLAGS = ("antithetic", "common_tracks", "stall_frames", "screen_episodes", "hard_tracks", "hard_below",
             "hard_episodes", "cap_time", "max_len", "renderer", "encoder", "eval_steps", "num_eval_episode",
             "vae", "rnn", "z_noise")
PATH_FLAGS = ("hard_tracks", "vae", "rnn")  # kept relative to the project, so a clone elsewhere resumes
DAMAGED = "it is damaged; delete {}.* to start over (or restore a copy)"


def save_checkpoint(path, st):
    st = dict(st, np_global=np.random.get_state())
    atomic_write_bytes(path, pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))


def read_checkpoint(path, fix):
    """The run state save_checkpoint pickled at path, or one line: why it cannot be read, and `fix`."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError) as e:
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}): {fix}")


def given_flags(parser, argv):
    """The dests of the options written on the command line (the rest are argparse's defaults)."""
    saved = {a: a.default for a in parser._actions}
    try:
        for a in saved:
            a.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for a, d in saved.items():
            a.default = d


def run_flags(args):
    """The RUN_FLAGS as the checkpoint keeps them: defaults resolved, paths inside the project
    relative to it (others absolute)."""
    out = {k: getattr(args, k) for k in RUN_FLAGS}
    out["renderer"], out["encoder"] = args.renderer or config.RENDERER, args.encoder or config.ENCODER
    for k in PATH_FLAGS:
        if out[k]:
            path = os.path.realpath(out[k])
            rel = os.path.relpath(path, config.ROOT)
            out[k] = path if rel.startswith("..") else rel
    return out


def restore_run_flags(parser, args, given, ckpt, prefix):
    """--resume: set the RUN_FLAGS the checkpoint holds and the command line does not give (the
    hard-track ones not when it turns them off, with --hard_episodes 0 or --screen_episodes K).
    Returns (the lines to print: what was taken, what was changed; the run state read, which
    train() then resumes from rather than unpickle it again; None with no checkpoint)."""
    if not os.path.exists(ckpt):
        return [], None
    st = read_checkpoint(ckpt, DAMAGED.format(prefix))
    flags = (st.get("flags") if isinstance(st, dict) else None) or {}
    now, choices = run_flags(args), {a.dest: a.choices for a in parser._actions}
    hard_off = ("hard_episodes" in given and not args.hard_episodes) or ("screen_episodes" in given
                                                                        and args.screen_episodes)
    taken, notes = [], []
    for k in RUN_FLAGS:
        v = flags.get(k, now[k])
        if v == now[k]:
            continue
        if k in given:
            notes.append(f"resume: --{k} changed from {v} to {now[k]} (given on the command line)")
        elif hard_off and k.startswith("hard_"):
            notes.append(f"resume: the checkpoint's --{k} {v} is not taken (the hard tracks are off)")
        elif choices[k] is not None and v not in choices[k]:
            raise UserError(f"--resume: {ckpt} holds --{k} {v}, not one of {', '.join(map(str, choices[k]))}"
                            f": give --{k} on the command line")
        else:
            setattr(args, k, os.path.join(config.ROOT, v) if k in PATH_FLAGS and v else v)
            taken.append(f"--{k} {v}")
    if taken:
        notes.insert(0, "resume: the run's flags from its checkpoint: " + " ".join(taken))
    return notes, st
