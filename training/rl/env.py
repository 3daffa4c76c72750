"""Environments in which a policy steers the LLM, one step per LLM move, against minimax.

* :class:`SteeringVecEnv`, an SB3 ``VecEnv``: N games at once, one batched LLM call per
  step. Its games are played through a *transport*:

  - :class:`ServerTransport` (the headline): ONE protocol connection to an arena server
    (``docs/PROTOCOL.md``); each game is a ``challenge`` to the server's house ``minimax``
    (random tie-breaks, the game's ``seed`` sent with it), each LLM move a ``move`` frame
    with ``on_illegal: "forfeit"`` in strict reading, so an illegal move loses on the
    server. :class:`BackgroundServer` runs an in-process server on a free loopback port
    for it when no ``--server`` URL is given.
  - :class:`LocalTransport`: the same house bot class in-process, each game seeded the
    same way: a fast path for tests and sweeps, never the headline.

* :class:`SteeringGameEnv`, a ``gymnasium.Env`` for one game (in-process; ``check_env``
  passes), built on the same pieces.

The LLM plays X, O, or either (``seat="both"``: each game's seat drawn with
``p_o`` for O); the side is part of the observation. Reward, from the LLM's side, at the
end of a game: win ``+1``, draw ``0`` (the best possible against minimax), loss ``-1``
(an illegal move is a loss); and on every move ``-push_cost × ‖added‖/‖residual‖`` (the
steering cost; ``0`` turns it off). ``shaping="value"`` (default) pays the same total per
game, move by move, as potential-based shaping with the solved game's value (see
:func:`potential`); ``"none"`` pays the result on the last move only. Observations and actions: :mod:`bots.llm.learned`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from bots.llm.player import check_mode
from server.game import Board, Seat
from training.rl.actuator import LLMActuator, MoveOutcome

SEATS = ("X", "O", "both")
SHAPINGS = ("value", "none")
REWARD = {"win": 1.0, "draw": 0.0, "loss": -1.0}


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
    shaping: str = "value"  # value: potential-based shaping with the solved game's value; none: result only
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seat not in SEATS:
            raise ValueError(f"unknown seat {self.seat!r}; expected one of {', '.join(SEATS)}")
        check_mode(self.mode)
        if not 0.0 <= self.p_o <= 1.0:
            raise ValueError(f"p_o must be in [0, 1], got {self.p_o}")
        if self.push_cost < 0:
            raise ValueError(f"push_cost must be >= 0, got {self.push_cost}")
        if self.shaping not in SHAPINGS:
            raise ValueError(f"unknown shaping {self.shaping!r}; expected one of {', '.join(SHAPINGS)}")


@dataclass
class GameState:
    """One game as a transport reports it, from the LLM's side."""

    board: Board
    over: bool = False
    illegal: bool = False
    game_id: str = ""


def result_of(seat: Seat, state: GameState) -> str:
    """``win`` / ``draw`` / ``loss`` for the LLM playing ``seat`` in a finished game."""
    if state.illegal:
        return "loss"
    winner = state.board.winner
    return "draw" if winner is None else "win" if winner is seat else "loss"


# --------------------------------------------------------------------------- transports
class LocalTransport:
    """Games against the house minimax in-process (no sockets), each seeded like the server's."""

    name = "local"

    def __init__(self, tiebreak: str = "random") -> None:
        self.tiebreak = tiebreak
        self.games: dict[int, tuple[Any, GameState, Seat]] = {}
        self.frames = 0

    def _reply(self, env: int) -> GameState:
        from bots.base import MoveRequest

        opp, state, seat = self.games[env]
        while not state.board.is_over and state.board.turn is not seat:
            state.board = state.board.play(opp.choose(MoveRequest("local", state.board)).cell)
        state.over = state.board.is_over
        return state

    def start(self, games: Sequence[tuple[int, Seat, int]]) -> dict[int, GameState]:
        from bots.house import MinimaxBot

        out = {}
        for env, seat, seed in games:
            self.games[env] = (MinimaxBot(seed=seed, tiebreak=self.tiebreak), GameState(Board.empty()), seat)  # type: ignore[arg-type]
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
    """Games against the server's house minimax through one WebSocket connection.

    Every game is a ``challenge`` (``opponent: minimax``, the LLM's ``side``, the game's
    ``seed``, a long move clock so that a PPO update never times a game out); every move a
    ``move`` frame (``on_illegal: "forfeit"`` when ``forfeit``). Frames are matched to
    games by ``game_id`` (the challenge's id, echoed by ``challenge_sent``)."""

    name = "server"

    def __init__(self, url: str, *, name: str = "rl-trainer", forfeit: bool = True, clock: float = 3600.0,
                 timeout: float = 120.0) -> None:
        from websockets.sync.client import connect

        self.url = url
        self.forfeit = forfeit
        self.clock = clock
        self.timeout = timeout
        self._exit = contextlib.ExitStack()
        self.ws = self._exit.enter_context(connect(url, max_size=1 << 22, open_timeout=timeout))
        self.frames = 0
        self._send({"type": "hello", "name": name, "role": "player", "protocol": 2})  # a house answer in the move's state
        welcome = self._recv()
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"the server at {url} refused the trainer: {welcome}")
        self.seat: dict[int, Seat] = {}
        self.game_of: dict[int, str] = {}  # env -> game id
        self.env_of: dict[str, int] = {}  # game id -> env
        self.state: dict[int, GameState] = {}
        self._pending: dict[str, dict[str, Any]] = {}  # request id -> frame, resent when rate limited
        self._challenge_env: dict[str, int] = {}  # request id of a challenge -> env
        self._min_ply: dict[int, int] = {}  # a game is settled when the LLM is to move at this ply or later
        self._n = 0

    def _send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def _recv(self) -> dict[str, Any]:
        frame = json.loads(self.ws.recv(timeout=self.timeout))
        self.frames += 1
        return frame

    def _request(self, frame: dict[str, Any]) -> None:
        self._n += 1
        frame = dict(frame, id=f"r{self._n}")
        self._pending[frame["id"]] = frame
        self._send(frame)

    def _settled(self, env: int) -> bool:
        s = self.state.get(env)
        return s is not None and (s.over or (not s.board.is_over and s.board.turn is self.seat[env]
                                                  and s.board.ply >= self._min_ply[env]))

    def _pump(self, envs: Sequence[int]) -> dict[int, GameState]:
        """Read frames until every game of ``envs`` is over or waits for the LLM's move."""
        waiting = set(envs)
        deadline = time.monotonic() + self.timeout
        while any(not self._settled(e) for e in waiting):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not answer within {self.timeout:.0f} s")
            f = self._recv()
            kind = f.get("type")
            rid = f.get("id")
            if kind == "error":
                if f.get("code") == "rate_limited" and rid in self._pending:
                    time.sleep(0.05)
                    self._send(self._pending[rid])
                    continue
                raise RuntimeError(f"the server refused a request: [{f.get('code')}] {f.get('message')}")
            if rid is not None:
                self._pending.pop(rid, None)
            if kind == "challenge_sent" and isinstance(rid, str) and rid.startswith("r"):
                env = self._challenge_env.pop(rid, None)
                if env is not None:
                    self.game_of[env] = f["challenge_id"]
                    self.env_of[f["challenge_id"]] = env
                continue
            if kind == "challenge_declined":
                raise RuntimeError(f"the server declined a game: {f.get('reason')}")
            gid = f.get("game_id")
            env = self.env_of.get(gid) if gid is not None else None
            if env is None:
                continue
            if kind in ("game_start", "state"):
                board = Board(f["board"])
                prev = self.state.get(env)
                if prev is None or not prev.over:  # a game is over only with its game_over (which names the reason)
                    self.state[env] = GameState(board, game_id=gid)
            elif kind == "game_over":
                self.state[env] = GameState(Board(f["board"]), over=True, illegal=f.get("reason") == "illegal_move",
                                            game_id=gid)
                if f.get("reason") not in ("line", "full_board", "illegal_move"):
                    raise RuntimeError(f"game {gid} ended by {f.get('reason')!r}, not by play")
        return {e: self.state[e] for e in envs}

    def start(self, games: Sequence[tuple[int, Seat, int]]) -> dict[int, GameState]:
        for env, seat, seed in games:
            old = self.game_of.pop(env, None)
            if old is not None:
                self.env_of.pop(old, None)
            self.state.pop(env, None)
            self.seat[env] = seat
            self._min_ply[env] = 0
            self._request({"type": "challenge", "opponent": "minimax", "side": seat.value, "clock": self.clock,
                           "seed": seed})
            self._challenge_env[f"r{self._n}"] = env
        return self._pump([env for env, _, _ in games])

    def move(self, moves: Sequence[tuple[int, int]]) -> dict[int, GameState]:
        for env, cell in moves:
            # settled again once the server reports the game over or the LLM to move after this move
            self._min_ply[env] = self.state[env].board.ply + 1
            frame: dict[str, Any] = {"type": "move", "game_id": self.game_of[env], "cell": int(cell)}
            if self.forfeit:
                frame["on_illegal"] = "forfeit"
            self._request(frame)
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

        config = ServerConfig(host="127.0.0.1", port=0, db_path=":memory:", seed=seed, minimax_tiebreak="random",
                              move_clock=3600.0, rate=1e6, burst=100_000, flood_close=100_000, ping_interval=None)
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

    results: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {"win": 0, "draw": 0, "loss": 0, "illegal": 0}
                                                                       for s in ("X", "O")})
    recent: list[tuple[str, str]] = field(default_factory=list)  # (seat, result) of the last games
    moves: int = 0
    push: float = 0.0
    steered: int = 0

    def add(self, seat: Seat, result: str, illegal: bool) -> None:
        r = self.results[seat.value]
        r[result] += 1
        r["illegal"] += int(illegal)
        self.recent.append((seat.value, result))
        del self.recent[:-1000]

    def recent_draw_rate(self, seat: str) -> float:
        games = [r for s, r in self.recent if s == seat]
        return sum(r == "draw" for r in games) / len(games) if games else float("nan")


class SteeringVecEnv(VecEnv):
    """``n_envs`` games at once against minimax through ``transport``; one batched LLM call
    per step (see the module docstring for rewards and seats)."""

    def __init__(self, actuator: LLMActuator, transport: Any, n_envs: int, config: EnvConfig) -> None:
        from gymnasium import spaces

        obs_space = spaces.Box(low=-1.0, high=np.inf if actuator.obs == "features" else 1.0,
                               shape=(actuator.obs_size,), dtype=np.float32)
        if actuator.codec.kind == "sparse":
            act_space: Any = spaces.MultiDiscrete(actuator.codec.nvec)
        else:
            act_space = spaces.Box(low=-1.0, high=1.0, shape=(actuator.codec.n_features,), dtype=np.float32)
        self.render_mode = None
        super().__init__(n_envs, obs_space, act_space)
        self.actuator = actuator
        self.transport = transport
        self.config = config
        self.rng = random.Random(config.seed)
        self.boards: list[Board] = [Board.empty()] * n_envs
        self.seats: list[Seat] = [Seat.X] * n_envs
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        self.log = EpisodeLog()
        self.games_started = 0
        self._actions: np.ndarray | None = None
        self.seconds = {"llm": 0.0, "transport": 0.0}

    def _new_games(self, envs: Sequence[int]) -> None:
        specs = []
        for e in envs:
            if self.config.seat == "both":
                seat = Seat.O if self.rng.random() < self.config.p_o else Seat.X
            else:
                seat = Seat(self.config.seat)
            self.seats[e] = seat
            specs.append((e, seat, self.rng.randrange(2 ** 62)))
            self.games_started += 1
        t = time.perf_counter()
        states = self.transport.start(specs)
        self.seconds["transport"] += time.perf_counter() - t
        for e in envs:
            if states[e].over:  # cannot happen against minimax (the LLM always gets a move)
                raise RuntimeError(f"a game of env {e} ended before the LLM moved")
            self.boards[e] = states[e].board

    def reset(self) -> np.ndarray:
        self._new_games(range(self.num_envs))
        self.returns[:] = 0
        self.lengths[:] = 0
        return self.actuator.observe(self.boards)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        assert self._actions is not None, "step_async first"
        t = time.perf_counter()
        outs: list[MoveOutcome] = self.actuator.act(self.boards, self._actions)
        self.seconds["llm"] += time.perf_counter() - t
        t = time.perf_counter()
        states = self.transport.move([(e, o.cell) for e, o in enumerate(outs)])
        self.seconds["transport"] += time.perf_counter() - t
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = []
        last_obs = self.actuator.observe(self.boards)
        for e, o in enumerate(outs):
            self.log.moves += 1
            self.log.push += o.norm_ratio
            self.log.steered += o.n_steered
            rewards[e] = -self.config.push_cost * o.norm_ratio
            s = states[e]
            if self.config.shaping == "value":
                rewards[e] += potential(s.board, self.seats[e], s.illegal) - potential(self.boards[e], self.seats[e])
            if s.over:
                result = result_of(self.seats[e], s)
                if self.config.shaping == "none":
                    rewards[e] += REWARD[result]
                dones[e] = True
                self.log.add(self.seats[e], result, s.illegal)
                infos[e] = {"terminal_observation": last_obs[e], "result": result, "seat": self.seats[e].value,
                            "illegal": s.illegal, "episode": {"r": float(self.returns[e] + rewards[e]),
                                                             "l": int(self.lengths[e] + 1), "t": 0.0}}
                finished.append(e)
            else:
                self.boards[e] = s.board
        self.returns += rewards
        self.lengths += 1
        if finished:
            self._new_games(finished)
            self.returns[finished] = 0
            self.lengths[finished] = 0
        return self.actuator.observe(self.boards), rewards, dones, infos

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

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
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
