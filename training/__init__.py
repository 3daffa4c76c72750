"""Training and evaluation: the SAE, feature labels, evaluation against the house bots
and steering policies learned with RL by playing on the server (:mod:`training.rl`).

May import :mod:`bots` and :mod:`server`; neither imports this package.
"""
