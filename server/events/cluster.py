"""Game events over MQTT, and several servers sharing one broker: ``serve --mqtt``.

:class:`ClusterEvents` consumes the arena's effects as :mod:`server.app` hands them over —
:class:`~server.arena.arena.GameEvent` (start, move, over) and :class:`~server.arena.arena.RelayGame` —
and never reads the arena's state, except its public :meth:`~server.arena.arena.Arena.lobby`
for the status it announces. Topics (``P`` is the prefix, default ``autosteer/v1``;
docs/MQTT.md has payload examples):

=======================================  ====  ========  =========================================
topic                                    QoS   retained  payload
=======================================  ====  ========  =========================================
``P/servers/{server}/status``            1     yes       ``server_status``: online (bots, live
                                                         games, load) or offline (the last will)
``P/games/{game}/start``                 1     yes*      ``game_start`` (as a spectator sees it)
``P/games/{game}/state``                 1     yes*      ``state`` after every move
``P/games/{game}/moves``                 1     no        ``move``: ply, seat, cell, at
``P/games/{game}/traces``                1     no        ``trace``: ply, seat, trace (moves with one)
``P/games/{game}/result``                1     no        ``game_over`` + ``event_id``, ``server_id``
``P/tournaments/{tag}/games``            1     no        the same ``game_over`` for tagged games
=======================================  ====  ========  =========================================

(*) retained while the game is live, so a late subscriber gets the current position;
cleared when it ends. QoS 1 is "at least once": a message may arrive twice after a
reconnect, so every payload carries ids to drop duplicates by (``event_id`` on results;
``game_id`` + ``ply`` on moves and traces).

Several servers: each publishes its status (retained, with a last will saying
``offline``) and subscribes to everyone's; :class:`server.arena.relay.RemoteLobby` turns those
into the bots and live games a lobby lists, and a spectator here of a game played there
gets that game's frames relayed from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from typing import Any, Protocol

from server.arena.arena import Arena, GameEvent, RelayGame
from server.events.mqtt import MqttLink, topic_part
from server.arena.relay import RemoteLobby
from server.waiting import event_or_timeout

log = logging.getLogger("autosteer.cluster")

STATUS_EVERY = 5.0  # seconds between status refreshes when nothing changed (load figures)


def default_server_id(port: int) -> str:
    """``host-port``: stable across restarts on a fixed port, so a restarted server marks
    only its own unfinished games aborted. Pass ``--server-id`` when the port is 0."""
    return topic_part(f"{socket.gethostname()}-{port}" if port else f"{socket.gethostname()}-{os.getpid()}")


class EventHost(Protocol):
    """What :class:`ClusterEvents` uses of the server that hands it effects
    (``server.app.ArenaServer``): the app depends on this module, not the other way round."""

    arena: Arena | None

    @property
    def url(self) -> str: ...

    def apply_effects(self) -> None: ...


class ClusterEvents:
    """Publishes a server's games and status, and follows the other servers; see the module docstring."""

    def __init__(self, url: str, server_id: str, *, queue_size: int = 10_000) -> None:
        self.server_id = topic_part(server_id)
        self.remote = RemoteLobby(self.server_id)
        self.link = MqttLink(
            url, client_id=f"autosteer-{self.server_id}", queue_size=queue_size, on_message=self._on_message
        )
        self.prefix = self.link.prefix
        self.server: EventHost | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._last_status: str | None = None

    def topic(self, *parts: str) -> str:
        return "/".join([self.prefix, *(topic_part(p) for p in parts)])

    # ------------------------------------------------------------------ life cycle (ArenaServer calls these)
    async def start(self, server: EventHost) -> None:
        self.server = server
        status_topic = self.topic("servers", self.server_id, "status")
        offline = {"type": "server_status", "server_id": self.server_id, "status": "offline", "url": server.url}
        self.link.will = (status_topic, offline)
        status = self._status()
        self.link.online = (status_topic, status)  # sent first on every connection
        self._last_status = json.dumps({k: status[k] for k in ("bots", "games")}, sort_keys=True)
        self.link.subscribe(f"{self.prefix}/servers/+/status")
        self.link.start()
        self._status_task = asyncio.get_running_loop().create_task(self._announce(), name="mqtt-status")

    async def stop(self) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._status_task
        if self.server is not None:  # a clean stop says offline itself (the will is for crashes)
            self.link.set_status(
                self.topic("servers", self.server_id, "status"),
                {
                    "type": "server_status",
                    "server_id": self.server_id,
                    "status": "offline",
                    "url": self.server.url,
                    "at": time.time(),
                },
            )
        await self.link.stop()

    def status(self) -> dict[str, Any]:
        """For ``/healthz``."""
        return {"server_id": self.server_id, **self.link.status(), "servers_seen": sorted(self.remote.servers)}

    # ------------------------------------------------------------------ effects
    def handle(self, effect: Any) -> None:
        if isinstance(effect, GameEvent):
            self._publish_game_event(effect)
        elif isinstance(effect, RelayGame):
            topic = self.topic("games", effect.game_id) + "/+"
            (self.link.subscribe if effect.watch else self.link.unsubscribe)(topic)

    def _publish_game_event(self, event: GameEvent) -> None:
        frame = event.frame
        gid = frame["game_id"]
        base = self.topic("games", gid)
        if event.kind == "start":
            self.link.publish(f"{base}/start", {**frame, "server_id": self.server_id}, retain=True)
            self._changed.set()
        elif event.kind == "move":
            move = frame["last_move"]
            self.link.publish(
                f"{base}/moves",
                {
                    "type": "move",
                    "game_id": gid,
                    "server_id": self.server_id,
                    "ply": move["ply"],
                    "seat": move["seat"],
                    "cell": move["cell"],
                    "at": move["at"],
                    "has_trace": move.get("trace") is not None,
                },
            )
            if move.get("trace") is not None:
                self.link.publish(
                    f"{base}/traces",
                    {"type": "trace", "game_id": gid, "ply": move["ply"], "seat": move["seat"], "trace": move["trace"]},
                )
            self.link.publish(f"{base}/state", frame, retain=True)
        elif event.kind == "over":
            result = {**frame, "server_id": self.server_id, "event_id": f"{gid}/result"}
            self.link.publish(f"{base}/result", result)
            if frame.get("tag"):
                self.link.publish(self.topic("tournaments", frame["tag"], "games"), result)
            self.link.publish(f"{base}/start", None, retain=True)  # clear the retained live view
            self.link.publish(f"{base}/state", None, retain=True)
            self._changed.set()

    # ------------------------------------------------------------------ status
    def _status(self) -> dict[str, Any]:
        assert self.server is not None and self.server.arena is not None
        lobby = self.server.arena.lobby()
        health = self.server.arena.status()
        return {
            "type": "server_status",
            "server_id": self.server_id,
            "status": "online",
            "url": self.server.url,
            "at": time.time(),
            "bots": lobby["bots"],
            "games": lobby["games"],
            "load": {
                "connections": health["connections"],
                "games_live": health["games_live"],
                "games_finished": health["games_finished"],
            },
        }

    async def _announce(self) -> None:
        """Publish the status (retained) whenever the lobby changed (checked every 0.5 s, at
        once after a game starts or ends), and every ``STATUS_EVERY`` s for the load figures."""
        topic = self.topic("servers", self.server_id, "status")
        sent_at = time.monotonic()  # start() set the first status
        while True:
            await event_or_timeout(self._changed, 0.5)  # a stop() that cancels here is never lost
            self._changed.clear()
            status = self._status()
            key = json.dumps({k: status[k] for k in ("bots", "games")}, sort_keys=True)
            if key != self._last_status or time.monotonic() - sent_at >= STATUS_EVERY:
                self._last_status, sent_at = key, time.monotonic()
                self.link.set_status(topic, status)
            await asyncio.sleep(0.1)  # a burst of game starts and ends makes one status, not hundreds

    # ------------------------------------------------------------------ incoming
    def _on_message(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message
        try:
            frame = json.loads(payload)
        except ValueError:
            log.warning("ignored a message on %s that is not JSON", topic)
            return
        if not isinstance(frame, dict) or self.server is None or self.server.arena is None:
            return
        arena = self.server.arena
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 3 and parts[0] == "servers" and parts[2] == "status":
            for gid in self.remote.update(frame):
                arena.relay(gid, None)
        elif len(parts) == 3 and parts[0] == "games" and parts[2] in ("state", "result"):
            # only the frames a spectator gets, for the game the topic names, from another server
            if (
                frame.get("type") not in ("state", "game_over")
                or frame.get("game_id") != parts[1]
                or frame.get("server_id") == self.server_id
            ):
                return
            frame = {k: v for k, v in frame.items() if k not in ("server_id", "event_id")}
            arena.relay(parts[1], frame)
        else:
            return
        self.server.apply_effects()
