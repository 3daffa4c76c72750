"""Round-robin tournaments between bots, played through a server; ``autosteer-server tournament``.

Every pairing of the listed bots plays ``games`` games with sides alternated. Each game is
started with ``arrange`` (tagged with the tournament id) and played through the server like
any other game, so it is stored in the server's records. The organiser
(:mod:`bots.tournament.organizer`) connects as a player named ``tournament-<id>``, watches
its games and collects each ``game_over``. Then it writes ``tournament.json`` and
``tournament.md`` (:mod:`bots.tournament.report`: cross table, win/draw/loss per pairing,
Elo with 95 % intervals from :mod:`bots.tournament.ratings`) and prints the table.

Without ``--server`` the command (:mod:`bots.tournament.cli`) starts a server in this
process (house bots ``minimax`` and ``random``, records under ``--out``); ``--spawn
NAME=KIND`` connects extra bots to it through the ordinary bot client, e.g. a second
random bot::

    autosteer-server tournament --bots minimax,random,random2 --spawn random2=random --games 50

Every arranged game carries a seed derived from ``--seed``, the pairing and the game's
index in the pairing (:func:`server.seeding.game_seed`, :mod:`bots.tournament.schedule`);
a house bot in that game draws from its own ``Random(seed)``, so between house bots the
same ``--seed`` plays the same games at any ``--concurrency``. The seed is stored with the
game's record and listed in the report. Remote bots do not receive it and choose their
moves themselves.

Aborted games (server stopped) are reported but not rated; forfeits (timeout, disconnect,
illegal move) count as losses of the side that forfeited.
"""
