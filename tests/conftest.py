"""Shared test set-up. Two torch threads can be far slower than one under CPU
contention, so tests run torch single-threaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:  # torch is optional for most tests; import it lazily elsewhere
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


# --------------------------------------------------------------------------- real services
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator["object"]:
    """A real Mosquitto broker on a free loopback port for one test (``.url``, ``.stop()``, ``.start()``)."""
    from services import Mosquitto, missing, mosquitto_binary

    binary = mosquitto_binary()
    if binary is None:
        missing("mosquitto", "apt-get install mosquitto")
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    broker = Mosquitto(folder, binary)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator["object"]:
    """A real PostgreSQL cluster for the session (initdb + pg_ctl in a temporary folder)."""
    from services import Postgres, missing, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing("postgresql (initdb, pg_ctl)", "apt-get install postgresql")
    with tempfile.TemporaryDirectory(prefix="autosteer-pg-") as folder:
        server = Postgres(Path(folder), bin_dir)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def postgres_url(postgres_server: "object") -> str:
    """The URL of an empty records database on the session's PostgreSQL."""
    postgres_server.reset()  # type: ignore[attr-defined]
    return postgres_server.url  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- small random models
@pytest.fixture(scope="module")
def lm() -> "object":
    """A tiny random TransformerLens language model with the chat template and digit tokens of
    the real one (``bots.llm.testing``); a module that needs another model overrides ``lm``."""
    from bots.llm.testing import tiny_language_model

    return tiny_language_model()


@pytest.fixture(scope="module")
def sae(lm: "object", tmp_path_factory: pytest.TempPathFactory) -> "object":
    """A tiny random SAE on ``lm``, saved in sae_lens's format in a temporary folder."""
    from bots.llm.testing import tiny_sae

    return tiny_sae(lm, folder=tmp_path_factory.mktemp("sae"))
