"""Every kind of bad input over real sockets: each gets its documented error (or a
clean close), the connection stays usable where documented, others are unaffected and no
game state is corrupted."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers_ws import WsClient, start_game
from server.app import ServerConfig, serve_arena
from server.protocol import ERROR_CODES

pytestmark = pytest.mark.timeout(60)


def config(**overrides: Any) -> ServerConfig:
    base = dict(port=0, db_path=":memory:", move_clock=30.0, grace=1.0, seed=5, ping_interval=None)
    base.update(overrides)
    return ServerConfig(**base)


async def still_usable(client: WsClient) -> None:
    pong = await client.request(type="ping")
    assert pong["type"] == "pong"


async def expect_error(client: WsClient, code: str, rid: Any = None) -> dict[str, Any]:
    frame = await client.wait_for("error")
    assert frame["code"] == code, frame
    assert code in ERROR_CODES and frame["message"]
    if rid is not None:
        assert frame["id"] == rid
    return frame


async def test_malformed_frames_get_errors_and_connection_stays_usable() -> None:
    async with serve_arena(config()) as srv, WsClient.connect(srv.url) as c:
        cases: list[tuple[str | bytes, str]] = [
            ("{not json", "bad_json"),
            ("", "bad_json"),
            (b"\xff\xfe\x00binary", "bad_json"),
            ("[1, 2, 3]", "not_object"),
            ('"hello"', "not_object"),
            ("42", "not_object"),
            ("null", "not_object"),
            ('{"name": "x"}', "missing_type"),
            ('{"type": 5}', "missing_type"),
            ('{"type": "teleport", "id": 1}', "unknown_type"),
            ('{"type": "list_bots"}', "hello_required"),  # before hello
            ('{"type": "hello", "name": 5}', "invalid_message"),
            ('{"type": "hello", "name": "has space"}', "invalid_message"),
            ('{"type": "hello", "name": "ok", "role": "referee"}', "invalid_message"),
            ('{"type": "hello", "name": "ok", "extra": 1}', "invalid_message"),
            ("[" * 30000 + "]" * 30000, "bad_json"),  # deep nesting: no RecursionError escapes
        ]
        for raw, code in cases:
            await c.send_raw(raw)
            await expect_error(c, code)
        await c.hello("ann")
        typed = [
            ({"type": "challenge", "opponent": "minimax", "side": "Z", "id": 1}, "invalid_message"),
            ({"type": "challenge", "opponent": 7, "id": 2}, "invalid_message"),
            ({"type": "challenge", "opponent": "minimax", "clock": -1, "id": 3}, "invalid_message"),
            ({"type": "move", "game_id": "g", "cell": "abc", "id": 4}, "invalid_message"),
            ({"type": "move", "game_id": "g", "cell": [5], "id": 5}, "invalid_message"),
            ({"type": "move", "game_id": 12, "cell": 5, "id": 6}, "invalid_message"),
            ({"type": "move", "game_id": "g", "cell": 5, "trace": [1, 2], "id": 7}, "invalid_message"),
            ({"type": "move", "game_id": "g", "cell": 5, "trace": {"x": "y" * 20000}, "id": 8}, "invalid_message"),
            ({"type": "move", "game_id": "g", "cell": 5, "on_illegal": "retry", "id": 9}, "invalid_message"),
            ({"type": "accept", "id": 10}, "invalid_message"),
            ({"type": "ping", "id": {"nested": 1}}, "invalid_message"),
            ({"type": "spectate", "game_id": "nope", "id": 11}, "unknown_game"),
            ({"type": "get_game", "game_id": "nope", "id": 12}, "unknown_game"),
            ({"type": "accept", "challenge_id": "nope", "id": 13}, "unknown_challenge"),
            ({"type": "challenge", "opponent": "ghost", "id": 14}, "unknown_opponent"),
        ]
        for frame, code in typed:
            await c.send(**frame)
            await expect_error(c, code, frame["id"] if isinstance(frame["id"], int) else None)
        await still_usable(c)


async def test_illegal_moves_in_a_live_game_do_not_corrupt_it() -> None:
    async with (
        serve_arena(config()) as srv,
        WsClient.connect(srv.url, "ann") as ann,
        WsClient.connect(srv.url, "bob") as bob,
        WsClient.connect(srv.url, "eve") as eve,
        WsClient.connect(srv.url, "spy", role="spectator") as spy,
    ):
        gid = await start_game(ann, bob)
        await spy.request(type="spectate", game_id=gid)
        bad = [
            (bob, {"cell": 1}, "not_your_turn"),  # out of turn / for the other seat
            (eve, {"cell": 1}, "not_a_player"),  # a game you are not in
            (spy, {"cell": 1}, "forbidden"),  # spectator moving
            (ann, {"cell": 0}, "out_of_range"),
            (ann, {"cell": 10}, "out_of_range"),
            (ann, {"cell": -3}, "out_of_range"),
        ]
        for client, extra, code in bad:
            reply = await client.request(type="move", game_id=gid, **extra)
            assert reply["type"] == "error" and reply["code"] == code, reply
        await ann.request(type="move", game_id=gid, cell=5)
        for cell, code in ((5, "occupied"), (11, "out_of_range")):
            reply = await bob.request(type="move", game_id=gid, cell=cell)
            assert reply["code"] == code
        reply = await ann.request(type="move", game_id=gid, cell=1)  # ann again: X already moved
        assert reply["code"] == "not_your_turn"
        reply = await ann.request(type="move", game_id="unknown-game", cell=1)
        assert reply["code"] == "unknown_game"
        state = await bob.request(type="get_game", game_id=gid)
        assert state["type"] == "state" and state["board"] == "....X...." and state["ply"] == 1 and state["turn"] == "O"
        for client, cell in ((bob, 1), (ann, 9), (bob, 2), (ann, 3), (bob, 7), (ann, 4), (bob, 6), (ann, 8)):
            assert (await client.request(type="move", game_id=gid, cell=cell))["type"] == "state"
        over = await spy.wait_for("game_over")
        assert over["board"] == "OOXXXOOXX" and over["result"] == "draw" and len(over["moves"]) == 9
        reply = await bob.request(type="move", game_id=gid, cell=1)
        assert reply["code"] == "game_over"  # a finished game
        reply = await spy.request(type="spectate", game_id=gid)
        assert reply["code"] == "game_over"
        assert [s["ply"] for s in spy.seen if s["type"] == "state"] == list(range(0, 10))


async def test_oversize_frame_closes_1009_and_others_keep_playing() -> None:
    async with serve_arena(config(max_frame_bytes=4096)) as srv, WsClient.connect(srv.url, "calm") as calm:
        await calm.request(type="challenge", opponent="random", side="X")
        start = await calm.wait_for("game_start")
        async with WsClient.connect(srv.url, "big") as big:
            await big.send_raw(json.dumps({"type": "ping", "pad": "x" * 10000}))
            closed = await big.closed()
            assert closed.rcvd is not None and closed.rcvd.code == 1009
        state = await calm.request(type="move", game_id=start["game_id"], cell=5)
        assert state["type"] in ("state", "game_over")
        await still_usable(calm)


async def test_flood_is_rate_limited_then_closed_1008() -> None:
    async with (
        serve_arena(config(rate=1.0, burst=10, flood_close=30)) as srv,
        WsClient.connect(srv.url, "calm") as calm,
    ):
        async with WsClient.connect(srv.url, "flood") as flood:
            loop = asyncio.get_running_loop()
            began = loop.time()
            for _ in range(200):
                try:
                    await flood.send(type="ping")
                except ConnectionClosed:
                    break
            closed = await flood.closed()
            codes = [f.get("code") for f in flood.seen if f["type"] == "error"]
            assert "rate_limited" in codes and closed.rcvd is not None and closed.rcvd.code == 1008
            pongs = sum(1 for f in flood.seen if f["type"] == "pong")
            # the burst (minus the hello), plus at most what refilled meanwhile at 1 message/s
            assert 9 <= pongs <= 10 + (loop.time() - began)
        await still_usable(calm)


async def test_brief_burst_over_the_limit_recovers() -> None:
    async with serve_arena(config(rate=5.0, burst=5, flood_close=100)) as srv, WsClient.connect(srv.url, "ann") as ann:
        for _ in range(12):
            await ann.send(type="ping")
        await asyncio.sleep(0.5)  # refills 2.5 messages
        await still_usable(ann)
        assert any(f.get("code") == "rate_limited" for f in ann.seen)


async def test_too_many_connections_from_one_address() -> None:
    async with serve_arena(config(max_connections_per_address=2)) as srv:
        async with WsClient.connect(srv.url, "a") as a, WsClient.connect(srv.url, "b"):
            async with connect(srv.url) as third:
                frame = json.loads(await third.recv())
                assert frame["code"] == "too_many_connections"
                with pytest.raises(ConnectionClosed) as info:
                    await third.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1008
            await still_usable(a)


async def test_spectator_may_only_watch() -> None:
    async with serve_arena(config()) as srv, WsClient.connect(srv.url, "spy", role="spectator") as spy:
        for frame in (
            {"type": "challenge", "opponent": "minimax"},
            {"type": "arrange", "x": "minimax", "o": "random"},
            {"type": "resign", "game_id": "g"},
            {"type": "accept", "challenge_id": "c"},
        ):
            reply = await spy.request(**frame)
            assert reply["code"] == "forbidden", reply
        bots = await spy.request(type="list_bots")
        assert {b["name"] for b in bots["bots"]} == {"minimax", "random", "easy", "medium", "hard"}


async def test_wrongly_typed_cells_are_invalid_messages_and_play_nothing() -> None:
    """``"cell": true`` once played cell 1, and ``"5"`` / ``5.0`` were accepted: the cell must be a JSON integer."""
    async with (
        serve_arena(config()) as srv,
        WsClient.connect(srv.url, "ann") as ann,
        WsClient.connect(srv.url, "bob") as bob,
    ):
        gid = await start_game(ann, bob)
        for cell in ("5", True, False, 5.0, 1.0, None, "1", [1], {"cell": 1}):
            for on_illegal in ("error", "forfeit"):  # not even a forfeit: the frame is malformed, not the move
                reply = await ann.request(type="move", game_id=gid, cell=cell, on_illegal=on_illegal)
                assert reply["type"] == "error" and reply["code"] == "invalid_message", (cell, reply)
                assert "cell" in reply["message"]
        for cell in (0, 10, 2**70):  # integers of the wrong range are moves the rules refuse
            reply = await ann.request(type="move", game_id=gid, cell=cell)
            assert reply["code"] == "out_of_range", (cell, reply)
        state = await ann.request(type="get_game", game_id=gid)
        assert state["board"] == "........." and state["ply"] == 0 and gid in srv.arena.games
        assert (await ann.request(type="move", game_id=gid, cell=5))["board"] == "....X...."


async def test_nan_and_infinity_are_bad_json_and_never_relayed_or_stored(tmp_path: Any) -> None:
    async with (
        serve_arena(config(db_path=str(tmp_path / "arena.sqlite3"))) as srv,
        WsClient.connect(srv.url, "ann") as ann,
        WsClient.connect(srv.url, "bob") as bob,
    ):
        gid = await start_game(ann, bob)
        texts = [
            f'{{"type": "move", "game_id": "{gid}", "cell": 5, "trace": {{"p": NaN}}, "id": 1}}',
            f'{{"type": "move", "game_id": "{gid}", "cell": 5, "trace": {{"p": [Infinity]}}, "id": 2}}',
            f'{{"type": "move", "game_id": "{gid}", "cell": 5, "trace": {{"p": -Infinity}}, "id": 3}}',
            f'{{"type": "move", "game_id": "{gid}", "cell": 5, "trace": {{"p": 1e999}}, "id": 4}}',  # overflows to inf
            '{"type": "challenge", "opponent": "minimax", "clock": NaN, "id": 5}',
            '{"type": "ping", "id": 6, "x": Infinity}',
        ]
        for text in texts:
            await ann.send_raw(text)
            err = await expect_error(ann, "bad_json")
            assert "not valid JSON" in err["message"]
        await bob.expect_silence(0.2)  # nothing was relayed
        moved = await ann.request(type="move", game_id=gid, cell=5, trace={"p": 1e308, "q": -0.0})
        assert moved["board"] == "....X...."
        await ann.request(type="resign", game_id=gid)
        await bob.wait_for("game_over")
        for frame in ann.seen + bob.seen:
            json.dumps(frame, allow_nan=False)  # every frame the server sent is strict JSON
    from server.records import GameRecords

    stored = GameRecords(tmp_path / "arena.sqlite3").get(gid)
    assert [m["trace"] for m in stored["moves"]] == [{"p": 1e308, "q": -0.0}]


async def test_fragmented_messages_and_invalid_utf8_after_whole_ones() -> None:
    """Whole text frames reach the arena as they are parsed; a fragmented message (which
    the library assembles) and whatever follows it are answered in order all the same, and
    a text frame that is not UTF-8 closes the connection with 1007, as websockets does."""
    async with serve_arena(config()) as srv:
        async with connect(srv.url, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "hello", "name": "frag"}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(json.dumps({"type": "ping", "id": 1}))
            await ws.send(iter(['{"type": "pi', 'ng", "id": 2}']))  # one message in two fragments
            await ws.send(json.dumps({"type": "ping", "id": 3}))
            await ws.send(b'{"type": "ping", "id": 4}')  # a binary frame: the library passes it on, in order
            await ws.send(json.dumps({"type": "ping", "id": 5}))
            replies = [json.loads(await ws.recv()) for _ in range(5)]
            assert [(r["type"], r.get("id"), r.get("code")) for r in replies] == [
                ("pong", 1, None),
                ("pong", 2, None),
                ("pong", 3, None),
                ("pong", 4, None),
                ("pong", 5, None),
            ]
        async with connect(srv.url, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "hello", "name": "utf"}))
            await ws.recv()
            await ws.send(b'{"type": "ping", "id": "\xff"}', text=True)  # a text frame with invalid UTF-8
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        async with WsClient.connect(srv.url, "after") as c:  # the server is fine
            await still_usable(c)


async def test_messages_sent_with_the_handshake_are_answered_in_order() -> None:
    """A client that writes its upgrade request and 100 messages in one go (before the
    server's handler has started): every message is kept for the handler and answered, in
    order."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.uri import parse_uri

    async with serve_arena(config(rate=1000, burst=1000, flood_close=1000)) as srv:
        proto = ClientProtocol(parse_uri(srv.url))
        proto.send_request(proto.connect())
        messages = [{"type": "hello", "name": "eager"}] + [{"type": "ping", "id": i} for i in range(1, 100)]
        frames_out = [Frame(Opcode.TEXT, json.dumps(m).encode()).serialize(mask=True) for m in messages]
        host, port = srv.url[5:].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"".join(proto.data_to_send()) + b"".join(frames_out))  # the request and the messages at once
        await writer.drain()
        events = await _raw_events(proto, reader, 101)  # the handshake response, then the frames
        frames = [json.loads(e.data) for e in events if getattr(e, "opcode", None) is not None]
        writer.close()
    assert frames[0]["type"] == "welcome"
    assert [(f["type"], f["id"]) for f in frames[1:]] == [("pong", i) for i in range(1, 100)]


async def _raw_open(url: str) -> tuple[Any, asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection that has done the WebSocket handshake: (client protocol, reader, writer)."""
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    proto = ClientProtocol(parse_uri(url))
    proto.send_request(proto.connect())
    host, port = url[5:].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"".join(proto.data_to_send()))
    while not proto.handshake_exc and proto.state.name == "CONNECTING":
        proto.receive_data(await asyncio.wait_for(reader.read(65536), 10))
    assert proto.state.name == "OPEN"
    proto.events_received()
    return proto, reader, writer


async def _raw_events(proto: Any, reader: asyncio.StreamReader, count: int) -> list[Any]:
    """The next ``count`` frames from the server (or fewer if it closes)."""
    events: list[Any] = []
    while len(events) < count:
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            break
        proto.receive_data(data)
        events += proto.events_received()
    return events


async def test_frames_cut_anywhere_and_control_frames_between_whole_ones() -> None:
    """The server cuts whole text frames from the socket's data itself and leaves anything
    else to websockets: frames split at every byte, several in one write, a ping between
    them (answered with its pong), a frame with a 2-byte length, all answered in order."""
    from websockets.frames import Frame, Opcode

    def text(message: dict[str, Any]) -> bytes:
        return Frame(Opcode.TEXT, json.dumps(message).encode()).serialize(mask=True)

    async with serve_arena(config(rate=1000, burst=1000)) as srv:
        proto, reader, writer = await _raw_open(srv.url)
        hello = text({"type": "hello", "name": "cut"})
        for i in range(len(hello)):  # one byte per write: every cut of a header and a payload
            writer.write(hello[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.002)
        welcome = await _raw_events(proto, reader, 1)
        assert json.loads(welcome[0].data)["type"] == "welcome"
        pings = [text({"type": "ping", "id": i}) for i in range(1, 5)]
        long = text({"type": "ping", "id": 5, "pad": "x" * 300})  # 126: a 2-byte length field
        control = Frame(Opcode.PING, b"keepalive").serialize(mask=True)
        stream = pings[0] + pings[1][:3] + pings[1][3:] + control + pings[2] + long + pings[3]
        for part in (stream[:40], stream[40:41], stream[41:90], stream[90:]):  # arbitrary cuts
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        events = await _raw_events(proto, reader, 6)
        replies = [json.loads(e.data)["id"] for e in events if e.opcode is Opcode.TEXT]
        assert replies == [1, 2, 3, 5, 4], "answered in the order sent"
        assert [e.data for e in events if e.opcode is Opcode.PONG] == [b"keepalive"]  # the library's (at once)
        writer.close()


@pytest.mark.parametrize(
    "first_byte, masked, code", [(0xC1, True, 1002), (0x81, False, 1002)], ids=["rsv1-set", "unmasked"]
)
async def test_broken_frame_headers_close_1002(first_byte: int, masked: bool, code: int) -> None:
    """A text frame with an RSV bit (no extension was negotiated) or without a mask is a
    protocol error (1002)."""
    from websockets.frames import Frame, Opcode

    async with serve_arena(config()) as srv:
        proto, reader, writer = await _raw_open(srv.url)
        good = Frame(Opcode.TEXT, json.dumps({"type": "hello", "name": "hdr"}).encode()).serialize(mask=True)
        payload = json.dumps({"type": "ping"}).encode()
        bad = bytes([first_byte, (0x80 if masked else 0) | len(payload)]) + (b"\0\0\0\0" if masked else b"") + payload
        writer.write(good)
        assert json.loads((await _raw_events(proto, reader, 1))[0].data)["type"] == "welcome"
        writer.write(bad)
        events = await _raw_events(proto, reader, 1)
        assert events[0].opcode is Opcode.CLOSE and int.from_bytes(events[0].data[:2], "big") == code
        writer.close()


def test_the_frame_cutter_knows_when_the_library_parser_is_between_frames() -> None:
    """``_between_frames`` reads websockets' parser state (a generator): true once open and
    idle, false inside a frame or a fragmented message, true again after. If a websockets
    upgrade changes its parser, this fails rather than the fast path silently going unused."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    from server.connection import _between_frames

    client, server = ClientProtocol(parse_uri("ws://127.0.0.1:1/")), ServerProtocol()
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    server.send_response(server.accept(server.events_received()[0]))
    assert not _between_frames(ServerProtocol())  # still in the handshake
    assert _between_frames(server)
    frame = Frame(Opcode.TEXT, b'{"type": "ping"}').serialize(mask=True)
    server.receive_data(frame[:3])
    assert not _between_frames(server)  # half a header parsed
    server.receive_data(frame[3:])
    assert _between_frames(server) and [e.data for e in server.events_received()] == [b'{"type": "ping"}']
    server.receive_data(Frame(Opcode.TEXT, b'{"a":', fin=False).serialize(mask=True))
    assert not _between_frames(server)  # a fragmented message has begun
    server.receive_data(Frame(Opcode.CONT, b" 1}").serialize(mask=True))
    assert _between_frames(server)
