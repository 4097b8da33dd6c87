"""What ``make demo`` prints: a heading per section, then short aligned lines."""

from __future__ import annotations


def heading(text: str) -> None:
    print(f"\n{text}")


def row(label: str, *values: object) -> None:
    """One aligned line: a label, then its values two spaces apart."""
    print(f"  {label:<15}" + "  ".join(str(value) for value in values))


def quoted(text: str, width: int = 40) -> str:
    """``text`` in quotes, cut to ``width`` characters."""
    return repr(text if len(text) <= width else text[: width - 1] + "…")
