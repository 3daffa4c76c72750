"""The Textual app: lobby, board, game log, live top SAE features. Imports only
:mod:`server.protocol` (and :mod:`server.game` for the rules) from the server: it is a
client and works against a remote server too."""
