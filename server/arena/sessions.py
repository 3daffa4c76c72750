"""Sessions: connections opening and closing, ``hello`` (new or resumed with a token),
the grace period of a disconnected session and what expires with it.

:class:`Sessions` keeps connections and sessions in the shared :class:`~server.arena.core.ArenaState`;
a player leaving or coming back pauses or restarts clocks through
:class:`~server.arena.play.GamesInPlay`, resends its pending offers through
:class:`~server.arena.offers.Offers`, and tells the :class:`~server.arena.lobby.Lobby`."""

from __future__ import annotations

import secrets

from server import __version__
from server.arena.state import Connection, Session
from server.arena.effects import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_REPLACED, Frame, RelayGame
from server.arena.core import ArenaState, with_id
from server.arena.lobby import Lobby
from server.arena.offers import Offers
from server.arena.play import GamesInPlay
from server.protocol import PROTOCOL_VERSIONS, Hello, ProtocolError

SERVER_NAME = f"autosteer-arena/{__version__}"


class Sessions:
    """Connections and named sessions, from ``hello`` to the end of the grace period."""

    def __init__(self, state: ArenaState, lobby: Lobby, play: GamesInPlay, offers: Offers) -> None:
        self.state = state
        self.lobby = lobby
        self.play = play
        self.offering = offers  # the Offers part (its rules); the offers themselves are state.offers

    def connect(self, conn_id: int, address: str, now: float) -> bool:
        """A connection opened. Returns False (and queues an error and a close) when refused."""
        if self.state.shutting_down:
            self.state.refuse(conn_id, "server_shutting_down", "the server is stopping", CLOSE_GOING_AWAY)
            return False
        same = self.state.connections_from[address]
        if same >= self.state.config.max_connections_per_address:
            self.state.refuse(
                conn_id,
                "too_many_connections",
                f"{same} connections from {address} already; the limit is {self.state.config.max_connections_per_address}",
                CLOSE_POLICY,
            )
            return False
        if len(self.state.connections) >= self.state.config.max_connections:
            self.state.refuse(conn_id, "too_many_connections", "the server is full; try again later", CLOSE_POLICY)
            return False
        self.state.connections[conn_id] = Connection(
            conn_id, address, tokens=float(self.state.config.burst), refilled_at=now
        )
        self.state.connections_from[address] += 1
        return True

    def _drop_connection(self, conn_id: int) -> Connection | None:
        conn = self.state.connections.pop(conn_id, None)
        if conn is not None:
            self.state.connections_from[conn.address] -= 1
            if not self.state.connections_from[conn.address]:
                del self.state.connections_from[conn.address]
        return conn

    def disconnect(self, conn_id: int, now: float) -> None:
        """The connection is gone. Its session, if any, enters its grace period."""
        conn = self._drop_connection(conn_id)
        if conn is None or conn.session is None:
            return
        session = conn.session
        if session.conn_id != conn_id:
            return  # replaced by a newer connection already
        session.conn_id = None
        session.disconnected_at = now
        session.generation += 1
        if session.role in ("bot", "player"):
            self.lobby.changed(now)
        for gid in sorted(session.games):
            game = self.state.games[gid]
            if self.play.to_move(game) == session.name and game.deadline is not None:
                self.play.pause_clock(game, max(0.0, game.deadline - now), now)  # stale clock timers are ignored
            self.play.tell_away(game, session.name, now + self.state.config.grace, now)
        self.state.push_timer(now + self.state.config.grace, "grace", session.name, session.generation)

    def on_hello(self, conn: Connection, msg: Hello, now: float) -> None:
        if conn.session is not None:
            raise ProtocolError("already_hello", f"this connection is already {conn.session.name!r}", msg.id)
        if self.state.shutting_down:
            raise ProtocolError("server_shutting_down", "the server is stopping", msg.id)
        if msg.protocol not in PROTOCOL_VERSIONS:
            served = " and ".join(str(v) for v in PROTOCOL_VERSIONS)
            raise ProtocolError(
                "invalid_message", f"protocol {msg.protocol} is not supported; this server speaks {served}", msg.id
            )
        if msg.token is not None:
            session = self.state.tokens.get(msg.token)
            if session is None:
                raise ProtocolError(
                    "bad_token",
                    "unknown or expired session token; send hello without a token to start a new session",
                    msg.id,
                )
            if session.name != msg.name:
                raise ProtocolError("bad_token", f"this token belongs to another name, not {msg.name!r}", msg.id)
            if session.role != msg.role:
                raise ProtocolError(
                    "forbidden",
                    f"session {session.name!r} was started with role {session.role!r}; resume it "
                    f"with role {session.role!r}, or send hello without the token for a new session",
                    msg.id,
                )
            self._resume(conn, session, msg, now)
            return
        if msg.name in self.state.house or msg.name in self.state.sessions:
            raise ProtocolError(
                "name_taken", f"the name {msg.name!r} is in use; pick another (or resume with your token)", msg.id
            )
        lookalike = next((h for h in self.state.house if name_skeleton(h) == name_skeleton(msg.name)), None)
        if lookalike is not None:
            raise ProtocolError(
                "name_taken", f"the name {msg.name!r} looks like the house bot {lookalike!r}; pick another", msg.id
            )
        session = Session(
            msg.name,
            msg.role,
            secrets.token_urlsafe(18),
            max_games=msg.max_games,
            description=" ".join((msg.description or "").split()),
            protocol=msg.protocol,
        )
        self.state.sessions[session.name] = session
        self.state.tokens[session.token] = session
        self._attach(conn, session)
        self.state.send(conn.conn_id, with_id(self._welcome(session, []), msg.id))
        if session.role in ("bot", "player"):
            self.lobby.changed(now)

    def _attach(self, conn: Connection, session: Session) -> None:
        conn.session = session
        session.conn_id = conn.conn_id
        session.disconnected_at = None

    def _welcome(self, session: Session, resumed: list[str]) -> Frame:
        return {
            "type": "welcome",
            "name": session.name,
            "role": session.role,
            "token": session.token,
            "protocol": session.protocol,
            "server": SERVER_NAME,
            "resumed": resumed,
            "grace": float(self.state.config.grace),
            "move_clock": float(self.state.config.move_clock),
            "limits": {
                "rate": float(self.state.config.rate),
                "burst": int(self.state.config.burst),
                "max_frame_bytes": int(self.state.config.max_frame_bytes),
                "max_live_games_per_session": int(self.state.config.max_live_games_per_session),
                "max_live_games_per_address": int(self.state.config.max_live_games_per_address),
            },
        }

    def _resume(self, conn: Connection, session: Session, msg: Hello, now: float) -> None:
        if session.conn_id is not None:  # the old connection is still open: the new one wins
            old = session.conn_id
            self.state.send(old, {"type": "info", "message": "this session was resumed on another connection"})
            self.state.close(old, CLOSE_REPLACED, "session resumed elsewhere")
            self._drop_connection(old)
        self._attach(conn, session)
        session.protocol = msg.protocol  # the version the new connection speaks
        if session.role in ("bot", "player"):
            self.lobby.changed(now)
        session.generation += 1
        if session.role == "bot":
            session.max_games = msg.max_games
            if msg.description is not None:
                session.description = " ".join(msg.description.split())
        resumed = sorted(session.games)
        self.state.send(conn.conn_id, with_id(self._welcome(session, resumed), msg.id))
        for gid in resumed:
            game = self.state.games[gid]
            if self.play.to_move(game) == session.name and game.paused:
                self.play.restart_clock(game, now)  # the time that was left, not a fresh clock
            seats = game.seats_of(session.name)
            self.state.send(conn.conn_id, self.play.game_start(game, seats[0].value if seats else None))
            self.state.send(conn.conn_id, self.play.state_frame(game))
            self.play.tell_away(game, session.name, None, now)
        for gid in sorted(session.watching):
            watched = self.state.games.get(gid)
            if watched is not None:
                self.state.send(conn.conn_id, self.play.game_start(watched, None))
                self.state.send(conn.conn_id, self.play.state_frame(watched))
        for oid in sorted(session.offers):
            offer = self.state.offers.get(oid)
            if offer is not None and session.name in offer.awaiting:
                self.state.send(conn.conn_id, self.offering.offer_frame(offer, session.name, now))

    def expire_session(self, session: Session, now: float) -> None:
        for gid in sorted(session.games):
            game = self.state.games.get(gid)
            if game is None:
                continue
            seats = game.seats_of(session.name)
            winner = seats[0].other.value if len(seats) == 1 else "aborted"
            self.play.finish(game, winner, "disconnect" if winner != "aborted" else "aborted", now)
        for gid in list(session.watching):
            game = self.state.games.get(gid)
            if game is not None:
                game.spectators.discard(session.name)
        for gid in self.state.remote.forget(session.name) if self.state.remote is not None else []:
            self.state.effects.append(RelayGame(gid, watch=False))
        for offer in list(self.state.offers.values()):
            if offer.origin == session.name or session.name in (offer.x, offer.o):
                self.offering.cancel_offer(offer, f"{session.name} left", session.name)
        self.state.sessions.pop(session.name, None)
        self.state.tokens.pop(session.token, None)
        self.state.lobby_watchers.discard(session.name)


_CONFUSABLE = str.maketrans(
    {
        "0": "o",
        "1": "l",
        "i": "l",
        "|": "l",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "_": None,
        "-": None,
        ".": None,
    }
)


def name_skeleton(name: str) -> str:
    """What a name looks like, case and look-alike characters folded: remote clients may not
    pass for a house bot (``Minimax``, ``m1nimax``, ``random_``).

    >>> name_skeleton("M1n-iMax") == name_skeleton("minimax"), name_skeleton("ann") == name_skeleton("anna")
    (True, False)
    """
    return name.lower().translate(_CONFUSABLE)
