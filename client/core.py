"""A sans-I/O client of the arena protocol (docs/PROTOCOL.md): frames in, events and frames out.

:class:`ClientCore` holds one client's side of a session and touches no socket. The caller
feeds it every frame the server sends (:meth:`ClientCore.receive`: a dict, or JSON text or
bytes) and gets typed events back (the dataclasses below); every frame to send is returned
by a method: :meth:`~ClientCore.hello`, :meth:`~ClientCore.request` and the helpers named
after the requests (:meth:`~ClientCore.challenge`, :meth:`~ClientCore.arrange`,
:meth:`~ClientCore.move`, ...). The core keeps

- the session: the ``hello`` (name, role, protocol version 2 unless told otherwise), the
  ``welcome`` and its token; after a reconnect the next ``hello`` carries the token, so the
  server resumes the session, and the games the server did not resume are given up
  (:class:`Welcomed` lists them; :class:`SessionExpired` when the token is no longer good);
- requests and their replies: a tracked request gets a fresh ``id`` and waits in
  :attr:`ClientCore.pending` until the first frame that carries the id, its direct reply
  (:class:`Reply`) or its refusal (:class:`RequestFailed`), each carrying the request;
- the offers made to this client (``challenge`` frames) and those it accepted;
- the games it plays or watches (:class:`GameView`): names, seat, board, whose turn,
  clock or time control, deadline, moves and the end; :class:`YourTurn` says when a game
  waits for this client's move.

A session with the house bot, in frames only:

>>> core = ClientCore("ann")
>>> core.hello()
{'type': 'hello', 'name': 'ann', 'role': 'player', 'protocol': 2}
>>> welcome = {"type": "welcome", "name": "ann", "role": "player", "token": "t1", "protocol": 2,
...            "server": "arena", "resumed": []}
>>> [type(e).__name__ for e in core.receive(welcome)]
['Welcomed']
>>> core.challenge("minimax", side="X")
{'type': 'challenge', 'opponent': 'minimax', 'side': 'X', 'id': 'r1'}
>>> reply, = core.receive('{"type": "challenge_sent", "challenge_id": "g1", "opponent": "minimax", "id": "r1"}')
>>> reply.request["type"], reply.frame["challenge_id"]
('challenge', 'g1')
>>> events = core.receive({"type": "game_start", "game_id": "g1", "x": "ann", "o": "minimax", "you": "X",
...                        "clock": 30.0, "board": ".........", "turn": "X", "deadline": 1030.0})
>>> [type(e).__name__ for e in events], core.games["g1"].to_move
(['GameStarted', 'YourTurn'], True)
>>> core.move("g1", 5)
{'type': 'move', 'game_id': 'g1', 'cell': 5, 'id': 'r2'}
>>> core.games["g1"].to_move  # the move is on its way
False
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from server.game import Board, InvalidBoardError, Seat
from server.protocol import PROTOCOL_VERSION, ProtocolError, loads_strict, parse_server_frame

Frame = dict[str, Any]

#: Refusals of a ``hello`` that may go away by themselves: connect again later.
RETRYABLE_HELLO_ERRORS = frozenset({"too_many_connections", "server_shutting_down", "rate_limited", "internal_error"})


# --------------------------------------------------------------------------- games and offers
@dataclass
class GameView:
    """What this client knows of one game it plays (``you`` is its seat) or watches
    (``you`` is None), from the ``game_start``, ``state`` and ``game_over`` frames."""

    game_id: str
    x: str
    o: str
    you: Seat | None
    board: Board
    clock: float | None = None  # seconds per move, or a time control's base
    deadline: float | None = None  # unix time the side to move loses on time; None while paused or over
    time_control: dict[str, float] | None = None  # {base, increment} when the game has one
    clocks: dict[str, float] | None = None  # time-control games: seconds left per seat
    tag: str | None = None
    rematch_of: str | None = None
    opening: tuple[int, ...] = ()  # the game's first moves, given: on ``board`` from the start
    moves: list[Frame] = field(default_factory=list)
    last_move: Frame | None = None
    result: str | None = None  # X / O / draw / aborted once over
    reason: str | None = None
    winner: str | None = None
    asked_at_ply: int = -1  # the ply this client is deciding or has sent a move for

    @property
    def playing(self) -> bool:
        return self.you is not None

    @property
    def opponent(self) -> str | None:
        """The other player's name (None when watching)."""
        if self.you is None:
            return None
        return self.o if self.you is Seat.X else self.x

    @property
    def over(self) -> bool:
        return self.result is not None or self.board.is_over

    @property
    def turn(self) -> Seat | None:
        """The seat to move (None once over)."""
        return None if self.over else self.board.turn

    @property
    def my_turn(self) -> bool:
        return self.you is not None and self.turn is self.you

    @property
    def to_move(self) -> bool:
        """This client's turn, and no move for this ply decided or sent yet."""
        return self.my_turn and self.asked_at_ply != self.board.ply

    @property
    def outcome(self) -> str | None:
        """``win``, ``draw``, ``loss`` or ``aborted`` for the player; None while live or watching."""
        if self.you is None or self.result is None:
            return None
        if self.result in ("aborted", "draw"):
            return self.result
        return "win" if self.result == self.you.value else "loss"


@dataclass(frozen=True)
class Offer:
    """A ``challenge`` offered to this client; answer with :meth:`ClientCore.accept` or
    :meth:`ClientCore.decline`. ``side`` is the seat this client would play."""

    challenge_id: str
    challenger: str
    side: Seat
    clock: float
    arranged: bool = False
    tag: str | None = None
    time_control: dict[str, float] | None = None
    rematch_of: str | None = None
    expires_in: float | None = None
    opening: tuple[int, ...] = ()  # the game's first moves, given (docs/PROTOCOL.md, "Games from an opening")


# --------------------------------------------------------------------------- events
@dataclass(frozen=True, kw_only=True)
class Event:
    """Something the server said; ``frame`` is the frame as received."""

    frame: Frame


@dataclass(frozen=True, kw_only=True)
class Welcomed(Event):
    """The server took the ``hello``. ``lost``: games given up because the session is new
    or the server did not resume them (they ended while this client was away)."""

    resumed: tuple[str, ...]
    new_session: bool
    lost: tuple[GameView, ...]


@dataclass(frozen=True, kw_only=True)
class SessionExpired(Event):
    """The token was no longer good (``bad_token``): send :meth:`ClientCore.hello` again for
    a new session (its :class:`Welcomed` gives up the games)."""


@dataclass(frozen=True, kw_only=True)
class HelloRefused(Event):
    """The server refused the ``hello``; ``retryable`` when connecting later may work."""

    code: str
    message: str
    retryable: bool


@dataclass(frozen=True, kw_only=True)
class Reply(Event):
    """The direct reply to ``request`` (the first frame carrying its id). The frame is
    handled as any other too: a ``state`` reply also gives :class:`GameUpdated`."""

    request: Frame


@dataclass(frozen=True, kw_only=True)
class RequestFailed(Event):
    """An ``error`` carrying ``request``'s id: the server refused it (or dropped it: ``rate_limited``)."""

    request: Frame
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class ServerError(Event):
    """An ``error`` tied to no pending request."""

    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class OfferReceived(Event):
    offer: Offer


@dataclass(frozen=True, kw_only=True)
class ChallengeDeclined(Event):
    """A challenge ended without a game: ``offered`` when it was an offer to this client
    (withdrawn, expired), else one this client sent or arranged (declined, expired)."""

    challenge_id: str
    reason: str
    offered: bool


@dataclass(frozen=True, kw_only=True)
class GameStarted(Event):
    """A ``game_start``: a new game, or (``resumed``) one already known, sent again after a resume."""

    game: GameView
    resumed: bool


@dataclass(frozen=True, kw_only=True)
class GameUpdated(Event):
    """A ``state`` of a known game."""

    game: GameView


@dataclass(frozen=True, kw_only=True)
class YourTurn(Event):
    """``game`` waits for this client's move (it follows :class:`GameStarted` or :class:`GameUpdated`)."""

    game: GameView


@dataclass(frozen=True, kw_only=True)
class GameEnded(Event):
    """A ``game_over`` (or the ``game_record`` of a game that ended unseen). ``game`` is None
    for a game this client did not know; ``outcome`` is the player's (None when watching)."""

    game: GameView | None
    outcome: str | None


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    """An ``info``: ``kind`` is its ``event`` (``player_left``, ``player_back``) or None."""

    message: str
    game_id: str | None
    kind: str | None


@dataclass(frozen=True, kw_only=True)
class ServerFrame(Event):
    """Any other frame that answers no pending request (lobby pushes, a ``state`` of an unknown game, ...)."""


@dataclass(frozen=True, kw_only=True)
class BadFrame(Event):
    """A frame this client cannot use (not JSON, not a server frame, a board that is not one)."""

    raw: Any
    reason: str


# --------------------------------------------------------------------------- the core
class ClientCore:
    """One client's protocol state. ``max_games`` and ``description`` go into a bot's
    ``hello``; ``id_prefix`` starts the request ids (None: integer ids).

    ``check_frames`` (default): every server frame is checked against the protocol's schema
    before it changes anything. A client of a server it trusts (the RL trainer and its own
    in-process server) may turn that off to save the check's cost per frame; a frame that
    lacks what a handler reads still comes back as :class:`BadFrame`, but wrong types or
    values are no longer caught."""

    def __init__(
        self,
        name: str,
        *,
        role: str = "player",
        protocol: int = PROTOCOL_VERSION,
        max_games: int | None = None,
        description: str | None = None,
        token: str | None = None,
        id_prefix: str | None = "r",
        check_frames: bool = True,
    ) -> None:
        self.name, self.role, self.protocol = name, role, protocol
        self.check_frames = check_frames
        self.max_games, self.description = max_games, description
        self.token = token
        self.id_prefix = id_prefix
        self.welcome: Frame | None = None  # the present connection's welcome
        self.greeting = False  # a hello is on its way, not answered yet
        self.games: dict[str, GameView] = {}
        self.pending: dict[Any, Frame] = {}  # request id -> the request, until its reply
        self.offers: dict[str, Offer] = {}  # offered to this client, not answered yet
        self.accepted: set[str] = set()  # offers accepted whose game has not started yet
        self._ids = itertools.count(1)
        self._handlers: dict[str, Callable[[Frame, Frame | None], list[Event]]] = {
            "welcome": self._on_welcome,
            "error": self._on_error,
            "challenge": self._on_offer,
            "challenge_declined": self._on_declined,
            "game_start": self._on_game_start,
            "state": self._on_state,
            "game_over": self._on_game_over,
            "game_record": self._on_game_record,
            "info": self._on_info,
        }

    # ------------------------------------------------------------------ session
    @property
    def welcomed(self) -> bool:
        """The server has welcomed this client on the present connection."""
        return self.welcome is not None

    def hello(self) -> Frame:
        """The ``hello`` for a new connection (with the token after a first welcome: a resume)."""
        frame: Frame = {"type": "hello", "name": self.name, "role": self.role, "protocol": self.protocol}
        if self.max_games is not None:
            frame["max_games"] = self.max_games
        about = " ".join(str(self.description or "").split())[:200]
        if about:
            frame["description"] = about
        if self.token:
            frame["token"] = self.token
        self.greeting = True
        return frame

    def connection_lost(self) -> list[Frame]:
        """The connection ended: return the requests that will get no reply (they are forgotten)."""
        self.welcome, self.greeting = None, False
        lost = list(self.pending.values())
        self.pending.clear()
        return lost

    # ------------------------------------------------------------------ requests
    def request(self, type: str, *, track: bool = True, **fields: Any) -> Frame:
        """A ``type`` request with ``fields`` (None values left out); ``track`` gives it an id
        and keeps it in :attr:`pending` until its reply."""
        frame: Frame = {"type": type, **{k: v for k, v in fields.items() if v is not None}}
        if track:
            rid: Any = next(self._ids)
            if self.id_prefix is not None:
                rid = f"{self.id_prefix}{rid}"
            frame["id"] = rid
            self.pending[rid] = frame
        return frame

    def retry(self, request: Frame) -> Frame:
        """``request`` again, with its id, waiting for its reply anew (after ``rate_limited``)."""
        self.pending[request["id"]] = request
        if request.get("type") == "move":
            self.mark_asked(request["game_id"])
        return request

    def mark_asked(self, game_id: str) -> None:
        """A move for the game's present ply is being decided: it is not :attr:`GameView.to_move` meanwhile."""
        game = self.games.get(game_id)
        if game is not None:
            game.asked_at_ply = game.board.ply

    def list_bots(self) -> Frame:
        return self.request("list_bots")

    def list_games(self) -> Frame:
        return self.request("list_games")

    def list_players(self) -> Frame:
        return self.request("list_players")

    def ping(self) -> Frame:
        return self.request("ping")

    def challenge(
        self,
        opponent: str,
        *,
        side: str | None = None,
        clock: float | None = None,
        time_control: dict[str, float] | None = None,
        seed: int | None = None,
        rematch_of: str | None = None,
        opening: Sequence[int] | None = None,
        track: bool = True,
    ) -> Frame:
        """A ``challenge``. ``opening``: the game's first moves (cells from the empty board, X
        first), on the board when it starts; ``side`` is still this client's seat."""
        return self.request(
            "challenge",
            track=track,
            opponent=opponent,
            side=side,
            clock=clock,
            time_control=time_control,
            seed=seed,
            rematch_of=rematch_of,
            opening=list(opening) if opening else None,
        )

    def arrange(
        self,
        x: str,
        o: str,
        *,
        clock: float | None = None,
        tag: str | None = None,
        seed: int | None = None,
        opening: Sequence[int] | None = None,
        track: bool = True,
    ) -> Frame:
        """An ``arrange`` of ``x`` vs ``o``; ``opening`` as for :meth:`challenge`."""
        return self.request(
            "arrange",
            track=track,
            x=x,
            o=o,
            clock=clock,
            tag=tag,
            seed=seed,
            opening=list(opening) if opening else None,
        )

    def accept(self, challenge_id: str, *, track: bool = True) -> Frame:
        self.offers.pop(challenge_id, None)
        self.accepted.add(challenge_id)
        return self.request("accept", track=track, challenge_id=challenge_id)

    def decline(self, challenge_id: str, reason: str | None = None, *, track: bool = True) -> Frame:
        self.offers.pop(challenge_id, None)
        return self.request("decline", track=track, challenge_id=challenge_id, reason=reason)

    def move(
        self, game_id: str, cell: int, *, trace: Frame | None = None, on_illegal: str | None = None, track: bool = True
    ) -> Frame:
        self.mark_asked(game_id)
        return self.request("move", track=track, game_id=game_id, cell=cell, trace=trace, on_illegal=on_illegal)

    def resign(self, game_id: str, *, track: bool = True) -> Frame:
        return self.request("resign", track=track, game_id=game_id)

    def get_game(self, game_id: str, *, track: bool = True) -> Frame:
        return self.request("get_game", track=track, game_id=game_id)

    def spectate(self, game_id: str) -> Frame:
        return self.request("spectate", game_id=game_id)

    def forget(self, game_id: str) -> GameView | None:
        """Stop tracking a game (the server no longer knows it)."""
        return self.games.pop(game_id, None)

    # ------------------------------------------------------------------ frames in
    def receive(self, raw: Frame | str | bytes) -> list[Event]:
        """The events one server frame gives, in order. Never raises on a bad frame: it
        comes back as :class:`BadFrame` and changes nothing."""
        frame, problem = _decode(raw)
        if frame is None:
            return [BadFrame(frame={}, raw=raw, reason=problem)]
        if self.check_frames:
            try:
                parse_server_frame(frame)
            except ProtocolError as exc:
                return [BadFrame(frame=frame, raw=raw, reason=exc.message)]
        request = self._reply_to(frame)
        handler = self._handlers.get(frame["type"])
        if handler is None:  # a frame only its request or the caller makes sense of
            return [Reply(frame=frame, request=request) if request is not None else ServerFrame(frame=frame)]
        try:
            events = handler(frame, request)
        except (InvalidBoardError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return [BadFrame(frame=frame, raw=raw, reason=f"{type(exc).__name__}: {exc}")]
        if request is not None and frame["type"] != "error":
            events = [Reply(frame=frame, request=request), *(e for e in events if not isinstance(e, ServerFrame))]
        return events

    def _reply_to(self, frame: Frame) -> Frame | None:
        rid = frame.get("id")
        if isinstance(rid, (str, int)) and not isinstance(rid, bool):
            return self.pending.pop(rid, None)
        return None

    def _on_welcome(self, frame: Frame, request: Frame | None) -> list[Event]:
        resumed = tuple(frame.get("resumed") or ())
        new_session = frame["token"] != self.token
        lost = tuple(self.games.pop(gid) for gid in list(self.games) if new_session or gid not in resumed)
        self.token, self.name, self.welcome, self.greeting = frame["token"], frame["name"], frame, False
        self.protocol = frame.get("protocol", self.protocol)
        for game in self.games.values():
            game.asked_at_ply = -1  # the server sends each resumed game's state again
        self.offers.clear()  # the server sends pending offers again
        self.accepted.clear()
        return [Welcomed(frame=frame, resumed=resumed, new_session=new_session, lost=lost)]

    def _on_error(self, frame: Frame, request: Frame | None) -> list[Event]:
        code, message = str(frame.get("code")), str(frame.get("message", ""))
        if request is not None:
            if request.get("type") == "move" and request.get("game_id") in self.games:
                self.games[request["game_id"]].asked_at_ply = -1  # the move was not made
            return [RequestFailed(frame=frame, request=request, code=code, message=message)]
        if not self.greeting:
            return [ServerError(frame=frame, code=code, message=message)]
        self.greeting = False
        if code == "bad_token" and self.token:
            self.token = None
            return [SessionExpired(frame=frame)]
        return [HelloRefused(frame=frame, code=code, message=message, retryable=code in RETRYABLE_HELLO_ERRORS)]

    def _on_offer(self, frame: Frame, request: Frame | None) -> list[Event]:
        offer = Offer(
            frame["challenge_id"],
            frame["challenger"],
            Seat(frame["side"]),
            float(frame["clock"]),
            bool(frame.get("arranged")),
            frame.get("tag"),
            frame.get("time_control"),
            frame.get("rematch_of"),
            frame.get("expires_in"),
            tuple(frame.get("opening") or ()),
        )
        self.offers[offer.challenge_id] = offer
        return [OfferReceived(frame=frame, offer=offer)]

    def _on_declined(self, frame: Frame, request: Frame | None) -> list[Event]:
        cid = frame["challenge_id"]
        offered = cid in self.offers or cid in self.accepted
        self.offers.pop(cid, None)
        self.accepted.discard(cid)
        return [ChallengeDeclined(frame=frame, challenge_id=cid, reason=str(frame.get("reason", "")), offered=offered)]

    def _on_game_start(self, frame: Frame, request: Frame | None) -> list[Event]:
        gid = frame["game_id"]
        board = Board(frame["board"])
        self.accepted.discard(gid)
        self.offers.pop(gid, None)
        game = self.games.get(gid)
        resumed = game is not None
        if game is None:
            you = Seat(frame["you"]) if frame.get("you") else None
            game = GameView(
                gid,
                frame["x"],
                frame["o"],
                you,
                board,
                clock=frame.get("clock"),
                time_control=frame.get("time_control"),
                tag=frame.get("tag"),
                rematch_of=frame.get("rematch_of"),
                opening=tuple(frame.get("opening") or ()),
            )
            self.games[gid] = game
        game.board = board
        _take_clocks(game, frame)
        return [GameStarted(frame=frame, game=game, resumed=resumed), *self._turn(game, frame)]

    def _on_state(self, frame: Frame, request: Frame | None) -> list[Event]:
        game = self.games.get(frame["game_id"])
        if game is None:
            return [ServerFrame(frame=frame)]
        board = Board(frame["board"])
        if board.ply >= game.board.ply:  # never back to an older state
            game.board = board
            game.moves = list(frame.get("moves") or [])
            game.last_move = frame.get("last_move")
            _take_clocks(game, frame)
        return [GameUpdated(frame=frame, game=game), *self._turn(game, frame)]

    def _on_game_over(self, frame: Frame, request: Frame | None) -> list[Event]:
        board = Board(frame["board"])
        game = self.games.pop(frame["game_id"], None)
        if game is None:
            return [GameEnded(frame=frame, game=None, outcome=None)]
        game.board, game.moves = board, list(frame.get("moves") or [])
        game.result, game.reason, game.winner = str(frame["result"]), str(frame.get("reason")), frame.get("winner")
        game.deadline = None
        if frame.get("clocks") is not None:
            game.clocks = frame["clocks"]
        return [GameEnded(frame=frame, game=game, outcome=game.outcome)]

    def _on_game_record(self, frame: Frame, request: Frame | None) -> list[Event]:
        if frame["game_id"] in self.games and frame.get("result"):  # a tracked game ended unseen
            return self._on_game_over(frame, request)
        return [ServerFrame(frame=frame)]

    def _on_info(self, frame: Frame, request: Frame | None) -> list[Event]:
        return [
            Notice(
                frame=frame,
                message=str(frame.get("message", "")),
                game_id=frame.get("game_id"),
                kind=frame.get("event"),
            )
        ]

    @staticmethod
    def _turn(game: GameView, frame: Frame) -> list[Event]:
        return [YourTurn(frame=frame, game=game)] if game.to_move else []


def _take_clocks(game: GameView, frame: Frame) -> None:
    game.deadline = frame.get("deadline")
    if frame.get("clocks") is not None:
        game.clocks = frame["clocks"]


def _decode(raw: Frame | str | bytes) -> tuple[Frame | None, str]:
    """``raw`` as a frame object, or None and why not."""
    if isinstance(raw, dict):
        frame: Any = raw
    else:
        try:
            frame = loads_strict(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return None, f"not JSON: {exc}"
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return None, "not a JSON object with a string 'type'"
    return frame, ""
