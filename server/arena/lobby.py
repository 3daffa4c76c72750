"""The arena's lobby: who can be played (house bots, remote bots, players online), the
live games listed, pushes to lobby watchers, and the checks a new opponent must pass.

:class:`Lobby` reads the shared :class:`~server.arena.core.ArenaState` and needs no other part."""

from __future__ import annotations

from typing import Any

from server.arena.core import ArenaState, with_id
from server.arena.state import Game, Session
from server.arena.effects import Frame
from server.protocol import LOBBY_PUSH_SECONDS, ProtocolError
from server.solver import level_score


class Lobby:
    """The lobby lists, the pushes to their watchers and the checks on a new opponent."""

    def __init__(self, state: ArenaState) -> None:
        self.state = state

    def bots_frame(self) -> Frame:
        return {
            "type": "bots",
            "bots": self.bot_list() + (self.state.remote.bots() if self.state.remote is not None else []),
        }

    def games_frame(self) -> Frame:
        games = [self.summary(g) for g in self.state.games.values()]
        if self.state.remote is not None:
            games += self.state.remote.games()
        return {"type": "games", "games": games}

    def players_frame(self) -> Frame:
        return {
            "type": "players",
            "players": [
                {"name": s.name, "games": len(s.games)}
                for s in self.state.sessions.values()
                if s.role == "player" and s.connected
            ],
        }

    def watch(self, session: Session, on: bool, rid: Any) -> None:
        """``watch_lobby``: start or stop pushes to ``session``; either way, the lobby now."""
        if on:
            self.state.lobby_watchers.add(session.name)
        else:
            self.state.lobby_watchers.discard(session.name)
        for frame in (self.bots_frame(), self.games_frame(), self.players_frame()):
            self.state.send(session.conn_id, with_id(frame, rid))

    def changed(self, now: float) -> None:
        """A bot came or went, or a game started, moved or ended: push the lobby to its
        watchers soon (one push per LOBBY_PUSH_SECONDS however many changes)."""
        if self.state.lobby_watchers and not self.state.lobby_push_due and not self.state.shutting_down:
            self.state.lobby_push_due = True
            self.state.push_timer(now + LOBBY_PUSH_SECONDS, "lobby", "", 0)

    def push(self) -> None:
        self.state.lobby_push_due = False
        watchers = [
            s
            for s in (self.state.sessions.get(n) for n in sorted(self.state.lobby_watchers))
            if s is not None and s.connected
        ]
        if not watchers:
            return
        frames = (self.bots_frame(), self.games_frame(), self.players_frame())
        for session in watchers:
            for frame in frames:
                self.state.send(session.conn_id, frame)

    def bot_list(self) -> list[Frame]:
        bots = [
            {
                "name": name,
                "kind": "house",
                "description": bot.description,
                "games": sum(1 for g in self.state.games.values() if name in (g.x, g.o)),
                "max_games": 0,
                "unlimited": True,
                **_level(bot),
            }
            for name, bot in self.state.house.items()
        ]
        for s in self.state.sessions.values():
            if s.role == "bot" and s.connected:
                bots.append(
                    {
                        "name": s.name,
                        "kind": "remote",
                        "description": s.description,
                        "games": len(s.games),
                        "max_games": s.max_games,
                        "pending": len(s.offers),
                    }
                )
        return bots

    def summary(self, game: Game) -> Frame:
        turn = game.turn
        return {
            "game_id": game.game_id,
            "x": game.x,
            "o": game.o,
            "board": game.board.code,
            "turn": turn.value if turn else None,
            "ply": len(game.moves),
            "spectators": len(game.spectators),
            "clock": game.clock,
            "tag": game.tag,
            "started_at": game.started_at,
            "time_control": game.time_control_frame(),
        }

    def kind(self, name: str) -> str:
        if name in self.state.house:
            return "house"
        session = self.state.sessions.get(name)
        return "remote" if session is not None and session.role == "bot" else "player"

    def lookup_party(self, name: str, rid: Any) -> Session | None:
        """None for a house bot, the session for an online player or bot; raises otherwise."""
        if name in self.state.house:
            return None
        session = self.state.sessions.get(name)
        if session is None or not session.connected or session.role == "spectator":
            elsewhere = self.state.remote.bot(name) if self.state.remote is not None else None
            if elsewhere is not None:  # listed here, played there: a game lives on the server where it starts
                raise ProtocolError(
                    "unknown_opponent",
                    f"{name!r} plays on server {elsewhere['server']!r}; connect to "
                    f"{elsewhere.get('url')} to challenge it",
                    rid,
                )
            raise ProtocolError(
                "unknown_opponent", f"no bot or player named {name!r} is online; list_bots shows the bots", rid
            )
        return session

    def check_capacity(self, session: Session, rid: Any, extra: int = 1) -> None:
        if session.role == "bot" and len(session.games) + len(session.offers) + extra > session.max_games:
            raise ProtocolError(
                "busy",
                f"{session.name} plays {len(session.games)} games and has {len(session.offers)} offers pending; "
                f"its limit is {session.max_games}",
                rid,
            )


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
