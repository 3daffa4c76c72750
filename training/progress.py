"""A training run's progress and summaries on the MQTT broker, so a long run can be watched from elsewhere.

For synchronous training code (evaluation, PPO): two lines ::

    progress = progress_publisher(args.mqtt, run="ppo-x")       # None as URL: a publisher that does nothing
    progress.progress(step=step, total=total, draw_rate=rate)   # rate-limited; .summary({...}) at the end

Messages go to ``P/training/{run}/progress`` and ``P/training/{run}/summary`` (QoS 1,
retained: a watcher that joins late sees the latest). paho-mqtt's own network thread
sends them; :meth:`ProgressPublisher.publish` never blocks: at most ``queue_size``
messages wait while the broker is away, more are dropped and counted (``dropped``).
``autosteer-server watch`` prints them.

>>> off = progress_publisher(None, run="r1")
>>> off.progress(step=1, total=10), off.enabled
(False, False)
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from server.events.mqtt import parse_mqtt_url, topic_part

log = logging.getLogger("autosteer.progress")


class ProgressPublisher:
    """Publishes one run's progress (at most every ``min_interval`` s) and summaries."""

    def __init__(self, url: str | None, run: str, *, queue_size: int = 1000, min_interval: float = 1.0) -> None:
        self.run = topic_part(run)
        self.url = url
        self.enabled = url is not None
        self.min_interval = min_interval
        self.dropped = 0
        self.sent = 0
        self._last_progress = 0.0
        self._client: Any = None
        if url is None:
            return
        import paho.mqtt.client as mqtt

        host, port, self.prefix = parse_mqtt_url(url)
        self._mqtt = mqtt
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"autosteer-train-{self.run}-{time.time_ns() % 10**6}"
        )
        client.max_queued_messages_set(queue_size)
        client.reconnect_delay_set(0.1, 5)  # type: ignore[arg-type]  # paho takes a float delay; its stub says int
        client.connect_async(host, port, keepalive=15)
        client.loop_start()
        self._client = client

    def topic(self, kind: str) -> str:
        return f"{self.prefix}/training/{self.run}/{topic_part(kind)}"

    def publish(self, kind: str, payload: dict[str, Any]) -> bool:
        """Queue one message (``type`` and ``run`` added); False when disabled or dropped."""
        if self._client is None:
            return False
        body = json.dumps(
            {"type": f"training_{kind}", "run": self.run, "at": time.time(), **payload},
            separators=(",", ":"),
            default=str,
        )
        info = self._client.publish(self.topic(kind), body, qos=1, retain=True)
        if info.rc in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: kept until connected
            self.sent += 1
            return True
        self.dropped += 1
        return False

    def progress(self, *, force: bool = False, **fields: Any) -> bool:
        """Publish progress unless one went out less than ``min_interval`` s ago (``force`` sends anyway)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last_progress < self.min_interval):
            return False
        self._last_progress = now
        return self.publish("progress", fields)

    def summary(self, fields: dict[str, Any]) -> bool:
        return self.publish("summary", fields)

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued (up to ``timeout`` s), then disconnect."""
        if self._client is None:
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end and self._client.is_connected() and self._client._out_messages:  # noqa: SLF001
            time.sleep(0.02)
        if self._client._out_messages:  # noqa: SLF001
            log.warning("%d progress messages were not delivered to %s", len(self._client._out_messages), self.url)  # noqa: SLF001
        self._client.disconnect()
        self._client.loop_stop()
        self._client = None

    def __enter__(self) -> "ProgressPublisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_publisher(url: str | None, run: str, **kwargs: Any) -> ProgressPublisher:
    """A publisher for ``run`` on the broker at ``url`` (``mqtt://host[:port][/prefix]``); with
    ``url`` None, one whose calls do nothing, so callers need no ``if``."""
    return ProgressPublisher(url, run, **kwargs)
