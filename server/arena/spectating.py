"""Watching and looking back: spectators of live games here, games another server plays
relayed to spectators here, ``get_game`` (short ids allowed) and ``list_records``.

:class:`Spectating` works on the shared :class:`~server.arena.core.ArenaState` and takes the
frames a spectator sees from :class:`~server.arena.play.GamesInPlay`."""

from __future__ import annotations

from typing import Any

from server.arena.state import Connection, Session
from server.arena.effects import Frame, RelayGame
from server.arena.core import ArenaState, with_id
from server.arena.play import GamesInPlay
from server.protocol import GetGame, ListRecords, ProtocolError, Spectate, Unspectate


class Spectating:
    """Spectators of games here and elsewhere, and the records of games."""

    def __init__(self, state: ArenaState, play: GamesInPlay) -> None:
        self.state = state
        self.play = play

    def relay(self, game_id: str, frame: Frame | None) -> None:
        """A frame of a game on another server (from the broker) for its spectators here;
        ``None`` (its server went away) or a ``game_over`` frame ends the relay."""
        if self.state.remote is None:
            return
        for name in sorted(self.state.remote.watchers(game_id)):
            if frame is not None:
                self.state.send_to(name, frame)
            else:
                self.state.send_to(
                    name,
                    {
                        "type": "info",
                        "game_id": game_id,
                        "message": f"the server playing game {game_id} went away; it can no longer be followed",
                    },
                )
        if frame is None or frame.get("type") == "game_over":
            if self.state.remote.unwatch_all(game_id):
                self.state.effects.append(RelayGame(game_id, watch=False))

    def on_spectate(self, session: Session, msg: Spectate) -> None:
        if (
            self.state.remote is not None
            and msg.game_id not in self.state.games
            and msg.game_id not in self.state.finished
            and self.state.remote.game(msg.game_id) is not None
        ):
            self._spectate_remote(session, msg)
            return
        game = self.play.find_game(msg.game_id, msg.id)
        if not game.live:
            raise ProtocolError("game_over", f"game {game.game_id} is over; get_game returns its record", msg.id)
        if session.name not in game.spectators and len(game.spectators) >= self.state.config.max_spectators:
            raise ProtocolError(
                "busy", f"game {game.game_id} has the maximum of {self.state.config.max_spectators} spectators", msg.id
            )
        game.spectators.add(session.name)
        session.watching.add(game.game_id)
        self.state.send(session.conn_id, with_id(self.play.game_start(game, None), msg.id))
        self.state.send(session.conn_id, self.play.state_frame(game))

    def _spectate_remote(self, session: Session, msg: Spectate) -> None:
        """Watch a game another server plays: a ``game_start`` from its announced summary
        now, then its frames as the broker relays them (:meth:`relay`)."""
        assert self.state.remote is not None
        summary = self.state.remote.game(msg.game_id)
        assert summary is not None
        if self.state.remote.watch(msg.game_id, session.name):
            self.state.effects.append(RelayGame(msg.game_id, watch=True))
        frame = {
            "type": "game_start",
            "game_id": msg.game_id,
            "x": summary["x"],
            "o": summary["o"],
            "you": None,
            "clock": summary["clock"],
            "board": summary["board"],
            "turn": summary.get("turn") or "X",
            "ply": summary["ply"],
            "deadline": None,
            "tag": summary.get("tag"),
            "server": summary.get("server"),
        }
        self.state.send(session.conn_id, with_id(frame, msg.id))

    def on_unspectate(self, session: Session, msg: Unspectate) -> None:
        if self.state.remote is not None and session.name in self.state.remote.watchers(msg.game_id):
            if self.state.remote.unwatch(msg.game_id, session.name):
                self.state.effects.append(RelayGame(msg.game_id, watch=False))
            self.state.send(
                session.conn_id,
                with_id({"type": "info", "message": f"stopped watching {msg.game_id}", "game_id": msg.game_id}, msg.id),
            )
            return
        game = self.state.games.get(msg.game_id)
        if game is None or session.name not in game.spectators:
            raise ProtocolError("unknown_game", f"you are not watching a live game {msg.game_id!r}", msg.id)
        game.spectators.discard(session.name)
        session.watching.discard(game.game_id)
        self.state.send(
            session.conn_id,
            with_id({"type": "info", "message": f"stopped watching {game.game_id}", "game_id": game.game_id}, msg.id),
        )

    def _full_game_id(self, game_id: str, rid: Any) -> str:
        """``game_id``, or the one game (live, finished or stored) whose id starts with it.

        Lets a person type the short id a client shows. An exact id always wins; a prefix
        that several games share is refused with ``ambiguous_game`` naming them."""
        if game_id in self.state.games or game_id in self.state.finished:
            return game_id
        found = {gid for gid in (*self.state.games, *self.state.finished) if gid.startswith(game_id)}
        if self.state.find_records is not None:
            stored = self.state.find_records(game_id)
            if stored == [game_id]:
                return game_id
            found.update(stored)
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            names = ", ".join(sorted(found)[:10])
            raise ProtocolError(
                "ambiguous_game",
                f"{len(found)}{'+' if len(found) >= 10 else ''} games have ids "
                f"starting with {game_id!r} ({names}); type more of the id",
                rid,
            )
        return game_id

    def on_get_game(self, conn: Connection, msg: GetGame) -> None:
        game_id = self._full_game_id(msg.game_id, msg.id)
        game = self.state.games.get(game_id)
        if game is not None:
            self.state.send(conn.conn_id, with_id(self.play.state_frame(game), msg.id))
            return
        finished = self.state.finished.get(game_id)
        record = (
            finished.record()
            if finished is not None
            else (self.state.load_record(game_id) if self.state.load_record else None)
        )
        if record is None:
            raise ProtocolError("unknown_game", f"no game has the id {msg.game_id!r}", msg.id)
        self.state.send(conn.conn_id, with_id(record_frame(record), msg.id))

    def on_list_records(self, conn: Connection, msg: ListRecords) -> None:
        if self.state.list_records is not None:
            games = self.state.list_records(msg.limit, msg.player, msg.tag, msg.before)
        else:  # no store: the finished games still in memory
            kept = [
                g.record()
                for g in reversed(self.state.finished.values())
                if (msg.player is None or msg.player in (g.x, g.o))
                and (msg.tag is None or g.tag == msg.tag)
                and (msg.before is None or (g.ended_at or 0.0) < msg.before)
            ]
            kept.sort(key=lambda r: r["ended_at"] or 0.0, reverse=True)
            games = [record_summary(r) for r in kept[: msg.limit]]
        self.state.send(conn.conn_id, with_id({"type": "records", "games": games}, msg.id))


def record_summary(record: Frame) -> Frame:
    """One line of a ``records`` reply, from a stored record."""
    return {
        "game_id": record["game_id"],
        "x": record["x"],
        "o": record["o"],
        "result": record.get("result") or "aborted",
        "reason": record.get("reason") or "aborted",
        "ended_at": record.get("ended_at"),
        "ply": len(record.get("moves") or []),
        "tag": record.get("tag"),
    }


def record_frame(record: Frame) -> Frame:
    """A stored record as a ``game_record`` frame."""
    frame = {"type": "game_record", **record}
    frame["result"] = frame.get("result") or "aborted"
    frame["reason"] = frame.get("reason") or "aborted"
    return frame
