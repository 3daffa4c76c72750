"""The arena's client side: :mod:`client.core`, a sans-I/O protocol client (frames in,
events and frames out), and :mod:`client.aio`, the asyncio + websockets layer over it."""
