"""Offers: a challenge (player to opponent) or an arranged game (organiser to two bots),
pending until every remote party accepts (the game starts), one declines, or it expires."""

from __future__ import annotations

import random
from typing import Any

from server.arena_state import Offer, Session
from server.effects import Frame
from server.game import Seat
from server.play import GamesInPlay
from server.protocol import Accept, Arrange, Challenge, Decline, ProtocolError


class Offers(GamesInPlay):
    """Challenges and arranged games on top of :class:`~server.play.GamesInPlay`."""

    def _new_id(self) -> str:
        """A fresh game (and challenge) id: 12 hex digits from :attr:`id_rng`. Ids are public
        (``list_games`` shows every live one), so they need to be unique, not secret: a
        Mersenne Twister seeded from the OS draws them several times faster than ``secrets``
        (session tokens, which are secrets, still come from ``secrets``)."""
        while True:
            gid = f"{self.id_rng.getrandbits(48):012x}"
            if gid not in self.games and gid not in self.offers and gid not in self.finished:
                return gid

    def _on_challenge(self, session: Session, msg: Challenge, now: float) -> None:
        if msg.opponent == session.name:
            raise ProtocolError("forbidden", "you cannot challenge yourself", msg.id)
        opponent = self._lookup_party(msg.opponent, msg.id)
        if opponent is not None:
            self._check_capacity(opponent, msg.id)
        if msg.side != "random":
            side = Seat(msg.side)
        else:  # a seeded game draws its seats from the seed too, so it repeats exactly
            side = (random.Random(f"seats-{msg.seed}") if msg.seed is not None else self.rng).choice((Seat.X, Seat.O))
        x, o = (session.name, msg.opponent) if side is Seat.X else (msg.opponent, session.name)
        address = self._check_opened(session, msg.id)
        clock = float(msg.clock or self.config.move_clock)
        offer_id = self._new_id()
        self._send(session.conn_id, self._with_id(
            {"type": "challenge_sent", "challenge_id": offer_id, "opponent": msg.opponent, "side": side.value, "clock": clock}, msg.id))
        awaiting = {} if opponent is None else {opponent.name: side.other}
        offer = Offer(offer_id, session.name, x, o, clock, now + self.config.challenge_timeout, awaiting, seed=msg.seed)
        self._hold_opened(offer_id, session, address)
        self._open_offer(offer, now)

    def _on_arrange(self, session: Session, msg: Arrange, now: float) -> None:
        parties = {}
        for name in (msg.x, msg.o):
            party = self._lookup_party(name, msg.id)
            if party is not None and party.role != "bot":
                raise ProtocolError("forbidden", f"{name!r} is a player, not a bot; arrange is for bot-vs-bot games", msg.id)
            parties[name] = party
        if msg.x == msg.o and parties[msg.x] is not None:
            raise ProtocolError("forbidden", f"a remote bot cannot be arranged against itself ({msg.x!r}); house bots can", msg.id)
        for party in parties.values():
            if party is not None:
                self._check_capacity(party, msg.id)
        address = self._check_opened(session, msg.id)
        clock = float(msg.clock or self.config.move_clock)
        offer_id = self._new_id()
        self._send(session.conn_id, self._with_id(
            {"type": "challenge_sent", "challenge_id": offer_id, "opponent": f"{msg.x} vs {msg.o}", "x": msg.x, "o": msg.o,
             "clock": clock, "tag": msg.tag}, msg.id))
        awaiting = {}
        if parties[msg.x] is not None:
            awaiting[msg.x] = Seat.X
        if parties[msg.o] is not None:
            awaiting[msg.o] = Seat.O
        offer = Offer(offer_id, session.name, msg.x, msg.o, clock, now + self.config.challenge_timeout, awaiting,
                      tag=msg.tag, arranged=True, seed=msg.seed)
        self._hold_opened(offer_id, session, address)
        self._open_offer(offer, now)

    def _open_offer(self, offer: Offer, now: float) -> None:
        if not offer.awaiting:
            self._start_game(offer, now)
            return
        self.offers[offer.offer_id] = offer
        for name in offer.awaiting:
            self.sessions[name].offers.add(offer.offer_id)
            self._send_to(name, self._offer_frame(offer, name, now))
        self._push_timer(offer.expires_at, "offer", offer.offer_id, 0)

    def _offer_frame(self, offer: Offer, name: str, now: float) -> Frame:
        seat = offer.awaiting[name]
        return {"type": "challenge", "challenge_id": offer.offer_id, "challenger": offer.origin, "side": seat.value,
                "clock": offer.clock, "opponent": offer.o if seat is Seat.X else offer.x, "arranged": offer.arranged,
                "tag": offer.tag, "expires_in": max(0.0, round(offer.expires_at - now, 3))}

    def _pending_offer(self, session: Session, offer_id: str, rid: Any) -> Offer:
        offer = self.offers.get(offer_id)
        if offer is None or session.name not in offer.awaiting:
            raise ProtocolError("unknown_challenge", f"no pending challenge {offer_id!r} for {session.name}", rid)
        return offer

    def _on_accept(self, session: Session, msg: Accept, now: float) -> None:
        offer = self._pending_offer(session, msg.challenge_id, msg.id)
        # capacity counted the offer already, so accepting never makes a bot busy
        del offer.awaiting[session.name]
        session.offers.discard(offer.offer_id)
        if offer.awaiting:
            self._send(session.conn_id, self._with_id(
                {"type": "info", "message": f"accepted; waiting for {', '.join(offer.awaiting)}", "challenge_id": offer.offer_id}, msg.id))
            return
        del self.offers[offer.offer_id]
        self._start_game(offer, now, accepter=session.name, rid=msg.id)

    def _on_decline(self, session: Session, msg: Decline, now: float) -> None:
        offer = self._pending_offer(session, msg.challenge_id, msg.id)
        reason = f"{session.name} declined" + (f": {msg.reason}" if msg.reason else "")
        self._cancel_offer(offer, reason, session.name)
        self._send(session.conn_id, self._with_id(
            {"type": "info", "message": f"declined challenge {offer.offer_id}", "challenge_id": offer.offer_id}, msg.id))

    def _cancel_offer(self, offer: Offer, reason: str, by: str | None) -> None:
        if self.offers.pop(offer.offer_id, None) is None:
            return
        self._release_opened(offer.offer_id)
        frame = {"type": "challenge_declined", "challenge_id": offer.offer_id, "reason": reason}
        for name in {offer.origin, offer.x, offer.o}:
            session = self.sessions.get(name)
            if session is None:
                continue
            session.offers.discard(offer.offer_id)
            if name != by:
                self._send_to(name, frame)
