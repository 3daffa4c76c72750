"""The arena's sans-I/O core: lobby, sessions, challenges, games, move clocks and grace periods.

:class:`Arena` is a pure state machine. The I/O layer (:mod:`server.app`) feeds it events
— a connection opened, a text frame received, a connection lost, the clock ticked — each
with the current unix time, and then drains the *effects* it produced: frames to send
(:class:`Send`), connections to close (:class:`Close`) and game records to store
(:class:`StoreGame`). Nothing here touches a socket, a file or the system clock, so every
rule (turns, clocks, grace, rate limits, offers) is tested directly with a fake time.

The arena is composed of parts, each a plain class in its own module that reads alone:
:mod:`server.arena.lobby` (lists, pushes, checks on opponents), :mod:`server.arena.play`
(games, moves, clocks), :mod:`server.arena.offers` (challenges, arranged games),
:mod:`server.arena.sessions` (connections, hello, grace) and :mod:`server.arena.spectating`
(spectators, relays, records). They share one :class:`~server.arena.core.ArenaState`
(every connection, session, offer and game, the effects queued, the timers, the limits),
which :class:`Arena` builds and hands to each; a part that needs another is given it when
it is built. :class:`Arena` here owns them all and adds the public events and the dispatch.
The types they share are below all of them: :mod:`server.config`, :mod:`server.arena.effects`,
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
* a game may start from an ``opening`` (its first moves, given): they are on the board and
  in the record (each marked ``"opening": true``) from the start, and the side to move
  after them moves first;
* every connection has a token bucket; refused messages get ``rate_limited`` and a
  connection with ``flood_close`` refusals in a row is closed with code 1008.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from typing import Any

from server import __version__
from server.arena.core import ArenaState, default_house_bots, with_id
from server.arena.lobby import Lobby
from server.arena.offers import Offers
from server.arena.play import GamesInPlay
from server.arena.relay import RemoteLobby
from server.arena.state import Connection, Game, Offer, RecordFinder, RecordLister, RecordLoader, Session
from server.players.base import Bot
from server.config import ServerConfig
from server.arena.effects import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_REPLACED,
    Close,
    Effect,
    Frame,
    GameEnded,
    GameEvent,
    RelayGame,
    Send,
    StoreGame,
)
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
    "Arena",
    "ServerConfig",
    "Frame",
    "Effect",
    "Send",
    "Close",
    "StoreGame",
    "GameEnded",
    "GameEvent",
    "RelayGame",
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_REPLACED",
    "SERVER_NAME",
    "Connection",
    "Session",
    "Offer",
    "Game",
    "name_skeleton",
    "record_summary",
    "record_frame",
    "default_house_bots",
]

log = logging.getLogger("autosteer.arena")


class Arena:
    """The whole lobby and every game, driven by events; see the module docstring.

    It owns the shared :attr:`state` and the parts that work on it, and adds the public
    events (:meth:`connect`, :meth:`receive`, :meth:`disconnect`, :meth:`tick`,
    :meth:`shutdown`, :meth:`relay`), the dispatch of client messages and the status
    reports. The state's collections are readable here too (:attr:`games`, :attr:`sessions`, ...)."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        house_bots: dict[str, Bot] | None = None,
        load_record: RecordLoader | None = None,
        list_records: RecordLister | None = None,
        find_records: RecordFinder | None = None,
        remote: RemoteLobby | None = None,
        publish_events: bool = True,
    ) -> None:
        """The arguments are those of :class:`~server.arena.core.ArenaState`."""
        self.state = ArenaState(
            config,
            house_bots=house_bots,
            load_record=load_record,
            list_records=list_records,
            find_records=find_records,
            remote=remote,
            publish_events=publish_events,
        )
        self._lobby = Lobby(self.state)
        self._play = GamesInPlay(self.state, self._lobby)
        self._offers = Offers(self.state, self._lobby, self._play)
        self._sessions = Sessions(self.state, self._lobby, self._play, self._offers)
        self._spectating = Spectating(self.state, self._play)

    # ------------------------------------------------------------------ the shared state, read here
    @property
    def house(self) -> dict[str, Bot]:
        return self.state.house

    @property
    def connections(self) -> dict[int, Connection]:
        return self.state.connections

    @property
    def sessions(self) -> dict[str, Session]:
        return self.state.sessions

    @property
    def offers(self) -> dict[str, Offer]:
        return self.state.offers

    @property
    def games(self) -> dict[str, Game]:
        """The live games, by id."""
        return self.state.games

    @property
    def finished(self) -> OrderedDict[str, Game]:
        """The finished games kept in memory, oldest first."""
        return self.state.finished

    @property
    def publish_events(self) -> bool:
        return self.state.publish_events

    @publish_events.setter
    def publish_events(self, on: bool) -> None:
        self.state.publish_events = on

    def drain(self) -> list[Effect]:
        """Effects produced since the last call, in order."""
        return self.state.drain()

    # ------------------------------------------------------------------ public events
    def connect(self, conn_id: int, address: str, now: float) -> bool:
        """A connection opened. Returns False (and queues an error and a close) when refused."""
        return self._sessions.connect(conn_id, address, now)

    def disconnect(self, conn_id: int, now: float) -> None:
        """The connection is gone. Its session, if any, enters its grace period."""
        self._sessions.disconnect(conn_id, now)

    def relay(self, game_id: str, frame: Frame | None) -> None:
        """A frame of a game on another server (from the broker) for its spectators here;
        ``None`` (its server went away) or a ``game_over`` frame ends the relay."""
        self._spectating.relay(game_id, frame)

    def receive(self, conn_id: int, raw: str | bytes, now: float) -> None:
        """A frame arrived on ``conn_id``. Never raises: failures become error frames."""
        conn = self.state.connections.get(conn_id)
        if conn is None or conn.closing:
            return
        if not self.state.take_token(conn, now, raw):
            return
        rid = None
        try:
            msg = parse_client_frame(raw)
            rid = msg.id
            self._dispatch(conn, msg, now)
        except ProtocolError as exc:
            self.state.send(conn_id, error_frame(exc.code, exc.message, exc.id if exc.id is not None else rid))
        except Exception:  # a bug must cost one request, not the server
            log.exception("internal error on a frame from connection %s", conn_id)
            self.state.send(
                conn_id, error_frame("internal_error", "the server failed on this request; it has been logged", rid)
            )

    def tick(self, now: float) -> None:
        """Fire every timer due at ``now``: move clocks, grace periods, offer timeouts."""
        while self.state.timers and self.state.timers[0][0] <= now:
            timer = heapq.heappop(self.state.timers)
            if not self.state.timer_current(timer):
                continue  # its game moved on, its session came back, its offer was answered
            _, _, kind, key, _ = timer
            if kind == "clock":
                game = self.state.games[key]
                game.clock_timer_at = None
                if game.deadline is not None and game.deadline <= now:
                    loser = game.turn
                    assert loser is not None
                    self._play.finish(game, loser.other.value, "timeout", now)
                elif game.deadline is not None:  # moves since it was queued moved the deadline on
                    self.state.arm_clock_timer(game)
            elif kind == "pause":
                self._play.restart_clock(self.state.games[key], now, announce=True)  # pause allowance spent
            elif kind == "grace":
                self._sessions.expire_session(self.state.sessions[key], now)
            elif kind == "offer":
                offer = self.state.offers[key]
                if offer.expires_at <= now:
                    self._offers.cancel_offer(offer, "no answer in time", None)
            elif kind == "lobby":
                self._lobby.push()

    def next_deadline(self) -> float | None:
        """Unix time of the next timer (the I/O layer sleeps until then), or None."""
        return self.state.timers[0][0] if self.state.timers else None

    def shutdown(self, now: float) -> None:
        """Stop: abort every live game (stored, announced), tell and close every connection."""
        self.state.shutting_down = True
        for offer in list(self.state.offers.values()):
            self._offers.cancel_offer(offer, "the server is stopping", None)
        for game in list(self.state.games.values()):
            self._play.finish(game, "aborted", "aborted", now)
        for conn in list(self.state.connections.values()):
            self.state.send(
                conn.conn_id,
                error_frame("server_shutting_down", "the server is stopping; your finished games are stored"),
            )
            self.state.close(conn.conn_id, CLOSE_GOING_AWAY, "server shutting down")

    # ------------------------------------------------------------------ status
    def lobby(self) -> Frame:
        """This server's own bots and live games (what it announces to a cluster)."""
        return {"bots": self._lobby.bot_list(), "games": [self._lobby.summary(g) for g in self.state.games.values()]}

    def status(self) -> Frame:
        """The body of ``GET /healthz``."""
        return {
            "status": "stopping" if self.state.shutting_down else "ok",
            "games_live": len(self.state.games),
            "games_finished": self.state.games_finished,
            "connections": len(self.state.connections),
            "bots": len(self._lobby.bot_list()),
            "version": __version__,
            "protocol": DEFAULT_PROTOCOL,  # what a hello without "protocol" speaks
            "protocols": list(PROTOCOL_VERSIONS),
        }

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, conn: Connection, msg: Any, now: float) -> None:
        session = conn.session
        if type(msg) is MoveMsg and session is not None and session.role != "spectator":
            self._play.on_move(session, msg, now)  # most requests: straight there
            return
        if isinstance(msg, Hello):
            self._sessions.on_hello(conn, msg, now)
            return
        if session is None:
            raise ProtocolError(
                "hello_required", 'send \'hello\' first: {"type": "hello", "name": ..., "role": ...}', msg.id
            )
        if isinstance(msg, Ping):
            self.state.send(conn.conn_id, with_id({"type": "pong", "time": now}, msg.id))
        elif isinstance(msg, ListBots):
            self.state.send(conn.conn_id, with_id(self._lobby.bots_frame(), msg.id))
        elif isinstance(msg, ListGames):
            self.state.send(conn.conn_id, with_id(self._lobby.games_frame(), msg.id))
        elif isinstance(msg, ListPlayers):
            self.state.send(conn.conn_id, with_id(self._lobby.players_frame(), msg.id))
        elif isinstance(msg, WatchLobby):
            self._lobby.watch(session, msg.on, msg.id)
        elif isinstance(msg, Spectate):
            self._spectating.on_spectate(session, msg)
        elif isinstance(msg, Unspectate):
            self._spectating.on_unspectate(session, msg)
        elif isinstance(msg, GetGame):
            self._spectating.on_get_game(conn, msg)
        elif isinstance(msg, ListRecords):
            self._spectating.on_list_records(conn, msg)
        elif session.role == "spectator":
            raise ProtocolError(
                "forbidden",
                f"spectators may not send {msg.type!r}; they may list, spectate, get_game, list_records and ping",
                msg.id,
            )
        elif isinstance(msg, MoveMsg):
            self._play.on_move(session, msg, now)
        elif isinstance(msg, Resign):
            self._play.on_resign(session, msg, now)
        elif isinstance(msg, Challenge):
            self._offers.on_challenge(session, msg, now)
        elif isinstance(msg, Arrange):
            self._offers.on_arrange(session, msg, now)
        elif isinstance(msg, Accept):
            self._offers.on_accept(session, msg, now)
        elif isinstance(msg, Decline):
            self._offers.on_decline(session, msg, now)
        else:  # pragma: no cover - parse_client_frame knows only the types above
            raise ProtocolError("unknown_type", f"unhandled message type {msg.type!r}", msg.id)
