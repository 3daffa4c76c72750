"""The README's commands work as written: every command in its workflow section runs with
``--help``, and every option it passes is one that command lists; the quick start's ``make``
targets exist and CI runs ``make test``, which lints before it tests."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def readme_commands(section: str = "Workflow") -> list[list[str]]:
    """The shell commands in the section's fenced blocks, continuation lines joined and
    comments dropped, each split into words."""
    body = _section((ROOT / "README.md").read_text(), section)
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", body, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def _subcommands(words: list[str]) -> list[str]:
    """The words after the program up to the first option: ``games list`` in
    ``autosteer-server games list --db X``."""
    sub = []
    for w in words[1:]:
        if w.startswith("-"):
            break
        sub.append(w)
    return sub


WORKFLOW = readme_commands()


def test_the_workflow_names_every_console_script() -> None:
    assert {w[0] for w in WORKFLOW} >= set(SCRIPTS)
    assert all(w[0] in SCRIPTS for w in WORKFLOW), [w[0] for w in WORKFLOW if w[0] not in SCRIPTS]
    steps = {tuple(_subcommands(w)) for w in WORKFLOW if w[0] == "autosteer-train"}
    assert {("sae",), ("label",), ("ppo",), ("evaluate",), ("report",)} <= steps


@pytest.mark.parametrize("words", WORKFLOW, ids=lambda w: " ".join(w[:3]))
def test_a_workflow_command_runs_with_help_and_knows_its_options(words: list[str]) -> None:
    module, func = SCRIPTS[words[0]].split(":")
    code = f"import sys; sys.argv[0] = {words[0]!r}; from {module} import {func}; sys.exit({func}())"
    proc = subprocess.run(
        [sys.executable, "-c", code, *_subcommands(words), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        assert option in proc.stdout, f"{' '.join(words)}: {option} is not in its --help"


def test_the_quick_start_targets_exist_and_ci_runs_make_test_which_lints_first() -> None:
    quick = readme_commands("Quick start")
    assert [w[:2] for w in quick] == [["make", "demo"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "test-fast", "lint"):
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target
    assert re.search(r"^test: lint$", makefile, flags=re.M)
    lint = r"^lint: setup\n\t\$\(BIN\)/ruff check \.\n\t\$\(BIN\)/ruff format --check \.\n\t\$\(BIN\)/python -m mypy$"
    assert re.search(lint, makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
