"""What the other servers of a cluster announce, and who here follows their games (sans-I/O).

Each server publishes a retained status (``autosteer/v1/servers/{id}/status``: its bots and
live games, or ``offline`` through its last will). :class:`RemoteLobby` keeps the latest
status of every *other* server; the arena lists their bots and games beside its own and,
when a client spectates one of their games, records the watcher here so the I/O layer can
subscribe to that game's topics and feed its frames back (:meth:`server.arena.arena.Arena.relay`).
Nothing here touches the network.

>>> lobby = RemoteLobby("a")
>>> lobby.update({"server_id": "b", "status": "online", "url": "ws://b:8765",
...               "bots": [{"name": "llm", "kind": "remote"}],
...               "games": [{"game_id": "g1", "x": "llm", "o": "minimax"}]})
[]
>>> [b["name"] + "@" + b["server"] for b in lobby.bots()], lobby.game("g1")["server"]
(['llm@b'], 'b')
>>> lobby.watch("g1", "ann"), lobby.watch("g1", "bob")  # True: the first watcher starts the relay
(True, False)
>>> lobby.update({"server_id": "b", "status": "offline"})  # its games can no longer be followed
['g1']
"""

from __future__ import annotations

from typing import Any

Frame = dict[str, Any]


class RemoteLobby:
    """The other servers' announced bots and live games; spectators of their games here."""

    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self.servers: dict[str, Frame] = {}  # server id → its latest online status
        self._game_server: dict[str, str] = {}  # remote game id → server id
        self._watchers: dict[str, set[str]] = {}  # remote game id → session names here

    def update(self, status: Frame) -> list[str]:
        """Take one server's status. Returns the ids of games watched here that can no
        longer be followed (their server went offline); the caller ends those relays."""
        sid = str(status.get("server_id") or "")
        if not sid or sid == self.server_id:
            return []
        lost: list[str] = []
        if status.get("status") == "online":
            self.servers[sid] = status
        else:
            self.servers.pop(sid, None)
        for gid, owner in list(self._game_server.items()):
            if owner == sid:
                del self._game_server[gid]
        for game in self.servers.get(sid, {}).get("games", []):
            if isinstance(game, dict) and isinstance(game.get("game_id"), str):
                self._game_server[game["game_id"]] = sid
        if sid not in self.servers:
            lost = sorted(gid for gid in self._watchers if gid not in self._game_server)
        return lost

    def bots(self) -> list[Frame]:
        """The other servers' bots, each marked with its ``server`` and that server's ``url``."""
        out = []
        for sid, status in sorted(self.servers.items()):
            for bot in status.get("bots", []):
                if isinstance(bot, dict):
                    out.append({**bot, "server": sid, "url": status.get("url")})
        return out

    def bot(self, name: str) -> Frame | None:
        """The first other server's bot called ``name`` (with its ``server`` and ``url``), or None."""
        return next((b for b in self.bots() if b.get("name") == name), None)

    def games(self) -> list[Frame]:
        # every id in _game_server is one of its server's games: none is None
        return [game for gid in sorted(self._game_server) if (game := self.game(gid)) is not None]

    def game(self, game_id: str) -> Frame | None:
        sid = self._game_server.get(game_id)
        if sid is None:
            return None
        for game in self.servers[sid].get("games", []):
            if isinstance(game, dict) and game.get("game_id") == game_id:
                return {**game, "server": sid}
        return None

    def watchers(self, game_id: str) -> set[str]:
        return set(self._watchers.get(game_id, ()))

    def watch(self, game_id: str, name: str) -> bool:
        """Add a watcher; True when it is the first (start relaying)."""
        names = self._watchers.setdefault(game_id, set())
        first = not names
        names.add(name)
        return first

    def unwatch(self, game_id: str, name: str) -> bool:
        """Remove a watcher; True when none is left (stop relaying)."""
        names = self._watchers.get(game_id)
        if not names or name not in names:
            return False
        names.discard(name)
        if not names:
            del self._watchers[game_id]
            return True
        return False

    def forget(self, name: str) -> list[str]:
        """``name`` left: stop it watching anything; returns the games nobody here watches any more."""
        return sorted(gid for gid in list(self._watchers) if name in self._watchers[gid] and self.unwatch(gid, name))

    def unwatch_all(self, game_id: str) -> bool:
        """Forget every watcher of a game; True when there were some (stop relaying)."""
        return self._watchers.pop(game_id, None) is not None
