"""bench/server_load.py's report: medians, the ratio of each repeat, the goal lines and the
plot, from a saved JSON (``--replot``), without starting a server."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def test_replot_prints_each_repeats_ratio_and_draws_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server_load import Run, main

    runs = []
    for repeat, (arena, echo) in enumerate([(20000, 32000), (19000, 53000), (21000, 52000)]):
        for server, rate in (("arena", arena), ("echo", echo)):
            runs.append(Run(server, 100, False, repeat, rate, 4.5, 10.0, 50.0, 20.0, 80.0, 0))
    for server in ("arena", "echo"):
        runs.append(Run(server, 1000, True, 0, 1000.0, 0.4, 3.6, 160.0, 80.0, 250.0, 0))
    saved = tmp_path / "load.json"
    saved.write_text(json.dumps({"runs": [asdict(r) for r in runs], "summary": [], "argv": ["--paced"]}))
    png = tmp_path / "load.png"
    assert main(["--replot", str(saved), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "100 connections closed loop: ratio 0.38 (per repeat 0.62, 0.36, 0.40)" in out  # 20,000 / 52,000
    assert "goal ratio ≥ 0.6: NOT met" in out
    assert "1,000 connections paced: ratio 1.00 (per repeat 1.00), arena p99 3.6 ms; goal p99 ≤ 10 ms: met" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_report_bounds_the_rate_by_the_event_loops_cpu_per_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The arena's event loop is one thread: at 40 µs per request it cannot serve more than
    25,000 requests/s, which the result line sets beside what the goal needs (0.6 × echo);
    and the machine's cores, shared with the client, bound the rate whatever the processes."""
    from server_load import Run, main

    runs = []
    for repeat, (busy, echo) in enumerate([(0.70, 50000), (0.80, 52000), (0.90, 54000)]):
        runs.append(
            Run(
                "arena",
                100,
                False,
                repeat,
                20000,
                4.5,
                10.0,
                60.0,
                22.0,
                80.0,
                0,
                main_cpu_us_per_msg=40.0,
                main_busy=busy,
            )
        )
        runs.append(Run("echo", 100, False, repeat, echo, 2.0, 3.0, 19.0, 19.0, 40.0, 0))
    saved = tmp_path / "load.json"
    saved.write_text(json.dumps({"runs": [asdict(r) for r in runs], "summary": [], "argv": [], "cores": 2}))
    assert main(["--replot", str(saved)]) == 0
    out = capsys.readouterr().out
    assert (
        "the arena's event-loop process spent 40.0 µs per request and was 80% busy: on its one thread it cannot "
        "serve more than 25,000 requests/s; the goal needs 31,200"
    ) in out
    # server (60 µs, its records child included) and client (22 µs) share the 2 cores: 2 / 82 µs
    assert (
        "the arena and its client spent 60 + 22 µs per request: however its work were spread, this machine's "
        "2 cores could serve at most 24,390 requests/s"
    ) in out


@pytest.mark.timeout(120)
def test_a_short_run_warms_both_servers_up_and_counts_only_the_repeats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bench end to end, small: it starts the arena and the echo server, loads each once
    unmeasured (the warm-up), then measures; the JSON holds the measured runs only, with the
    arena's event-loop process measured apart from its records child."""
    from server_load import main

    saved = tmp_path / "load.json"
    assert (
        main(["--connections", "20", "--seconds", "1", "--repeats", "1", "--warmup", "0.5", "--json", str(saved)]) == 0
    )
    out = capsys.readouterr().out
    assert "warm-up  arena       20 conns" in out and "warm-up  echo        20 conns" in out
    assert "20 connections closed loop: ratio" in out and "the arena's event-loop process spent" in out
    assert "cores could serve at most" in out
    assert json.loads(saved.read_text())["cores"] == os.cpu_count()
    runs = json.loads(saved.read_text())["runs"]
    assert sorted(r["server"] for r in runs) == ["arena", "echo"] and all(r["repeat"] == 0 for r in runs)
    arena = next(r for r in runs if r["server"] == "arena")
    assert arena["messages_per_s"] > 0 and arena["failures"] == 0
    assert 0 < arena["main_cpu_us_per_msg"] < arena["cpu_us_per_msg"]  # the records child's share is left out
    assert 0 < arena["main_busy"] <= 1.5
