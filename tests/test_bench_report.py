"""bench/server_load.py's report: medians, the ratio of each repeat, the goal lines and the
plot, from a saved JSON (``--replot``), without starting a server."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def test_replot_prints_each_repeats_ratio_and_draws_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
