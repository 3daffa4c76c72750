"""Where ``autosteer-train sae``, ``label`` and ``search-vector`` write: a new folder
``runs/<UTC time>-<command>/`` by default, so that a run never overwrites the shipped
artifacts (``bots/llm/artifacts/``) or the docs that describe them. Writing the shipped
files is a choice made by naming them with ``--out``; docs are then updated too.
"""

from __future__ import annotations

import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: the parent of every default run folder (tests point it elsewhere)
RUNS = REPO / "runs"
SHIPPED_DOCS = REPO / "docs"


def new_run_folder(command: str) -> Path:
    """A new, empty folder ``RUNS/<YYYYmmdd-HHMMSS>-<command>[-n]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = RUNS / f"{stamp}-{command}"
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    path.mkdir(parents=True)
    return path


def same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def docs_folder(out: Path, shipped: Path, docs: str | Path | None) -> Path:
    """``docs`` when given; else the shipped docs when ``out`` is the shipped artifact, else
    a ``docs`` folder beside ``out`` (inside its run folder)."""
    if docs:
        return Path(docs)
    return SHIPPED_DOCS if same_path(out, shipped) else out.parent / "docs"
