"""A client written against protocol version 1 keeps working: a session recorded from a
version 1 server (``tests/data/protocol_v1_session.txt``: three clients, a game against
minimax with a spectator, an error, a resignation, a record, a declined challenge) is
replayed frame by frame against today's server, and every frame the clients get is the
recorded one.

Frames are compared as version 1 promises: every recorded field is there with the recorded
value, and a frame may carry fields added since (clients ignore fields they do not know).
What differs by nature from run to run is compared by kind: session tokens, times, and
game ids (learned from the first frame that names them, then expected everywhere)."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena

pytestmark = pytest.mark.timeout(60)

SESSION = Path(__file__).parent / "data" / "protocol_v1_session.txt"
TIMES = {"deadline", "started_at", "ended_at", "at", "time"}
IDS = {"game_id", "challenge_id"}
# the house bots the recorded server served (a server's bots are its configuration, not the protocol)
RECORDED_HOUSE_BOTS = ("minimax", "random")
# The recording shows rb's hello without the description its list_bots entry then shows (rb
# was a random bot that described itself); the replay sends it, as rb did
RECORDED_HELLO_FIELDS = {"rb": {"description": "uniformly random legal moves"}}


def read_session() -> list[tuple[str, str, dict[str, Any]]]:
    """(client, "->" or "<-", frame) per line."""
    lines = []
    for line in SESSION.read_text().splitlines():
        match = re.fullmatch(r"(\w+)\s+(->|<-) (\{.*\})", line)
        assert match, line
        lines.append((match[1], match[2], json.loads(match[3])))
    return lines


class Replay:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}  # recorded game id -> today's

    def rename(self, text: str) -> str:
        for recorded, actual in self.ids.items():
            text = text.replace(recorded, actual)
        return text

    def outgoing(self, frame: dict[str, Any]) -> dict[str, Any]:
        return json.loads(self.rename(json.dumps(frame)))

    def check(self, recorded: Any, actual: Any, where: str) -> None:
        if isinstance(recorded, dict):
            assert isinstance(actual, dict), f"{where}: {actual!r}"
            for key, value in recorded.items():
                assert key in actual, f"{where}: no {key!r} in {actual}"
                self.check(value, actual[key], f"{where}.{key}")
        elif isinstance(recorded, list):
            assert isinstance(actual, list) and len(actual) == len(recorded), f"{where}: {actual!r}"
            for i, (r, a) in enumerate(zip(recorded, actual)):
                self.check(r, a, f"{where}[{i}]")
        elif where.rsplit(".", 1)[-1] in TIMES:
            assert (recorded is None) == (actual is None) and (actual is None or isinstance(actual, float)), (
                f"{where}: {actual!r}"
            )
        elif where.endswith(".token"):
            assert isinstance(actual, str) and actual, f"{where}: {actual!r}"
        elif where.rsplit(".", 1)[-1] in IDS:
            expected = self.ids.setdefault(recorded, actual)
            assert actual == expected, f"{where}: {actual!r}, expected {expected!r}"
        elif isinstance(recorded, str):
            assert actual == self.rename(recorded), f"{where}: {actual!r}, recorded {recorded!r}"
        else:
            assert actual == recorded and type(actual) is type(recorded), f"{where}: {actual!r}, recorded {recorded!r}"


async def test_a_recorded_version_1_session_replays_frame_for_frame() -> None:
    session = read_session()
    replay = Replay()
    async with serve_arena(ServerConfig(port=0, db_path=":memory:", seed=1, move_clock=30, grace=15)) as srv:
        assert srv.arena is not None
        for name in [n for n in srv.arena.house if n not in RECORDED_HOUSE_BOTS]:
            del srv.arena.house[name]
        clients: dict[str, WsClient] = {}
        async with contextlib.AsyncExitStack() as stack:
            for who, way, frame in session:
                if who not in clients:
                    clients[who] = await stack.enter_async_context(WsClient.connect(srv.url))
                client = clients[who]
                if way == "->":
                    if frame["type"] == "hello":
                        frame = {**frame, **RECORDED_HELLO_FIELDS.get(who, {})}
                    await client.send(**replay.outgoing(frame))  # the recorded frame: no "protocol" field
                else:
                    replay.check(frame, await client.recv(), f"{who} <- {frame['type']}")
            for client in clients.values():
                await client.expect_silence(0.2)
