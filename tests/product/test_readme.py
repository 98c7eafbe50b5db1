"""The README stays true: its configuration table lists every setting with its current default."""

from __future__ import annotations

from tests.product.config_table import README, readme_table, table


def test_config_table_matches_the_settings_classes() -> None:
    text = README.read_text(encoding="utf-8")
    assert "(undocumented)" not in table(), "add the new setting to MEANING in config_table.py"
    assert readme_table(text) == table(), (
        "README configuration table is stale: run python -m tests.product.config_table --write"
    )


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[1] for line in first_block.strip().splitlines()] == ["run", "test"]
