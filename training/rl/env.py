"""Environments in which a policy steers the LLM, one step per LLM move, over the whole game.

* :class:`SteeringVecEnv`, an SB3 ``VecEnv``: N games at once, one batched LLM call per
  step. Its games are played through a *transport*:

  - :class:`ServerTransport` (the headline): ONE protocol connection to an arena server
    (``docs/PROTOCOL.md``); each game is a ``challenge`` to one of the server's house bots
    (the game's ``seed`` sent with it), each LLM move a ``move`` frame with
    ``on_illegal: "forfeit"`` in strict reading, so an illegal move loses on the server.
    :class:`BackgroundServer` runs an in-process server on a free loopback port for it
    when no ``--server`` URL is given.
  - :class:`LocalTransport`: the same house bot classes in-process, each game seeded the
    same way: a fast path for tests and sweeps, never the headline.

* :class:`SteeringGameEnv`, a ``gymnasium.Env`` for one game (in-process; ``check_env``
  passes), built on the same pieces.

**The whole game.** A policy trained against minimax alone sees only minimax's tree. Here
each game draws its opponent from ``opponents`` (a fixed mix, by weight, of the house bots:
``minimax``, the graded levels ``hard`` / ``medium`` / ``easy`` of
:data:`server.players.house.HOUSE_LEVELS`, and ``random``), its prompt phrasing from ``phrasings``
(the observation does not say which: the policy must pick steering that works in each), and
with probability ``random_openings`` the game opens with 1 to ``max_random_moves``
uniformly random moves of the LLM's side that the environment plays itself (through the
transport, like any move) before the policy takes over; and with probability
``start_positions`` it starts instead from an open position with the LLM's side to move,
drawn by a curriculum (:mod:`training.rl.curriculum`: uniformly, or by the policy's recent
value losses there), which the server sets up from the ``challenge``'s ``opening``.
Together they put every open position within reach, as often as the policy needs it.

The LLM plays X, O, or either (``seat="both"``: each game's seat drawn with ``p_o`` for O);
the side is part of the observation. Rewards, from the LLM's side:

* ``shaping="value"`` (default): each move is paid the change of the solved game's value
  that the move itself makes, Φ(board after the LLM's move) − Φ(board before it) with Φ
  the game-theoretic value for the LLM (+1 / 0 / −1; an illegal move: −1). A move that
  keeps the value earns 0, one that throws a draw away −1, a win away −1 or −2. The
  opponent's moves are not credited to the policy (a random opponent's blunder is no merit
  of the LLM's move). With γ = 0 (the recipe) PPO is then a contextual bandit over
  positions with the solved game as the judge of each move.
* ``shaping="none"``: the game's result only, on the last move (win +1, draw 0, loss −1,
  an illegal move a loss): no solver in the reward; it needs γ > 0.

With the value shaping a move also earns ``margin_reward × clip(margin / margin_cap, -1, 1)``,
its *keep margin* (log-prob of the best value-keeping cell minus that of the best other
digit: positive exactly when the strict move keeps the value) scaled: a steering that keeps
the value surely in the training phrasings keeps it far more often in a phrasing never
trained on (docs/RL.md). With ``judge="phrasings"`` the move's action is also played (not
sent) in every other training phrasing on the same board: its value change is the mean over
the training phrasings and its keep margin the least of theirs, so steering that keeps the
value in one phrasing only is paid less than steering sure in all (the game goes on with the
move of its own phrasing; the curriculum learns from every phrasing's move). Every move also
costs ``push_cost × ‖added‖/‖residual‖`` (the steering cost; ``0`` turns it off). Observations and actions: :mod:`bots.llm.learned`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from server.players.house import HOUSE_NAMES
from bots.llm.readers import check_mode
from client.core import (
    BadFrame,
    ChallengeDeclined,
    ClientCore,
    GameEnded,
    GameStarted,
    GameUpdated,
    Reply,
    RequestFailed,
    ServerError,
    Welcomed,
)
from server.game import Board, Seat, opening_of
from training.rl.actuator import LLMActuator, MoveOutcome
from training.rl.curriculum import SCORE_FLOOR, StartPositions

if TYPE_CHECKING:
    from server.solver import TieBreak

SEATS = ("X", "O", "both")
SHAPINGS = ("value", "none")
JUDGES = ("game", "phrasings")
CURRICULA = ("prioritized", "uniform")
REWARD = {"win": 1.0, "draw": 0.0, "loss": -1.0}
#: the default opponent mix of training games (equal weights): every house bot a server hosts
DEFAULT_OPPONENTS = ",".join(HOUSE_NAMES)


def parse_opponents(spec: str) -> dict[str, float]:
    """``"minimax,random:2"`` → ``{"minimax": 1.0, "random": 2.0}`` (weights, default 1),
    checked against the house bots (``minimax``, ``random`` and :data:`server.players.house.HOUSE_LEVELS`).

    >>> parse_opponents("minimax, random:3")
    {'minimax': 1.0, 'random': 3.0}
    """
    known = HOUSE_NAMES
    out: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, weight = part.partition(":")
        name = name.strip()
        if name not in known:
            raise ValueError(f"unknown opponent {name!r}; expected house bots among {', '.join(known)}")
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight!r} for opponent {name!r}") from None
        if not (w > 0 and w < float("inf")):
            raise ValueError(f"the weight of opponent {name!r} must be positive, got {weight}")
        out[name] = w
    if not out:
        raise ValueError("no opponents: name at least one house bot")
    return out


def potential(board: Board, seat: Seat, illegal: bool = False) -> float:
    """The game-theoretic value of ``board`` for ``seat`` (+1 / 0 / -1; a finished game: its
    result; an illegal move: -1). Potential-based shaping with it (reward Φ(s') − Φ(s) per
    move) sums over a game to exactly the game's result (Φ of every start is 0: the game is
    a draw and minimax's opening keeps it so), but puts the -1 on the move that threw the
    draw away instead of on the last move; it leaves the best policy unchanged (Ng et al.,
    1999)."""
    from server.solver import solve

    if illegal:
        return -1.0
    if board.is_over:
        return 0.0 if board.winner is None else 1.0 if board.winner is seat else -1.0
    v = float(solve()[board.code].value)
    return v if board.turn is seat else -v


@dataclass
class EnvConfig:
    """What a game in the environment is; every field is written to the run card."""

    seat: str = "both"  # X, O or both (each game's seat drawn, O with probability p_o)
    p_o: float = 0.5
    mode: str = "strict"  # move reading; masked is a named variant
    push_cost: float = 0.01  # reward cost per move per unit of ||added||/||residual||
    shaping: str = "value"  # value: the change of the solved value the LLM's move makes; none: result only
    margin_reward: float = 0.0  # value shaping: + this × clip(keep margin / margin_cap, -1, 1) per move
    margin_cap: float = 3.0  # nats of keep margin that earn the whole margin reward
    judge: str = "game"  # value shaping: a move is judged in its game's phrasing, or in every training phrasing
    seed: int = 0
    opponents: str = DEFAULT_OPPONENTS  # house bots the games are drawn against, name[:weight], comma-separated
    random_openings: float = 0.0  # chance that a game opens with random moves of the LLM's side
    max_random_moves: int = 3  # such an opening has 1..this many of them
    start_positions: float = 0.0  # chance that a game starts from an open position drawn by the curriculum
    curriculum: str = "prioritized"  # how start positions are drawn: prioritized (by recent failures) or uniform
    curriculum_floor: float = SCORE_FLOOR  # prioritized: added to every pair's failure score before drawing

    def __post_init__(self) -> None:
        self.opponent_weights = parse_opponents(self.opponents)
        if not 0.0 <= self.random_openings <= 1.0:
            raise ValueError(f"random_openings must be in [0, 1], got {self.random_openings}")
        if not 0.0 <= self.start_positions <= 1.0:
            raise ValueError(f"start_positions must be in [0, 1], got {self.start_positions}")
        if self.curriculum not in CURRICULA:
            raise ValueError(f"unknown curriculum {self.curriculum!r}; expected one of {', '.join(CURRICULA)}")
        if self.curriculum == "prioritized" and self.start_positions > 0 and self.shaping == "none":
            raise ValueError(
                "the prioritized curriculum scores positions with the solved value; "
                "with shaping 'none' (no solver in training) use the uniform curriculum"
            )
        if not self.curriculum_floor > 0:
            raise ValueError(f"curriculum_floor must be positive, got {self.curriculum_floor}")
        if self.max_random_moves < 1:
            raise ValueError(f"max_random_moves must be at least 1, got {self.max_random_moves}")
        if self.seat not in SEATS:
            raise ValueError(f"unknown seat {self.seat!r}; expected one of {', '.join(SEATS)}")
        check_mode(self.mode)
        if not 0.0 <= self.p_o <= 1.0:
            raise ValueError(f"p_o must be in [0, 1], got {self.p_o}")
        if self.push_cost < 0:
            raise ValueError(f"push_cost must be >= 0, got {self.push_cost}")
        if self.margin_reward < 0 or not self.margin_cap > 0:
            raise ValueError(
                f"margin_reward must be >= 0 and margin_cap > 0, got {self.margin_reward} and {self.margin_cap}"
            )
        if self.margin_reward > 0 and self.shaping == "none":
            raise ValueError("the margin reward reads the solved value; with shaping 'none' leave it at 0")
        if self.shaping not in SHAPINGS:
            raise ValueError(f"unknown shaping {self.shaping!r}; expected one of {', '.join(SHAPINGS)}")
        if self.judge not in JUDGES:
            raise ValueError(f"unknown judge {self.judge!r}; expected one of {', '.join(JUDGES)}")
        if self.judge == "phrasings" and self.shaping == "none":
            raise ValueError(
                "judging a move in every phrasing reads the solved value; with shaping 'none' use judge 'game'"
            )


@dataclass
class GameState:
    """One game as a transport reports it, from the LLM's side."""

    board: Board
    over: bool = False
    illegal: bool = False
    game_id: str = ""


#: one game to start: (env, the LLM's seat, the game's seed, the house bot, the opening moves)
GameSpec = tuple[int, Seat, int, str, tuple[int, ...]]


def margin_bonus(margin: float, weight: float, cap: float) -> float:
    """The margin reward of one move: ``weight × clip(margin / cap, -1, 1)`` with ``margin``
    the move's keep margin (:func:`training.rl.actuator.keep_margin`). Among steerings that
    keep the value it prefers the one that keeps it surely, which is the one that more
    often keeps it in a phrasing never trained on; on a lost move it grades how near the
    steering came.

    >>> margin_bonus(1.5, 0.3, 3.0), margin_bonus(float("inf"), 0.3, 3.0), margin_bonus(-6.0, 0.3, 3.0)
    (0.15, 0.3, -0.3)
    >>> margin_bonus(2.0, 0.0, 3.0)
    0.0
    """
    return weight * max(-1.0, min(1.0, margin / cap))


def move_reward(before: Board, cell: int, seat: Seat, illegal: bool) -> float:
    """The value shaping's reward of one LLM move: Φ(after the move) − Φ(before it).

    >>> move_reward(Board.from_moves([1, 2, 4]), 7, Seat.X, False)  # completes 1-4-7: a win kept
    0.0
    >>> move_reward(Board.from_moves([1, 5]), 9, Seat.X, False), move_reward(Board.from_moves([1, 5]), 5, Seat.X, True)
    (0.0, -1.0)
    >>> move_reward(Board.from_moves([1, 5, 9]), 3, Seat.O, False)  # O must not take a corner here
    -1.0
    """
    after = -1.0 if illegal else potential(before.play(cell), seat)
    return after - potential(before, seat) + 0.0  # + 0.0: no -0.0


def result_of(seat: Seat, state: GameState) -> str:
    """``win`` / ``draw`` / ``loss`` for the LLM playing ``seat`` in a finished game."""
    if state.illegal:
        return "loss"
    winner = state.board.winner
    return "draw" if winner is None else "win" if winner is seat else "loss"


# --------------------------------------------------------------------------- transports
class LocalTransport:
    """Games against the house bots in-process (no sockets), each seeded like the server's."""

    name = "local"

    def __init__(self, tiebreak: "TieBreak" = "random") -> None:
        self.tiebreak = tiebreak
        self.games: dict[int, tuple[Any, GameState, Seat]] = {}
        self.frames = 0

    def _reply(self, env: int) -> GameState:
        from server.players.base import MoveRequest

        opp, state, seat = self.games[env]
        while not state.board.is_over and state.board.turn is not seat:
            state.board = state.board.play(opp.choose(MoveRequest("local", state.board)).cell)
        state.over = state.board.is_over
        return state

    def start(self, games: Sequence[GameSpec]) -> dict[int, GameState]:
        from server.players.house import HOUSE_LEVELS, EpsilonMinimaxBot, MinimaxBot, RandomBot

        out = {}
        for env, seat, seed, opponent, opening in games:
            if opponent == "minimax":
                bot: Any = MinimaxBot(seed=seed, tiebreak=self.tiebreak)
            elif opponent == "random":
                bot = RandomBot(seed=seed)
            else:
                bot = EpsilonMinimaxBot(opponent, seed=seed, epsilon=HOUSE_LEVELS[opponent])
            self.games[env] = (bot, GameState(Board.from_moves(opening)), seat)
            out[env] = self._reply(env)
        return out

    def move(self, moves: Sequence[tuple[int, int]]) -> dict[int, GameState]:
        out = {}
        for env, cell in moves:
            _, state, _ = self.games[env]
            if state.board[cell] is not None:
                state.over = state.illegal = True
                out[env] = state
                continue
            state.board = state.board.play(cell)
            out[env] = self._reply(env)
        return out

    def close(self) -> None:
        self.games.clear()


class ServerTransport:
    """Games against the server's house bots through one WebSocket connection, spoken by
    a :class:`client.core.ClientCore` (the requests, their ids and replies, the games).

    Every game is a ``challenge`` (the house bot, the LLM's ``side``, the game's
    ``seed``, a long move clock so that a PPO update never times a game out); every move a
    ``move`` frame (``on_illegal: "forfeit"`` when ``forfeit``). Frames are matched to
    games by ``game_id`` (the challenge's id, echoed by ``challenge_sent``)."""

    name = "server"

    def __init__(
        self, url: str, *, name: str = "rl-trainer", forfeit: bool = True, clock: float = 3600.0, timeout: float = 120.0
    ) -> None:
        from websockets.sync.client import connect

        self.url = url
        self.forfeit = forfeit
        self.clock = clock
        self.timeout = timeout
        self._exit = contextlib.ExitStack()
        self.ws = self._exit.enter_context(connect(url, max_size=1 << 22, open_timeout=timeout))
        self.frames = 0
        # protocol 2: a house answer in the move's state; the trainer trusts the server it
        # plays on, so frames skip the schema check (a frame missing what the core reads is
        # still a BadFrame, which stops training)
        self.core = ClientCore(name, check_frames=False)
        self._send(self.core.hello())
        welcome = self._recv()
        if not isinstance(self.core.receive(welcome)[0], Welcomed):
            raise RuntimeError(f"the server at {url} refused the trainer: {welcome}")
        self.seat: dict[int, Seat] = {}
        self.game_of: dict[int, str] = {}  # env -> game id
        self.env_of: dict[str, int] = {}  # game id -> env
        self.state: dict[int, GameState] = {}  # each env's game as last settled
        self._challenge_env: dict[str, int] = {}  # request id of a challenge -> env

    def _send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def _recv(self) -> dict[str, Any]:
        frame = json.loads(self.ws.recv(timeout=self.timeout))  # json: the core's strict decoding is slower
        self.frames += 1
        return frame

    def _settle(self, env: int) -> bool:
        """Record the env's game in :attr:`state` if it is over (its ``game_over`` seen) or
        waits for the LLM's move; say whether it is."""
        if env in self.state:
            return True
        game = self.core.games.get(self.game_of.get(env, ""))
        if game is None or not game.to_move:
            return False
        self.state[env] = GameState(game.board, game_id=game.game_id)
        return True

    def _pump(self, envs: Sequence[int]) -> dict[int, GameState]:
        """Read frames until every game of ``envs`` is over or waits for the LLM's move."""
        waiting = {e for e in envs if not self._settle(e)}
        deadline = time.monotonic() + self.timeout
        while waiting:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not answer within {self.timeout:.0f} s")
            touched: set[int] = set()
            for ev in self.core.receive(self._recv()):
                kind = type(ev)  # compared by identity: the hot path of PPO through the server
                if kind is GameUpdated or kind is GameStarted:
                    env = self.env_of.get(cast("GameUpdated | GameStarted", ev).game.game_id)
                    if env is not None:
                        touched.add(env)
                elif kind is Reply:
                    if ev.frame["type"] == "challenge_sent":
                        env = self._challenge_env.pop(cast(Reply, ev).request["id"], None)
                        if env is not None:
                            self.game_of[env] = ev.frame["challenge_id"]
                            self.env_of[ev.frame["challenge_id"]] = env
                            touched.add(env)
                elif kind is GameEnded:
                    self._ended(cast(GameEnded, ev), touched)
                elif kind is RequestFailed and cast(RequestFailed, ev).code == "rate_limited":
                    time.sleep(0.05)
                    self._send(self.core.retry(cast(RequestFailed, ev).request))
                elif kind is RequestFailed or kind is ServerError:
                    failed = cast("RequestFailed | ServerError", ev)
                    raise RuntimeError(f"the server refused a request: [{failed.code}] {failed.message}")
                elif kind is ChallengeDeclined:
                    raise RuntimeError(f"the server declined a game: {cast(ChallengeDeclined, ev).reason}")
                elif kind is BadFrame:
                    raise RuntimeError(f"the server sent a frame the trainer cannot use: {cast(BadFrame, ev).reason}")
            waiting -= {e for e in touched & waiting if self._settle(e)}
        return {e: self.state[e] for e in envs}

    def _ended(self, ev: GameEnded, touched: set[int]) -> None:
        """A ``game_over``: the game of its env is over (illegal when the LLM forfeited it)."""
        game = ev.game
        env = self.env_of.get(game.game_id) if game is not None else None
        if game is None or env is None:
            return
        self.state[env] = GameState(game.board, over=True, illegal=game.reason == "illegal_move", game_id=game.game_id)
        if game.reason not in ("line", "full_board", "illegal_move"):
            raise RuntimeError(f"game {game.game_id} ended by {game.reason!r}, not by play")
        touched.add(env)

    def start(self, games: Sequence[GameSpec]) -> dict[int, GameState]:
        for env, seat, seed, opponent, opening in games:
            old = self.game_of.pop(env, None)
            if old is not None:
                self.env_of.pop(old, None)
                self.core.forget(old)
            self.state.pop(env, None)
            self.seat[env] = seat
            frame = self.core.challenge(opponent, side=seat.value, clock=self.clock, seed=seed, opening=opening)
            self._challenge_env[frame["id"]] = env
            self._send(frame)
        return self._pump([spec[0] for spec in games])

    def move(self, moves: Sequence[tuple[int, int]]) -> dict[int, GameState]:
        for env, cell in moves:
            # settled again once the server reports the game over or the LLM to move after this move
            if not self.state[env].over:
                del self.state[env]
            self._send(self.core.move(self.game_of[env], int(cell), on_illegal="forfeit" if self.forfeit else None))
        return self._pump([env for env, _ in moves])

    def close(self) -> None:
        try:
            self._exit.close()
        except Exception:  # noqa: BLE001 - closing a dead socket is fine
            pass


def _serve_in_child(seed: int, conn: Any) -> None:
    """Child process: run an arena server on a free loopback port, send its URL, serve
    until the parent closes the pipe."""

    async def main() -> None:
        from server.app import ServerConfig, serve_arena

        config = ServerConfig(
            host="127.0.0.1",
            port=0,
            db_path=":memory:",
            seed=seed,
            minimax_tiebreak="random",
            move_clock=3600.0,
            rate=1e6,
            burst=100_000,
            flood_close=100_000,
            ping_interval=None,
        )
        async with serve_arena(config) as srv:
            conn.send(srv.url)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _wait_closed, conn)

    try:
        asyncio.run(main())
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        try:
            conn.send(f"error: {exc}")
        except OSError:
            pass


def _wait_closed(conn: Any) -> None:
    try:
        conn.recv()  # returns or raises EOFError when the parent closes its end
    except (EOFError, OSError):
        pass


class BackgroundServer:
    """An arena server on a free loopback port in a child process (its own interpreter, so
    the server's frames do not compete with training for one GIL), for training through
    the server without starting one by hand. Records are kept in memory."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.url = ""
        self._proc: Any = None
        self._conn: Any = None

    def start(self, timeout: float = 60.0) -> "BackgroundServer":
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no torch state or threads inherited
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_in_child, args=(self.seed, child), name="rl-arena-server", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError(f"the arena server did not start within {timeout:.0f} s")
        url = parent.recv()
        if not isinstance(url, str) or not url.startswith("ws"):
            self.stop()
            raise RuntimeError(f"the arena server did not start: {url}")
        self.url = url
        return self

    def stop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send("stop")
            except OSError:
                pass
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(10.0)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5.0)
            self._proc = None

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------- the VecEnv
@dataclass
class EpisodeLog:
    """Results of finished training games, by seat (for CSV logs and the run card)."""

    results: dict[str, dict[str, int]] = field(
        default_factory=lambda: {s: {"win": 0, "draw": 0, "loss": 0, "illegal": 0} for s in ("X", "O")}
    )
    by_opponent: dict[str, dict[str, int]] = field(default_factory=dict)  # opponent -> result -> games
    recent: list[tuple[str, str, str]] = field(default_factory=list)  # (seat, result, opponent) of the last games
    moves: int = 0
    push: float = 0.0
    steered: int = 0

    def add(self, seat: Seat, result: str, illegal: bool, opponent: str = "minimax") -> None:
        r = self.results[seat.value]
        r[result] += 1
        r["illegal"] += int(illegal)
        o = self.by_opponent.setdefault(opponent, {"win": 0, "draw": 0, "loss": 0, "illegal": 0})
        o[result] += 1
        o["illegal"] += int(illegal)
        self.recent.append((seat.value, result, opponent))
        del self.recent[:-2000]

    def recent_rate(self, seat: str, result: str = "draw", opponent: str | None = None) -> float:
        games = [r for s, r, o in self.recent if s == seat and (opponent is None or o == opponent)]
        return sum(r == result for r in games) / len(games) if games else float("nan")

    def recent_draw_rate(self, seat: str) -> float:
        """Draws of the last games as ``seat`` against minimax."""
        return self.recent_rate(seat, "draw", "minimax")

    def recent_loss_rate(self, seat: str) -> float:
        """Losses (illegal moves included) of the last games as ``seat``, all opponents."""
        return self.recent_rate(seat, "loss")


class SteeringVecEnv(VecEnv):
    """``n_envs`` games at once through ``transport``; one batched LLM call per step (see the
    module docstring for opponents, phrasings, random openings and rewards).

    ``actuator``: one :class:`LLMActuator`, or a mapping phrasing → actuator (the same
    features and action codec, one answer reader per phrasing); each game draws its
    phrasing uniformly from the mapping."""

    def __init__(
        self, actuator: "LLMActuator | Mapping[str, LLMActuator]", transport: Any, n_envs: int, config: EnvConfig
    ) -> None:
        from gymnasium import spaces

        actuators = (
            dict(actuator) if isinstance(actuator, Mapping) else {getattr(actuator.bot, "phrasing", "grid"): actuator}
        )
        if not actuators:
            raise ValueError("the environment needs at least one actuator")
        first = next(iter(actuators.values()))
        if any(
            a.obs != first.obs or a.codec.nvec != first.codec.nvec or a.codec.kind != first.codec.kind
            for a in actuators.values()
        ):
            raise ValueError("every phrasing's actuator must have the same observation and action")
        obs_space = spaces.Box(
            low=-1.0, high=np.inf if first.obs == "features" else 1.0, shape=(first.obs_size,), dtype=np.float32
        )
        if first.codec.kind == "sparse":
            act_space: Any = spaces.MultiDiscrete(first.codec.nvec)
        else:
            act_space = spaces.Box(low=-1.0, high=1.0, shape=(first.codec.n_features,), dtype=np.float32)
        self.render_mode = None
        super().__init__(n_envs, obs_space, act_space)
        self.actuators = actuators
        self.actuator = first
        self.phrasing_names = list(actuators)
        self.transport = transport
        self.config = config
        self.rng = random.Random(config.seed)
        self._opponents = list(config.opponent_weights)
        self._weights = list(config.opponent_weights.values())
        self.boards: list[Board] = [Board.empty()] * n_envs
        self.seats: list[Seat] = [Seat.X] * n_envs
        self.opponent: list[str] = [self._opponents[0]] * n_envs
        self.phrasing: list[str] = [self.phrasing_names[0]] * n_envs
        self._random_left = [0] * n_envs
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        self.log = EpisodeLog()
        self.games_started = 0
        self.random_moves = 0  # moves the environment played itself (random openings)
        self.starts = (
            StartPositions(
                config.curriculum, seed=config.seed, phrasings=self.phrasing_names, floor=config.curriculum_floor
            )
            if config.start_positions > 0
            else None
        )
        self.boards_seen: set[str] = set()  # distinct boards the policy was asked to steer
        self._actions: np.ndarray | None = None
        self.seconds = {"llm": 0.0, "transport": 0.0}

    def _draw(self, e: int) -> GameSpec:
        cfg = self.config
        seat = (Seat.O if self.rng.random() < cfg.p_o else Seat.X) if cfg.seat == "both" else Seat(cfg.seat)
        self.seats[e] = seat
        self.opponent[e] = self.rng.choices(self._opponents, self._weights)[0]
        self.phrasing[e] = self.rng.choice(self.phrasing_names)
        opening: tuple[int, ...] = ()
        if self.starts is not None and self.rng.random() < cfg.start_positions:
            board, self.phrasing[e] = self.starts.draw(seat)
            opening = opening_of(board)
            self._random_left[e] = 0
        else:
            random_opening = self.rng.random() < cfg.random_openings
            self._random_left[e] = self.rng.randint(1, cfg.max_random_moves) if random_opening else 0
        self.games_started += 1
        return (e, seat, self.rng.randrange(2**62), self.opponent[e], opening)

    def _new_games(self, envs: Sequence[int]) -> None:
        """Start a game in each of ``envs`` and play its random opening; a game that ends
        during its opening is replaced by a new one."""
        todo = list(envs)
        while todo:
            specs = [self._draw(e) for e in todo]
            t = time.perf_counter()
            states = self.transport.start(specs)
            self.seconds["transport"] += time.perf_counter() - t
            for e in todo:
                if states[e].over:  # cannot happen: the LLM always gets a move
                    raise RuntimeError(f"a game of env {e} ended before the LLM moved")
                self.boards[e] = states[e].board
            todo = self._random_opening(todo)

    def _random_opening(self, envs: Sequence[int]) -> list[int]:
        """Play the pending random moves of ``envs``; returns the games that ended meanwhile."""
        ended: list[int] = []
        pending = [e for e in envs if self._random_left[e] > 0]
        while pending:
            moves = [(e, self.rng.choice(self.boards[e].legal_cells())) for e in pending]
            t = time.perf_counter()
            states = self.transport.move(moves)
            self.seconds["transport"] += time.perf_counter() - t
            self.random_moves += len(moves)
            for e in pending:
                self._random_left[e] -= 1
                if states[e].over:
                    self._random_left[e] = 0
                    ended.append(e)
                else:
                    self.boards[e] = states[e].board
            pending = [e for e in pending if self._random_left[e] > 0]
        return ended

    def observe(self) -> np.ndarray:
        """The current observation of every game (grouped by phrasing for the features one)."""
        for b in self.boards:
            self.boards_seen.add(b.code)
        if self.actuator.obs == "board" or len(self.actuators) == 1:
            return self.actuator.observe(self.boards)
        out = np.zeros((self.num_envs, self.actuator.obs_size), dtype=np.float32)
        for name, act in self.actuators.items():
            idx = [e for e in range(self.num_envs) if self.phrasing[e] == name]
            if idx:
                out[idx] = act.observe([self.boards[e] for e in idx])
        return out

    def _play(self, actions: np.ndarray, own: bool) -> list[dict[str, MoveOutcome]]:
        """Each game's action played, per game, in its own phrasing (``own``) or in every
        other training phrasing, on its board: phrasing → outcome. Nothing is sent."""
        out: list[dict[str, MoveOutcome]] = [{} for _ in range(self.num_envs)]
        for name, act in self.actuators.items():
            idx = [e for e in range(self.num_envs) if (self.phrasing[e] == name) == own]
            if idx:
                for e, o in zip(idx, act.act([self.boards[e] for e in idx], actions[idx])):
                    out[e][name] = o
        return out

    def reset(self) -> np.ndarray:
        self._new_games(range(self.num_envs))
        self.returns[:] = 0
        self.lengths[:] = 0
        return self.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        assert self._actions is not None, "step_async first"
        t = time.perf_counter()
        outs = [played[self.phrasing[e]] for e, played in enumerate(self._play(self._actions, own=True))]
        # the same action in the other training phrasings: judged there too, never sent
        others = (
            self._play(self._actions, own=False)
            if self.config.judge == "phrasings"
            else [{} for _ in range(self.num_envs)]
        )
        self.seconds["llm"] += time.perf_counter() - t
        t = time.perf_counter()
        states = self.transport.move([(e, o.cell) for e, o in enumerate(outs)])
        self.seconds["transport"] += time.perf_counter() - t
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = []
        last_obs = self.observe()
        for e, o in enumerate(outs):
            self.log.moves += 1
            self.log.push += o.norm_ratio
            self.log.steered += o.n_steered
            rewards[e] = -self.config.push_cost * o.norm_ratio
            s = states[e]
            if self.config.shaping == "value":
                # (phrasing, value change, keep margin) of the move sent, then of the judged ones
                judged = [
                    (self.phrasing[e], move_reward(self.boards[e], o.cell, self.seats[e], s.illegal), o.margin),
                    *(
                        (name, move_reward(self.boards[e], m.cell, self.seats[e], not m.legal), m.margin)
                        for name, m in others[e].items()
                    ),
                ]
                if self.starts is not None:
                    for name, change, _ in judged:
                        self.starts.update(self.boards[e], name, change < 0)
                value_change = sum(change for _, change, _ in judged) / len(judged)
                margin = min(m for _, _, m in judged)
                rewards[e] += value_change + margin_bonus(margin, self.config.margin_reward, self.config.margin_cap)
            if s.over:
                result = result_of(self.seats[e], s)
                if self.config.shaping == "none":
                    rewards[e] += REWARD[result]
                dones[e] = True
                self.log.add(self.seats[e], result, s.illegal, self.opponent[e])
                infos[e] = {
                    "terminal_observation": last_obs[e],
                    "result": result,
                    "seat": self.seats[e].value,
                    "opponent": self.opponent[e],
                    "phrasing": self.phrasing[e],
                    "illegal": s.illegal,
                    "episode": {"r": float(self.returns[e] + rewards[e]), "l": int(self.lengths[e] + 1), "t": 0.0},
                }
                finished.append(e)
            else:
                self.boards[e] = s.board
        self.returns += rewards
        self.lengths += 1
        if finished:
            self._new_games(finished)
            self.returns[finished] = 0
            self.lengths[finished] = 0
        return self.observe(), rewards, dones, infos

    def close(self) -> None:
        self.transport.close()

    # the rest of the VecEnv interface (one process: nothing to forward)
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self, method_name)(*args, **kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)


# --------------------------------------------------------------------------- one game
class SteeringGameEnv(gym.Env):
    """One game against the in-process minimax (the gymnasium contract; ``check_env`` passes).
    Same observations, actions and rewards as :class:`SteeringVecEnv`."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, actuator: LLMActuator, config: EnvConfig | None = None) -> None:
        super().__init__()
        self._vec = SteeringVecEnv(actuator, LocalTransport(), 1, config or EnvConfig())
        self.observation_space = self._vec.observation_space
        self.action_space = self._vec.action_space
        self.render_mode = "ansi"

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._vec.rng = random.Random(seed)
        obs = self._vec.reset()
        return obs[0], {"seat": self._vec.seats[0].value}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._vec.step_async(np.asarray(action)[None])
        obs, rewards, dones, infos = self._vec.step_wait()
        if dones[0]:
            info = dict(infos[0])
            return info.pop("terminal_observation"), float(rewards[0]), True, False, info
        return obs[0], float(rewards[0]), False, False, {}

    def render(self) -> str:
        return str(self._vec.boards[0])
