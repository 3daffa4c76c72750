"""Remote players: the steered LLM bot and the client that connects any
:class:`server.players.base.Bot` to a server, plus the tournament organiser.

Importing this package never imports torch; only :mod:`bots.llm` does.
"""
