"""docs/RESULTS.md and the README's headline table are what the result files give: the
generator run on the committed JSON reproduces the committed documents byte for byte, and a
section whose file is absent is left out cleanly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.evaluation import results_md
from training.evaluation.results import add_arguments, run

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "regenerate with `autosteer-train report --results-md docs/RESULTS.md --readme README.md`"


def test_the_committed_results_md_is_what_the_result_files_give() -> None:
    missing: list[str] = []
    assert results_md.render(ROOT, missing) == (ROOT / "docs" / "RESULTS.md").read_text(), REGENERATE
    assert missing == []


def test_the_readmes_headline_table_is_what_the_result_files_give() -> None:
    readme = (ROOT / "README.md").read_text()
    assert results_md.replace_headline(readme, results_md.headline_table(ROOT)) == readme, REGENERATE
    assert 5 <= len(results_md.headline_rows(ROOT)) <= 8


def test_every_registered_section_names_files_that_exist() -> None:
    for section in results_md.SECTIONS:
        for path in section.needs + section.optional:
            assert (ROOT / path).is_file(), f"{section.title}: {path}"


def test_a_section_whose_file_is_absent_is_left_out_and_named(tmp_path: Path) -> None:
    target = tmp_path / "bots" / "llm" / "artifacts" / "sae"
    target.mkdir(parents=True)
    shutil.copy(ROOT / results_md.SAE_CARD, target / "RUN_CARD.json")
    missing: list[str] = []
    text = results_md.render(tmp_path, missing)
    assert "## The SAE" in text and "## The server under load" not in text
    assert results_md.SERVER_LOAD in missing and results_md.LEARNED_CARD in missing
    assert [r[0].startswith("SAE at") for r in results_md.headline_rows(tmp_path)] == [True]


def test_a_new_section_is_one_registry_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "new.json").write_text('{"draw": 0.5}')
    section = results_md.Section(
        "A new result",
        ("docs/results/new.json",),
        lambda f: [f"draw {results_md._pct(f['docs/results/new.json']['draw'])}"],
    )
    monkeypatch.setattr(results_md, "SECTIONS", [section])
    text = results_md.render(tmp_path)
    assert "## A new result\n\nSource: `docs/results/new.json`\n\ndraw 50.0 %\n" in text


def test_the_report_command_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results_md.HEADLINE_BEGIN}\nold\n{results_md.HEADLINE_END}\noutro\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--results-md", str(tmp_path / "R.md"), "--readme", str(readme)])) == 0
    assert (tmp_path / "R.md").read_text() == (ROOT / "docs" / "RESULTS.md").read_text()
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "\nold\n" not in text
    assert "| result | measured | table |" in text
    assert "wrote" in capsys.readouterr().out


def test_a_readme_without_the_markers_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert results_md.write(None, readme) == 2
    assert "has no headline block" in capsys.readouterr().err
