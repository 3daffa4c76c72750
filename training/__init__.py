"""Training and evaluation: the SAE, feature labels, evaluation against the house bots
(and, in a later issue, steering policies learned with RL by playing on the server).

May import :mod:`bots` and :mod:`server`; neither imports this package.
"""
