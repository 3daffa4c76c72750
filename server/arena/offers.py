"""Offers: a challenge (player to opponent) or an arranged game (organiser to two bots),
pending until every remote party accepts (the game starts), one declines, or it expires.

:class:`Offers` keeps the pending offers in the shared :class:`~server.arena.core.ArenaState`,
asks the :class:`~server.arena.lobby.Lobby` who can be challenged, and hands an accepted offer
to :class:`~server.arena.play.GamesInPlay` to start."""

from __future__ import annotations

import random
from typing import Any

from server.arena.state import Offer, Session
from server.arena.effects import Frame
from server.game import Seat
from server.arena.core import ArenaState, with_id
from server.arena.lobby import Lobby
from server.arena.play import GamesInPlay
from server.protocol import Accept, Arrange, Challenge, Decline, ProtocolError


class Offers:
    """Challenges and arranged games, from the request to the start or the end of the offer."""

    def __init__(self, state: ArenaState, lobby: Lobby, play: GamesInPlay) -> None:
        self.state = state
        self.lobby = lobby
        self.play = play

    def _new_id(self) -> str:
        """A fresh game (and challenge) id: 12 hex digits from :attr:`ArenaState.id_rng <server.arena.core.ArenaState.id_rng>`. Ids are public
        (``list_games`` shows every live one), so they need to be unique, not secret: a
        Mersenne Twister seeded from the OS draws them several times faster than ``secrets``
        (session tokens, which are secrets, still come from ``secrets``)."""
        while True:
            gid = f"{self.state.id_rng.getrandbits(48):012x}"
            if gid not in self.state.games and gid not in self.state.offers and gid not in self.state.finished:
                return gid

    def on_challenge(self, session: Session, msg: Challenge, now: float) -> None:
        if msg.opponent == session.name:
            raise ProtocolError("forbidden", "you cannot challenge yourself", msg.id)
        opponent = self.lobby.lookup_party(msg.opponent, msg.id)
        if opponent is not None:
            self.lobby.check_capacity(opponent, msg.id)
            if opponent.role == "player":
                self._check_no_pending_challenge(session, opponent.name, msg.id)
        if msg.rematch_of is not None:
            self._check_rematch(session, msg.opponent, msg.rematch_of, msg.id)
        if msg.side != "random":
            side = Seat(msg.side)
        else:  # a seeded game draws its seats from the seed too, so it repeats exactly
            side = (random.Random(f"seats-{msg.seed}") if msg.seed is not None else self.state.rng).choice(
                (Seat.X, Seat.O)
            )
        x, o = (session.name, msg.opponent) if side is Seat.X else (msg.opponent, session.name)
        address = self.state.check_opened(session, msg.id)
        time_control = (
            None if msg.time_control is None else (float(msg.time_control.base), float(msg.time_control.increment))
        )
        # a time-control game's `clock` is its base time (what a client that knows only move clocks shows)
        clock = time_control[0] if time_control is not None else float(msg.clock or self.state.config.move_clock)
        offer_id = self._new_id()
        sent: Frame = {
            "type": "challenge_sent",
            "challenge_id": offer_id,
            "opponent": msg.opponent,
            "side": side.value,
            "clock": clock,
        }
        if msg.time_control is not None:
            sent["time_control"] = msg.time_control.frame()
        if msg.rematch_of is not None:
            sent["rematch_of"] = msg.rematch_of
        if msg.opening:
            sent["opening"] = list(msg.opening)
        self.state.send(session.conn_id, with_id(sent, msg.id))
        awaiting = {} if opponent is None else {opponent.name: side.other}
        offer = Offer(
            offer_id,
            session.name,
            x,
            o,
            clock,
            now + self.state.config.challenge_timeout,
            awaiting,
            seed=msg.seed,
            time_control=time_control,
            rematch_of=msg.rematch_of,
            opening=tuple(msg.opening or ()),
        )
        self.state.hold_opened(offer_id, session, address)
        self._open_offer(offer, now)

    def _check_no_pending_challenge(self, session: Session, opponent: str, rid: Any) -> None:
        """A person challenges another person once at a time: a second challenge while the
        first waits for an answer is refused (bots may be challenged to many games at once)."""
        for offer_id in sorted(session.opened):
            offer = self.state.offers.get(offer_id)
            if offer is not None and offer.origin == session.name and opponent in offer.awaiting:
                raise ProtocolError(
                    "challenge_pending",
                    f"your challenge {offer_id} to {opponent} is waiting for an answer; "
                    f"it expires in {self.state.config.challenge_timeout:g} s at most",
                    rid,
                )

    def _check_rematch(self, session: Session, opponent: str, game_id: str, rid: Any) -> None:
        """``rematch_of`` must name a finished game between the challenger and ``opponent``."""
        if game_id in self.state.games:
            raise ProtocolError(
                "invalid_message", f"game {game_id} is still being played; a rematch follows a finished game", rid
            )
        before = self.state.finished.get(game_id)
        if before is None:
            raise ProtocolError("unknown_game", f"no finished game {game_id!r} is kept on this server to rematch", rid)
        if {before.x, before.o} != {session.name, opponent}:
            raise ProtocolError(
                "invalid_message",
                f"game {game_id} was not played by you and {opponent}; a rematch is between the same two players",
                rid,
            )

    def on_arrange(self, session: Session, msg: Arrange, now: float) -> None:
        parties = {}
        for name in (msg.x, msg.o):
            party = self.lobby.lookup_party(name, msg.id)
            if party is not None and party.role != "bot":
                raise ProtocolError(
                    "forbidden", f"{name!r} is a player, not a bot; arrange is for bot-vs-bot games", msg.id
                )
            parties[name] = party
        if msg.x == msg.o and parties[msg.x] is not None:
            raise ProtocolError(
                "forbidden", f"a remote bot cannot be arranged against itself ({msg.x!r}); house bots can", msg.id
            )
        for party in parties.values():
            if party is not None:
                self.lobby.check_capacity(party, msg.id)
        address = self.state.check_opened(session, msg.id)
        clock = float(msg.clock or self.state.config.move_clock)
        offer_id = self._new_id()
        sent: Frame = {
            "type": "challenge_sent",
            "challenge_id": offer_id,
            "opponent": f"{msg.x} vs {msg.o}",
            "x": msg.x,
            "o": msg.o,
            "clock": clock,
            "tag": msg.tag,
        }
        if msg.opening:
            sent["opening"] = list(msg.opening)
        self.state.send(session.conn_id, with_id(sent, msg.id))
        awaiting = {}
        if parties[msg.x] is not None:
            awaiting[msg.x] = Seat.X
        if parties[msg.o] is not None:
            awaiting[msg.o] = Seat.O
        offer = Offer(
            offer_id,
            session.name,
            msg.x,
            msg.o,
            clock,
            now + self.state.config.challenge_timeout,
            awaiting,
            tag=msg.tag,
            arranged=True,
            seed=msg.seed,
            opening=tuple(msg.opening or ()),
        )
        self.state.hold_opened(offer_id, session, address)
        self._open_offer(offer, now)

    def _open_offer(self, offer: Offer, now: float) -> None:
        if not offer.awaiting:
            self.play.start_game(offer, now)
            return
        self.state.offers[offer.offer_id] = offer
        for name in offer.awaiting:
            self.state.sessions[name].offers.add(offer.offer_id)
            self.state.send_to(name, self.offer_frame(offer, name, now))
        self.state.push_timer(offer.expires_at, "offer", offer.offer_id, 0)

    def offer_frame(self, offer: Offer, name: str, now: float) -> Frame:
        seat = offer.awaiting[name]
        frame: Frame = {
            "type": "challenge",
            "challenge_id": offer.offer_id,
            "challenger": offer.origin,
            "side": seat.value,
            "clock": offer.clock,
            "opponent": offer.o if seat is Seat.X else offer.x,
            "arranged": offer.arranged,
            "tag": offer.tag,
            "expires_in": max(0.0, round(offer.expires_at - now, 3)),
        }
        if offer.time_control is not None:
            frame["time_control"] = {"base": offer.time_control[0], "increment": offer.time_control[1]}
        if offer.rematch_of is not None:
            frame["rematch_of"] = offer.rematch_of
        if offer.opening:
            frame["opening"] = list(offer.opening)
        return frame

    def _pending_offer(self, session: Session, offer_id: str, rid: Any) -> Offer:
        offer = self.state.offers.get(offer_id)
        if offer is None or session.name not in offer.awaiting:
            raise ProtocolError("unknown_challenge", f"no pending challenge {offer_id!r} for {session.name}", rid)
        return offer

    def on_accept(self, session: Session, msg: Accept, now: float) -> None:
        offer = self._pending_offer(session, msg.challenge_id, msg.id)
        # capacity counted the offer already, so accepting never makes a bot busy
        del offer.awaiting[session.name]
        session.offers.discard(offer.offer_id)
        if offer.awaiting:
            self.state.send(
                session.conn_id,
                with_id(
                    {
                        "type": "info",
                        "message": f"accepted; waiting for {', '.join(offer.awaiting)}",
                        "challenge_id": offer.offer_id,
                    },
                    msg.id,
                ),
            )
            return
        del self.state.offers[offer.offer_id]
        self.play.start_game(offer, now, accepter=session.name, rid=msg.id)

    def on_decline(self, session: Session, msg: Decline, now: float) -> None:
        offer = self._pending_offer(session, msg.challenge_id, msg.id)
        reason = f"{session.name} declined" + (f": {msg.reason}" if msg.reason else "")
        self.cancel_offer(offer, reason, session.name)
        self.state.send(
            session.conn_id,
            with_id(
                {"type": "info", "message": f"declined challenge {offer.offer_id}", "challenge_id": offer.offer_id},
                msg.id,
            ),
        )

    def cancel_offer(self, offer: Offer, reason: str, by: str | None) -> None:
        if self.state.offers.pop(offer.offer_id, None) is None:
            return
        self.state.release_opened(offer.offer_id)
        frame = {"type": "challenge_declined", "challenge_id": offer.offer_id, "reason": reason}
        for name in {offer.origin, offer.x, offer.o}:
            session = self.state.sessions.get(name)
            if session is None:
                continue
            session.offers.discard(offer.offer_id)
            if name != by:
                self.state.send_to(name, frame)
