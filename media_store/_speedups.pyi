"""Compiled paths of the word writers (media_store/_speedups.c; optional, see hatch_build.py)."""

from typing import Any

def columns(
    items: list[Any], /
) -> (
    tuple[
        list[str],
        list[float],
        list[float],
        list[float | None],
        list[str | None] | None,
        bytes,
        bytes,
        bytes,
        bytes,
    ]
    | None
):
    """The checked columns of word dicts and their packed forms, or None: the Python path
    decides (media_store.words.timestamps.validate_words)."""
