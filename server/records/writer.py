"""The records writer: a child process that stores the server's game records, so SQLite's
(or PostgreSQL's) work runs beside the event loop instead of taking turns with it.

A writer *thread* shares the interpreter lock with the event loop: measured under load
(docs/PERFORMANCE.md) it ran almost wholly in turn with the loop, and storing took about
a third of the server's time per move. The child has an interpreter of its own.

Protocol on the child's pipes, one line per batch:

* in (the server → the child): a JSON array of whole records, one line per batch (a loop
  turn's writes), newline-terminated;
* out (the child → the server): after each commit, the number of batches it covered,
  as ASCII digits and a newline.

The child reads every complete line waiting on its pipe, stores all their records in one
transaction (:func:`store_records`: a record that cannot be stored is logged, the others
are kept), then acknowledges. At the end of its input (the server closed the pipe, or was
killed) it stores what it has and exits. The server keeps each batch until it is
acknowledged; if the child dies, the server stores the unacknowledged batches itself and
from then on writes on its own thread (:class:`RecordWriter` does both).

``python -m server.records.writer`` runs the child (the server starts it, with the records
target in ``AUTOSTEER_RECORDS_TARGET``: a PostgreSQL URL may hold a password, which the
command line would show to every user of the machine; ``python -m server.records.writer TARGET``
also works by hand).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
from typing import Any

import orjson

from server.records.sql import GameRecords, json_bytes

__all__ = ["RecordWriter", "store_records", "encode_batch"]

log = logging.getLogger("autosteer.server")
_TARGET_ENV = "AUTOSTEER_RECORDS_TARGET"
_PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ: a larger pipe, so a burst of writes rarely waits
_F_SETPIPE_SZ = 1031


def store_records(store: GameRecords, records: list[dict[str, Any]]) -> None:
    """Save ``records`` in one transaction; if that fails (a bad record such as NaN, or the
    database dropped the connection), each record on its own: one that cannot be stored is
    logged, the others are kept."""
    records = list({record["game_id"]: record for record in records}.values())  # each a whole snapshot: the latest wins
    try:
        with store.transaction():
            for record in records:
                store.save(record)
    except Exception:
        for record in records:
            try:
                store.save(record)
            except Exception:  # the game goes on; the failure is logged loudly
                log.exception("could not store game %s", record.get("game_id"))


def encode_batch(records: list[dict[str, Any]]) -> bytes:
    """One batch as a line of JSON (:func:`server.records.sql.json_bytes`: NaN is refused, where
    orjson would write null): a record that cannot be encoded is logged and left out."""
    parts = []
    for record in records:
        moves = record.get("moves") or []
        illegal = record.get("illegal_move")
        try:
            parts.append(json_bytes(record, [*moves, illegal] if illegal else moves))  # the attempt has a trace too
        except (TypeError, ValueError):
            log.exception("could not store game %s", record.get("game_id"))
    return b"[" + b",".join(parts) + b"]\n"


class RecordWriter:
    """The server's side: :meth:`submit` a loop turn's records, get a future that is done
    once they are committed. Batches are committed in order.

    ``process=True`` stores through the child process; if it cannot start, or dies, the
    writer stores on a thread of its own (the same order and the same futures)."""

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop, *, process: bool = True) -> None:
        self.target = target
        self.loop = loop
        self.unacked: collections.deque[tuple[list[dict[str, Any]], asyncio.Future[None]]] = collections.deque()
        self._out = bytearray()  # encoded batches the pipe has not taken yet
        self._acks = b""
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread: _ThreadWriter | None = None  # the fallback
        if process:
            try:
                self._start_process()
            except OSError as exc:
                log.warning("records writer process did not start (%s); writing on a thread", exc)
                self.proc = None
        if self.proc is None:
            self._to_thread()

    # ------------------------------------------------------------------ the server's side
    def submit(self, records: list[dict[str, Any]]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self.loop.create_future()
        if self._thread is not None:
            self._thread.submit(records, done)
            return done
        self.unacked.append((records, done))
        self._out += encode_batch(records)
        self._flush_out()
        return done

    def close(self) -> None:
        """Store everything submitted so far, then stop (blocks until the child is done)."""
        if self.proc is not None:
            proc = self.proc
            with contextlib.suppress(Exception):
                assert proc.stdin is not None and proc.stdout is not None  # both pipes (_start_process)
                self.loop.remove_writer(proc.stdin.fileno())
                self.loop.remove_reader(proc.stdout.fileno())
            try:
                assert proc.stdin is not None and proc.stdout is not None
                os.set_blocking(proc.stdin.fileno(), True)
                if self._out:
                    proc.stdin.write(bytes(self._out))
                    self._out.clear()
                proc.stdin.close()
                os.set_blocking(proc.stdout.fileno(), True)
                rest = proc.stdout.read()
                code = proc.wait(timeout=60)
            except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
                log.error("records writer process failed while closing: %s", exc)
                proc.kill()
                code, rest = -1, b""
            self._on_acks(rest)
            self.proc = None
            if code != 0 or self.unacked:
                log.error(
                    "records writer process exited with %s and %d batches unconfirmed; storing them here",
                    code,
                    len(self.unacked),
                )
                self._to_thread()
        if self._thread is not None:
            self._thread.close()

    def status(self) -> dict[str, Any]:
        return {"process": self.proc is not None, "pending_batches": len(self.unacked)}

    # ------------------------------------------------------------------ the pipes
    def _start_process(self) -> None:
        # the target goes in the environment, not the command line: a PostgreSQL URL may hold a password
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **{_TARGET_ENV: self.target})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.records.writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,
        )  # a Ctrl-C in the terminal is the server's to handle
        assert self.proc.stdin is not None and self.proc.stdout is not None
        for fd in (self.proc.stdin.fileno(), self.proc.stdout.fileno()):
            os.set_blocking(fd, False)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.proc.stdin.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self.loop.add_reader(self.proc.stdout.fileno(), self._read_acks)

    def _flush_out(self) -> None:
        proc = self.proc
        if proc is None or not self._out:
            return
        assert proc.stdin is not None
        try:
            n = os.write(proc.stdin.fileno(), self._out)
        except BlockingIOError:
            n = 0
        except OSError:  # the child is gone: its acks' end says so
            return
        del self._out[:n]
        if self._out:
            self.loop.add_writer(proc.stdin.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.loop.remove_writer(self.proc.stdin.fileno())
        self._flush_out()

    def _read_acks(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            data = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._on_acks(data)
            return
        self._child_died()  # end of the child's output before close(): it died

    def _on_acks(self, data: bytes) -> None:
        self._acks += data
        *lines, self._acks = self._acks.split(b"\n")
        done = []
        for line in lines:
            for _ in range(int(line or 0)):
                if self.unacked:
                    done.append(self.unacked.popleft()[1])
        _resolve(done)

    def _child_died(self) -> None:
        proc, self.proc = self.proc, None
        assert proc is not None and proc.stdout is not None
        with contextlib.suppress(Exception):
            self.loop.remove_reader(proc.stdout.fileno())
            assert proc.stdin is not None  # a pipe (_start_process)
            self.loop.remove_writer(proc.stdin.fileno())
        log.error(
            "records writer process ended (exit code %s) with %d batches unconfirmed; storing them "
            "and every later record on a thread",
            proc.poll(),
            len(self.unacked),
        )
        self._out.clear()
        self._to_thread()

    def _to_thread(self) -> None:
        """Store from now on on a thread, starting with the unconfirmed batches: stored again,
        whole, in order (saves are idempotent)."""
        self._thread = _ThreadWriter(self.target, self.loop)
        while self.unacked:
            records, done = self.unacked.popleft()
            self._thread.submit(records, done)


class _ThreadWriter:
    """The fallback: stores on a thread, woken only when idle; one call back into the loop
    resolves every batch of a commit."""

    _WAKE, _STOP = 0, 1

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop) -> None:
        import queue
        import threading

        self.records = GameRecords(target)
        self.loop = loop
        self.lock = threading.Lock()
        self.pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self.idle = False  # waiting for a token: the next submit sends one
        self.tokens: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="arena-records", daemon=True)
        self.thread.start()

    def submit(self, records: list[dict[str, Any]], done: asyncio.Future[None]) -> None:
        with self.lock:
            self.pending.append((records, done))
            wake, self.idle = self.idle, False
        if wake:
            self.tokens.put(self._WAKE)

    def close(self) -> None:
        self.tokens.put(self._STOP)
        self.thread.join()

    def _run(self) -> None:
        stopping = False
        while True:
            with self.lock:
                batch, self.pending = self.pending, []
                self.idle = not batch
            if batch:
                try:
                    store_records(self.records, [record for records, _ in batch for record in records])
                except Exception:
                    log.exception("could not commit %d game records", sum(len(r) for r, _ in batch))
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    self.loop.call_soon_threadsafe(_resolve, [done for _, done in batch])
            elif stopping:
                break
            else:
                stopping = self.tokens.get() == self._STOP
        self.records.close()


def _resolve(batch: list[asyncio.Future[None]]) -> None:
    for done in batch:
        if not done.done():
            done.set_result(None)


# --------------------------------------------------------------------------- the child
def child_main(target: str) -> int:
    """Read batches from stdin, store them, acknowledge on stdout; exit at the end of input."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s records writer: %(message)s")
    store = GameRecords(target)
    fd_in, fd_out = sys.stdin.buffer.fileno(), sys.stdout.buffer.fileno()
    buffered = b""
    try:
        while True:
            chunk = os.read(fd_in, _PIPE_BYTES)
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            if lines:
                records: list[dict[str, Any]] = []
                for line in lines:
                    try:
                        records.extend(orjson.loads(line))
                    except orjson.JSONDecodeError:
                        records.extend(json.loads(line))  # integers beyond 64 bits
                store_records(store, records)
                _write_all(fd_out, b"%d\n" % len(lines))
            if not chunk:  # the server closed the pipe or is gone
                return 0
    finally:
        store.close()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


if __name__ == "__main__":
    sys.exit(child_main(os.environ.get(_TARGET_ENV) or sys.argv[1]))
