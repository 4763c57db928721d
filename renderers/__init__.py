"""CarRacing renderers beside Gymnasium's own (env.make_env(renderer=...) picks one):

    exact.py   ExactCarRacing: stock CarRacing-v3's pixels bit for bit, ~4x faster (the default)
    turbo.py   TurboCarRacing: close to stock's pixels, ~10x faster (opt-in: --renderer turbo)
    obs64.py   Obs64CarRacing: only the agent's 64x64 observation, close to what the crop and
               resize of stock's state give, ~2-3x faster than turbo (opt-in: --renderer obs64)

Physics, rewards, termination and track generation are always stock Gymnasium's.
"""
