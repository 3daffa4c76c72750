"""The local arena's children never outlive ``autosteer-tui``: SIGHUP, SIGTERM and SIGKILL of the TUI.

End-to-end tests run the real command in a pseudo-terminal (as a person would) and find its
server child through /proc; unit tests cover the parent-death signal, its race and the
signal routing of the command line.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_client import cli
from tui_client.app import ArenaApp
from tui_client.local_arena import LocalArena, die_with_parent, parent_death_signal_available

linux_only = pytest.mark.skipif(not parent_death_signal_available(), reason="PR_SET_PDEATHSIG is Linux only")
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


# -- processes, seen through /proc --------------------------------------------------------
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a process, or ``None`` if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[3])


def alive(pid: int) -> bool:
    """Running, not a zombie (a zombie has exited; only its exit status waits to be read)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid: int, marker: str) -> list[int]:
    """Live children of ``pid`` whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[1] != pid or stat[0] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def arena_workdir(server_pid: int) -> Path:
    """The temporary folder of a local arena, from its server's ``--db`` argument."""
    args = Path(f"/proc/{server_pid}/cmdline").read_bytes().decode().split("\0")
    return Path(args[args.index("--db") + 1]).parent


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


# -- the TUI in a pseudo-terminal ----------------------------------------------------------
class TuiInPty:
    """``autosteer-tui --no-llm`` on a pseudo-terminal; everything it started is killed on close."""

    def __init__(self) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child becomes the app
            os.environ.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
            os.execv(
                sys.executable, [sys.executable, "-m", "tui_client.cli", "--no-llm", "--name", "pty-user", "--forget"]
            )
        self.out = b""
        self.status: int | None = None
        self.server_pids: list[int] = []
        self.workdirs: list[Path] = []

    def read_until(self, needle: bytes, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and needle not in self.out:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:  # EIO: the app has closed the terminal
                    break
        return needle in self.out

    def wait_for_lobby(self) -> int:
        """Wait for the connected lobby; return the server child's pid."""
        assert self.read_until(b"connected as pty-user", 40), self.tail()
        assert self.read_until(b"minimax", 10), self.tail()
        self.server_pids = children(self.pid, "server.cli")
        assert len(self.server_pids) == 1, self.server_pids
        self.workdirs.append(arena_workdir(self.server_pids[0]))
        return self.server_pids[0]

    def wait_exit(self, timeout: float) -> int | None:
        """The app's wait status once it has exited (reading its output meanwhile), else ``None``."""
        end = time.monotonic() + timeout
        while self.status is None and time.monotonic() < end:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = status
                break
            self.read_until(b"\0never\0", 0.05)
        return self.status

    def tail(self) -> str:
        return self.out.decode(errors="replace")[-2000:]

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, self.status = os.waitpid(self.pid, 0)
        for pid in self.server_pids:  # a test that failed may have left one behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for workdir in self.workdirs:  # a killed TUI cannot remove its temporary folder
            shutil.rmtree(workdir, ignore_errors=True)
        os.close(self.fd)


@pytest.fixture
def tui():
    app = TuiInPty()
    try:
        yield app
    finally:
        app.close()


@needs_proc
@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_the_tui_stops_its_server_and_exits_on_a_hangup_or_terminate(tui, signum):
    server = tui.wait_for_lobby()
    os.kill(tui.pid, signum)
    status = tui.wait_exit(10)
    assert status is not None, "the TUI is still running after the signal: " + tui.tail()
    assert os.waitstatus_to_exitcode(status) == 128 + signum, tui.tail()
    assert wait_until(lambda: not alive(server), 5), "the server outlived the TUI"
    assert not tui.workdirs[0].exists()  # the stop removed the temporary folder
    out = tui.out.decode(errors="replace")
    assert "Stopping the local arena" in out
    assert f"Stopped by {signal.Signals(signum).name}" in out
    assert "\x1b[?1049l" in out  # Textual left the alternate screen: the terminal is restored


@needs_proc
@linux_only
@pytest.mark.timeout(120)
def test_the_server_dies_with_a_killed_tui(tui):
    server = tui.wait_for_lobby()
    stat = _stat(server)
    assert stat is not None and stat[2] == server  # its own session: terminal signals reach only the TUI
    os.kill(tui.pid, signal.SIGKILL)
    assert tui.wait_exit(5) is not None
    assert os.waitstatus_to_exitcode(tui.status) == -signal.SIGKILL
    assert wait_until(lambda: not alive(server), 5), "the server outlived the killed TUI"


# -- the parent-death signal ---------------------------------------------------------------
@linux_only
def test_a_child_asks_for_sigterm_when_its_parent_dies():
    read_death_signal = (
        "import ctypes; libc = ctypes.CDLL(None); sig = ctypes.c_int(0); "
        "libc.prctl(2, ctypes.byref(sig), 0, 0, 0); print(sig.value)"
    )  # 2: PR_GET_PDEATHSIG
    plain = subprocess.run([sys.executable, "-c", read_death_signal], capture_output=True, text=True, timeout=30)
    tied = subprocess.run(
        [sys.executable, "-c", read_death_signal],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=die_with_parent(os.getpid()),
    )
    assert plain.stdout.strip() == "0"
    assert tied.stdout.strip() == str(int(signal.SIGTERM))


@linux_only
def test_a_child_whose_parent_died_before_prctl_exits_at_once():
    # The race: the parent dies between fork and prctl, so no signal will ever come. The child
    # sees another parent than the one it was started by and must not run the command.
    not_the_parent = os.getppid()  # any live pid other than ours stands for "the parent was replaced"
    child = subprocess.run(
        [sys.executable, "-c", "print('ran')"],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=die_with_parent(not_the_parent),
    )
    assert child.returncode == 128 + signal.SIGTERM
    assert "ran" not in child.stdout


def test_die_with_parent_is_a_no_op_without_prctl(monkeypatch):
    import tui_client.local_arena as local_arena

    monkeypatch.setattr(local_arena, "_PRCTL", None)
    assert local_arena.die_with_parent(os.getpid()) is None
    assert not local_arena.parent_death_signal_available()


@needs_proc
@linux_only
def test_the_server_child_of_a_killed_python_parent_dies_with_it(tmp_path):
    """LocalArena used as a library (not the TUI): SIGKILL of its process still ends the server."""
    script = tmp_path / "holder.py"
    script.write_text(
        "import sys, time\n"
        "from tui_client.local_arena import LocalArena\n"
        "arena = LocalArena(with_llm=False, startup_timeout=60)\n"
        "arena.start()\n"
        "print(arena.pids[0], flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    server = workdir = None
    try:
        server = int(holder.stdout.readline())
        workdir = arena_workdir(server)
        assert alive(server)
        holder.kill()
        holder.wait(timeout=10)
        assert wait_until(lambda: not alive(server), 5), "the server outlived its killed parent"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if server is not None and alive(server):
            os.kill(server, signal.SIGKILL)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        holder.stdout.close()


def test_stop_is_idempotent_and_kills_a_child_that_ignores_sigterm(tmp_path):
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(
        "import http.server, signal, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "port = int(sys.argv[sys.argv.index('--port') + 1])\n"
        "http.server.HTTPServer(('127.0.0.1', port), http.server.BaseHTTPRequestHandler).serve_forever()\n"
    )
    arena = LocalArena(with_llm=False, workdir=tmp_path, startup_timeout=30, server_cmd=[sys.executable, str(stubborn)])
    arena.start()
    server = arena._server
    assert server is not None
    start = time.monotonic()
    arena.stop(grace=0.5)
    assert time.monotonic() - start < 5
    assert server.returncode == -signal.SIGKILL
    arena.stop()  # a second stop does nothing
    assert arena.pids == []


# -- signals in the command line and the app ------------------------------------------------
def test_a_signal_during_the_arena_start_interrupts_it():
    before = signal.getsignal(signal.SIGTERM)
    with cli.ShutdownSignals() as signals:
        signals.interruptible = True
        with pytest.raises(cli.SignalExit) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises long before this ends
        assert caught.value.signum == signal.SIGTERM
        signals.interruptible = False
        os.kill(os.getpid(), signal.SIGHUP)  # later ones are only noted (the first is kept)
        time.sleep(0.05)
        assert signals.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_a_signal_while_the_app_runs_is_passed_to_it():
    got: list[int] = []

    class FakeApp:
        def exit_on_signal(self, signum: int) -> None:
            got.append(signum)

    with cli.ShutdownSignals() as signals:
        signals.app = FakeApp()
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
    assert got == [signal.SIGHUP] and signals.received == signal.SIGHUP


async def test_the_app_leaves_on_a_signal_with_128_plus_its_number():
    app = ArenaApp(None, "ann")
    async with app.run_test() as pilot:
        await pilot.pause()
        app.exit_on_signal(signal.SIGTERM)
        app.exit_on_signal(signal.SIGHUP)  # the first one wins
        await pilot.pause()
    assert app.exit_signal == signal.SIGTERM
    assert app.return_code == 128 + signal.SIGTERM


async def test_a_signal_before_the_app_mounts_makes_it_leave_on_mount():
    app = ArenaApp(None, "ann")
    app.exit_on_signal(signal.SIGHUP)
    async with app.run_test() as pilot:
        await pilot.pause()
    assert app.return_code == 128 + signal.SIGHUP


def test_a_terminal_that_hung_up_ends_the_app(monkeypatch):
    app = ArenaApp(None, "ann")
    app._terminal_fd = 0
    seen: list[int] = []
    monkeypatch.setattr(app, "exit_on_signal", seen.append)
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    app._check_terminal()
    assert seen == []
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    app._check_terminal()
    app._check_terminal()  # reported once
    assert seen == [signal.SIGHUP]
