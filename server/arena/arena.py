"""The arena's sans-I/O core: lobby, sessions, challenges, games, move clocks and grace periods.

:class:`Arena` is a pure state machine. The I/O layer (:mod:`server.app`) feeds it events
— a connection opened, a text frame received, a connection lost, the clock ticked — each
with the current unix time, and then drains the *effects* it produced: frames to send
(:class:`Send`), connections to close (:class:`Close`) and game records to store
(:class:`StoreGame`). Nothing here touches a socket, a file or the system clock, so every
rule (turns, clocks, grace, rate limits, offers) is tested directly with a fake time.

The arena is built in layers, each a module whose class extends the one below and calls
only downwards: :mod:`server.arena.core` (state, effects out, timers, rate limit and
live-game caps), :mod:`server.arena.lobby`, :mod:`server.arena.play` (games, moves, clocks), then
:mod:`server.arena.offers` with :mod:`server.arena.sessions`, and :mod:`server.arena.spectating`;
:class:`Arena` here composes them and adds the public events and the dispatch. The types
they share are below all of them: :mod:`server.config`, :mod:`server.arena.effects`,
:mod:`server.arena.state`. Every name other modules import from here is re-exported.

House bots (minimax, random) are plain :class:`server.players.base.Bot` objects played inline: they
answer in microseconds, so a house bot's reply is part of the same step as the move that
gave it the turn.

Rules this module implements (``docs/PROTOCOL.md`` is the user-facing description):

* a session (name, role, token) outlives its connection by ``grace`` seconds; ``hello``
  with the token within that time resumes it, after it the session's live games are lost
  with reason ``disconnect``;
* while a player is disconnected, the clock of every game where it is to move is paused,
  for at most ``grace`` seconds in total per player and game; on resume (or when that
  allowance is spent) the clock goes on with the time that was left, never a fresh one,
  so reconnecting cannot buy time;
* the side to move that lets its deadline pass loses on ``timeout``;
* an offer (challenge or arranged game) not answered within ``challenge_timeout`` is
  declined;
* a game may carry a ``seed``: each house bot in it then draws from its own
  ``random.Random(seed)`` for that game only, so the game repeats exactly;
* every connection has a token bucket; refused messages get ``rate_limited`` and a
  connection with ``flood_close`` refusals in a row is closed with code 1008.
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

from server import __version__
from server.arena.core import default_house_bots
from server.arena.state import Connection, Game, Offer, Session
from server.config import ServerConfig
from server.arena.effects import (CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_REPLACED, Close, Effect, Frame, GameEnded, GameEvent,
                            RelayGame, Send, StoreGame)
from server.protocol import (
    DEFAULT_PROTOCOL,
    PROTOCOL_VERSIONS,
    Accept,
    Arrange,
    Challenge,
    Decline,
    GetGame,
    Hello,
    ListBots,
    ListGames,
    ListPlayers,
    ListRecords,
    MoveMsg,
    Ping,
    ProtocolError,
    Resign,
    Spectate,
    Unspectate,
    WatchLobby,
    error_frame,
    parse_client_frame,
)
from server.arena.sessions import SERVER_NAME, Sessions, name_skeleton
from server.arena.spectating import Spectating, record_frame, record_summary

__all__ = [
    "Arena", "ServerConfig", "Frame", "Effect", "Send", "Close", "StoreGame", "GameEnded", "GameEvent", "RelayGame",
    "CLOSE_GOING_AWAY", "CLOSE_POLICY", "CLOSE_REPLACED", "SERVER_NAME", "Connection", "Session", "Offer", "Game",
    "name_skeleton", "record_summary", "record_frame", "default_house_bots",
]

log = logging.getLogger("autosteer.arena")


class Arena(Sessions, Spectating):
    """The whole lobby and every game, driven by events; see the module docstring.

    Its layers, each built on the ones below it: :class:`~server.arena.core.ArenaCore`
    (state, effects, timers, limits), :class:`~server.arena.lobby.Lobby`,
    :class:`~server.arena.play.GamesInPlay` (games and clocks), then :class:`~server.arena.offers.Offers`
    and :class:`~server.arena.sessions.Sessions` on one side and
    :class:`~server.arena.spectating.Spectating` on the other. This class adds the public events
    (:meth:`receive`, :meth:`tick`, :meth:`shutdown`), the dispatch of client messages and
    the status reports."""

    # ------------------------------------------------------------------ public events
    def receive(self, conn_id: int, raw: str | bytes, now: float) -> None:
        """A frame arrived on ``conn_id``. Never raises: failures become error frames."""
        conn = self.connections.get(conn_id)
        if conn is None or conn.closing:
            return
        if not self._take_token(conn, now, raw):
            return
        rid = None
        try:
            msg = parse_client_frame(raw)
            rid = msg.id
            self._dispatch(conn, msg, now)
        except ProtocolError as exc:
            self._send(conn_id, error_frame(exc.code, exc.message, exc.id if exc.id is not None else rid))
        except Exception:  # a bug must cost one request, not the server
            log.exception("internal error on a frame from connection %s", conn_id)
            self._send(conn_id, error_frame("internal_error", "the server failed on this request; it has been logged", rid))

    def tick(self, now: float) -> None:
        """Fire every timer due at ``now``: move clocks, grace periods, offer timeouts."""
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._timer_current(timer):
                continue  # its game moved on, its session came back, its offer was answered
            _, _, kind, key, _ = timer
            if kind == "clock":
                game = self.games[key]
                game.clock_timer_at = None
                if game.deadline is not None and game.deadline <= now:
                    loser = game.turn
                    assert loser is not None
                    self._finish(game, loser.other.value, "timeout", now)
                elif game.deadline is not None:  # moves since it was queued moved the deadline on
                    self._arm_clock_timer(game)
            elif kind == "pause":
                self._restart_clock(self.games[key], now, announce=True)  # pause allowance spent
            elif kind == "grace":
                self._expire_session(self.sessions[key], now)
            elif kind == "offer":
                offer = self.offers[key]
                if offer.expires_at <= now:
                    self._cancel_offer(offer, "no answer in time", None)
            elif kind == "lobby":
                self._push_lobby()

    def next_deadline(self) -> float | None:
        """Unix time of the next timer (the I/O layer sleeps until then), or None."""
        return self._timers[0][0] if self._timers else None

    def shutdown(self, now: float) -> None:
        """Stop: abort every live game (stored, announced), tell and close every connection."""
        self.shutting_down = True
        for offer in list(self.offers.values()):
            self._cancel_offer(offer, "the server is stopping", None)
        for game in list(self.games.values()):
            self._finish(game, "aborted", "aborted", now)
        for conn in list(self.connections.values()):
            self._send(conn.conn_id, error_frame("server_shutting_down", "the server is stopping; your finished games are stored"))
            self._close(conn.conn_id, CLOSE_GOING_AWAY, "server shutting down")

    # ------------------------------------------------------------------ status
    def lobby(self) -> Frame:
        """This server's own bots and live games (what it announces to a cluster)."""
        return {"bots": self._bot_list(), "games": [self._summary(g) for g in self.games.values()]}

    def status(self) -> Frame:
        """The body of ``GET /healthz``."""
        return {
            "status": "stopping" if self.shutting_down else "ok",
            "games_live": len(self.games),
            "games_finished": self.games_finished,
            "connections": len(self.connections),
            "bots": len(self._bot_list()),
            "version": __version__,
            "protocol": DEFAULT_PROTOCOL,  # what a hello without "protocol" speaks
            "protocols": list(PROTOCOL_VERSIONS),
        }

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, conn: Connection, msg: Any, now: float) -> None:
        session = conn.session
        if type(msg) is MoveMsg and session is not None and session.role != "spectator":
            self._on_move(session, msg, now)  # most requests: straight there
            return
        if isinstance(msg, Hello):
            self._on_hello(conn, msg, now)
            return
        if session is None:
            raise ProtocolError("hello_required", "send 'hello' first: {\"type\": \"hello\", \"name\": ..., \"role\": ...}", msg.id)
        if isinstance(msg, Ping):
            self._send(conn.conn_id, self._with_id({"type": "pong", "time": now}, msg.id))
        elif isinstance(msg, ListBots):
            self._send(conn.conn_id, self._with_id(self._bots_frame(), msg.id))
        elif isinstance(msg, ListGames):
            self._send(conn.conn_id, self._with_id(self._games_frame(), msg.id))
        elif isinstance(msg, ListPlayers):
            self._send(conn.conn_id, self._with_id(self._players_frame(), msg.id))
        elif isinstance(msg, WatchLobby):
            if msg.on:
                self._lobby_watchers.add(session.name)
            else:
                self._lobby_watchers.discard(session.name)
            self._send(conn.conn_id, self._with_id(self._bots_frame(), msg.id))
            self._send(conn.conn_id, self._with_id(self._games_frame(), msg.id))
            self._send(conn.conn_id, self._with_id(self._players_frame(), msg.id))
        elif isinstance(msg, Spectate):
            self._on_spectate(session, msg)
        elif isinstance(msg, Unspectate):
            self._on_unspectate(session, msg)
        elif isinstance(msg, GetGame):
            self._on_get_game(conn, msg)
        elif isinstance(msg, ListRecords):
            self._on_list_records(conn, msg)
        elif session.role == "spectator":
            raise ProtocolError("forbidden", f"spectators may not send {msg.type!r}; they may list, spectate, get_game, list_records and ping", msg.id)
        elif isinstance(msg, MoveMsg):
            self._on_move(session, msg, now)
        elif isinstance(msg, Resign):
            self._on_resign(session, msg, now)
        elif isinstance(msg, Challenge):
            self._on_challenge(session, msg, now)
        elif isinstance(msg, Arrange):
            self._on_arrange(session, msg, now)
        elif isinstance(msg, Accept):
            self._on_accept(session, msg, now)
        elif isinstance(msg, Decline):
            self._on_decline(session, msg, now)
        else:  # pragma: no cover - parse_client_frame knows only the types above
            raise ProtocolError("unknown_type", f"unhandled message type {msg.type!r}", msg.id)
