"""The accept comment's command line, read as the accept workflow reads it."""

from __future__ import annotations

import pytest

from pytest_labelquality.accept import parse_command


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        ("/label-quality accept a b", ["a", "b"]),
        ("Checked by hand.\n  /label-quality accept 'dog 17' cat/5\nthanks", ["dog 17", "cat/5"]),
        ("/label-quality accept", []),  # answered: name the suspects
        ("/label-quality accepts a", None),
        ("I would /label-quality accept a", None),  # only a line of its own
        ("no command here", None),
    ],
)
def test_the_command_names_the_ids_quotes_keep_together(body: str, ids: list[str] | None) -> None:
    assert parse_command(body) == ids
