"""Players the referee hosts: the bot interface (:mod:`server.players.base`) and the house
bots (:mod:`server.players.house`: minimax, random, ε-minimax levels). Pure Python."""
