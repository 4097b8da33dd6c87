"""``python -m benchmarks [name ...]``: run the named benchmarks (default: all)."""

from __future__ import annotations

import asyncio
import importlib
import sys

from benchmarks.common import bench_server

# Each module benchmarks/bench_<name>.py defines ``async def main(server_url: str) -> None``.
ALL = ["jobs", "queue", "enqueue", "stats", "words", "api", "asr", "distribution", "captions"]


def main(argv: list[str]) -> int:
    names = argv or ALL
    with bench_server() as server_url:
        for name in names:
            try:
                module = importlib.import_module(f"benchmarks.bench_{name}")
            except ModuleNotFoundError:
                print(f"(benchmark {name!r} not present, skipped)")
                continue
            asyncio.run(module.main(server_url))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
