"""Small helpers for the words of user-facing messages."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``"1 frame"``, ``"2 frames"``, ``"0 frames"``: ``count`` with ``noun`` in the number it needs (``plural``
    defaults to ``noun + "s"``)."""
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"
