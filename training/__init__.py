"""Training and evaluation: the SAE and its feature labels (:mod:`training.features`),
evaluation against the house bots (:mod:`training.evaluation`), a fixed steering vector
found by search (``vector_search``) and steering policies learned with RL by playing on the
server (:mod:`training.rl`); ``controls`` fits both on other features or directions
(``bases``) for comparison.

May import :mod:`bots` and :mod:`server`; neither imports this package.
"""
