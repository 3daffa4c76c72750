"""The fast decode path of client frames (orjson first, json where they could differ) gives
exactly what the standard library's strict decoder gives: the same values and types, the
same refusals with the same messages."""

from __future__ import annotations

from typing import Any

import pytest

from server.arena.arena import Arena, Send, ServerConfig
from server.protocol import MoveMsg, ProtocolError, _strict_decoder, loads_strict, parse_client_frame


def _reference(raw: str) -> Any:
    """The strict decoder the fast path must agree with: json, refusing NaN, infinities and
    overflowing floats (the module's own fallback)."""
    return _strict_decoder.decode(raw)


ACCEPTED = [
    '{"type": "move", "game_id": "g", "cell": 5, "id": 17}',
    '{"id": 18446744073709551615}',  # the largest integer orjson keeps exact
    '{"id": 18446744073709551616}',  # one more: orjson would round it to a float
    '{"id": -9223372036854775808}',
    '{"id": -9223372036854775809}',
    '{"trace": {"a": [1, {"b": 123456789012345678901234567890}]}}',
    '{"trace": {"x": 1e19, "y": -1e300, "z": 1e-400, "w": 0.1}}',
    '{"a": 1, "a": 2}',  # duplicate keys: the last wins, as in json
    '{"id": "\\ud800"}',  # a lone surrogate escape: json decodes it (parse_client_frame refuses it)
    '{"\\udc00": 1}',
    '{"s": "\\ud83d\\ude00 \\u0000"}',
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_decodes_what_json_decodes_with_the_same_types(raw: str) -> None:
    expected = _reference(raw)
    got = loads_strict(raw)
    assert repr(got) == repr(expected)  # repr: 2**64 and 1.8446744073709552e19 compare equal
    assert repr(loads_strict(raw.encode("utf-8"))) == repr(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "[NaN]",
        '{"p": Infinity}',
        '{"p": -Infinity}',
        '{"p": 1e999}',
        '{"a": 1,}',
        '{"a" 1}',
        '{"a": 1}x',
        "[01]",
        "{'a': 1}",
        '"\t"',
        "\ufeff{}",
        "",
    ],
)
def test_refuses_what_json_refuses_with_its_message(raw: str) -> None:
    with pytest.raises(ValueError) as expected:
        _reference(raw)
    with pytest.raises(ValueError) as got:
        loads_strict(raw)
    assert str(got.value) == str(expected.value)


def test_a_request_id_beyond_64_bits_is_kept_exact() -> None:
    msg = parse_client_frame('{"type": "move", "game_id": "g", "cell": 5, "id": 18446744073709551617}')
    assert isinstance(msg, MoveMsg) and type(msg.id) is int and msg.id == 2**64 + 1
    with pytest.raises(ProtocolError) as exc:
        parse_client_frame('{"type": "move", "game_id": "g", "cell": 5, "id": "\\ud800"}')
    assert exc.value.code == "bad_json"


def test_a_cell_beyond_64_bits_is_out_of_range_not_a_float() -> None:
    arena = Arena(ServerConfig(seed=1))
    arena.connect(1, "127.0.0.1", 0.0)
    arena.receive(1, '{"type": "hello", "name": "ann"}', 0.0)
    arena.receive(1, '{"type": "challenge", "opponent": "minimax", "side": "X"}', 0.0)
    gid = next(e.frame["game_id"] for e in arena.drain() if isinstance(e, Send) and e.frame["type"] == "game_start")
    arena.receive(1, '{"type": "move", "game_id": "%s", "cell": 36893488147419103232, "id": 3}' % gid, 0.0)
    errors = [e.frame for e in arena.drain() if isinstance(e, Send) and e.frame["type"] == "error"]
    assert [(f["code"], f["id"]) for f in errors] == [("out_of_range", 3)]
    assert "36893488147419103232" in errors[0]["message"]
