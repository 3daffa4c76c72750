"""The arena's shared state: every connection, session, offer and game, the effects
queued for the I/O layer, the timers, and the limits every request passes (rate limit,
live-game caps).

:class:`ArenaState` is the one object the arena's parts share: :class:`server.arena.arena.Arena`
builds it and hands it to each part (:mod:`server.arena.lobby`, :mod:`server.arena.play`,
:mod:`server.arena.offers`, :mod:`server.arena.sessions`, :mod:`server.arena.spectating`).
It holds data and the plumbing that only touches data (sending, closing, timers, caps);
the rules live in the parts.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, OrderedDict
from typing import Any

from server.players.base import Bot
from server.arena.state import Connection, Game, Offer, RecordFinder, RecordLister, RecordLoader, Session
from server.config import ServerConfig
from server.arena.effects import CLOSE_POLICY, Close, Effect, Frame, Send
from server.protocol import ProtocolError, error_frame, request_id_of
from server.arena.relay import RemoteLobby


class ArenaState:
    """What the parts of the arena share; see the module docstring."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        house_bots: dict[str, Bot] | None = None,
        load_record: RecordLoader | None = None,
        list_records: RecordLister | None = None,
        find_records: RecordFinder | None = None,
        remote: "RemoteLobby | None" = None,
        publish_events: bool = True,
    ) -> None:
        """``load_record``, ``list_records`` and ``find_records`` read the game store; without them
        ``get_game`` and ``list_records`` answer from the finished games kept in memory. ``remote``
        holds what other servers of a cluster announce: their bots and live games are listed
        here too, and spectating one of their games is relayed (:meth:`server.arena.arena.Arena.relay`).
        ``publish_events=False``: no :class:`~server.arena.effects.GameEvent` effects (the server has
        no event transport to hand them to)."""
        self.config = config or ServerConfig()
        self.rng = random.Random(self.config.seed)
        self.id_rng = random.Random()  # game ids (Offers.new_id): seeded from the OS, never from config.seed
        if house_bots is None:
            house_bots = default_house_bots(self.config) if self.config.house_bots else {}
        self.house: dict[str, Bot] = dict(house_bots)
        self.load_record = load_record
        self.list_records = list_records
        self.find_records = find_records
        self.remote = remote
        self.publish_events = publish_events
        self.connections: dict[int, Connection] = {}
        self.connections_from: Counter[str] = Counter()  # open connections per client address
        self.sessions: dict[str, Session] = {}  # by name
        self.tokens: dict[str, Session] = {}
        self.offers: dict[str, Offer] = {}
        self.games: dict[str, Game] = {}  # live
        self.finished: OrderedDict[str, Game] = OrderedDict()
        self.games_finished = 0
        self.shutting_down = False
        self.effects: list[Effect] = []
        # offers and games opened by challenge/arrange, pending or live: id → (session name, address)
        self.opened: dict[str, tuple[str, str]] = {}
        self.opened_per_address: dict[str, int] = {}
        self.timers: list[tuple[float, int, str, str, int]] = []  # (when, seq, kind, key, generation)
        self._seq = itertools.count()
        self.lobby_watchers: set[str] = set()  # sessions that asked for lobby pushes (watch_lobby)
        self.lobby_push_due = False  # a lobby push timer is queued

    def drain(self) -> list[Effect]:
        """Effects produced since the last call, in order."""
        out, self.effects = self.effects, []
        return out

    # ------------------------------------------------------------------ plumbing
    def send(self, conn_id: int | None, frame: Frame) -> None:
        if conn_id is not None:
            self.effects.append(Send(conn_id, frame))

    def send_to(self, name: str, frame: Frame) -> None:
        session = self.sessions.get(name)
        if session is not None and session.conn_id is not None:
            self.send(session.conn_id, frame)

    def close(self, conn_id: int, code: int, reason: str) -> None:
        conn = self.connections.get(conn_id)
        if conn is not None:
            conn.closing = True
        self.effects.append(Close(conn_id, code, reason))

    def refuse(self, conn_id: int, code: str, message: str, close_code: int) -> None:
        self.send(conn_id, error_frame(code, message))
        self.effects.append(Close(conn_id, close_code, code))

    def push_timer(self, when: float, kind: str, key: str, generation: int) -> None:
        heapq.heappush(self.timers, (when, next(self._seq), kind, key, generation))
        # Timers whose game, session or offer moved on stay queued until they are due (a clock
        # timer is queued about once per move clock per game): drop them now and then.
        if len(self.timers) > 1024 + 8 * (len(self.games) + len(self.sessions) + len(self.offers)):
            self.timers = [t for t in self.timers if self.timer_current(t)]
            heapq.heapify(self.timers)

    def arm_clock_timer(self, game: Game) -> None:
        """Have a clock timer fire no later than ``game.deadline``. One is queued per game:
        a move that moves the deadline later leaves it queued, and when it fires before the
        deadline it queues itself again for the deadline then (:meth:`server.arena.arena.Arena.tick`), so a game
        queues about one timer per move clock instead of one per move."""
        assert game.deadline is not None
        if game.clock_timer_at is None or game.clock_timer_at > game.deadline:
            game.clock_timer_at = game.deadline
            self.push_timer(game.deadline, "clock", game.game_id, 0)

    def timer_current(self, timer: tuple[float, int, str, str, int]) -> bool:
        """False for a timer that :meth:`server.arena.arena.Arena.tick` would ignore (its game, pause, session or offer moved on)."""
        _, _, kind, key, generation = timer
        if kind == "clock":
            game = self.games.get(key)
            return game is not None and game.clock_timer_at == timer[0]
        if kind == "pause":
            game = self.games.get(key)
            return game is not None and game.paused and game.pauses == generation
        if kind == "grace":
            session = self.sessions.get(key)
            return session is not None and not session.connected and session.generation == generation
        if kind == "lobby":
            return self.lobby_push_due
        return key in self.offers

    # ------------------------------------------------------------------ limits
    def take_token(self, conn: Connection, now: float, raw: str | bytes) -> bool:
        cfg = self.config
        conn.tokens = min(float(cfg.burst), conn.tokens + max(0.0, now - conn.refilled_at) * cfg.rate)
        conn.refilled_at = now
        if conn.tokens >= 1.0:
            conn.tokens -= 1.0
            conn.refusals_in_a_row = 0
            return True
        conn.refusals_in_a_row += 1
        rid = request_id_of(raw)  # a pipelining client must learn which request was dropped
        if conn.refusals_in_a_row >= cfg.flood_close:
            self.send(
                conn.conn_id,
                error_frame(
                    "rate_limited", f"{conn.refusals_in_a_row} messages over the rate limit in a row; closing", rid
                ),
            )
            self.close(conn.conn_id, CLOSE_POLICY, "message flood")
        else:
            self.send(
                conn.conn_id,
                error_frame(
                    "rate_limited",
                    f"more than {cfg.rate:g} messages/s (burst {cfg.burst}); this message was dropped",
                    rid,
                ),
            )
        return False

    def check_opened(self, session: Session, rid: Any) -> str:
        """Refuse a new challenge/arrange over the live-game caps; return the sender's address."""
        conn = self.connections.get(session.conn_id) if session.conn_id is not None else None
        address = conn.address if conn is not None else "unknown"
        cfg = self.config
        if len(session.opened) >= cfg.max_live_games_per_session:
            raise ProtocolError(
                "too_many_games",
                f"you have {len(session.opened)} live games and challenges open; the limit is "
                f"{cfg.max_live_games_per_session} (welcome.limits): finish some first",
                rid,
            )
        if self.opened_per_address.get(address, 0) >= cfg.max_live_games_per_address:
            raise ProtocolError(
                "too_many_games",
                f"your address has {self.opened_per_address[address]} live games and challenges "
                f"open; the limit is {cfg.max_live_games_per_address} (welcome.limits)",
                rid,
            )
        return address

    def hold_opened(self, offer_id: str, session: Session, address: str) -> None:
        self.opened[offer_id] = (session.name, address)
        session.opened.add(offer_id)
        self.opened_per_address[address] = self.opened_per_address.get(address, 0) + 1

    def release_opened(self, offer_id: str) -> None:
        """An offer or game stopped counting against its opener (declined, expired, over)."""
        held = self.opened.pop(offer_id, None)
        if held is None:
            return
        name, address = held
        session = self.sessions.get(name)
        if session is not None:
            session.opened.discard(offer_id)
        left = self.opened_per_address.get(address, 0) - 1
        if left > 0:
            self.opened_per_address[address] = left
        else:
            self.opened_per_address.pop(address, None)


def with_id(frame: Frame, rid: Any) -> Frame:
    """``frame`` as the reply to request ``rid`` (a copy carrying ``"id"``), or as it is."""
    if rid is not None:
        frame = dict(frame)
        frame["id"] = rid
    return frame


def default_house_bots(config: ServerConfig) -> dict[str, Bot]:
    """The in-process bots, seeded from the config: ``minimax`` (optimal), ``random``, and the
    graded levels of :data:`server.players.house.HOUSE_LEVELS` (minimax with a random move at chance ε)."""
    from server.players.house import HOUSE_LEVELS, EpsilonMinimaxBot, MinimaxBot, RandomBot
    from server.solver import level_score, solve

    solve()  # build the table now, not during the first game
    seed = config.seed
    bots: dict[str, Bot] = {
        "minimax": MinimaxBot("minimax", seed=seed, tiebreak=config.minimax_tiebreak),
        "random": RandomBot("random", seed=None if seed is None else seed + 1),
    }
    for i, (name, epsilon) in enumerate(HOUSE_LEVELS.items()):
        bots[name] = EpsilonMinimaxBot(name, seed=None if seed is None else seed + 2 + i, epsilon=epsilon)
        level_score(epsilon)  # the lobby shows each level's exact score: computed now, once per process
    return bots
