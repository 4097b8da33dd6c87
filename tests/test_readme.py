"""The README's Python blocks run as written, against a fresh migrated database.

The blocks read as one session, top to bottom (the second uses the ``store`` the first opened),
so the test of block ``n`` runs blocks ``1 … n-1`` first, in one namespace, on its own
database. A failure names the block by its line in README.md, and the traceback points into
README.md itself.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from media_store import Store

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Block:
    line: int  # the README line of the block's first line of code
    code: str

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def python_blocks(text: str) -> list[Block]:
    """The fenced ```` ```python ```` blocks of ``text``, in order."""
    return [
        Block(line=text.count("\n", 0, match.start(1)) + 1, code=match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Run ``block`` in ``namespace`` as ``python -m asyncio`` would (top-level await)."""
    # Padded so that line numbers in a traceback are README.md's own.
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    async with asyncio.timeout(BLOCK_TIMEOUT_S):
        outcome = eval(code, namespace)  # running the README is the point
        if inspect.isawaitable(outcome):
            await outcome


def test_the_readme_has_the_python_blocks_this_file_runs() -> None:
    # Guards the extraction itself: a fence spelt differently would silently run nothing.
    fences = re.findall(r"^```(\w*)$", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert fences.count("python") == len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_no_python_block_holds_a_placeholder(block: Block) -> None:
    assert "..." not in block.code, f"{block} holds a placeholder"
    assert "…" not in block.code, f"{block} holds a placeholder"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[str(b) for b in BLOCKS])
async def test_readme_block_runs_as_written(
    index: int, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    try:
        for earlier in BLOCKS[:index]:
            await run_block(earlier, namespace)
        await run_block(BLOCKS[index], namespace)
    finally:
        # A block that failed may leave a worker task running: stop it before closing the
        # store, whose close would otherwise wait for the task's connections for ever.
        for value in namespace.values():
            if isinstance(value, asyncio.Task) and not value.done():
                value.cancel()
                with contextlib.suppress(BaseException):
                    await value
        # A block before the one that closes the store leaves it open.
        for value in namespace.values():
            if isinstance(value, Store):
                await value.close()
