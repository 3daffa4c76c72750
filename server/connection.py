"""The WebSocket side of one connection: whole text messages handed to the arena as they
are parsed, and outgoing frames written in one socket write per loop turn.

Both sit on websockets' own connection (``websockets.asyncio.server.ServerConnection``)
and its Sans-I/O protocol object: the handshake, framing, limits, pings and the closing
handshake stay the library's. What changes is the path of a message:

* in: :class:`ArenaConnection` hands each complete, valid UTF-8 text frame to the arena
  from ``data_received`` itself, instead of queueing it for a task that awaits ``recv()``
  (one task switch less per message). Anything else (a fragmented or binary message,
  invalid UTF-8) goes to the library's queue from then on, so order is kept and the
  library answers it as it always did (1007 for invalid UTF-8, ...);
* out: :class:`Peer` queues a connection's frames and writes all it is due at the end of a
  loop turn in one ``transport.write`` (a move's ``state`` and the house bot's reply go out
  in one TCP segment), after the records they speak of are committed.

docs/PERFORMANCE.md has the measurements.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import DATA_OPCODES, TEXT, Frame, apply_mask
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

from server.effects import Close

__all__ = ["ArenaConnection", "Peer", "deliver"]

log = logging.getLogger("autosteer.server")
_OPEN = State.OPEN
_EARLY_MAX = 64  # messages kept before the connection's handler starts
_PARSE_CODE = Protocol.parse.__code__  # the library's frame parser (a generator)
_AT_EOF_CODE = StreamReader.at_eof.__code__  # where it waits between two frames
_TEXT_FIN = 0x81  # first header byte of a whole text frame: FIN, no RSV bits, opcode 1


class ArenaConnection(ServerConnection):
    """A server connection that hands whole text messages to ``on_text`` as they arrive.

    Messages that arrive before the handler registers (:meth:`receive_inline`) are kept
    and handed over first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inline = True  # whole text frames go straight to on_text
        self._on_text: Callable[[str], None] | None = None
        self._early: list[str] = []
        self._inline_over: asyncio.Future[None] = self.loop.create_future()
        # the largest frame data_received cuts itself: the parser's own limit for a frame
        # that starts a message (message and fragment limits are fixed at construction)
        sizes = [n for n in (self.protocol.max_message_size, self.protocol.max_fragment_size) if n is not None]
        self._frame_limit: int | None = min(sizes) if sizes else None

    def data_received(self, data: bytes) -> None:
        """Whole, masked text frames are cut from ``data`` here; the rest goes to the library.

        websockets parses frames with a generator-based coroutine per connection
        (:meth:`Protocol.parse`), which costs more than the rest of a small message's way
        in. When that parser waits between two frames with nothing buffered, it is
        equivalent to cut the whole text frames at the start of ``data`` here and hand
        them to :meth:`process_event`, as the parser would (for such a frame its
        ``recv_frame`` only queues the frame). Anything else — a control, binary or
        fragmented frame, one over the size limit, unmasked or with RSV bits, an incomplete
        frame — and everything after it is fed to the library's parser, which finds it at
        a frame's start and answers it as it always does (pongs, 1002, 1009, ...)."""
        protocol = self.protocol
        if protocol.state is not _OPEN or protocol.debug or not _between_frames(protocol):
            super().data_received(data)
            return
        limit = self._frame_limit
        pos, end = 0, len(data)
        while end - pos >= 6 and data[pos] == _TEXT_FIN:
            length = data[pos + 1] ^ 0x80  # the mask bit must be set: then this is the length field
            at = pos + 2
            if length == 126:
                length = int.from_bytes(data[at:at + 2], "big")
                at += 2
            elif length > 126:  # 127 (a 64-bit length) or an unmasked frame (mask bit clear)
                break
            if (limit is not None and length > limit) or at + 4 + length > end:
                break
            payload = apply_mask(data[at + 4:at + 4 + length], data[at:at + 4])
            pos = at + 4 + length
            self.process_event(Frame(TEXT, payload))
            if protocol.state is not _OPEN:  # the handler closed the connection
                break
        if pos < end:
            super().data_received(data[pos:] if pos else data)

    def process_event(self, event: Any) -> None:
        if self.inline and self.request is not None and isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            if self._take_inline(event):
                return
            self._stop_inline()  # from here on the library assembles messages, in order
        super().process_event(event)

    def _take_inline(self, frame: Frame) -> bool:
        """Hand on a whole, valid UTF-8 text frame (or keep it for the handler); False: it
        needs the library's path (a fragment, binary, invalid UTF-8 — answered with 1007 —,
        or a burst before the handler started, which the library's queue flow-controls)."""
        if frame.opcode is not TEXT or not frame.fin:
            return False
        try:
            text = bytes(frame.data).decode()
        except UnicodeDecodeError:
            return False
        if self._on_text is None:
            if len(self._early) >= _EARLY_MAX:
                return False
            self._early.append(text)
            return True
        try:
            self._on_text(text)
        except Exception:  # a bug in the handler: the connection ends as a failed handler's would
            log.exception("handling a message failed")
            self._stop_inline()
            asyncio.ensure_future(self.close(1011, "internal error"))
        return True

    def _stop_inline(self) -> None:
        self.inline = False
        if not self._inline_over.done():
            self._inline_over.set_result(None)

    async def receive_inline(self, on_text: Callable[[str], None]) -> None:
        """Hand every message to ``on_text`` while this connection can: returns when it
        closes, or when a message needs the library's assembler (then ``async for`` over
        the connection goes on with the rest, in order)."""
        early, self._early = self._early, []
        for text in early:
            on_text(text)
        self._on_text = on_text
        if self.inline:
            await asyncio.wait([self._inline_over, self.connection_lost_waiter], return_when=asyncio.FIRST_COMPLETED)
        self._on_text = None


def _between_frames(protocol: Protocol) -> bool:
    """True when ``protocol``'s parser waits for the first byte of a frame: nothing of a
    frame or a fragmented message is buffered or half parsed."""
    reader = protocol.reader
    if reader.buffer or reader.eof or protocol.current_size is not None:
        return False
    gen = protocol.parser  # the server's parse(), which delegates to Protocol.parse() once open
    while (code := getattr(gen, "gi_code", None)) is not None:
        if code is _PARSE_CODE:
            return getattr(gen.gi_yieldfrom, "gi_code", None) is _AT_EOF_CODE
        gen = gen.gi_yieldfrom
    return False


class Peer:
    """One connection's outgoing frames, written in order straight to its socket.

    Frames are written from the loop's own callbacks, not by a task per connection: all
    frames a connection is due in one loop turn go out in **one** socket write (two or
    more WebSocket frames in one TCP segment — a move and the house bot's reply, say).
    A frame pushed ``after`` a records commit (a future) waits for it, and so does every
    frame queued behind it: no client hears of a game that is not stored yet. A client
    that lets ``limit_bytes`` pile up unread (in this queue and the socket's buffer) is
    closed with 1008."""

    def __init__(self, ws: Any, limit_bytes: int) -> None:
        self.ws = ws
        self.limit_bytes = limit_bytes
        self.queued_bytes = 0
        self.buffered = 0  # bytes the socket had not taken after the last write
        self.queue: collections.deque[bytes | Close | asyncio.Future[None]] = collections.deque()
        self.closed = False  # nothing more is queued
        self.drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # closed and all written
        self._closing: asyncio.Task[None] | None = None
        self._barrier: asyncio.Future[None] | None = None  # the last commit queued

    def push(self, item: bytes | Close, after: asyncio.Future[None] | None = None) -> None:
        """Queue ``item`` (written by the next :meth:`deliver`)."""
        if self.closed:
            return
        if after is not None and after is not self._barrier and not after.done():
            self._barrier = after
            self.queue.append(after)
        if isinstance(item, Close):
            self.closed = True
        elif self.queued_bytes + len(item) + self.buffered > self.limit_bytes:  # the client does not read
            self.queue.clear()
            self.queued_bytes = 0
            item = Close(0, 1008, "not reading its frames")
            self.closed = True
        else:
            self.queued_bytes += len(item)
        self.queue.append(item)

    def stop(self) -> None:
        """Nothing more will be queued: the peer is drained once what is queued is written."""
        self.closed = True
        self.deliver()

    def deliver(self) -> None:
        """Write every queued frame up to the first commit not yet made, in one socket write."""
        protocol = self.ws.protocol
        is_open = protocol.state is _OPEN  # no frame written below changes it
        wrote = False
        queue = self.queue
        while queue:
            item = queue[0]
            if isinstance(item, asyncio.Future):
                if not item.done():
                    break  # the records these frames speak of are not committed yet
                queue.popleft()
                continue
            queue.popleft()
            if isinstance(item, Close):
                queue.clear()
                self._closing = asyncio.ensure_future(self._close(item))
                break
            self.queued_bytes -= len(item)
            if is_open:
                protocol.send_text(item)  # UTF-8 JSON, sent as a text frame
                wrote = True
        if wrote:
            try:
                self.ws.transport.write(b"".join(protocol.data_to_send()))
                self.buffered = self.ws.transport.get_write_buffer_size()  # what the kernel did not take
            except Exception:  # the socket failed: websockets sees the connection lost
                log.debug("writing to a connection failed", exc_info=True)
        if self.closed and not queue and self._closing is None and not self.drained.done():
            self.drained.set_result(None)

    async def _close(self, item: Close) -> None:
        try:
            await self.ws.close(item.code, item.reason)
        except Exception:
            log.debug("closing a connection failed", exc_info=True)
        finally:
            if not self.drained.done():
                self.drained.set_result(None)


def deliver(peers: list[Peer]) -> None:
    for peer in peers:
        peer.deliver()
