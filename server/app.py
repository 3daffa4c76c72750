"""The game server's I/O layer: websockets in, frames out, records on disk; ``autosteer-server serve``.

All game logic lives in :class:`server.arena.arena.Arena`; this module only moves frames
between sockets and the arena, runs the timer that fires move clocks and grace periods,
writes records, and answers ``GET /healthz`` on the same port. Each connection has its
own outgoing queue, written straight to its socket at the end of a loop turn (one write for
all the frames it is due), so a slow client never stalls anyone else; one that falls
``send_queue_bytes`` behind is disconnected.

>>> import asyncio
>>> async def demo():
...     async with serve_arena(ServerConfig(port=0, db_path=":memory:")) as srv:
...         return srv.url.startswith("ws://127.0.0.1:")
>>> asyncio.run(demo())
True
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http
import itertools
import json
import logging
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Protocol

from server.arena.arena import Arena, Close, GameEnded, GameEvent, RelayGame, Send, ServerConfig, StoreGame
from server.connection import ArenaConnection, Peer, deliver
from server.log_lines import LogLineFormatter, format_game_line
from server.protocol import encode_frame
from server.records.writer import RecordWriter, store_records
from server.records.sql import GameRecords, RecordsError, describe_target
from server.waiting import event_or_timeout

if TYPE_CHECKING:
    from server.events.cluster import ClusterEvents

__all__ = ["ServerConfig", "ArenaServer", "serve_arena", "add_arguments", "run"]

log = logging.getLogger("autosteer.server")

GameOverHook = Callable[[dict[str, Any]], None]


class EventSink(Protocol):
    """A transport for the arena's game events (:class:`server.events.cluster.ClusterEvents`): it is
    handed every :class:`GameEvent` and :class:`RelayGame` effect, in order, and never blocks."""

    server_id: str
    remote: Any  # server.arena.relay.RemoteLobby | None

    async def start(self, server: "ArenaServer") -> None: ...
    def handle(self, effect: Any) -> None: ...
    def status(self) -> dict[str, Any]: ...
    async def stop(self) -> None: ...


class ArenaServer:
    """A running server: ``port``, ``url``, ``records`` and ``arena`` for callers and tests."""

    def __init__(
        self, config: ServerConfig, *, on_game_over: GameOverHook | None = None, events: EventSink | None = None
    ) -> None:
        self.config = config
        self.on_game_over = on_game_over
        self.events = events
        self.server_id = events.server_id if events is not None else None
        self.records: GameRecords | None = None
        self.arena: Arena | None = None
        self.port: int = config.port
        self.aborted_at_start = 0
        self._peers: dict[int, Peer] = {}
        self._ids = itertools.count(1)
        self._ws_server: Any = None
        self._timer_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._armed_for: float | None = None
        self._stopped = False
        self._pending: list[Any] = []  # effects taken from the arena, carried out once per loop turn
        self._flush_handle: asyncio.Handle | None = None
        self._writer: RecordWriter | None = None  # records are written by a child process (file databases, PostgreSQL)

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}"

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self.records = GameRecords(self.config.db_path)
        # sharing the store with other servers: only this server's unfinished games are its to abort
        self.aborted_at_start = self.records.abort_live(server_id=self.server_id)
        if self.aborted_at_start:
            log.warning("marked %d games left live by an earlier run as aborted", self.aborted_at_start)
        self.arena = Arena(
            self.config,
            load_record=self.records.get,
            list_records=self.records.summaries,
            find_records=self.records.find,
            remote=self.events.remote if self.events is not None else None,
            publish_events=self.events is not None,
        )
        if self.config.db_path != ":memory:":  # a second connection to ":memory:" would be another database
            self._writer = RecordWriter(
                self.config.db_path, asyncio.get_running_loop(), process=self.config.records_process
            )
        try:
            self._ws_server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                process_request=self._process_request,
                max_size=self.config.max_frame_bytes,
                ping_interval=self.config.ping_interval,
                ping_timeout=self.config.ping_interval,
                close_timeout=2.0,
                compression=None,  # frames are small: deflate cost more CPU than it saved bytes (docs/PERFORMANCE.md)
                server_header="autosteer-arena",
                create_connection=ArenaConnection,  # messages handed to the arena as they are parsed
            )
        except BaseException:  # e.g. the port is taken: leave nothing open
            if self._writer is not None:
                self._writer.close()
            self.records.close()
            raise
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._timer_task = asyncio.create_task(self._timer(), name="arena-timer")
        if self.events is not None:
            await self.events.start(self)

    async def stop(self) -> None:
        """Stop accepting, abort live games (stored and announced), close every connection
        with 1001 after its queued frames, and close the records. Idempotent."""
        if self._stopped or self.arena is None:
            return
        self._stopped = True
        self._ws_server.server.close()  # no new TCP connections
        self.arena.shutdown(time.time())
        self._apply(now=True)
        peers = list(self._peers.values())
        for p in peers:
            p.stop()
        if peers:  # let every connection flush its game_over / shutdown frames and close (1001)
            await asyncio.wait([p.drained for p in peers], timeout=3.0)
        self._ws_server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ws_server.wait_closed(), timeout=5.0)
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
        self._apply(now=True)  # records of anything that ended while closing
        if self._writer is not None:
            self._writer.close()
        if self.events is not None:
            await self.events.stop()
        if self.records is not None:
            self.records.close()

    # ------------------------------------------------------------------ HTTP
    def _process_request(self, connection: Any, request: Any) -> Any:
        if request.path.split("?", 1)[0] == "/healthz":
            assert self.arena is not None
            if getattr(request, "method", "GET") != "GET":
                response = connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "GET /healthz only\n")
                response.headers["Allow"] = "GET"
                return response
            body = self.arena.status()
            if self._writer is not None:
                body["records_writer"] = self._writer.status()
            if self.events is not None:
                body["mqtt"] = self.events.status()
            response = connection.respond(http.HTTPStatus.OK, json.dumps(body) + "\n")
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        return None

    # ------------------------------------------------------------------ connections
    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        arena = self.arena
        assert arena is not None
        conn_id = next(self._ids)
        address = ws.remote_address[0] if ws.remote_address else "unknown"
        peer = Peer(ws, self.config.send_queue_bytes)
        self._peers[conn_id] = peer
        try:
            accepted = arena.connect(conn_id, address, time.time())
            self._apply()
            if accepted:

                def on_message(message: str | bytes) -> None:
                    arena.receive(conn_id, message, time.time())
                    self._apply()

                if isinstance(ws, ArenaConnection):
                    ws.before_close = lambda: self._write_replies(peer)
                    await ws.receive(on_message)
                else:
                    async for message in ws:
                        on_message(message)
        except ConnectionClosed:
            pass
        finally:
            if not self._stopped:
                arena.disconnect(conn_id, time.time())
                self._apply(now=True)  # this connection's last frames (a refusal, its close) before it stops
            peer.stop()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(peer.drained), timeout=3.0)
            if isinstance(ws, ArenaConnection):
                ws.release_output()  # a close held for replies that never came (a commit that failed to end)
            self._peers.pop(conn_id, None)

    def _write_replies(self, peer: Peer) -> bool:
        """The connection of ``peer`` is about to close: carry out the arena's effects now
        and write its frames. True while some wait for a records commit."""
        self._apply(now=True)
        peer.deliver()
        return bool(peer.queue)

    def apply_effects(self) -> None:
        """Carry out what the arena produced since the last call (for event transports that
        feed it from outside a connection, e.g. relayed frames)."""
        self._apply()

    def _apply(self, *, now: bool = False) -> None:
        """Take the arena's effects and carry them out at the end of this event-loop turn
        (``now``: at once), so that every record stored in a turn shares one transaction."""
        assert self.arena is not None
        self._pending.extend(self.arena.drain())
        if now:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        deadline = self.arena.next_deadline()
        if deadline != self._armed_for:
            self._wake.set()

    def _flush(self) -> None:
        """Carry out the pending effects: store records first (one transaction), so no client
        is told a game is over before its record is on disk; then queue frames and closes."""
        self._flush_handle = None
        effects, self._pending = self._pending, []
        stores = {e.record["game_id"]: e.record for e in effects if isinstance(e, StoreGame)}  # the latest per game
        # sharing the store with other servers: every record names the server that played it
        owned = [r if self.server_id is None else {**r, "server_id": self.server_id} for r in stores.values()]
        committed: asyncio.Future[None] | None = None
        if owned and self._writer is not None:
            committed = self._writer.submit(owned)
        elif owned:
            assert self.records is not None
            store_records(self.records, owned)
        encoded: dict[int, bytes] = {}  # a broadcast frame is encoded once for all its recipients
        touched: dict[Peer, None] = {}  # the peers with frames to write, in order: each gets one socket write
        for effect in effects:
            if isinstance(effect, Send):
                peer = self._peers.get(effect.conn_id)
                if peer is not None:
                    data = encoded.get(id(effect.frame))
                    if data is None:
                        data = encoded[id(effect.frame)] = encode_frame(effect.frame)
                    peer.push(data, committed)
                    touched[peer] = None
            elif isinstance(effect, Close):
                peer = self._peers.get(effect.conn_id)
                if peer is not None:
                    peer.push(effect, committed)
                    touched[peer] = None
            elif isinstance(effect, (GameEvent, RelayGame)):
                if self.events is not None:
                    try:
                        self.events.handle(effect)
                    except Exception:  # events are best effort; play goes on
                        log.exception("publishing a game event failed")
            elif isinstance(effect, GameEnded) and self.on_game_over is not None:
                try:
                    self.on_game_over(effect.record)
                except Exception:
                    log.exception("on_game_over hook failed")
        if touched:
            peers = list(touched)
            if committed is None:
                deliver(peers)
            else:  # written once the records are committed (commits resolve in order)
                committed.add_done_callback(lambda _: deliver(peers))

    async def _timer(self) -> None:
        assert self.arena is not None
        while True:
            self._armed_for = deadline = self.arena.next_deadline()
            # not asyncio.wait_for: stop() cancels this task, and wait_for could swallow that (server.waiting)
            await event_or_timeout(self._wake, None if deadline is None else max(0.0, deadline - time.time()))
            self._wake.clear()
            try:
                self.arena.tick(time.time())
                self._apply()
            except Exception:
                log.exception("arena timer failed")


@contextlib.asynccontextmanager
async def serve_arena(
    config: ServerConfig | None = None, *, on_game_over: GameOverHook | None = None, events: EventSink | None = None
) -> AsyncIterator[ArenaServer]:
    """Run a server for the ``async with`` body; leaving it shuts down cleanly (as SIGTERM does)."""
    server = ArenaServer(config or ServerConfig(), on_game_over=on_game_over, events=events)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    parser.add_argument("--host", default=d.host, help="address to listen on")
    parser.add_argument("--port", type=int, default=d.port, help="TCP port (0 picks a free one)")
    parser.add_argument(
        "--db",
        default=d.db_path,
        help="game records: a SQLite file (':memory:' keeps none) or a "
        "postgresql://user@host:port/dbname URL (several servers may share it)",
    )
    parser.add_argument("--move-clock", type=float, default=d.move_clock, help="default seconds per move")
    parser.add_argument("--grace", type=float, default=d.grace, help="seconds a disconnected player has to resume")
    parser.add_argument(
        "--challenge-timeout",
        type=float,
        default=d.challenge_timeout,
        help="seconds before an unanswered offer is declined",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for house bots and random seats (reproducible games)"
    )
    parser.add_argument(
        "--no-house-bots",
        action="store_true",
        help="do not serve the in-process house bots (minimax, random, easy, medium, hard)",
    )
    parser.add_argument(
        "--minimax-tiebreak",
        choices=("random", "first", "exploit"),
        default=d.minimax_tiebreak,
        help="how the house minimax bot picks among equally good moves",
    )
    parser.add_argument(
        "--max-frame-bytes", type=int, default=d.max_frame_bytes, help="larger frames close the connection (1009)"
    )
    parser.add_argument("--rate", type=float, default=d.rate, help="messages per second allowed per connection")
    parser.add_argument("--burst", type=int, default=d.burst, help="messages a connection may send at once")
    parser.add_argument(
        "--flood-close", type=int, default=d.flood_close, help="rate-limited messages in a row before closing (1008)"
    )
    parser.add_argument(
        "--max-connections-per-address", type=int, default=d.max_connections_per_address, help="per client address"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=d.max_connections,
        help="connections in all (raise the open-file limit to match)",
    )
    parser.add_argument("--max-spectators", type=int, default=d.max_spectators, help="spectators per game")
    parser.add_argument(
        "--max-live-games-per-session",
        type=int,
        default=d.max_live_games_per_session,
        help="live games and open challenges one session may have opened (challenge, arrange)",
    )
    parser.add_argument(
        "--max-live-games-per-address",
        type=int,
        default=d.max_live_games_per_address,
        help="the same, for all sessions from one client address together",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print a line per finished game")
    parser.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish game events and this server's status to an MQTT broker, "
        "mqtt://host[:port][/prefix] (default prefix autosteer/v1); servers on one broker list each "
        "other's bots and games (docs/MQTT.md)",
    )
    parser.add_argument(
        "--server-id",
        help="this server's name on the broker and in shared records (default: HOSTNAME-PORT; set it when --port is 0)",
    )
    parser.add_argument(
        "--mqtt-queue",
        type=int,
        default=10_000,
        help="messages held for the broker while it is away; more are dropped (counted in /healthz)",
    )
    parser.add_argument(
        "--records-writer",
        choices=("process", "thread"),
        default="process",
        help="store game records from a child process (beside the event loop) or a thread of the server's",
    )
    parser.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="uvloop (libuv) serves more messages per CPU second; asyncio is the standard loop",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        move_clock=args.move_clock,
        grace=args.grace,
        challenge_timeout=args.challenge_timeout,
        seed=args.seed,
        house_bots=not args.no_house_bots,
        minimax_tiebreak=args.minimax_tiebreak,
        max_frame_bytes=args.max_frame_bytes,
        rate=args.rate,
        burst=args.burst,
        flood_close=args.flood_close,
        max_connections_per_address=args.max_connections_per_address,
        max_spectators=args.max_spectators,
        max_connections=args.max_connections,
        max_live_games_per_session=args.max_live_games_per_session,
        max_live_games_per_address=args.max_live_games_per_address,
        records_process=args.records_writer == "process",
    )


def run(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(LogLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    events = None
    # Every frame allocates a few dicts; with the default threshold (700) the cyclic GC ran ~40
    # times a second under load and took ~15% of the CPU (docs/PERFORMANCE.md). The server's
    # data has few cycles: collect far less often.
    gc.set_threshold(10_000, 20, 20)
    try:
        config = config_from_args(args)
        if args.mqtt:
            from server.events.cluster import ClusterEvents, default_server_id

            if args.mqtt_queue < 1:
                raise ValueError("--mqtt-queue must be at least 1")
            events = ClusterEvents(
                args.mqtt, args.server_id or default_server_id(config.port), queue_size=args.mqtt_queue
            )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        coro = _serve_until_signal(config, quiet=args.quiet, events=events)
        if args.event_loop == "uvloop":
            import uvloop

            return uvloop.run(coro)
        return asyncio.run(coro)
    except RecordsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def read_banner_url(proc: "subprocess.Popen[str]", what: str = "server") -> str:
    """The URL in the first line a ``serve`` process prints ("… listening on ws://HOST:PORT …"),
    for scripts and tests that start one; a process that printed something else is killed
    and its error output raised."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (ws://[^\s;]+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"{what} did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return match.group(1)


async def _serve_until_signal(config: ServerConfig, *, quiet: bool, events: ClusterEvents | None = None) -> int:
    finished = 0

    def on_game_over(record: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        if not quiet:
            print(format_game_line(record), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve_arena(config, on_game_over=on_game_over, events=events) as server:
        house = ", ".join(server.arena.house) if server.arena and server.arena.house else "none"
        mqtt = f"; events to {events.link.url} as server {events.server_id}" if events is not None else ""
        print(
            f"autosteer-arena listening on {server.url} (healthz: http://{server.url[5:]}/healthz); "
            f"records in {describe_target(config.db_path)}; house bots: {house}{mqtt}",
            flush=True,
        )
        if server.aborted_at_start:
            print(f"marked {server.aborted_at_start} games left live by an earlier run as aborted", flush=True)
        await stop.wait()
        print("stopping: aborting live games and closing connections", flush=True)
    print(f"stopped cleanly after {finished} games", flush=True)
    return 0
