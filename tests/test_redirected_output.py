"""Output in redirected logs (issue 23): progress as whole lines, never cut (``1,49…``); tables laid out
wide instead of wrapped at 80 columns when stdout is not a terminal."""

from __future__ import annotations

from rich.table import Table

LONG = "training on 1,497 products (efficientnet-lite0, minilm, tfidf; linear head, late fusion)"


def test_progress_in_a_log_is_whole_lines(capsys):
    from skulens.progress import progress_bar, step

    with step(LONG):
        with progress_bar(1497, "embedding 1,497 images with efficientnet-lite0 (cache: 0 hits)") as bar:
            bar.advance(1497)
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("✓ embedding 1,497 images with efficientnet-lite0 (cache: 0 hits) 1,497/1,497") for line in lines)
    assert any(line.startswith(f"✓ {LONG} in ") for line in lines)
    assert not any("…" in line[1:] for line in lines)  # nothing cut (the first character marks a started step)


def test_tables_are_not_wrapped_at_80_columns_in_a_log(capsys, monkeypatch):
    from skulens.cli.output import console

    monkeypatch.delenv("COLUMNS", raising=False)
    table = Table("name", "description")
    table.add_row("minilm", "sentence-transformers all-MiniLM-L6-v2 (384-d), the text encoder every categorizer fuses by default")
    console.print(table)
    out = capsys.readouterr().out
    assert "the text encoder every categorizer fuses by default" in out
    assert max(len(line) for line in out.splitlines()) > 80
