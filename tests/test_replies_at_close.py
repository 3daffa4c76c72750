"""Replies the arena computed are written before the connection ends: every request it
accepted is answered before the close frame (a violation's, the client's, or the library's
for an end of stream) or before the socket's end, and nothing is written after a close frame.
Raw sockets on an ephemeral loopback port, bytes written exactly as a hostile client would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from server.app import ServerConfig, serve_arena

pytestmark = pytest.mark.timeout(60)

# hello (id "h"), a binary frame holding {"type":"ping","id":"b1"}, then a text frame holding the
# byte ff (invalid UTF-8); mask key zero
HELLO_BINARY_PING_BAD_UTF8 = bytes.fromhex(
    "81a5000000007b2274797065223a2268656c6c6f222c226e616d65223a226131222c226964223a2268227d"
    "8299000000007b2274797065223a2270696e67222c226964223a226231227d"
    "818100000000ff"
)
HELLO_BINARY_PING = HELLO_BINARY_PING_BAD_UTF8[:-7]


def config(**overrides: Any) -> ServerConfig:
    base = dict(port=0, db_path=":memory:", move_clock=30.0, grace=1.0, seed=5, ping_interval=None)
    base.update(overrides)
    return ServerConfig(**base)


def text(message: dict[str, Any]) -> bytes:
    return Frame(Opcode.TEXT, json.dumps(message).encode()).serialize(mask=True)


class RawClient:
    """A TCP connection that speaks WebSocket through websockets' sans-I/O client protocol,
    so a test writes exactly the bytes it wants and sees every frame and the socket's end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proto = ClientProtocol(parse_uri(url))
        self.events: list[Any] = []
        self.eof = False

    async def open(self, with_request: bytes = b"") -> None:
        """Connect and send the upgrade request, followed in the same write by ``with_request``."""
        self.proto.send_request(self.proto.connect())
        host, port = self.url[5:].rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.writer.write(b"".join(self.proto.data_to_send()) + with_request)
        await self.writer.drain()
        while self.proto.state.name == "CONNECTING":
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            assert data, "the server closed during the handshake"
            self.proto.receive_data(data)
        assert self.proto.handshake_exc is None  # open (or already closing: the replies came with the response)
        self.events += [e for e in self.proto.events_received() if isinstance(e, Frame)]

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_to_end(self, timeout: float = 10) -> None:
        """Every frame until the server ends the stream."""
        while not self.eof:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if data:
                self.proto.receive_data(data)
            else:
                self.proto.receive_eof()
                self.eof = True
            self.events += [e for e in self.proto.events_received() if isinstance(e, Frame)]
        self.writer.close()

    @property
    def replies(self) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events if e.opcode is Opcode.TEXT]

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame (None: it sent none)."""
        closes = [e for e in self.events if e.opcode is Opcode.CLOSE]
        assert len(closes) <= 1
        return int.from_bytes(closes[0].data[:2], "big") if closes else None

    def nothing_after_the_close(self) -> bool:
        kinds = [e.opcode for e in self.events]
        return Opcode.CLOSE not in kinds or kinds.index(Opcode.CLOSE) == len(kinds) - 1


def too_many_fragments() -> bytes:
    """A text message of one more frame than the library assembles (websockets' MAX_FRAGMENTS)."""
    from websockets.asyncio.messages import MAX_FRAGMENTS

    first = Frame(Opcode.TEXT, b'{"type": ', fin=False).serialize(mask=True)
    middle = Frame(Opcode.CONT, b"", fin=False).serialize(mask=True)
    return first + middle * MAX_FRAGMENTS + Frame(Opcode.CONT, b'"ping"}').serialize(mask=True)


@pytest.mark.parametrize("with_handshake", [False, True], ids=["after-handshake", "with-handshake"])
@pytest.mark.parametrize(
    "violation, code",
    [(b"\x81\x81\0\0\0\0\xff", 1007), (too_many_fragments(), 1009)],
    ids=["invalid-utf8", "too-many-fragments"],
)
async def test_replies_to_requests_before_a_violation_precede_its_close(
    with_handshake: bool, violation: bytes, code: int
) -> None:
    """hello, a binary ping, then a message the library refuses: welcome and pong, then
    the violation's close code, nothing after it."""
    async with serve_arena(config()) as srv:
        client = RawClient(srv.url)
        data = HELLO_BINARY_PING + violation
        if with_handshake:
            await client.open(with_request=data)
        else:
            await client.open()
            await client.write(data)
        await client.read_to_end()
    assert [(r["type"], r.get("id")) for r in client.replies] == [("welcome", "h"), ("pong", "b1")]
    assert client.close_code == code and client.nothing_after_the_close()


@pytest.mark.parametrize("with_handshake", [False, True], ids=["after-handshake", "with-handshake"])
async def test_requests_before_the_end_of_the_stream_are_answered_before_the_socket_ends(with_handshake: bool) -> None:
    """hello and a binary ping, then the client shuts its side: both are answered, then the
    server ends the stream (no close frame: the client sent none)."""
    async with serve_arena(config()) as srv:
        client = RawClient(srv.url)
        if with_handshake:
            await client.open(with_request=HELLO_BINARY_PING)
        else:
            await client.open()
            await client.write(HELLO_BINARY_PING)
        client.writer.write_eof()
        await client.read_to_end()
    assert [(r["type"], r.get("id")) for r in client.replies] == [("welcome", "h"), ("pong", "b1")]
    assert client.close_code is None


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
async def test_requests_before_the_clients_close_frame_are_answered_before_the_echo(binary: bool) -> None:
    """hello, 50 pings (text or binary frames) and a close frame in one write: 51 replies,
    in order, then the echo of the client's close."""
    pings = [json.dumps({"type": "ping", "id": i}).encode() for i in range(50)]
    frames = [Frame(Opcode.BINARY if binary else Opcode.TEXT, p).serialize(mask=True) for p in pings]
    close = Frame(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"bye").serialize(mask=True)
    async with serve_arena(config(rate=1000, burst=1000)) as srv:
        client = RawClient(srv.url)
        await client.open()
        await client.write(text({"type": "hello", "name": "closer", "id": "h"}) + b"".join(frames) + close)
        await client.read_to_end()
    assert [r.get("id") for r in client.replies] == ["h", *range(50)]
    assert client.close_code == 1000 and client.nothing_after_the_close()


@pytest.mark.parametrize("end", ["close-frame", "end-of-stream"])
async def test_a_stored_move_is_answered_before_the_connection_ends(tmp_path: Any, end: str) -> None:
    """Against a file database a move's state waits for its records commit; a close frame
    or the end of the client's stream right behind the move still comes after that state."""
    async with serve_arena(config(db_path=str(tmp_path / "games.sqlite3"), records_process=False)) as srv:
        client = RawClient(srv.url)
        await client.open()
        await client.write(
            text({"type": "hello", "name": "mover"})
            + text({"type": "challenge", "opponent": "minimax", "side": "X", "id": "c"})
        )
        while not any(r["type"] == "game_start" for r in client.replies):
            client.proto.receive_data(await asyncio.wait_for(client.reader.read(65536), 10))
            client.events += [e for e in client.proto.events_received() if isinstance(e, Frame)]
        game_id = next(r for r in client.replies if r["type"] == "game_start")["game_id"]
        close = Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")).serialize(mask=True) if end == "close-frame" else b""
        await client.write(text({"type": "move", "game_id": game_id, "cell": 5, "id": "m"}) + close)
        if not close:
            client.writer.write_eof()
        await client.read_to_end()
        record = srv.records.get(game_id) if srv.records is not None else None
    answer = [r for r in client.replies if r.get("id") == "m"]
    assert answer and answer[0]["type"] == "state" and answer[0]["moves"][0]["cell"] == 5
    assert record is not None and record["moves"][0]["cell"] == 5
    assert client.close_code == (1000 if end == "close-frame" else None) and client.nothing_after_the_close()
