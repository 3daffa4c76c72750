"""The arena: the sans-I/O state machine of lobby, sessions, offers, games in play and
spectating (:class:`server.arena.arena.Arena` composes its layers), and the effects it asks
the I/O layer to carry out (:mod:`server.arena.effects`)."""
