"""CarRacing renderers beside Gymnasium's own (env.make_env(renderer=...) picks one):

    exact.py   ExactCarRacing: stock CarRacing-v3's pixels bit for bit, ~4x faster (the default)
    turbo.py   TurboCarRacing: close to stock's pixels, ~10x faster (opt-in: --renderer turbo)

Physics, rewards, termination and track generation are always stock Gymnasium's.
"""
