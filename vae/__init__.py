"""V, the ConvVAE: NumPy inference in vae.vae (no TensorFlow), Keras training twin in vae.keras_vae.

`vae/vae.json` here is the installed model that rollouts load (vae_train.py writes tf_vae/vae.json).
"""
from vae.vae import ConvVAE, count_params, param_layout  # noqa: F401
