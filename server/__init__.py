"""The referee: rules, solved game, protocol, matches, lobby, house bots, records, events.

The server is the authority on the rules; clients import :mod:`server.game` and
:mod:`server.protocol`, never the other way round. Nothing here imports torch.
"""

__version__ = "0.1.0"
