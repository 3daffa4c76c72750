"""The Textual app: routes server frames to the lobby and game screens and sends requests.

:class:`ArenaApp` owns the :class:`~tui_client.connection.ArenaConnection` and the client's
view of the arena (bots online, live games, the games it follows). Server frames go through
:meth:`ArenaApp.handle_frame`, which tests and snapshots also call directly with recorded
frames (an app built with ``url=None`` never connects).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any, Callable, ClassVar

from textual.app import App
from textual.binding import Binding

from server.protocol import (
    MAX_RECORDS,
    Bots,
    ChallengeDeclined,
    ChallengeOffer,
    ChallengeSent,
    ErrorMsg,
    GameOver,
    GameRecord,
    Games,
    GameStart,
    GameSummary,
    Info,
    PlayerInfo,
    Players,
    Records,
    RecordSummary,
    State,
    Welcome,
    BotInfo,
)
from tui_client.connection import ArenaConnection, LinkState, LinkStatus, NotConnected
from tui_client.game_view import GameView, TimeControl
from tui_client.local_arena import LocalArena
from tui_client.screens import (
    ChallengePrompt,
    ConnectionBar,
    GameScreen,
    LobbyScreen,
    QuitPrompt,
    RecordsScreen,
    StandingsScreen,
)

MAX_FINISHED = 20
TERMINAL_CHECK_SECONDS = 1.0  # how often a real terminal is checked for a hang-up
RECORDS_PAGE = 50  # finished games asked of the server at a time
#: error codes the connection layer makes up for failures on this side (tui_client.connection)
CLIENT_SIDE_ERRORS = ("client_error", "bad_server_frame")
#: the title of the notice when the server refuses a request the person made (not a server fault)
REQUEST_TITLES = {
    "replay": "Replay",
    "challenge": "Challenge",
    "arrange": "Bot game",
    "spectate": "Watch",
    "records": "Finished games",
    "move": "Move refused",
    "resign": "Resign refused",
    "unspectate": "Watch",
}


class ArenaApp(App):
    """AutoSteer Arena in the terminal: play and watch Tic Tac Toe with the LLM's features."""

    TITLE = "AutoSteer Arena"
    CSS_PATH = "arena.tcss"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False)]
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        url: str | None,
        name: str = "player",
        *,
        local_arena: LocalArena | None = None,
        show_url: bool = True,
        lobby_poll: float = 2.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.player_name = name
        self.local_arena = local_arena
        self.show_url = show_url
        self.lobby_poll = lobby_poll
        self.connection: ArenaConnection | None = None
        self.link_status = LinkStatus(
            LinkState.CONNECTING if url else LinkState.CLOSED, url or "", name, detail="" if url else "offline"
        )
        self.bots: list[BotInfo] = []
        self.live_games: list[GameSummary] = []
        self.players: list[PlayerInfo] = []  # other people online (pushed with watch_lobby)
        self.games: dict[str, GameView] = {}
        self.finished_games: list[GameView] = []
        self.stored_games: list[RecordSummary] = []  # the server's records, newest first (RecordsScreen)
        self.stored_games_loading = False
        self.stored_games_complete = False  # the last page was short: nothing older
        self.tagged_games: dict[str, list[RecordSummary]] = {}  # tag → its finished games (standings)
        self.llm_notice: str | None = local_arena.llm_notice if local_arena else None
        self.lobby_status = ""  # see set_lobby_status
        self.paces: dict[str, float] = {}  # game id → seconds a move to show a watched bot game at
        self.lobby_pushed = False  # the server pushes lobby changes (watch_lobby); else the lobby is polled
        self._watching: set[str] = set()
        self._replaying: set[str] = set()
        self._requests: dict[int, tuple[str, str]] = {}  # request id → (kind, game id or opponent)
        #: challenges sent and not yet answered: opponent → challenge id (None until the server confirms)
        self.pending_challenges: dict[str, str | None] = {}
        #: rematches offered from a finished game's screen: challenge id → that game's id
        self.rematch_offers: dict[str, str] = {}
        #: the signal that ended the app (SIGHUP also stands for a terminal that went away), if any
        self.exit_signal: int | None = None
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._terminal_fd: int | None = None

    # -- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        self._signal_loop = asyncio.get_running_loop()
        if self.exit_signal is not None:  # a signal came while the app was starting
            self._exit_for_signal()
            return
        self._watch_terminal()
        self.push_screen(LobbyScreen())
        if self.url:
            self.connection = ArenaConnection(
                self.url, self.player_name, on_frame=self.handle_frame, on_status=self.set_link_status
            )
            self.run_worker(self.connection.run(), name="connection", exit_on_error=False)
            self.set_interval(self.lobby_poll, self._poll)

    async def on_unmount(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    # -- quitting ---------------------------------------------------------------------
    def live_games_played(self) -> list[GameView]:
        """The games this person is playing now (quitting would lose them)."""
        return [v for v in self.games.values() if v.you is not None and not v.over and not v.replay]

    async def action_quit(self) -> None:
        """Quit (q, Ctrl+Q); during a live game ask first and say what it costs."""
        playing = self.live_games_played()
        if not playing or isinstance(self.screen, QuitPrompt):
            self.exit()
            return

        def answer(quit_: bool | None) -> None:
            if quit_:
                self.run_worker(self._resign_and_exit(playing), group="requests")

        self.push_screen(QuitPrompt([v.opponent or "?" for v in playing]), answer)

    async def _resign_and_exit(self, playing: list[GameView]) -> None:
        """Resign the games being played (the opponents learn the result at once, not after
        the grace period), then leave."""
        for view in playing:
            if not view.over:
                await self._send({"type": "resign", "game_id": view.game_id})
        self.exit()

    # -- leaving on a signal or a lost terminal ---------------------------------------
    def exit_on_signal(self, signum: int) -> None:
        """Leave the app because the process got ``signum`` (SIGHUP, SIGTERM).

        Safe to call from a ``signal.signal`` handler: the exit runs on the app's event loop
        (Textual then restores the terminal if it is still there). Before the app has mounted
        the signal is remembered and the app leaves as soon as it mounts.
        """
        if self.exit_signal is not None:
            return
        self.exit_signal = signum
        loop = self._signal_loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._exit_for_signal)

    def _exit_for_signal(self) -> None:
        assert self.exit_signal is not None
        self.exit(return_code=128 + self.exit_signal)

    def _watch_terminal(self) -> None:
        """On a real terminal, check now and then that it is still there.

        A process that ignores SIGHUP (started under ``nohup`` or from a shell that ignores it)
        is not told when its terminal closes: Textual's input thread then reads end-of-file
        forever and the app, with its local arena, would run on as an orphan. A hung-up
        terminal no longer answers ``isatty``, so the app leaves as if it had got SIGHUP.
        """
        if self.is_headless or sys.__stdin__ is None:
            return
        try:
            fd = sys.__stdin__.fileno()
        except (OSError, ValueError):
            return
        if os.isatty(fd):
            self._terminal_fd = fd
            self.set_interval(TERMINAL_CHECK_SECONDS, self._check_terminal)

    def _check_terminal(self) -> None:
        if self._terminal_fd is not None and not os.isatty(self._terminal_fd):
            self._terminal_fd = None
            self.exit_on_signal(signal.SIGHUP)

    def _poll(self) -> None:
        if self.local_arena is not None:
            notice = self.local_arena.poll_llm()
            if (
                notice is None
                and getattr(self.local_arena, "llm_running", False)
                and not any(b.kind == "remote" for b in self.bots)
            ):
                notice = "LLM bot starting: it joins the lobby once its model is loaded…"
            if notice != self.llm_notice:
                self.llm_notice = notice
                self._refresh_lobby()
        # the timer can fire while the app shuts down and its screen stack is already empty
        top = self.screen_stack[-1] if self.screen_stack else None
        if isinstance(top, LobbyScreen) and not self.lobby_pushed:
            self.request_lobby()

    # -- connection status -----------------------------------------------------------
    def set_link_status(self, status: LinkStatus) -> None:
        previous = self.link_status.state
        self.link_status = status
        self.update_connection_bars()
        if status.state is LinkState.CONNECTED and previous is LinkState.RECONNECTING:
            self.notify("Reconnected; session resumed.", title="Connection")
        elif status.state is LinkState.RECONNECTING and previous is LinkState.CONNECTED:
            self.notify("Connection lost; reconnecting…", title="Connection", severity="warning")
        elif status.state is LinkState.CLOSED and previous is not LinkState.CLOSED and status.detail != "closed":
            self.notify(status.describe(show_url=False), title="Connection", severity="error", timeout=10)

    def update_connection_bars(self) -> None:
        text = self.link_status.describe(show_url=self.show_url)
        for screen in self.screen_stack:
            for bar in screen.query(ConnectionBar):
                bar.update(text)
                bar.set_class(self.link_status.state is LinkState.CONNECTED, "ok")
                bar.set_class(self.link_status.state is LinkState.RECONNECTING, "warn")
                bar.set_class(self.link_status.state is LinkState.CLOSED, "bad")

    # -- requests --------------------------------------------------------------------
    async def _send(self, frame: dict[str, Any], kind: str = "", subject: str = "") -> int | None:
        if self.connection is None:
            self.notify("Not connected to a server.", severity="warning")
            return None
        try:
            request_id = await self.connection.send(frame)
        except NotConnected as exc:
            self.notify(f"Not sent: {exc}", title="Connection", severity="warning")
            return None
        if kind:
            self._requests[request_id] = (kind, subject)
        return request_id

    def watch_lobby(self) -> None:
        """Ask the server to push the lobby (``watch_lobby``); until it answers, and against a
        server without it, the lobby is polled every ``lobby_poll`` seconds."""
        self.lobby_pushed = False
        if self.connection is not None and self.connection.connected:
            self.run_worker(self._send({"type": "watch_lobby"}, "watch_lobby"), group="requests")

    def request_lobby(self) -> None:
        if self.connection is not None and self.connection.connected:
            self.run_worker(self._send({"type": "list_bots"}), group="requests")
            self.run_worker(self._send({"type": "list_games"}), group="requests")
            self.run_worker(self._send({"type": "list_players"}, "list_players"), group="requests")

    @property
    def is_connected(self) -> bool:
        return self.connection is not None and self.connection.connected

    def request_records(self, *, player: str | None = None, before: float | None = None) -> None:
        """Ask for a page of finished games; ``before`` (an end time) asks for older ones.
        Offline it does nothing: the records screen says so on its status line."""
        if not self.is_connected:
            self._refresh_records()
            return
        frame: dict[str, Any] = {"type": "list_records", "limit": RECORDS_PAGE}
        if player:
            frame["player"] = player
        if before is not None:
            frame["before"] = before
        self.stored_games_loading = True
        self._refresh_records()
        self.run_worker(self._send_records_request(frame, "more" if before is not None else "first"), group="requests")

    def request_tagged(self, tag: str) -> None:
        """Ask for the finished games with ``tag`` (a tournament's id) for its standings."""
        if self.is_connected:
            frame = {"type": "list_records", "tag": tag, "limit": MAX_RECORDS}
            self.run_worker(self._send(frame, "standings", tag), group="requests")

    async def _send_records_request(self, frame: dict[str, Any], page: str) -> None:
        if await self._send(frame, "records", page) is None:
            self.stored_games_loading = False
            self._refresh_records()

    def start_challenge(
        self,
        opponent: str,
        side: str,
        clock: float | None = None,
        *,
        time_control: TimeControl | None = None,
        rematch_of: str | None = None,
    ) -> bool:
        """Challenge ``opponent``; ``clock`` seconds per move (``None``: the server's default)
        or a ``time_control``; ``rematch_of`` the finished game this one follows. One
        challenge at a time per opponent: while one is pending, or a game with ``opponent``
        is being played, nothing is sent (the lobby says why, or that game is shown) and
        the answer is False.

        No toast: a house bot's game opens at once, and toasts would pile up over the feature
        panel; a challenge that waits for an answer is said on the lobby's status line."""
        if opponent in self.pending_challenges:
            self.set_lobby_status(
                f"Your challenge to {opponent} is pending: waiting for "
                f"{'the game to start' if self.pending_challenges[opponent] is None else 'an answer'}…"
            )
            return False
        playing = next((v for v in self.live_games_played() if v.opponent == opponent), None)
        if playing is not None:
            self.set_lobby_status(f"You are playing {opponent} already: finish that game first.")
            if self._screen_for(playing.game_id) is None:
                self._open_game(playing.game_id)
            return False
        frame: dict[str, Any] = {"type": "challenge", "opponent": opponent, "side": side}
        if time_control is not None:
            frame["time_control"] = time_control.frame()
        elif clock is not None:
            frame["clock"] = clock
        if rematch_of is not None:
            frame["rematch_of"] = rematch_of
        self.pending_challenges[opponent] = None
        self.run_worker(self._send_challenge(frame, opponent), group="requests")
        return True

    async def _send_challenge(self, frame: dict[str, Any], opponent: str) -> None:
        if await self._send(frame, "challenge", opponent) is None:
            self.pending_challenges.pop(opponent, None)  # not sent: the person may try again

    def _challenge_answered(self, challenge_id: str) -> str | None:
        """A challenge was declined or withdrawn: forget it; the opponent's name, if it was ours."""
        for opponent, pending in list(self.pending_challenges.items()):
            if pending == challenge_id:
                del self.pending_challenges[opponent]
                return opponent
        return None

    def arrange_game(self, x: str, o: str, pace: float, clock: float | None = None) -> None:
        """Start a game between two bots and watch it, shown at ``pace`` seconds a move
        (house bots play at once; the game screen reveals their moves one by one)."""
        frame: dict[str, Any] = {"type": "arrange", "x": x, "o": o, "tag": "tui"}
        if clock is not None:
            frame["clock"] = clock
        self.run_worker(self._send(frame, "arrange", str(pace)), group="requests")

    def start_watching(self, game_id: str) -> None:
        self._watching.add(game_id)
        self.run_worker(self._send({"type": "spectate", "game_id": game_id}, "spectate", game_id), group="requests")

    def stop_watching(self, game_id: str) -> None:
        self._watching.discard(game_id)
        self.run_worker(self._send({"type": "unspectate", "game_id": game_id}, "unspectate", game_id), group="requests")

    def open_replay(self, game_id: str) -> None:
        self._replaying.add(game_id)
        self.run_worker(self._send({"type": "get_game", "game_id": game_id}, "replay", game_id), group="requests")

    def send_move(self, game_id: str, cell: int) -> None:
        """Send a move; until the server answers, the game's view holds it as pending (no second move)."""
        view = self.games.get(game_id)
        if view is not None:
            view.pending_move = cell
        self.run_worker(self._send_move({"type": "move", "game_id": game_id, "cell": cell}, game_id), group="requests")

    async def _send_move(self, frame: dict[str, Any], game_id: str) -> None:
        if await self._send(frame, "move", game_id) is None and game_id in self.games:
            self.games[game_id].pending_move = None  # not sent: the player may try again

    def send_resign(self, game_id: str) -> None:
        self.run_worker(self._send({"type": "resign", "game_id": game_id}, "resign", game_id), group="requests")

    def answer_challenge(self, challenge_id: str, accept: bool) -> None:
        frame = {"type": "accept" if accept else "decline", "challenge_id": challenge_id}
        self.run_worker(self._send(frame), group="requests")

    # -- frames from the server ------------------------------------------------------
    def handle_frame(self, frame: Any) -> None:
        """Apply one parsed server frame to the app's state and screens (frame types without
        a handler in :attr:`_FRAME_HANDLERS` are ignored)."""
        for cls in type(frame).__mro__:
            handler = self._FRAME_HANDLERS.get(cls)
            if handler is not None:
                handler(self, frame)
                return

    def _on_welcome(self, frame: Welcome) -> None:
        self.player_name = frame.name
        self.link_status = LinkStatus(self.link_status.state, self.link_status.url, frame.name)
        self.update_connection_bars()
        self.watch_lobby()  # answered with bots and games
        # On a resumed session the server re-sends game_start and state for every game
        # the session plays or watches, which refreshes the open screens. Games it does
        # not resume ended while we were away (session expired): fetch how they ended.
        for game_id, view in self.games.items():
            if not view.over and not view.replay and game_id not in frame.resumed and self._screen_for(game_id):
                self.run_worker(self._send({"type": "get_game", "game_id": game_id}), group="requests")

    def _on_bots(self, frame: Bots) -> None:
        if isinstance(frame.id, int) and self._requests.pop(frame.id, ("", ""))[0] == "watch_lobby":
            self.lobby_pushed = True  # the server pushes from now on: no more polling
        self.bots = list(frame.bots)
        self._refresh_lobby()

    def _on_games(self, frame: Games) -> None:
        self.live_games = list(frame.games)
        self._refresh_lobby()

    def _on_players(self, frame: Players) -> None:
        self.players = [p for p in frame.players if p.name != self.player_name]
        self._refresh_lobby()

    def _on_records(self, frame: Records) -> None:
        kind, page = self._requests.pop(frame.id, ("", "first")) if isinstance(frame.id, int) else ("", "first")
        if kind == "standings":  # the finished games of one tournament (tag)
            self.tagged_games[page] = list(frame.games)
            for shown in self.screen_stack:
                if isinstance(shown, StandingsScreen) and shown.is_mounted:
                    shown.refresh_standings()
            return
        if page == "more":
            known = {g.game_id for g in self.stored_games}
            self.stored_games += [g for g in frame.games if g.game_id not in known]
        else:
            self.stored_games = list(frame.games)
        self.stored_games_loading = False
        self.stored_games_complete = len(frame.games) < RECORDS_PAGE
        self._refresh_records()

    def _on_challenge_offer(self, frame: ChallengeOffer) -> None:
        def answer(accept: bool | None) -> None:
            self.answer_challenge(frame.challenge_id, bool(accept))

        time_control = TimeControl.parse(frame.time_control)
        clock = str(time_control) if time_control is not None else f"{frame.clock:g} s a move"
        self.push_screen(
            ChallengePrompt(frame.challenger, frame.side, clock, rematch=frame.rematch_of is not None), answer
        )

    def _on_challenge_sent(self, frame: ChallengeSent) -> None:
        kind, subject = self._requests.pop(frame.id, ("", "")) if isinstance(frame.id, int) else ("", "")
        if kind == "arrange":  # a bot game we asked for: watch it, at the pace chosen
            self._watching.add(frame.challenge_id)
            self.paces[frame.challenge_id] = float(subject or 0)
            if frame.challenge_id not in self.games:
                self.set_lobby_status(f"Bot game {frame.opponent}: waiting for the bots to accept…")
        elif frame.challenge_id not in self.games:  # a house bot's game has started already
            if subject in self.pending_challenges:
                self.pending_challenges[subject] = frame.challenge_id
            rematch_of = getattr(frame, "rematch_of", None)
            if rematch_of is not None:
                self.rematch_offers[frame.challenge_id] = rematch_of
                screen = self._screen_for(rematch_of)
                if screen is not None and screen.is_mounted:
                    screen.show_message(f"Rematch offered to {frame.opponent}, waiting for an answer…", error=False)
            self.set_lobby_status(f"Challenge sent to {frame.opponent}; waiting for an answer…")

    def _on_challenge_declined(self, frame: ChallengeDeclined) -> None:
        reason = f": {frame.reason}" if frame.reason else ""
        self._challenge_answered(frame.challenge_id)
        self.set_lobby_status("")
        rematch_of = self.rematch_offers.pop(frame.challenge_id, None)
        screen = self._screen_for(rematch_of) if rematch_of is not None else None
        if screen is not None and screen.is_mounted:
            screen.show_message(f"Rematch declined{reason}")
            return
        self.notify(f"Challenge declined{reason}", severity="warning")

    def _on_info(self, frame: Info) -> None:
        if frame.event in ("player_left", "player_back") and frame.game_id in self.games:
            view = self.games[frame.game_id]
            view.away = (frame.player or "?", frame.back_by or 0.0) if frame.event == "player_left" else None
            screen = self._screen_for(frame.game_id)
            if screen is not None and screen.is_mounted:
                screen.refresh_game()  # the status line says it and counts the grace down
            return
        kind = self._requests.pop(frame.id, ("", ""))[0] if isinstance(frame.id, int) else ""
        if kind != "unspectate":  # the reply to leaving a game needs no notice
            self.notify(frame.message, title="Server")

    def _error(self, frame: ErrorMsg) -> None:
        if frame.code == "bad_token":  # the connection layer starts a new session by itself
            self.notify(
                "The session expired while the connection was down; a new one is starting. "
                "Games in progress were lost.",
                title="Connection",
                severity="warning",
                timeout=8,
            )
            return
        if frame.code in CLIENT_SIDE_ERRORS:  # our own failure, not the server's: say so
            self.notify(frame.message, title="TUI error (please report it)", severity="error", timeout=8)
            return
        kind, subject = self._requests.pop(frame.id, ("", "")) if isinstance(frame.id, int) else ("", "")
        if kind == "watch_lobby":  # an older server: keep polling, quietly
            self.request_lobby()
            return
        if kind == "list_players":  # an older server lists bots only
            return
        if kind == "spectate":
            self._watching.discard(subject)
            if frame.code == "game_over":  # it ended before we got there: show its record instead
                self.open_replay(subject)
                return
        if kind == "replay":
            self._replaying.discard(subject)
        if kind == "challenge":
            self.pending_challenges.pop(subject, None)
        if kind == "records":
            self.stored_games_loading = False
            self._refresh_records()
        text = frame.message
        if kind == "move" and subject in self.games:
            self.games[subject].pending_move = None
        screen = self._screen_for(subject) if kind in ("move", "resign") else None
        if screen is not None and screen.is_mounted:
            # a refusal of the player's own input: said where the input was given, not as a server fault
            screen.show_message(f"Refused by the server: {text}")
            screen.refresh_game()
            return
        if kind in REQUEST_TITLES and frame.code != "internal_error":
            self.notify(text, title=REQUEST_TITLES[kind], severity="warning", timeout=6)
            return
        self.notify(text, title=f"Server error: {frame.code}", severity="error", timeout=6)

    def _game_frame(self, frame: Any) -> None:
        game_id = frame.game_id
        if isinstance(frame, GameStart) and frame.you is not None:
            self.pending_challenges.pop(frame.o if frame.you == "X" else frame.x, None)
            self.rematch_offers.pop(game_id, None)
        kind, subject = self._requests.pop(frame.id, ("", "")) if isinstance(frame.id, int) else ("", "")
        if kind == "replay":  # asked by a prefix of the id, perhaps: the answer names the game in full
            self._replaying.discard(subject)
            if isinstance(frame, State) and game_id not in self.games:  # still running: watch it instead
                self.start_watching(game_id)
                return
            self._replaying.add(game_id)
        known = game_id in self.games
        view = self.games.get(game_id) or GameView(game_id)
        if isinstance(frame, GameRecord) and (game_id in self._replaying or not known):
            view = GameView(game_id, replay=True)
        view.apply(frame)
        self.games[game_id] = view
        if view.over and not view.replay:
            self._remember_finished(view)

        screen = self._screen_for(game_id)
        if screen is not None:
            # A screen pushed for this game's start may not be mounted yet when the next frames
            # arrive in the same burst (a bot moving first): its on_mount draws the latest view.
            if screen.is_mounted:
                screen.refresh_game()
            return
        followed = (
            isinstance(frame, GameStart)
            and frame.rematch_of is not None
            and self._screen_for(frame.rematch_of) is not None
        )
        if followed and frame.you is None:  # a spectator of the game on screen follows its rematch
            self._watching.add(game_id)
        wanted = (
            (isinstance(frame, GameStart) and frame.you is not None)
            or followed
            or (game_id in self._watching)
            or (isinstance(frame, GameRecord) and game_id in self._replaying)
        )
        if not wanted:
            return
        self._replaying.discard(game_id)
        if view.replay:
            view.you = None
        self._open_game(game_id)

    _FRAME_HANDLERS: ClassVar[dict[type, Callable[[Any, Any], None]]] = {
        Welcome: _on_welcome,
        Bots: _on_bots,
        Games: _on_games,
        Players: _on_players,
        Records: _on_records,
        GameStart: _game_frame,
        State: _game_frame,
        GameOver: _game_frame,
        GameRecord: _game_frame,
        ChallengeOffer: _on_challenge_offer,
        ChallengeSent: _on_challenge_sent,
        ChallengeDeclined: _on_challenge_declined,
        Info: _on_info,
        ErrorMsg: _error,
    }
    """The handler of each server frame type (:meth:`handle_frame`)."""

    def set_lobby_status(self, text: str) -> None:
        """One line under the lobby's tables (a pending challenge, …); empty hides it."""
        self.lobby_status = text
        self._refresh_lobby()

    def _open_game(self, game_id: str) -> None:
        self.lobby_status = ""
        if isinstance(self.screen, GameScreen):
            old = self.screen
            if old.view.over or old.view.replay or old.view.you is None:
                if old.view.you is None and not old.view.over and not old.view.replay:
                    self.stop_watching(old.game_id)
                self.switch_screen(GameScreen(game_id))
                return
        self.push_screen(GameScreen(game_id))

    def _screen_for(self, game_id: str) -> GameScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, GameScreen) and screen.game_id == game_id:
                return screen
        return None

    def _remember_finished(self, view: GameView) -> None:
        self.finished_games = [v for v in self.finished_games if v.game_id != view.game_id]
        self.finished_games.insert(0, view)
        del self.finished_games[MAX_FINISHED:]
        self._watching.discard(view.game_id)

    def _refresh_records(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, RecordsScreen) and screen.is_mounted:
                screen.refresh_records()

    def _refresh_lobby(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, LobbyScreen) and screen.is_mounted:
                screen.refresh_lobby()
            elif isinstance(screen, StandingsScreen) and screen.is_mounted:
                screen.refresh_standings()  # its games being played come with the lobby
