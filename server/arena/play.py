"""Games in play: starting a game, moves (house bots answer inline), resignations, the
move clocks with their pauses while a player is away, and the end of a game (announced,
stored, published).

:class:`GamesInPlay` works on the shared :class:`~server.arena.core.ArenaState` and asks the
:class:`~server.arena.lobby.Lobby` what kind each player is and to push its changes."""

from __future__ import annotations

import logging
import random
from typing import Any

from server.players.base import Bot, Decision, MoveRequest
from server.arena.state import Game, Offer, Session
from server.arena.effects import Frame, GameEnded, GameEvent, StoreGame
from server.game import Board, IllegalMoveError, Seat
from server.arena.core import ArenaState, with_id
from server.arena.lobby import Lobby
from server.protocol import MoveMsg, ProtocolError, Resign

log = logging.getLogger("autosteer.arena")


class GamesInPlay:
    """Live games: their start, moves, clocks and end."""

    def __init__(self, state: ArenaState, lobby: Lobby) -> None:
        self.state = state
        self.lobby = lobby

    def start_game(self, offer: Offer, now: float, accepter: str | None = None, rid: Any = None) -> None:
        game = Game(
            offer.offer_id,
            offer.x,
            offer.o,
            self.lobby.kind(offer.x),
            self.lobby.kind(offer.o),
            offer.clock,
            now,
            tag=offer.tag,
            seed=offer.seed,
            time_control=offer.time_control,
            rematch_of=offer.rematch_of,
        )
        if offer.opening:
            self._play_opening(game, offer.opening, now)
        if offer.time_control is not None:
            game.remaining = {Seat.X: offer.time_control[0], Seat.O: offer.time_control[0]}
        if offer.seed is not None:
            for seat in (Seat.X, Seat.O):
                if game.name_of(seat) in self.state.house:
                    game.house_rngs[seat] = random.Random(offer.seed)
        for name in (offer.x, offer.o):
            session = self.state.sessions.get(name)
            if session is not None:
                session.games.add(game.game_id)
        if offer.arranged:
            organiser = self.state.sessions.get(offer.origin)
            if organiser is not None and organiser.name not in (offer.x, offer.o):
                game.spectators.add(organiser.name)
                organiser.watching.add(game.game_id)
        self._take_followers(game)
        self.state.games[game.game_id] = game
        self.lobby.changed(now)
        self.state.effects.append(StoreGame(game.record()))
        if self.state.publish_events:
            self.state.effects.append(GameEvent("start", self.game_start(game, None)))
        self.arm_clock(game, now)
        for name in dict.fromkeys((game.x, game.o)):
            seats = game.seats_of(name)
            frame = self.game_start(game, seats[0].value if len(seats) == 1 else None)
            self.state.send_to(name, with_id(frame, rid) if name == accepter else frame)
        for name in game.spectators:
            self.state.send_to(name, self.game_start(game, None))
        self._play_house_moves(game, now)

    @staticmethod
    def _play_opening(game: Game, cells: tuple[int, ...], now: float) -> None:
        """Put the opening ``cells`` on the new ``game``'s board: its first moves, each
        recorded at the start as given (``"opening": true``, no trace). The parser checked
        them (:func:`server.game.opening_board`): they are legal and leave the game open."""
        board = game.board
        for cell in cells:
            seat = board.turn
            board = board.play(cell)
            game.moves.append(
                {
                    "ply": len(game.moves) + 1,
                    "seat": seat.value,
                    "cell": cell,
                    "at": now,
                    "trace": None,
                    "opening": True,
                }
            )
        game.board, game.opening = board, cells

    def _take_followers(self, game: Game) -> None:
        """A rematch: who watched the game it follows until the end watches this one too."""
        before = self.state.finished.get(game.rematch_of) if game.rematch_of is not None else None
        if before is None:
            return
        for name in sorted(before.followers):
            session = self.state.sessions.get(name)
            if session is not None and session.connected and name not in (game.x, game.o):
                game.spectators.add(name)
                session.watching.add(game.game_id)

    def game_start(self, game: Game, you: str | None) -> Frame:
        turn = game.turn
        frame: Frame = {
            "type": "game_start",
            "game_id": game.game_id,
            "x": game.x,
            "o": game.o,
            "you": you,
            "clock": game.clock,
            "board": game.board.code,
            "turn": turn.value if turn else game.board.turn.value,
            "ply": len(game.moves),
            "deadline": game.deadline,
            "tag": game.tag,
        }
        if game.time_control is not None:
            frame["time_control"] = game.time_control_frame()
            frame["clocks"] = game.clocks_frame()
        if game.rematch_of is not None:
            frame["rematch_of"] = game.rematch_of
        if game.opening:
            frame["opening"] = list(game.opening)
        return frame

    def state_frame(self, game: Game) -> Frame:
        turn = game.turn
        frame = {
            "type": "state",
            "game_id": game.game_id,
            "x": game.x,
            "o": game.o,
            "board": game.board.code,
            "turn": turn.value if turn else None,
            "ply": len(game.moves),
            "moves": list(game.moves),
            "last_move": game.moves[-1] if game.moves else None,
            "deadline": game.deadline,
            "over": not game.live,
        }
        if game.time_control is not None:
            frame["clocks"] = game.clocks_frame()
        return frame

    def audience(self, game: Game) -> list[str]:
        if not game.spectators:  # the common case, on every move
            return [game.x] if game.x == game.o else [game.x, game.o]
        return list(dict.fromkeys([game.x, game.o, *sorted(game.spectators)]))

    def broadcast(
        self,
        game: Game,
        frame: Frame,
        *,
        reply_to: str | None = None,
        rid: Any = None,
        audience: list[str] | None = None,
    ) -> None:
        for name in self.audience(game) if audience is None else audience:
            self.state.send_to(name, with_id(frame, rid) if name == reply_to else frame)

    def _per_move_audience(self, game: Game) -> list[str]:
        """The players and spectators of ``game`` that speak protocol 1: a ``state`` for
        every move, also for the one a house bot answers in the same step."""
        sessions = self.state.sessions
        return [name for name in self.audience(game) if (s := sessions.get(name)) is not None and s.protocol == 1]

    def tell_away(self, game: Game, name: str, back_by: float | None, now: float) -> None:
        """Tell everyone else in ``game`` at once that its player ``name`` left (``back_by``:
        the unix time its grace ends and it loses) or, with ``back_by`` None, came back."""
        seats = game.seats_of(name)
        if len(seats) != 1:
            return
        winner = game.name_of(seats[0].other)
        for other in self.audience(game):
            if other == name:
                continue
            if back_by is None:
                frame: Frame = {
                    "type": "info",
                    "message": f"{name} is back",
                    "game_id": game.game_id,
                    "event": "player_back",
                    "player": name,
                }
            else:
                who = "you win" if other == winner else f"{winner} wins"
                frame = {
                    "type": "info",
                    "game_id": game.game_id,
                    "event": "player_left",
                    "player": name,
                    "back_by": back_by,
                    "message": f"{name} left: {who} in {max(0.0, back_by - now):.0f} s unless {name} returns",
                }
            self.state.send_to(other, frame)

    @staticmethod
    def to_move(game: Game) -> str | None:
        turn = game.turn
        return None if turn is None else game.name_of(turn)

    # ------------------------------------------------------------------ clocks
    def arm_clock(self, game: Game, now: float, time_left: float | None = None) -> None:
        """Start the clock of the side to move with ``time_left`` (default: a full move clock);
        paused instead while that side is offline; none for house bots."""
        game.clock_left = game.paused_at = None
        turn = game.turn
        if turn is None or game.name_of(turn) in self.state.house:
            game.deadline = None
            return
        if time_left is not None:
            left = time_left
        elif game.time_control is not None:
            left = game.remaining.get(turn, game.time_control[0])
        else:
            left = game.clock
        mover = self.state.sessions.get(game.name_of(turn))
        if mover is None or not mover.connected:
            self.pause_clock(game, left, now)
            return
        game.deadline = now + left
        self.state.arm_clock_timer(game)

    def pause_clock(self, game: Game, time_left: float, now: float) -> None:
        """The mover is offline: stop its clock with ``time_left`` on it, unless its pause
        allowance for this game is spent (then the clock runs on)."""
        turn = game.turn
        assert turn is not None
        allowance = game.pause_allowance.setdefault(turn, float(self.state.config.grace))
        if allowance <= 0:
            game.clock_left = game.paused_at = None
            game.deadline = now + time_left
            self.state.arm_clock_timer(game)
            return
        game.deadline = None
        game.clock_left, game.paused_at = time_left, now
        game.pauses += 1
        self.state.push_timer(now + allowance, "pause", game.game_id, game.pauses)

    def restart_clock(self, game: Game, now: float, *, announce: bool = False) -> None:
        """End a pause: charge it to the mover's allowance and run the clock with the time
        that was left. ``announce`` sends everyone the new deadline (the player is still away)."""
        turn = game.turn
        assert turn is not None and game.paused_at is not None and game.clock_left is not None
        used = max(0.0, now - game.paused_at)
        left = 0.0 if announce else game.pause_allowance.get(turn, float(self.state.config.grace)) - used
        game.pause_allowance[turn] = max(0.0, left)
        self.arm_clock(game, now, time_left=game.clock_left)
        if announce:
            self.broadcast(game, self.state_frame(game))

    # ------------------------------------------------------------------ moves
    def find_game(self, game_id: str, rid: Any) -> Game:
        game = self.state.games.get(game_id) or self.state.finished.get(game_id)
        if game is not None:
            return game
        if self.state.load_record is not None and self.state.load_record(game_id) is not None:
            raise ProtocolError("game_over", f"game {game_id} is over; get_game returns its record", rid)
        raise ProtocolError("unknown_game", f"no game has the id {game_id!r}", rid)

    def _own_live_game(self, session: Session, game_id: str, rid: Any) -> tuple[Game, list[Seat]]:
        """The live game ``game_id`` and the seats ``session`` plays in it, or the refusal a
        move or resignation gets (unknown game, not a player, game over)."""
        game = self.find_game(game_id, rid)
        seats = game.seats_of(session.name)
        if not seats:
            raise ProtocolError("not_a_player", f"you are not a player in game {game.game_id}", rid)
        if not game.live:
            raise ProtocolError("game_over", f"game {game.game_id} is over ({game.result}, {game.reason})", rid)
        return game, seats

    def on_move(self, session: Session, msg: MoveMsg, now: float) -> None:
        game, seats = self._own_live_game(session, msg.game_id, msg.id)
        turn = game.board.turn
        if turn not in seats:
            raise ProtocolError(
                "not_your_turn", f"it is {turn.value}'s turn in game {game.game_id}; you play {seats[0].value}", msg.id
            )
        try:
            after = game.board.play(msg.cell)
        except IllegalMoveError as exc:
            if msg.on_illegal == "forfeit":
                game.illegal_move = {
                    "ply": len(game.moves) + 1,
                    "seat": turn.value,
                    "cell": msg.cell,
                    "at": now,
                    "trace": msg.trace,
                    "code": exc.code,
                }
                self.finish(game, turn.other.value, "illegal_move", now, reply_to=session.name, rid=msg.id)
                return
            raise ProtocolError(
                exc.code, f"{exc}; game {game.game_id} goes on, it is still your move", msg.id
            ) from None
        # A house bot to move next answers in this same step: protocol 2 gets one `state` holding
        # both moves (and this request's id), protocol 1 a `state` per move (docs/PROTOCOL.md)
        answered_inline = game.name_of(turn.other) in self.state.house
        self._apply_move(
            game, msg.cell, after, msg.trace, now, reply_to=session.name, rid=msg.id, announce=not answered_inline
        )
        if answered_inline:
            if session.protocol == 1:  # its reply was the move's own state
                self._play_house_moves(game, now)
            else:
                self._play_house_moves(game, now, reply_to=session.name, rid=msg.id)

    def _apply_move(
        self,
        game: Game,
        cell: int,
        after: Board,
        trace: Frame | None,
        now: float,
        *,
        reply_to: str | None = None,
        rid: Any = None,
        announce: bool = True,
    ) -> None:
        """The side to move played ``cell``, which led to ``after``: tell everyone (unless
        ``announce`` is false: a house bot answers in this same step and its ``state`` carries
        both moves, so only protocol 1 gets a ``state`` of this move alone; a move that ends
        the game is always announced). The house bot's answer (:meth:`_play_house_moves`)
        also stores the game, with both moves: one record per step, not one per move."""
        seat = game.board.turn
        if game.time_control is not None and game.deadline is not None:  # the mover's clock stops, with the increment
            game.remaining[seat] = max(0.0, game.deadline - now) + game.time_control[1]
        game.board = board = after
        game.moves.append({"ply": len(game.moves) + 1, "seat": seat.value, "cell": cell, "at": now, "trace": trace})
        self.lobby.changed(now)
        result = board.result
        if result is not None:
            self.finish(
                game,
                result.value,
                "line" if board.winner else "full_board",
                now,
                moved=True,
                reply_to=reply_to,
                rid=rid,
            )
            return
        self.arm_clock(game, now)
        if game.name_of(seat.other) not in self.state.house:
            self.state.effects.append(StoreGame(game.record()))  # stored as played: a killed server keeps the moves
        per_move = None if announce else self._per_move_audience(game)
        if announce or per_move or self.state.publish_events:
            state = self.state_frame(game)
            if self.state.publish_events:
                self.state.effects.append(GameEvent("move", state))  # every move is published, announced or not
            if announce or per_move:
                self.broadcast(game, state, reply_to=reply_to, rid=rid, audience=per_move)

    def _play_house_moves(self, game: Game, now: float, *, reply_to: str | None = None, rid: Any = None) -> None:
        """Let house bots answer while it is their turn; a game they leave live is stored.
        The first answer's ``state`` (or the ``game_over``) is the reply to ``reply_to``'s
        request ``rid``, the move it answers."""
        house = self.state.house
        while (seat := game.turn) is not None and (bot := house.get(game.name_of(seat))) is not None:
            try:
                decision = _choose(
                    bot,
                    MoveRequest(game.game_id, game.board, game.name_of(seat.other)),
                    game.house_rngs.get(seat) if game.house_rngs else None,
                )
                after = game.board.play(decision.cell)
            except Exception:
                log.exception("house bot %s failed in game %s", bot.name, game.game_id)
                self.finish(game, "aborted", "aborted", now, reply_to=reply_to, rid=rid)
                return
            self._apply_move(game, decision.cell, after, decision.trace, now, reply_to=reply_to, rid=rid)
            reply_to = rid = None

    def on_resign(self, session: Session, msg: Resign, now: float) -> None:
        game, seats = self._own_live_game(session, msg.game_id, msg.id)
        loser = game.turn if len(seats) == 2 and game.turn is not None else seats[0]
        self.finish(game, loser.other.value, "resign", now, reply_to=session.name, rid=msg.id)

    def finish(
        self,
        game: Game,
        result: str,
        reason: str,
        now: float,
        *,
        moved: bool = False,
        reply_to: str | None = None,
        rid: Any = None,
    ) -> None:
        """End ``game``: announce (a last ``state`` when a move ended it, then ``game_over``) and store."""
        if not game.live:
            return
        if game.time_control is not None and game.deadline is not None and game.turn is not None:
            game.remaining[game.turn] = max(0.0, game.deadline - now)  # the mover's clock stops where it is
        elif game.time_control is not None and game.paused and game.turn is not None and game.clock_left is not None:
            game.remaining[game.turn] = game.clock_left
        game.result, game.reason, game.ended_at, game.deadline = result, reason, now, None
        game.winner = game.x if result == "X" else game.o if result == "O" else None
        self.state.games.pop(game.game_id, None)
        self.state.release_opened(game.game_id)
        self.lobby.changed(now)
        self.state.finished[game.game_id] = game
        while len(self.state.finished) > self.state.config.finished_games_kept:
            self.state.finished.popitem(last=False)
        self.state.games_finished += 1
        if moved:
            state = self.state_frame(game)
            if self.state.publish_events:
                self.state.effects.append(GameEvent("move", state))
            self.broadcast(game, state, reply_to=reply_to, rid=rid)
        over = {
            "type": "game_over",
            "game_id": game.game_id,
            "x": game.x,
            "o": game.o,
            "result": result,
            "reason": reason,
            "winner": game.winner,
            "board": game.board.code,
            "moves": list(game.moves),
            "illegal_move": game.illegal_move,
            "tag": game.tag,
        }
        if game.time_control is not None:
            over["clocks"] = game.clocks_frame()
        self.broadcast(game, over, reply_to=reply_to, rid=rid)
        if self.state.publish_events:
            self.state.effects.append(GameEvent("over", over))
        for name in self.audience(game):
            session = self.state.sessions.get(name)
            if session is not None:
                session.games.discard(game.game_id)
                session.watching.discard(game.game_id)
        game.followers = set(game.spectators)
        game.spectators.clear()
        record = game.record()
        self.state.effects.append(StoreGame(record))
        self.state.effects.append(GameEnded(record))


def _choose(bot: Bot, request: MoveRequest, rng: random.Random | None) -> Decision:
    """``bot``'s move, drawn from a seeded game's own generator ``rng`` when there is one.

    House bots keep their generator in ``bot.rng``; a bot without one is left as it is."""
    own = getattr(bot, "rng", None)  # Bot declares no rng: house bots add their own
    if rng is None or not isinstance(own, random.Random):
        return bot.choose(request)
    setattr(bot, "rng", rng)
    try:
        return bot.choose(request)
    finally:
        setattr(bot, "rng", own)
