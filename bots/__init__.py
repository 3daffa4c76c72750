"""Players: the bot interface, house bots (minimax, random), the LLM bot, steering,
and the client that connects any bot to a server.

Importing this package never imports torch; only :mod:`bots.llm` does.
"""
