"""The arena's lobby: who can be played (house bots, remote bots, players online), the
live games listed, pushes to lobby watchers, and the checks a new opponent must pass."""

from __future__ import annotations

from typing import Any

from server.arena.core import ArenaCore
from server.arena.state import Game, Session
from server.arena.effects import Frame
from server.protocol import LOBBY_PUSH_SECONDS, ProtocolError
from server.solver import level_score


class Lobby(ArenaCore):
    """Lobby lists and pushes on top of :class:`~server.arena.core.ArenaCore`."""

    def _bots_frame(self) -> Frame:
        return {"type": "bots", "bots": self._bot_list() + (self.remote.bots() if self.remote is not None else [])}

    def _games_frame(self) -> Frame:
        games = [self._summary(g) for g in self.games.values()]
        if self.remote is not None:
            games += self.remote.games()
        return {"type": "games", "games": games}

    def _players_frame(self) -> Frame:
        return {"type": "players", "players": [{"name": s.name, "games": len(s.games)} for s in self.sessions.values()
                                               if s.role == "player" and s.connected]}

    def _lobby_changed(self, now: float) -> None:
        """A bot came or went, or a game started, moved or ended: push the lobby to its
        watchers soon (one push per LOBBY_PUSH_SECONDS however many changes)."""
        if self._lobby_watchers and not self._lobby_push_due and not self.shutting_down:
            self._lobby_push_due = True
            self._push_timer(now + LOBBY_PUSH_SECONDS, "lobby", "", 0)

    def _push_lobby(self) -> None:
        self._lobby_push_due = False
        watchers = [s for s in (self.sessions.get(n) for n in sorted(self._lobby_watchers)) if s is not None and s.connected]
        if not watchers:
            return
        frames = (self._bots_frame(), self._games_frame(), self._players_frame())
        for session in watchers:
            for frame in frames:
                self._send(session.conn_id, frame)

    def _bot_list(self) -> list[Frame]:
        bots = [{"name": name, "kind": "house", "description": bot.description,
                 "games": sum(1 for g in self.games.values() if name in (g.x, g.o)),
                 "max_games": 0, "unlimited": True, **_level(bot)} for name, bot in self.house.items()]
        for s in self.sessions.values():
            if s.role == "bot" and s.connected:
                bots.append({"name": s.name, "kind": "remote", "description": s.description,
                             "games": len(s.games), "max_games": s.max_games,
                             "pending": len(s.offers)})
        return bots

    def _summary(self, game: Game) -> Frame:
        turn = game.turn
        return {"game_id": game.game_id, "x": game.x, "o": game.o, "board": game.board.code,
                "turn": turn.value if turn else None, "ply": len(game.moves),
                "spectators": len(game.spectators), "clock": game.clock, "tag": game.tag,
                "started_at": game.started_at, "time_control": game.time_control_frame()}

    def _kind(self, name: str) -> str:
        if name in self.house:
            return "house"
        session = self.sessions.get(name)
        return "remote" if session is not None and session.role == "bot" else "player"

    def _lookup_party(self, name: str, rid: Any) -> Session | None:
        """None for a house bot, the session for an online player or bot; raises otherwise."""
        if name in self.house:
            return None
        session = self.sessions.get(name)
        if session is None or not session.connected or session.role == "spectator":
            elsewhere = self.remote.bot(name) if self.remote is not None else None
            if elsewhere is not None:  # listed here, played there: a game lives on the server where it starts
                raise ProtocolError("unknown_opponent", f"{name!r} plays on server {elsewhere['server']!r}; connect to "
                                                        f"{elsewhere.get('url')} to challenge it", rid)
            raise ProtocolError("unknown_opponent", f"no bot or player named {name!r} is online; list_bots shows the bots", rid)
        return session

    def _check_capacity(self, session: Session, rid: Any, extra: int = 1) -> None:
        if session.role == "bot" and len(session.games) + len(session.offers) + extra > session.max_games:
            raise ProtocolError("busy", f"{session.name} plays {len(session.games)} games and has {len(session.offers)} offers pending; "
                                        f"its limit is {session.max_games}", rid)


def _level(bot: object) -> Frame:
    """``{"level": {epsilon, vs_minimax, vs_random}}`` for a house bot that plays minimax with
    a random move at chance ε (the random bot is ε = 1, minimax with random tie-breaks ε = 0):
    its exact expected score against minimax and against random, so a person can pick an
    opponent of their strength. Empty for other bots."""
    from server.players.house import EpsilonMinimaxBot, MinimaxBot, RandomBot

    if isinstance(bot, EpsilonMinimaxBot):
        epsilon = bot.epsilon
    elif isinstance(bot, RandomBot):
        epsilon = 1.0
    elif isinstance(bot, MinimaxBot) and bot.tiebreak == "random":
        epsilon = 0.0
    else:
        return {}
    score = level_score(float(epsilon))
    return {"level": {"epsilon": score.epsilon, "vs_minimax": score.vs_minimax, "vs_random": score.vs_random}}
