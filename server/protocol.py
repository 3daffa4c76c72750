"""Protocol v1: the JSON messages between clients and the server, validated by pydantic.

Sans-I/O: this module parses and builds frames; it never touches a socket. Every frame
is one JSON object with a ``"type"`` field. A client may put an ``"id"`` (string or
integer) on any request; the server echoes it on the direct reply and on any error the
request caused. See ``docs/PROTOCOL.md`` for the full description and an example session.

>>> msg = parse_client_frame('{"type": "move", "game_id": "g1", "cell": 5, "id": 7}')
>>> msg.cell, msg.id
(5, 7)
>>> parse_client_frame('[1, 2]')  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
server.protocol.ProtocolError: [not_object] a frame must be a JSON object, got list
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError

from server.game import OpeningError, opening_board

#: The protocol versions served. Version 2 is version 1 with one change: a house bot's
#: answer comes in the ``state`` that answers the move (one ``state`` with both moves);
#: version 1 gets a ``state`` per move. A client picks one with ``hello.protocol``.
PROTOCOL_VERSIONS = (1, 2)
PROTOCOL_VERSION = PROTOCOL_VERSIONS[-1]  # the newest, which this repository's clients speak
DEFAULT_PROTOCOL = 1  # a hello without ``protocol``

# A request id is a string (≤ 64 characters) or an integer; absent means none. An explicit
# ``"id": null`` is refused (invalid_message): None is only the default, never validated.
RequestId = Union[Annotated[str, Field(max_length=64)], int]
ReplyId = Union[Annotated[str, Field(max_length=64)], int, None]  # on server frames
Name = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")]
GameId = Annotated[str, Field(min_length=1, max_length=64)]
SeatChoice = Literal["X", "O", "random"]
Role = Literal["player", "bot", "spectator"]
# A per-game seed for the house bots (docs/PROTOCOL.md, "Reproducible games").
GameSeed = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
TagText = Annotated[str, Field(max_length=64)]
# A game's first moves, given (docs/PROTOCOL.md, "Games from an opening"): cells in order from
# the empty board, X first; parse_client_object checks they are legal (opening_board).
Opening = list[StrictInt]
# A move clock a client asks for: shorter ones are lost on the first network hiccup.
MIN_CLOCK = 1.0
MAX_CLOCK = 3600.0
Clock = Annotated[float, Field(ge=MIN_CLOCK, le=MAX_CLOCK)]
MAX_INCREMENT = 60.0  # seconds a time control adds per move at most
MAX_RECORDS = 200  # the most games one list_records reply holds

# --------------------------------------------------------------------------- errors
# Every refusal is {"type": "error", "code": CODE, "message": "...", "id": <request id>}.
ERROR_CODES: dict[str, str] = {
    "bad_json": "the frame is not valid JSON (or not UTF-8 text)",
    "not_object": "the frame is JSON but not an object",
    "missing_type": "the object has no string 'type' field",
    "unknown_type": "no client message has this 'type'",
    "invalid_message": "a field is missing, has the wrong type or an out-of-range value",
    "hello_required": "the first message on a connection must be 'hello'",
    "already_hello": "'hello' was already sent on this connection",
    "name_taken": "another connected client uses this name",
    "bad_token": "the session token is unknown or expired",
    "unknown_game": "no game has this id",
    "ambiguous_game": "several games have ids starting with the prefix given to get_game",
    "unknown_opponent": "no bot or player with this name is online",
    "unknown_challenge": "no pending challenge has this id",
    "challenge_pending": "you have a challenge to this player waiting for an answer already",
    "not_a_player": "you are not a player in this game (spectators cannot move)",
    "not_your_turn": "it is the other seat's turn",
    "game_over": "the game is already over",
    "out_of_range": "the cell is not an integer 1-9",
    "occupied": "the cell is already taken",
    "busy": "the opponent accepts no more games right now",
    "declined": "the challenge was declined",
    "forbidden": "this role may not send this message",
    "rate_limited": "too many messages; slow down (the connection closes if it goes on)",
    "too_many_games": "you (or your address) have the most live games and open challenges allowed (welcome.limits)",
    "too_many_connections": "too many connections from this address",
    "server_shutting_down": "the server is stopping",
    "internal_error": "the server failed on this request; it has been logged",
}


class ProtocolError(Exception):
    """A refusal the server sends back as an ``error`` frame."""

    def __init__(self, code: str, message: str, id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.message, self.id)


def error_frame(code: str, message: str, id: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if id is not None:
        out["id"] = id
    return out


# --------------------------------------------------------------------------- client → server
class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    id: RequestId = None  # type: ignore[assignment]  # absent: no id; null is refused (pydantic leaves defaults unvalidated)


class Hello(_Msg):
    """First frame on a connection. ``token`` resumes an earlier session (reconnect)."""

    type: Literal["hello"]
    name: Name
    role: Role = "player"
    token: Annotated[str, Field(max_length=128)] | None = None
    max_games: Annotated[int, Field(ge=1, le=1024)] = 1  # bots: games played at once
    protocol: int = DEFAULT_PROTOCOL  # one of PROTOCOL_VERSIONS
    #: bots: one line about how it plays, shown by list_bots (e.g. the LLM bot's reading mode and policy)
    description: Annotated[str, Field(max_length=200)] | None = None


class ListBots(_Msg):
    type: Literal["list_bots"]


class ListGames(_Msg):
    type: Literal["list_games"]


class ListPlayers(_Msg):
    """The people connected (role ``player``), whom a player may challenge."""

    type: Literal["list_players"]


class TimeControl(BaseModel):
    """A game clock as on lichess: ``base`` seconds for each side's whole game, plus
    ``increment`` seconds added after each of its moves (``3+2`` is base 180, increment 2)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    base: Clock
    increment: Annotated[float, Field(ge=0.0, le=MAX_INCREMENT)] = 0.0

    def frame(self) -> dict[str, float]:
        return {"base": float(self.base), "increment": float(self.increment)}


class Challenge(_Msg):
    """Challenge a bot or a player. ``side`` is the challenger's seat.

    The game's clock is either ``clock`` (seconds per move, fresh every move) or
    ``time_control`` (base + increment per game); not both. ``rematch_of`` names the
    finished game between the same two players this one follows. ``opening``: the game's
    first moves, already on the board when it starts (``side`` is still the challenger's seat)."""

    type: Literal["challenge"]
    opponent: Name
    side: SeatChoice = "random"
    clock: Clock | None = None  # seconds per move
    seed: GameSeed | None = None  # house bots in this game draw from their own Random(seed)
    time_control: TimeControl | None = None
    rematch_of: GameId | None = None
    opening: Opening | None = None


class Arrange(_Msg):
    """Ask the server to start a game between two bots (tournaments). The sender
    watches the game as a spectator. ``tag`` is stored with the record."""

    type: Literal["arrange"]
    x: Name
    o: Name
    clock: Clock | None = None
    tag: TagText | None = None
    seed: GameSeed | None = None  # house bots in this game draw from their own Random(seed)
    opening: Opening | None = None  # the game's first moves, as for challenge


class Accept(_Msg):
    type: Literal["accept"]
    challenge_id: GameId


class Decline(_Msg):
    type: Literal["decline"]
    challenge_id: GameId
    reason: Annotated[str, Field(max_length=200)] | None = None


class MoveMsg(_Msg):
    """Play ``cell`` (1-9). ``trace`` is any JSON object (≤ 16 KiB), relayed as is.

    ``cell`` must be a JSON integer: ``"5"``, ``5.0``, ``true`` and ``null`` are
    ``invalid_message``. Its range is checked by the rules, so ``0`` or ``10`` is
    ``out_of_range`` (a legal shape, an illegal move)."""

    type: Literal["move"]
    game_id: GameId
    cell: StrictInt
    trace: dict[str, Any] | None = None
    # "error" (default): an illegal cell is refused with an error and the game goes on.
    # "forfeit": an illegal cell loses the game (reason "illegal_move") and is recorded;
    # strict LLM evaluation uses it so an illegal move counts as what it is.
    on_illegal: Literal["error", "forfeit"] = "error"


class Resign(_Msg):
    type: Literal["resign"]
    game_id: GameId


class Spectate(_Msg):
    type: Literal["spectate"]
    game_id: GameId


class Unspectate(_Msg):
    type: Literal["unspectate"]
    game_id: GameId


class GetGame(_Msg):
    """The current state of a live game, or the record of a finished one (replay)."""

    type: Literal["get_game"]
    game_id: GameId


class ListRecords(_Msg):
    """Finished games from the server's records, newest first (for replay).

    ``before`` (unix time) pages back: only games that ended before it."""

    type: Literal["list_records"]
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_RECORDS)] = 50
    player: Name | None = None
    tag: TagText | None = None
    before: float | None = None


class Ping(_Msg):
    type: Literal["ping"]


class WatchLobby(_Msg):
    """Subscribe (``on``, the default) to lobby pushes: ``bots``, ``games`` and ``players``
    are sent again whenever a bot or player comes or goes or a game starts, moves or ends
    (gathered over :data:`LOBBY_PUSH_SECONDS`); ``on: false`` ends it. The reply is the three."""

    type: Literal["watch_lobby"]
    on: bool = True


LOBBY_PUSH_SECONDS = 0.25  # lobby pushes are gathered over this long


ClientMessage = Annotated[
    Union[
        Hello,
        ListBots,
        ListGames,
        ListPlayers,
        Challenge,
        Arrange,
        Accept,
        Decline,
        MoveMsg,
        Resign,
        Spectate,
        Unspectate,
        GetGame,
        ListRecords,
        Ping,
        WatchLobby,
    ],
    Field(discriminator="type"),
]
CLIENT_TYPES = (
    "hello",
    "list_bots",
    "list_games",
    "list_players",
    "challenge",
    "arrange",
    "accept",
    "decline",
    "move",
    "resign",
    "spectate",
    "unspectate",
    "get_game",
    "list_records",
    "ping",
    "watch_lobby",
)
_client_adapter: TypeAdapter[Any] = TypeAdapter(ClientMessage)

MAX_TRACE_BYTES = 16 * 1024
MAX_TRACE_DEPTH = 16  # arrays/objects nested in a trace, the trace object itself counted
# A \uD800-\uDFFF escape: the only way a lone surrogate (not Unicode) gets into a decoded frame.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_client_frame(raw: str | bytes) -> Any:
    """Parse one client frame into its message model or raise :class:`ProtocolError`."""
    data = _loads_fast(raw)
    if data is not _UNDECIDED:
        return parse_client_object(data)
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("bad_json", "binary frame is not UTF-8 JSON text") from None
    try:
        data = loads_strict(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and NonFiniteNumber are ValueErrors
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw) and not _is_unicode(data):
        raise ProtocolError("bad_json", "frame holds a lone surrogate escape (U+D800 to U+DFFF): not Unicode text")
    return parse_client_object(data)


def _is_unicode(data: Any) -> bool:
    """False when a string in ``data`` holds a lone surrogate (it cannot be UTF-8 encoded)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_request_id(rid: Any) -> Any:
    """``rid`` when it can be echoed as a request id (an integer, or a string of at most 64
    characters), else None.

    >>> valid_request_id(7), valid_request_id("a"), valid_request_id(True), valid_request_id("x" * 65)
    (7, 'a', None, None)
    """
    if isinstance(rid, int) and not isinstance(rid, bool) or isinstance(rid, str) and len(rid) <= 64:
        return rid
    return None


def request_id_of(raw: str | bytes) -> Any:
    """The request id of a frame the server will not process (rate limited), or None: so
    a pipelining client learns which request was dropped."""
    try:
        return parse_client_frame(raw).id
    except ProtocolError as exc:
        return exc.id


class NonFiniteNumber(ValueError):
    """``NaN``, ``Infinity`` or a number too large for a float: not JSON (RFC 8259)."""


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise NonFiniteNumber(f"{text[:20]} does not fit a 64-bit float")
    return value


def loads_strict(raw: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and overflowing numbers such as
    ``1e999`` (Python's json accepts them; other clients' parsers and the records would not).

    orjson decodes the frames it reads exactly as json does, several times faster, so
    frames go through it first; what it refuses (NaN, bad JSON, a lone surrogate escape,
    which json accepts) is decoded again by json, so the answer and its error message are
    json's. orjson turns an integer beyond 64 bits into a float: a result holding a float
    that large (it might have been one) is decoded again by json too.

    >>> loads_strict('{"a": 1.5}')
    {'a': 1.5}
    >>> loads_strict('[123456789012345678901234567890]')
    [123456789012345678901234567890]
    >>> loads_strict('[NaN]')  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    server.protocol.NonFiniteNumber: NaN is not a JSON number
    """
    data = _loads_fast(raw)
    if data is not _UNDECIDED:
        return data
    return _strict_decoder.decode(raw if isinstance(raw, str) else raw.decode("utf-8"))


_UNDECIDED = object()


def _loads_fast(raw: str | bytes) -> Any:
    """``raw`` decoded by orjson when that is what json would decode (and then it is
    Unicode: orjson refuses lone surrogates), else ``_UNDECIDED``: json must decide."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _UNDECIDED  # json says why (or accepts what orjson does not: lone surrogates)
    return _UNDECIDED if _maybe_rounded(data) else data


def _maybe_rounded(data: Any) -> bool:
    """True when a float in ``data`` lies outside the 64-bit integers orjson decodes exactly
    (it may have been an integer literal orjson rounded)."""
    if type(data) is dict:  # a frame: most hold only strings, integers, booleans and nulls
        stack = [v for v in data.values() if type(v) not in _EXACT]
    else:
        stack = [data]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif kind is float and not _INT64_MIN < value < _UINT64_END:
            return True
    return False


# one decoder for every frame (json.loads with options builds a new one per call)
_strict_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# orjson decodes integers in [-2**63, 2**64) exactly and any other as a (rounded) float
_INT64_MIN, _UINT64_END = -float(2**63), float(2**64)
_EXACT = frozenset((str, int, bool, type(None)))


def parse_client_object(data: Any) -> Any:
    if not isinstance(data, dict):
        raise ProtocolError("not_object", f"a frame must be a JSON object, got {type(data).__name__}")
    rid = valid_request_id(data.get("id"))
    mtype = data.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError("missing_type", "the frame needs a string field 'type'", rid)
    if mtype not in CLIENT_TYPES:
        raise ProtocolError(
            "unknown_type", f"unknown message type {mtype[:40]!r}; expected one of {', '.join(CLIENT_TYPES)}", rid
        )
    try:
        msg = _client_adapter.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError("invalid_message", f"invalid {mtype!r} message: {_describe(exc)}", rid) from None
    if isinstance(msg, Challenge) and msg.clock is not None and msg.time_control is not None:
        raise ProtocolError(
            "invalid_message", "give clock (seconds per move) or time_control (base + increment), not both", rid
        )
    if isinstance(msg, (Challenge, Arrange)) and msg.opening:
        try:
            opening_board(msg.opening)
        except OpeningError as exc:
            raise ProtocolError("invalid_message", f"opening: {exc}", rid) from None
    if isinstance(msg, ListRecords) and msg.before is not None and not math.isfinite(msg.before):
        raise ProtocolError("invalid_message", "before must be a finite unix time", rid)
    if isinstance(msg, MoveMsg) and msg.trace is not None:
        depth = json_depth(msg.trace, MAX_TRACE_DEPTH)
        if depth > MAX_TRACE_DEPTH:
            raise ProtocolError("invalid_message", f"trace nests arrays/objects more than {MAX_TRACE_DEPTH} deep", rid)
        size = len(json.dumps(msg.trace, separators=(",", ":")))
        if size > MAX_TRACE_BYTES:
            raise ProtocolError("invalid_message", f"trace is {size} bytes; the limit is {MAX_TRACE_BYTES}", rid)
    return msg


def json_depth(value: Any, limit: int) -> int:
    """How deep arrays and objects nest in ``value`` (a scalar is 0), counted without
    recursion and only up to ``limit + 1``: any input, however deep, is measured safely.

    >>> json_depth({"a": [1, {"b": []}]}, 16), json_depth(3, 16), json_depth([[[[]]]], 2)
    (4, 0, 3)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:] if p != err["loc"][0]) or ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- server → client
# Servers send plain dicts built by these helpers; clients may validate them with
# ``parse_server_frame``. Fields beyond those listed may be added in later versions.
class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: ReplyId = None


class Welcome(_Out):
    type: Literal["welcome"]
    name: str
    role: Role
    token: str  # resume with hello{token}
    protocol: int
    server: str
    resumed: list[str] = []  # game ids resumed from an earlier connection
    limits: dict[str, float] = {}  # rate (messages/s), burst, max_frame_bytes


class BotInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    kind: Literal["house", "remote"]
    description: str = ""
    games: int = 0
    max_games: int = 1


class Bots(_Out):
    type: Literal["bots"]
    bots: list[BotInfo]


class GameSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    game_id: str
    x: str
    o: str
    board: str
    turn: Literal["X", "O"] | None
    ply: int
    spectators: int = 0


class Games(_Out):
    type: Literal["games"]
    games: list[GameSummary]


class PlayerInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    games: int = 0  # live games it plays


class Players(_Out):
    """Reply to list_players (and a watch_lobby push): connected people, by name."""

    type: Literal["players"]
    players: list[PlayerInfo]


class ChallengeOffer(_Out):
    """Sent to a remote bot or player being challenged; answer accept/decline."""

    type: Literal["challenge"]
    challenge_id: str
    challenger: str
    side: Literal["X", "O"]  # the seat *you* would play
    clock: float
    time_control: dict[str, float] | None = None  # {base, increment} when the game has one
    rematch_of: str | None = None  # the finished game this one follows (sides swapped)
    opening: list[int] | None = None  # the game's first moves, given, when it has some


class ChallengeSent(_Out):
    type: Literal["challenge_sent"]
    challenge_id: str
    opponent: str
    opening: list[int] | None = None


class ChallengeDeclined(_Out):
    type: Literal["challenge_declined"]
    challenge_id: str
    reason: str = ""


class MoveRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    ply: int
    seat: Literal["X", "O"]
    cell: int
    at: float  # unix time
    trace: dict[str, Any] | None = None
    opening: bool = False  # a move of the game's opening: given at the start, not played (absent: played)


class GameStart(_Out):
    type: Literal["game_start"]
    game_id: str
    x: str
    o: str
    you: Literal["X", "O"] | None  # None for spectators
    clock: float
    board: str
    turn: Literal["X", "O"]
    deadline: float | None = None  # unix time by which the side to move must move (its clock runs from the start)
    time_control: dict[str, float] | None = None  # {base, increment} when the game has one
    clocks: dict[str, float] | None = (
        None  # time-control games: seconds left per seat (the mover's when its clock started)
    )
    rematch_of: str | None = None
    opening: list[int] | None = None  # the game's first moves, given: already on ``board``


class State(_Out):
    """Sent to both players and all spectators after every move (and on request)."""

    type: Literal["state"]
    game_id: str
    x: str
    o: str
    board: str
    turn: Literal["X", "O"] | None
    ply: int
    moves: list[MoveRecord]
    last_move: MoveRecord | None = None
    deadline: float | None = None  # unix time by which the side to move must move
    over: bool = False
    clocks: dict[str, float] | None = (
        None  # time-control games: seconds left per seat (the mover's when its clock started)
    )


class GameOver(_Out):
    type: Literal["game_over"]
    game_id: str
    x: str
    o: str
    result: Literal["X", "O", "draw", "aborted"]
    reason: Literal["line", "full_board", "resign", "timeout", "disconnect", "aborted", "illegal_move"]
    winner: str | None
    board: str
    moves: list[MoveRecord]
    clocks: dict[str, float] | None = None  # time-control games: seconds left per seat at the end


class GameRecord(_Out):
    """Reply to get_game for a finished game (replay)."""

    type: Literal["game_record"]
    game_id: str
    x: str
    o: str
    result: str
    reason: str
    board: str
    moves: list[MoveRecord]
    started_at: float
    ended_at: float | None = None
    tag: str | None = None


class RecordSummary(BaseModel):
    """One finished game in a ``records`` reply; ``get_game`` returns the whole record."""

    model_config = ConfigDict(extra="allow")
    game_id: str
    x: str
    o: str
    result: str
    reason: str
    ended_at: float | None = None
    ply: int
    tag: str | None = None


class Records(_Out):
    """Reply to list_records: stored finished games, newest first."""

    type: Literal["records"]
    games: list[RecordSummary]


class Pong(_Out):
    type: Literal["pong"]


class Info(_Out):
    """Human-readable notices (opponent disconnected, reconnected, …)."""

    type: Literal["info"]
    message: str
    game_id: str | None = None
    # a player of the game left or came back: "player_left" (with back_by, the unix time its
    # grace ends and it loses) or "player_back"; absent on other notices
    event: str | None = None
    player: str | None = None
    back_by: float | None = None


class ErrorMsg(_Out):
    type: Literal["error"]
    code: str
    message: str


ServerMessage = Annotated[
    Union[
        Welcome,
        Bots,
        Games,
        Players,
        ChallengeOffer,
        ChallengeSent,
        ChallengeDeclined,
        GameStart,
        State,
        GameOver,
        GameRecord,
        Records,
        Pong,
        Info,
        ErrorMsg,
    ],
    Field(discriminator="type"),
]
_server_adapter: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_server_frame(raw: str | bytes | dict[str, Any]) -> Any:
    """Parse a server frame (for clients). Raises :class:`ProtocolError` on a bad frame."""
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    try:
        return _server_adapter.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError("invalid_message", f"bad server frame: {_describe(exc)}") from None


def replace_non_finite(value: Any) -> tuple[Any, int]:
    """``value`` (JSON-like: dicts, lists, scalars) with every NaN or infinity replaced by
    ``None``, and how many were replaced. For senders whose data may hold them (a bot's
    trace): :func:`dumps` refuses them and the server answers them with ``bad_json``.

    >>> replace_non_finite({"p": [0.5, float("nan")], "kl": float("inf"), "n": 3})
    ({'p': [0.5, None], 'kl': None, 'n': 3}, 2)
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    if isinstance(value, dict):
        out, n = {}, 0
        for k, v in value.items():
            out[k], m = replace_non_finite(v)
            n += m
        return out, n
    if isinstance(value, (list, tuple)):
        items = [replace_non_finite(v) for v in value]
        return [v for v, _ in items], sum(m for _, m in items)
    return value, 0


def encode_frame(frame: dict[str, Any]) -> bytes:
    """One server frame as compact UTF-8 JSON, fast (orjson): the server's hot path.

    The server only sends what it built from accepted input, which holds no NaN or
    infinity; what orjson cannot encode (an integer beyond 64 bits, e.g. a request id) goes
    through :func:`dumps`.

    >>> encode_frame({"type": "pong", "id": 10**30})
    b'{"type":"pong","id":1000000000000000000000000000000}'
    """
    try:
        return orjson.dumps(frame)
    except TypeError:  # orjson.JSONEncodeError: integers over 64 bits
        return dumps(frame).encode("utf-8")


def dumps(frame: dict[str, Any]) -> str:
    """One frame as compact JSON text. Refuses NaN and infinities (``ValueError``): they
    are not JSON, and nothing the server accepted can contain them."""
    return json.dumps(frame, separators=(",", ":"), allow_nan=False)
