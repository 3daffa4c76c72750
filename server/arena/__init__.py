"""The arena: the sans-I/O state machine of lobby, sessions, offers, games in play and
spectating (:class:`server.arena.arena.Arena` owns its parts and their shared state), and the effects it asks
the I/O layer to carry out (:mod:`server.arena.effects`)."""
