"""The WebSocket side of one connection: every message handed to the arena as it is
parsed, the arena's replies written before the connection ends, and outgoing frames written
in one socket write per loop turn.

Both sit on websockets' own connection (``websockets.asyncio.server.ServerConnection``)
and its Sans-I/O protocol object: the handshake, framing, limits, pings and the closing
handshake stay the library's. What changes is the path of a message:

* in: :class:`ArenaConnection` assembles every message itself and hands it to the arena
  from ``data_received``, instead of queueing it for a task that awaits ``recv()`` (one
  task switch less per message). Whole text frames are cut from the socket's data without
  the library's parser; fragmented and binary messages are joined from the frames the
  parser yields. What the library's assembler refuses is refused with the same close:
  invalid UTF-8 in a text message (1007), a message of more than ``MAX_FRAGMENTS`` frames
  (1009);
* at the end: before the connection sends a close frame or ends its stream, for whatever
  reason (a violation, the client's close frame, the client's end of stream), the replies
  to every message handed over are written; replies that wait for a records commit hold
  the close back until they are written. Bytes that come with the upgrade request wait for
  the handler, and so does an end of stream, so they are answered too;
* out: :class:`Peer` queues a connection's frames and writes all it is due at the end of a
  loop turn in one ``transport.write`` (a move's ``state`` and the ``game_over`` it brings go
  out in one TCP segment), after the records they speak of are committed.

docs/PERFORMANCE.md has the measurements.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable

from websockets.asyncio.messages import MAX_FRAGMENTS
from websockets.asyncio.server import ServerConnection
from websockets.frames import CLOSE, CONT, DATA_OPCODES, TEXT, Frame, apply_mask
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

from server.arena.effects import Close

__all__ = ["ArenaConnection", "Peer", "deliver"]

log = logging.getLogger("autosteer.server")
_OPEN = State.OPEN
_CONNECTING = State.CONNECTING
_EARLY_BYTES = 1 << 20  # bytes kept before the connection's handler starts; reading pauses beyond
_PARSE_CODE = Protocol.parse.__code__  # the library's frame parser (a generator)
_AT_EOF_CODE = StreamReader.at_eof.__code__  # where it waits between two frames
_TEXT_FIN = 0x81  # first header byte of a whole text frame: FIN, no RSV bits, opcode 1
_REQUEST_END = b"\r\n\r\n"  # the empty line that ends the upgrade request's headers

Message = str | bytes


class ArenaConnection(ServerConnection):
    """A server connection that hands every message to the handler's ``on_message`` as it
    arrives (:meth:`receive`), and writes the arena's replies before it closes.

    The handler sets :attr:`before_close`: called when the connection is about to send a
    close frame or end its stream, it writes the replies due and returns True while some
    still wait (a records commit); the library's output is then held (:attr:`output_held`)
    until :meth:`release_output`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_close: Callable[[], bool] | None = None
        self.output_held: list[bytes] | None = None  # the library's output (close frame, end of stream) behind replies
        self._on_message: Callable[[Message], None] | None = None
        self._early: bytearray | None = bytearray()  # bytes after the upgrade request, until the handler starts
        self._early_paused = False
        self._early_eof = False
        self._request_tail = b""  # the end of the upgrade request read so far, to find its last line across reads
        self._parts: list[bytes] | None = None  # the frames of a fragmented message so far
        self._parts_text = False
        self._refused = False  # a message was refused: the connection is failing, later frames are not handed on
        self._closing_itself = False  # the server closes (close()): nothing more is due
        self._settling = False
        self._keep_open = False  # the client's stream ended while output was held: closed on release
        self._receiving: asyncio.Future[None] = self.loop.create_future()  # done once the connection stops being open
        # the largest frame data_received cuts itself: the parser's own limit for a frame
        # that starts a message (message and fragment limits are fixed at construction)
        sizes = [n for n in (self.protocol.max_message_size, self.protocol.max_fragment_size) if n is not None]
        self._frame_limit: int | None = min(sizes) if sizes else None
        # The three ways an open protocol ends (a close frame sent, echoed, or the connection
        # failed, with or without a close frame) pass here first
        protocol = self.protocol
        send_close, fail, recv_frame = protocol.send_close, protocol.fail, protocol.recv_frame

        def send_close_after_replies(code: int | None = None, reason: str = "") -> None:
            if protocol.state is _OPEN:
                self._before_ending()
            send_close(code, reason)

        def fail_after_replies(code: int, reason: str = "") -> None:
            if protocol.state is _OPEN:  # a violation, or the client's stream ended (1006: no close frame)
                self._before_ending()
            fail(code, reason)

        def recv_frame_after_replies(frame: Frame) -> None:
            if frame.opcode is CLOSE and protocol.state is _OPEN:  # the client's close frame: echoed at once
                self._before_ending()
            recv_frame(frame)

        # one protocol object per connection: its methods are this connection's
        protocol.send_close = send_close_after_replies  # type: ignore[method-assign]  # wraps this one protocol object's method
        protocol.fail = fail_after_replies  # type: ignore[method-assign]  # wraps this one protocol object's method
        protocol.recv_frame = recv_frame_after_replies  # type: ignore[method-assign]  # wraps this one protocol object's method

    # ------------------------------------------------------------------ in
    def data_received(self, data: bytes) -> None:
        """Whole, masked text frames are cut from ``data`` here; the rest goes to the library.

        websockets parses frames with a generator-based coroutine per connection
        (:meth:`Protocol.parse`), which costs more than the rest of a small message's way
        in. When that parser waits between two frames with nothing buffered, it is
        equivalent to cut the whole text frames at the start of ``data`` here and hand
        them on, as the parser would. Anything else — a control, binary or fragmented
        frame, one over the size limit, unmasked or with RSV bits, an incomplete frame —
        and everything after it is fed to the library's parser, which finds it at a
        frame's start and answers it as it always does (pongs, 1002, 1009, ...). Before
        the handler has started, what follows the upgrade request is kept for it."""
        if self._early is not None:
            data = self._keep_early(data)
            if not data:
                return
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
                length = int.from_bytes(data[at : at + 2], "big")
                at += 2
            elif length > 126:  # 127 (a 64-bit length) or an unmasked frame (mask bit clear)
                break
            if (limit is not None and length > limit) or at + 4 + length > end:
                break
            payload = apply_mask(data[at + 4 : at + 4 + length], data[at : at + 4])
            pos = at + 4 + length
            self._take(TEXT, payload)
            if protocol.state is not _OPEN:  # the message was refused, or the handler closed the connection
                return
        if pos < end:
            super().data_received(data[pos:] if pos else data)

    def _keep_early(self, data: bytes) -> bytes:
        """Before the handler starts: the upgrade request goes to the library (returned),
        the bytes after it are kept for the handler."""
        early = self._early
        assert early is not None
        if self.request is None and self.protocol.state is _CONNECTING and not early:
            seen = self._request_tail + data
            at = seen.find(_REQUEST_END)
            if at < 0:
                self._request_tail = seen[-3:]
                return data
            cut = at + 4 - len(self._request_tail)
            data, rest = data[:cut], data[cut:]
        else:
            data, rest = b"", data
        early += rest
        if len(early) > _EARLY_BYTES and not self._early_paused:
            self._early_paused = True
            self.transport.pause_reading()
        return data

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio lets eof_received return True; websockets types it None
        if self._early is not None and self.protocol.state is _OPEN:  # kept for the handler, as the bytes before it
            self._early_eof = True
            return True
        keep = super().eof_received()  # the replies due are written first (_before_ending)
        if self.output_held is not None:  # some wait for a commit: the transport closes once they are written
            self._keep_open = True
            return True
        return keep

    def process_event(self, event: Any) -> None:
        if self.request is None or not isinstance(event, Frame) or event.opcode not in DATA_OPCODES:
            super().process_event(event)  # the upgrade request, control frames
            return
        self._take(event.opcode, event.data, event.fin)

    def _take(self, opcode: Any, data: Any, fin: bool = True) -> None:
        """One data frame: a whole message is handed on; a fragment joins the message it
        continues. Refused as the library's assembler refuses: invalid UTF-8 (1007), more
        than ``MAX_FRAGMENTS`` frames in one message (1009)."""
        if self._refused or self._on_message is None or self.protocol.state is not _OPEN:
            return  # no message is handed on once the connection closes
        if opcode is CONT:
            parts = self._parts
            assert parts is not None  # the parser refuses a continuation that continues nothing (1002)
            if len(parts) >= MAX_FRAGMENTS:
                self._refuse(1009, "too many fragments")
                return
            parts.append(data)
            if not fin:
                return
            self._parts = None
            data, text = b"".join(parts), self._parts_text
        elif not fin:
            self._parts, self._parts_text = [data], opcode is TEXT
            return
        else:
            text = opcode is TEXT
        if text:
            try:
                message: Message = bytes(data).decode()
            except UnicodeDecodeError as exc:
                self._refuse(1007, f"{exc.reason} at position {exc.start}")
                return
        else:
            message = bytes(data)
        try:
            self._on_message(message)
        except Exception:  # a bug in the handler: the connection ends as a failed handler's would
            log.exception("handling a message failed")
            self._refused = True
            asyncio.ensure_future(self.close(1011, "internal error"))

    def _refuse(self, code: int, reason: str) -> None:
        self._refused = True
        self._parts = None
        if self._settling:  # a close frame is on its way already: the connection ends with it
            return
        self.protocol.fail(code, reason)  # the replies due are written first (_before_ending)
        self.send_data()

    async def receive(self, on_message: Callable[[Message], None]) -> None:
        """Hand every message to ``on_message``, in order, until the connection stops
        being open (closing, or lost); the bytes and the end of stream that came before
        this call are handed on first."""
        self._on_message = on_message
        early, self._early = self._early, None
        if self._early_paused:
            self.transport.resume_reading()
        if early:
            self.data_received(bytes(early))
        if self._early_eof and not self.transport.is_closing() and not self.eof_received():
            self.transport.close()
        if self.protocol.state is _OPEN:
            await asyncio.wait([self._receiving, self.connection_lost_waiter], return_when=asyncio.FIRST_COMPLETED)
        self._on_message = None

    # ------------------------------------------------------------------ at the end
    def _before_ending(self) -> None:
        """The protocol is about to send a close frame or end its stream: hand on the
        messages parsed before (the same read's), write the replies due, and hold the
        library's output back while some wait for a records commit."""
        if not self._receiving.done():
            self._receiving.set_result(None)
        if self._closing_itself or self._settling or self.before_close is None or self.transport.is_closing():
            return
        self._settling = True
        try:
            for event in self.protocol.events_received():
                self.process_event(event)
            if self.before_close():
                self.output_held = []
        finally:
            self._settling = False

    def send_data(self) -> None:
        if self.output_held is not None:
            self.output_held.extend(self.protocol.data_to_send())
            return
        super().send_data()

    def release_output(self) -> None:
        """Write the library's output held behind the replies (the replies are written)."""
        held, self.output_held = self.output_held, None
        if held is None:
            return
        self.protocol.writes[:0] = held
        self.send_data()
        if self._keep_open:
            self.transport.close()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._closing_itself = True
        await super().close(code, reason)


def _between_frames(protocol: Protocol) -> bool:
    """True when ``protocol``'s parser waits for the first byte of a frame: nothing of a
    frame or a fragmented message is buffered or half parsed."""
    reader = protocol.reader
    if reader.buffer or reader.eof or protocol.current_size is not None:
        return False
    gen: object = protocol.parser  # the server's parse(), which delegates to Protocol.parse() once open
    while (code := getattr(gen, "gi_code", None)) is not None:
        if code is _PARSE_CODE:
            return getattr(getattr(gen, "gi_yieldfrom", None), "gi_code", None) is _AT_EOF_CODE
        gen = getattr(gen, "gi_yieldfrom", None)
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
        late: list[bytes] | None = None  # frames written while the close frame waits behind them
        if not is_open and getattr(self.ws, "output_held", None) is not None:
            late = []
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
            elif late is not None:
                late.append(Frame(TEXT, item).serialize(mask=False))
        if wrote or late:
            try:
                self.ws.transport.write(b"".join(protocol.data_to_send()) if wrote else b"".join(late or ()))
                self.buffered = self.ws.transport.get_write_buffer_size()  # what the kernel did not take
            except Exception:  # the socket failed: websockets sees the connection lost
                log.debug("writing to a connection failed", exc_info=True)
        if late is not None and not queue:
            self.ws.release_output()  # the replies are out: the close frame may follow
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
