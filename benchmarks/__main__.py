"""``python -m benchmarks [name ...]``: run the named benchmarks (default: all) on the embedded
server and, when MEDIA_STORE_BENCH_DSN is set, on that server too; then every target, judged
on the worse server."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

from benchmarks.common import RESULTS_DIR, bench_servers, machine, on_server, print_table, summary

# Each module benchmarks/bench_<name>.py defines ``async def main(server_url: str) -> None``.
ALL = [
    "jobs",
    "queue",
    "enqueue",
    "stats",
    "words",
    "api",
    "asr",
    "distribution",
    "captions",
    "search",
    "soak",
]


def main(argv: list[str]) -> int:
    names = argv or ALL
    with bench_servers() as servers:
        print("Servers:")
        for server in servers:
            print(f"  {server.label}")
        for server in servers:
            for name in names:
                try:
                    module = importlib.import_module(f"benchmarks.bench_{name}")
                except ModuleNotFoundError:
                    print(f"(benchmark {name!r} not present, skipped)")
                    continue
                print(f"\n=== {name} on {server.label} ===")
                with on_server(server, name):
                    asyncio.run(module.main(server.url))
    rows = summary()
    if rows:
        kinds = [server.kind for server in servers]
        print_table(
            "Targets, each judged on the worse server",
            ["benchmark", "target", *kinds, "worse", "goal", "verdict"],
            [
                [
                    row["benchmark"],
                    row["target"],
                    *[
                        f"{row['per_server'][kind]:.2f}" if kind in row["per_server"] else "-"
                        for kind in kinds
                    ],
                    f"{row['worse']:.2f}",
                    row["goal"],
                    "met" if row["met"] else "NOT met",
                ]
                for row in rows
            ],
        )
        if names == ALL:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            (RESULTS_DIR / "targets.json").write_text(
                json.dumps(
                    {"servers": [s.label for s in servers], "machine": machine(), "targets": rows},
                    indent=2,
                )
                + "\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
