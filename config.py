"""Every hyperparameter of the experiment, in one place (docs/models.md explains them), and the
process settings every script needs before NumPy or TensorFlow loads.

Scripts take their defaults from here and let command-line flags override them. Two numbers
are fixed by the models' shapes rather than free to change: FRAME_SIZE (V's layers turn 64x64
into 2x2 and back; vae/vae.py refuses anything else) and Z_SIZE/RNN_SIZE/ACTION_SIZE, which
every weight file's shapes depend on. The optimisers' own settings (es.py's elite ratios,
learning rates of OpenES/PEPG, ...) are the original's and live in es.make_es.
"""
import os


def one_blas_thread():
    """One BLAS thread per process, for rollout workers: their batch-1 matmuls gain nothing from
    two, and the env step needs the other core. Must run before NumPy is first imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def tensorflow_on_cpu():
    """oneDNN on (TensorFlow leaves it off on AMD CPUs, where training is then ~6x slower) and
    TensorFlow's start-up chatter off. Must run before TensorFlow is first imported."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.abspath(__file__))

# --- environment -------------------------------------------------------------------------
ENV_NAME = "carracing"            # the name the original used for log files
MAX_FRAMES = 1000                 # an episode is truncated after this many steps
CROP_ROWS = 84                    # keep rows 0:84 of the 96x96 frame: drops the indicator bar
FRAME_SIZE = 64                   # frames are resized to 64x64x3 uint8 (V's layers need 64)
RESIZE_FILTER = "BILINEAR"        # Pillow's antialiased bilinear: scipy.misc.imresize's filter
RENDERER = "exact"                # default CarRacing renderer, one of RENDERERS
RENDERERS = ("stock", "exact", "turbo", "obs64")  # obs64: the 64x64 observation only (rollouts)
ENCODER = "numpy"                 # V's encoder in rollouts: numpy (float32) | int8 (LiteRT, ~5x)
Z_NOISE = 1.0                     # scale of the sampling noise in the z C sees: 1 = z ~ V's posterior, as
                                  # the original; 0 = V's mean mu (a controller file may say otherwise)
INT8_CACHE = os.environ.get("WM_INT8_CACHE", os.path.join(ROOT, "vae", "int8_cache"))
PLAY_BRAKE = 0.8                  # brake strength of the Down key in keyboard play

# --- V: ConvVAE --------------------------------------------------------------------------
Z_SIZE = 32                       # latent size
VAE_LEARNING_RATE = 1e-4          # Adam learning rate
VAE_BATCH_SIZE = 100              # frames per training step
VAE_NUM_EPOCH = 10                # passes over the recorded frames
VAE_KL_TOLERANCE = 0.5            # KL floor is kl_tolerance * z_size = 16 nats
VAE_NUM_EPISODES = 10000          # episodes of record/ used for training (the original used 10k)

# --- M: MDN-RNN --------------------------------------------------------------------------
RNN_SIZE = 256                    # LSTM units
ACTION_SIZE = 3                   # steer, gas, brake
NUM_MIXTURE = 5                   # gaussians per latent dimension
RNN_SEQ_LEN = 999                 # training sequence: inputs t=0..998, targets t=1..999
RNN_BATCH_SIZE = 100              # episodes per training step
RNN_NUM_STEPS = 4000              # training steps
RNN_LEARNING_RATE = 1e-3          # Adam learning rate
RNN_DECAY_RATE = 1.0              # learning-rate decay per step (1.0: constant)
RNN_MIN_LEARNING_RATE = 1e-5      # floor of the decayed learning rate
RNN_GRAD_CLIP = 1.0               # gradients clipped by value to [-clip, clip]
RNN_FORGET_BIAS = 1.0             # TF1 BasicLSTMCell adds this to the forget gate at run time
INITIAL_Z_EPISODES = 1000         # initial_z.json holds the first frame of this many episodes

# --- C: controller -----------------------------------------------------------------------
CONTROLLER_PARAMS = 3 + (Z_SIZE + RNN_SIZE) * 3  # input [z, h] = 288; bias (3) then W (288x3): 867

# --- random-rollout data (extract.py) -----------------------------------------------------
EXTRACT_EPISODES = 200            # episodes per worker
RANDOM_STDEV_SCALE = 0.01         # Cauchy weights scaled by rand() * this, new each episode

# --- CMA-ES (train.py) -------------------------------------------------------------------
ES_OPTIMIZER = "cma"              # cma | ses | pepg | ga | oes
ES_NUM_WORKER = 64                # workers of the original
ES_NUM_WORKER_TRIAL = 1           # candidates per worker per generation: population 64
ES_NUM_EPISODE = 16               # episodes averaged per candidate fitness
ES_EVAL_STEPS = 25                # evaluate the mean every this many generations
ES_NUM_EVAL_EPISODES = 64 * 16    # episodes of each evaluation of the mean: tracks 0..1023
ES_SIGMA_INIT = 0.1               # initial step size
ES_SIGMA_DECAY = 0.999            # for the optimisers that decay sigma (not CMA)
ES_ANTITHETIC = True              # pairs of candidates share an episode seed
ES_CAP_TIME = 0                   # cap on episode length during training (0: none)

# --- dream (dream_model.py) --------------------------------------------------------------
DREAM_TEMPERATURE = 0.7           # tau of the original dream
DREAM_MAX_FRAMES = 1200           # a dream episode ends after this many frames
DREAM_SCALE = 8                   # 64x64 decodings shown at 512x512

# --- files (the original's fixed folders) ------------------------------------------------
RECORD_DIR = os.path.join(ROOT, "record")
SERIES_DIR = os.path.join(ROOT, "series")
VAE_PATH = os.path.join(ROOT, "vae", "vae.json")
RNN_PATH = os.path.join(ROOT, "rnn", "rnn.json")
INITIAL_Z_PATH = os.path.join(ROOT, "initial_z", "initial_z.json")
TF_VAE_PATH = os.path.join(ROOT, "tf_vae", "vae.json")
TF_RNN_PATH = os.path.join(ROOT, "tf_rnn", "rnn.json")
TF_INITIAL_Z_PATH = os.path.join(ROOT, "tf_initial_z", "initial_z.json")
LOG_DIR = os.path.join(ROOT, "log")
