"""Game events on a real Mosquitto broker: complete and in order, and a broker outage that
never stops play (bounded queue, drop count, reconnect)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, AsyncIterator

import aiomqtt
import pytest

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena
from server.events.cluster import ClusterEvents
from server.events.mqtt import MqttUrlError, parse_mqtt_url

pytestmark = pytest.mark.timeout(90)

P = "autosteer/v1"


def config(**kw: Any) -> ServerConfig:
    base = dict(host="127.0.0.1", port=0, db_path=":memory:", move_clock=10.0, grace=1.0, seed=3, ping_interval=None)
    base.update(kw)
    return ServerConfig(**base)


class Listener:
    """A subscriber on the broker that records (topic, payload) in arrival order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []

    def on(self, topic_end: str, game_id: str | None = None) -> list[Any]:
        return [p for t, p in self.messages if t.endswith(topic_end) and (game_id is None or f"/{game_id}/" in t)]

    async def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError(f"not seen on the broker in {timeout} s; last: {self.messages[-5:]}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def listen(url: str, topic: str) -> AsyncIterator[Listener]:
    host, port, _ = parse_mqtt_url(url)
    listener = Listener()
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic, qos=1)

        async def read() -> None:
            async for m in client.messages:
                raw = bytes(m.payload) if isinstance(m.payload, (bytes, bytearray)) else str(m.payload).encode()
                listener.messages.append((str(m.topic), json.loads(raw) if raw else None))

        task = asyncio.create_task(read())
        try:
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.02)


async def test_a_game_arrives_on_the_broker_complete_in_order_with_traces(mosquitto: Any) -> None:
    events = ClusterEvents(mosquitto.url, "alpha")
    async with listen(mosquitto.url, f"{P}/#") as heard, serve_arena(config(), events=events) as srv:
        await wait_until(lambda: events.link.connected, what="publisher connected")
        await heard.wait(lambda: any(p and p.get("status") == "online" for p in heard.on("/servers/alpha/status")))
        async with WsClient.connect(srv.url, "ann") as ann:
            await ann.request(type="challenge", opponent="random", side="X")
            frame = await ann.wait_for("game_start")
            gid = frame["game_id"]
            while frame["type"] != "game_over":
                if frame.get("turn") == "X" and frame["type"] in ("state", "game_start"):
                    await ann.send(
                        type="move",
                        game_id=gid,
                        cell=frame["board"].index(".") + 1,
                        trace={"top": [{"feature": 7, "act": 1.5}], "ply": frame["ply"] + 1},
                    )
                frame = await ann.recv()
            over = frame
        await heard.wait(lambda: len(heard.on("/result", gid)) == 1)
        await heard.wait(lambda: any(p is None for p in heard.on("/state", gid)))  # retained view cleared

    mine = [(t, p) for t, p in heard.messages if f"/games/{gid}/" in t]
    kinds = [t.rsplit("/", 1)[1] for t, p in mine if p is not None]
    assert kinds[0] == "start" and kinds[-1] == "result"
    moves = heard.on("/moves", gid)
    assert [m["ply"] for m in moves] == list(range(1, len(over["moves"]) + 1))  # in order, none missing
    assert [(m["seat"], m["cell"]) for m in moves] == [(m["seat"], m["cell"]) for m in over["moves"]]
    traces = heard.on("/traces", gid)
    assert [t["ply"] for t in traces] == [m["ply"] for m in over["moves"] if m["seat"] == "X"]
    assert all(t["trace"] == {"top": [{"feature": 7, "act": 1.5}], "ply": t["ply"]} for t in traces)
    states = [p for p in heard.on("/state", gid) if p is not None]
    assert [s["ply"] for s in states] == list(range(1, len(over["moves"]) + 1))
    assert states[-1]["moves"] == over["moves"] and states[-1]["over"] is True
    result = heard.on("/result", gid)[0]
    assert result["event_id"] == f"{gid}/result" and result["server_id"] == "alpha"
    assert result["moves"] == over["moves"] and result["result"] == over["result"]
    offline = heard.on("/servers/alpha/status")[-1]
    assert offline["status"] == "offline"  # a clean stop says so itself


def expected_messages(record: dict[str, Any]) -> int:
    """What one finished game publishes (see server/events/cluster.py): start; per move a move, a
    state and a trace when it has one; the result, the tournament copy when tagged, and
    the two clears of the retained start and state."""
    per_move = sum(2 + (m.get("trace") is not None) for m in record["moves"])
    return 1 + per_move + 1 + (1 if record.get("tag") else 0) + 2


async def test_a_broker_outage_never_stops_play_and_drops_are_counted(mosquitto: Any) -> None:
    events = ClusterEvents(mosquitto.url, "beta", queue_size=25)
    events.link.max_backoff = 0.5
    finished: list[dict[str, Any]] = []
    async with serve_arena(config(), events=events, on_game_over=finished.append) as srv:
        await wait_until(lambda: events.link.connected, what="publisher connected")
        async with WsClient.connect(srv.url, "org") as org:
            sent = await org.request(type="arrange", x="minimax", o="random", tag="before")
            await org.wait_for("game_over", game_id=sent["challenge_id"])
            await wait_until(lambda: not events.link.queue, what="queue drained")
            published_before = events.link.published
            assert events.link.dropped == 0

            mosquitto.stop()
            await wait_until(lambda: not events.link.connected, what="publisher noticed the outage")
            t0 = time.monotonic()
            gids = []
            for _ in range(6):  # games go on while the broker is away
                sent = await org.request(type="arrange", x="minimax", o="random", tag="outage")
                gids.append(sent["challenge_id"])
            for gid in gids:
                await org.wait_for("game_over", game_id=gid)
            played_in = time.monotonic() - t0
            outage = [r for r in finished if r["game_id"] in gids]
            assert len(outage) == 6 and all(r["status"] == "finished" for r in outage)
            attempted = sum(expected_messages(r) for r in outage)
            assert attempted > events.link.queue_size
            assert len(events.link.queue) == events.link.queue_size
            assert events.link.dropped == attempted - events.link.queue_size
            health = await asyncio.to_thread(_healthz, srv.port)
            assert health["mqtt"]["dropped"] == events.link.dropped and health["mqtt"]["connected"] is False

            mosquitto.start()  # same port: the publisher reconnects and sends what it kept
            async with listen(mosquitto.url, f"{P}/games/#") as heard:
                await wait_until(
                    lambda: events.link.connected and not events.link.queue, timeout=15, what="reconnected and drained"
                )
                assert events.link.published == published_before + events.link.queue_size
                assert events.link.connects >= 2
                sent = await org.request(type="arrange", x="minimax", o="random", tag="after")
                gid = sent["challenge_id"]
                over = await org.wait_for("game_over", game_id=gid)
                await heard.wait(lambda: len(heard.on("/result", gid)) == 1)
                assert [m["cell"] for m in heard.on("/moves", gid)] == [m["cell"] for m in over["moves"]]
    assert played_in < 5.0, f"6 house games took {played_in:.2f} s during the outage"


def _healthz(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


async def test_publish_never_raises_and_counts_what_it_cannot_send() -> None:
    from server.events.mqtt import MqttLink

    link = MqttLink("mqtt://127.0.0.1:1", client_id="t", queue_size=2)  # never started: nothing is sent
    assert link.publish("t/a", {"n": 1}) and link.publish("t/b", None, retain=True)
    assert not link.publish("t/c", {"n": 3})  # full
    link.queue.clear()
    assert not link.publish("t/d", {"p": float("nan")}) and not link.publish("t/e", {"x": object()})
    assert link.dropped == 3 and link.status()["dropped"] == 3


def test_mqtt_urls() -> None:
    assert parse_mqtt_url("mqtt://h:1/x/y") == ("h", 1, "x/y")
    for bad in ("http://h", "mqtt://", "mqtt://h:99999", "mqtt://h/a/#"):
        with pytest.raises(MqttUrlError):
            parse_mqtt_url(bad)


async def test_evaluate_publishes_progress_and_summaries(
    mosquitto: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import training.evaluation.evaluate
    from bots.llm.bot import LLMBot
    from bots.llm.testing import tiny_language_model
    from training.cli import main as train_main

    def tiny_bot(args: Any) -> tuple[Any, dict[str, Any]]:
        return LLMBot(tiny_language_model(), mode="strict"), {"model": "tiny", "steering": "none"}

    monkeypatch.setattr(training.evaluation.evaluate, "build_evaluation_bot", tiny_bot)
    async with listen(mosquitto.url, f"{P}/training/#") as heard:
        argv = [
            "evaluate",
            "--games",
            "6",
            "--opponent",
            "random",
            "--seat",
            "X,O",
            "--mode",
            "strict",
            "--via",
            "local",
            "--concurrency",
            "2",
            "--mqtt",
            mosquitto.url,
            "--run-id",
            "eval-test",
        ]
        assert await asyncio.to_thread(train_main, argv) == 0
        await heard.wait(lambda: any(p and p.get("done") for p in heard.on("/training/eval-test/summary")))
    arms = [p for p in heard.on("/summary") if p and "arm" in p]
    assert [a["arm"] for a in arms] == ["random/X/strict", "random/O/strict"] and all(a["games"] == 6 for a in arms)
    final = heard.on("/summary")[-1]
    assert final["run"] == "eval-test" and [a["name"] for a in final["arms"]] == ["random/X/strict", "random/O/strict"]
    progress = heard.on("/training/eval-test/progress")
    assert progress and progress[-1]["done"] == 6  # the last update of each arm is always sent
    assert "published progress to" in capsys.readouterr().out


def test_watch_prints_the_feed(mosquitto: Any) -> None:
    """``autosteer-server watch`` shows a game's start, moves and result, then its summary line."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    watcher = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "watch", "--mqtt", mosquitto.url, "--seconds", "20", "--count", "12"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("watching ")  # printed once subscribed

        async def play() -> dict[str, Any]:
            events = ClusterEvents(mosquitto.url, "gamma")
            async with serve_arena(config(), events=events) as srv, WsClient.connect(srv.url, "org") as org:
                await wait_until(lambda: events.link.connected, what="publisher connected")
                sent = await org.request(type="arrange", x="minimax", o="minimax", tag="w")
                return await org.wait_for("game_over", game_id=sent["challenge_id"])

        over = asyncio.run(play())
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    gid = over["game_id"]
    assert f"{gid} started on gamma: minimax (X) vs minimax (O)" in out, out + err
    assert f"{gid}  1. X {over['moves'][0]['cell']}" in out
    assert "server gamma online" in out
    assert watcher.returncode == 0 and "watched 12 events" in out.splitlines()[-1]


def test_the_arena_relays_a_remote_game_to_its_spectators_sans_io() -> None:
    """Spectating a game another server announced: a game_start now, relayed frames after,
    and the relay ends with the game, with the last spectator, or with its server."""
    from server.arena.arena import Arena, RelayGame, Send
    from server.protocol import parse_server_frame
    from server.arena.relay import RemoteLobby

    remote = RemoteLobby("a")
    arena = Arena(ServerConfig(seed=1), remote=remote)
    remote.update(
        {
            "server_id": "b",
            "status": "online",
            "url": "ws://b",
            "bots": [{"name": "bee", "kind": "remote"}],
            "games": [
                {
                    "game_id": "g1",
                    "x": "bob",
                    "o": "bee",
                    "board": ".........",
                    "turn": "X",
                    "ply": 0,
                    "spectators": 0,
                    "clock": 30.0,
                    "tag": None,
                    "started_at": 1.0,
                }
            ],
        }
    )
    frames: dict[int, list[dict[str, Any]]] = {}
    relays: list[RelayGame] = []

    def pump() -> None:
        for e in arena.drain():
            if isinstance(e, Send):
                parse_server_frame(e.frame)
                frames.setdefault(e.conn_id, []).append(e.frame)
            elif isinstance(e, RelayGame):
                relays.append(e)

    for conn, name in ((1, "ann"), (2, "cat")):
        arena.connect(conn, "10.0.0.1", 0.0)
        arena.receive(conn, json.dumps({"type": "hello", "name": name, "role": "spectator"}), 0.0)
    arena.receive(1, json.dumps({"type": "list_bots", "id": 1}), 0.0)
    arena.receive(1, json.dumps({"type": "spectate", "game_id": "g1", "id": 2}), 0.0)
    arena.receive(2, json.dumps({"type": "spectate", "game_id": "g1"}), 0.0)
    pump()
    assert any(b["name"] == "bee" and b["server"] == "b" for b in frames[1][1]["bots"])
    assert frames[1][-1]["type"] == "game_start" and frames[1][-1]["id"] == 2 and frames[1][-1]["server"] == "b"
    assert relays == [RelayGame("g1", watch=True)]  # one subscription for both spectators
    arena.connect(3, "10.0.0.2", 0.0)
    arena.receive(3, json.dumps({"type": "hello", "name": "dan"}), 0.0)
    arena.receive(3, json.dumps({"type": "challenge", "opponent": "bee", "side": "X", "id": 9}), 0.0)
    pump()
    assert (
        frames[3][-1]["code"] == "unknown_opponent"
        and "plays on server 'b'; connect to ws://b" in frames[3][-1]["message"]
    )
    state = {
        "type": "state",
        "game_id": "g1",
        "x": "bob",
        "o": "bee",
        "board": "....X....",
        "turn": "O",
        "ply": 1,
        "moves": [{"ply": 1, "seat": "X", "cell": 5, "at": 1.0, "trace": None}],
        "last_move": None,
        "deadline": None,
        "over": False,
    }
    arena.relay("g1", state)
    pump()
    assert frames[1][-1] == state and frames[2][-1] == state
    arena.receive(2, json.dumps({"type": "unspectate", "game_id": "g1"}), 0.0)
    pump()
    assert relays[-1] == RelayGame("g1", watch=True)  # ann still watches
    remote.update({"server_id": "b", "status": "offline"})  # (the cluster layer then relays None)
    arena.relay("g1", None)
    pump()
    assert "went away" in frames[1][-1]["message"] and relays[-1] == RelayGame("g1", watch=False)
    arena.receive(1, json.dumps({"type": "spectate", "game_id": "g1", "id": 3}), 0.0)
    pump()
    assert frames[1][-1]["code"] == "unknown_game"  # its server is gone


async def test_ppo_publishes_each_exact_evaluation_and_its_summary(
    mosquitto: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``autosteer-train ppo --mqtt``: every exact evaluation goes out as progress, the result as the summary."""
    import bots.llm.cli
    import bots.llm.model
    from bots.llm.testing import tiny_language_model, tiny_sae
    from training.cli import main as train_main

    lm = tiny_language_model()
    monkeypatch.setattr(bots.llm.model, "load_model", lambda spec: lm)
    monkeypatch.setattr(bots.llm.cli, "load_sae_arg", lambda spec, model: tiny_sae(model))
    argv = [
        "ppo",
        "--features",
        "0,3,5,7",
        "--n-envs",
        "8",
        "--n-steps",
        "16",
        "--batch-size",
        "64",
        "--total-steps",
        "256",
        "--eval-every",
        "128",
        "--net-arch",
        "16",
        "--no-warm",
        "--no-prompt-store",
        "--mode",
        "masked",
        "--via",
        "local",
        "--heldout-phrasings",
        "",
        "--server-games",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--plot",
        str(tmp_path / "curve.png"),
        "--mqtt",
        mosquitto.url,
        "--run-id",
        "ppo-test",
    ]
    async with listen(mosquitto.url, f"{P}/training/ppo-test/#") as heard:
        assert await asyncio.to_thread(train_main, argv) == 0
        await heard.wait(lambda: any(p and p.get("done") for p in heard.on("/summary")))
    evals = [p for p in heard.on("/progress") if p and "draw_x" in p]
    card = json.loads((tmp_path / "run" / "run_card.json").read_text())
    assert [e["step"] for e in evals] == [row["step"] for row in card["evals"]] and evals
    final = heard.on("/summary")[-1]
    assert final["run"] == "ppo-test" and final["weights_unchanged"] is True
    assert final["final_eval"]["draw_x"] == card["final_eval"]["draw_x"] and final["stopped_by"] == card["stopped_by"]
