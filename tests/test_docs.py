"""Every Python block of the README, CONTRIBUTING.md and the guides in docs/ runs as written.

A file's blocks read as one session, top to bottom (a later block uses the ``store`` an earlier
one opened), so they run in order, in one namespace per file, on a fresh migrated database per
file, with top-level ``await`` as in ``python -m asyncio``. A failure names the file and the
line of its block, and the traceback points into the markdown file itself.

The convention: a block fenced ```` ```python ```` runs. A block that cannot run here (it needs
a service the suite does not have) is fenced ```` ```python no-run ```` and opens with a comment
saying why; it is still compiled. Any other fence naming Python (```` ```py ````,
```` ```python3 ````, ```` ```pycon ````, a misspelt flag) fails the suite rather than being
skipped in silence.
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

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted(
    path
    for path in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]
    if path.exists()
)
BLOCK_TIMEOUT_S = 60.0

RUN = ("python",)
NO_RUN = ("python", "no-run")
# Info strings a reader (or a highlighter) takes for Python: such a block must be one of the two
# above, so that none is left out by a spelling the extraction does not know.
PYTHON_LIKE = {"python", "python3", "py", "py3", "pycon", "pyi", "ipython", "python-repl"}
# Where the docs may import from: the public paths, which survive reorganising the package.
PUBLIC_MODULES = {
    "media_store",
    "media_store.worker",
    "media_store.asr",
    "media_store.fastapi",
    "media_store.metrics",
    "media_store.tracing",
}

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the file's line of the block's first line of code
    info: tuple[str, ...]  # the fence's info string, split into words
    code: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def language(self) -> str:
        return self.info[0].lower() if self.info else ""


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order (an unclosed fence is an error, not a block)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        first = index
        while index < len(lines):
            closing = FENCE.match(lines[index])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            index += 1
        else:
            raise AssertionError(f"{path.relative_to(ROOT)}:{first}: a fence is never closed")
        # A block inside a list item is indented with it; its code is not.
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[first:index]]
        code = "".join(line + "\n" for line in body)
        blocks.append(Block(path, first + 1, tuple(opening["info"].split()), code))
        index += 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [block for block in fenced_blocks(path) if block.language in PYTHON_LIKE]


def runnable(path: Path) -> list[Block]:
    return [block for block in python_blocks(path) if block.info == RUN]


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def compile_block(block: Block) -> Any:
    # Padded so that line numbers in a traceback are the markdown file's own.
    source = "\n" * (block.line - 1) + block.code
    return compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Run ``block`` in ``namespace`` as ``python -m asyncio`` would (top-level await)."""
    code = compile_block(block)
    async with asyncio.timeout(BLOCK_TIMEOUT_S):
        outcome = eval(code, namespace)  # running the docs is the point
        if inspect.isawaitable(outcome):
            await outcome


def test_the_readme_and_the_guides_have_python_blocks_to_run() -> None:
    # Guards the extraction itself: a change to it that finds nothing would pass every file.
    assert runnable(ROOT / "README.md")
    assert sum(len(runnable(path)) for path in DOCS) >= 10


def test_every_guide_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guides = [path for path in DOCS if path.parent.name == "docs"]
    assert guides
    for path in guides:
        assert f"]({doc_id(path)})" in readme, f"README.md does not link {doc_id(path)}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_python_block_is_run_or_marked_not_run(doc: Path) -> None:
    for block in python_blocks(doc):
        assert block.info in (RUN, NO_RUN), (
            f"{block}: ```{' '.join(block.info)} is neither run nor marked: fence it "
            "```python, or ```python no-run with a comment saying why"
        )
        if block.info == NO_RUN:
            assert block.code.lstrip().startswith("#"), f"{block}: say first why it cannot run"
        compile_block(block)  # a block not run still parses


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_no_python_block_holds_a_placeholder_or_a_private_import(doc: Path) -> None:
    for block in python_blocks(doc):
        assert "..." not in block.code, f"{block} holds a placeholder"
        assert "…" not in block.code, f"{block} holds a placeholder"
        tree = ast.parse(block.code)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                if module.split(".")[0] == "media_store":
                    assert module in PUBLIC_MODULES, f"{block} imports the internal {module}"


@pytest.mark.parametrize("doc", [path for path in DOCS if runnable(path)], ids=doc_id)
async def test_python_blocks_run_as_written(
    doc: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for block in runnable(doc):
            try:
                await run_block(block, namespace)
            except BaseException as exc:
                exc.add_note(f"in the python block at {block}")
                raise
    finally:
        # A block that failed may leave a worker task running: stop it before closing the
        # store, whose close would otherwise wait for the task's connections for ever.
        for value in namespace.values():
            if isinstance(value, asyncio.Task) and not value.done():
                value.cancel()
                with contextlib.suppress(BaseException):
                    await value
        # A file that fails before its last block leaves its store open.
        for value in namespace.values():
            if isinstance(value, Store):
                await value.close()
