"""Benchmark: what decoding and validating one client frame costs, per candidate.

The server parses every frame with ``server.protocol.parse_client_frame``: strict JSON
(the standard library's decoder, refusing NaN/Infinity) and then a pydantic model. Would
orjson or msgspec on that path pay? This measures, per frame (µs,
best of 7 rounds of 20,000), on a ``move`` and a ``hello`` frame:

* ``parse_client_frame``: the server's path, everything included;
* ``json`` (strict decoder) and ``orjson.loads``: decoding only;
* ``pydantic validate``: validation of the decoded dict only;
* ``msgspec`` (if installed): typed decoding and validation in one step, of structs with
  the same fields and limits.

Compare with the server's CPU per request that ``bench/server_load.py`` prints (about 100 µs
or more): the whole parse is a few percent of it (docs/PERFORMANCE.md).

Run: ``python bench/protocol_decode.py`` (``pip install msgspec==0.22.0`` to include msgspec).
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAMES = {
    "move": '{"type": "move", "game_id": "0123456789ab", "cell": 5, "id": 17}',
    "hello": '{"type": "hello", "name": "ann", "role": "player", "id": "h1"}',
}


def per_frame_us(fn: Callable[[], Any], number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


try:  # msgspec is a candidate only, not a dependency
    import msgspec
except ImportError:
    msgspec = None

if msgspec is not None:  # the same fields and limits as server.protocol's Move and Hello
    _Name = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")]
    _RequestId = Union[Annotated[str, msgspec.Meta(max_length=64)], int]

    class FastMove(msgspec.Struct, forbid_unknown_fields=True, tag_field="type", tag="move"):
        game_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
        cell: int
        id: Optional[_RequestId] = None
        trace: Optional[dict[str, Any]] = None
        on_illegal: Literal["error", "forfeit"] = "error"

    class FastHello(msgspec.Struct, forbid_unknown_fields=True, tag_field="type", tag="hello"):
        name: _Name
        role: Literal["player", "bot", "spectator"] = "player"
        token: Optional[Annotated[str, msgspec.Meta(max_length=128)]] = None
        max_games: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1
        protocol: int = 1
        id: Optional[_RequestId] = None


def msgspec_decoder() -> Any:
    if msgspec is None:
        raise ImportError("msgspec")
    return msgspec.json.Decoder(Union[FastMove, FastHello])


def main() -> int:
    import orjson

    from server.protocol import _client_adapter, loads_strict, parse_client_frame

    try:
        fast = msgspec_decoder()
    except ImportError:
        fast = None
        print("msgspec is not installed: its column is left out (pip install msgspec==0.22.0)")
    print("protocol_decode: µs per frame, best of 7 rounds")
    rows = []
    for kind, raw in FRAMES.items():
        data = json.loads(raw)
        row = {
            "frame": kind,
            "parse_client_frame": per_frame_us(lambda: parse_client_frame(raw)),
            "json (strict)": per_frame_us(lambda: loads_strict(raw)),
            "orjson.loads": per_frame_us(lambda: orjson.loads(raw)),
            "pydantic validate": per_frame_us(lambda: _client_adapter.validate_python(data)),
        }
        if fast is not None:
            row["msgspec decode+validate"] = per_frame_us(lambda: fast.decode(raw))
        rows.append(row)
    cols = list(rows[0])
    print(" | ".join(f"{c:>24}" for c in cols))
    for row in rows:
        print(" | ".join(f"{row[c]:>24}" if isinstance(row[c], str) else f"{row[c]:>24.2f}" for c in cols))
    move = rows[0]
    saved = move["parse_client_frame"] - move.get("msgspec decode+validate", move["orjson.loads"])
    print(
        f"result: the server's parse costs {move['parse_client_frame']:.1f} µs per move frame; the fastest "
        f"candidate would save about {saved:.1f} µs of it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
