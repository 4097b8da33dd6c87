"""The package's layout: no import cycles, and every import of the package at the top of its
module (so that ``import media_store`` never depends on the order modules happen to load)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import media_store

PACKAGE = Path(media_store.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported media_store module, line, at module level) for each import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from media_store.asr import local` imports the module local; names that are no
            # module come from the package's own __init__
            modules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name for name in modules if _exists(name)]
            if len(names) < len(modules):
                names.append(node.module)
        for name in names:
            if name.split(".")[0] == "media_store" and _exists(name):
                found.append((name, node.lineno, id(node) in top))
    return found


def _exists(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (
        PACKAGE / relative / "__init__.py"
    ).exists()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[_module_name(path)] = {
            name for name, _, _ in _imports(path) if name != _module_name(path)
        }
    return graph


def test_no_module_imports_a_module_that_imports_it() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target == "media_store" or module == "media_store":
                continue  # the package's __init__ re-exports; nothing imports it back
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_import_of_the_package_is_at_the_top_of_its_module() -> None:
    late = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, line, at_top in _imports(path)
        if not at_top
    ]
    assert late == []


def test_the_package_imports_in_a_fresh_interpreter() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import media_store, media_store.cli, media_store.ops.schema_check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(name: str) -> bool:
    # Only the package's own modules are looked up: finding another library's would import
    # it (and its side effects) into the test run. `import X` of any library is still seen.
    return name.split(".")[0] == "media_store" and _exists(name)


def _private_uses(source: str, package: str) -> list[str]:
    """Each ``from X import _name`` and each ``X._name`` where ``X`` is a module imported by
    ``source`` (``import X``, ``import X as Y``, ``from P import X`` when ``P.X`` is one of the
    package's modules), as ``"line: what"``. ``package``: where relative imports start."""
    tree = ast.parse(source)
    modules: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _private(alias.name.split(".")[-1]):
                    found.append(f"{node.lineno}: import {alias.name}")
                modules.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                origin = ".".join([*base, origin] if origin else base)
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: from {origin} import {alias.name}")
                elif _is_module(f"{origin}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root: ast.expr = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(found, key=lambda use: int(use.partition(":")[0]))


def test_no_module_imports_another_modules_private_names() -> None:
    """A name with a leading underscore is its module's own: another module that needs it
    needs a public name (what the module promises to keep), not a reach into its insides.
    Attribute access on objects (``self._db``, a driver's ``pool._queue``) is not checked."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{use}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for use in _private_uses(path.read_text(encoding="utf-8"), _package_of(path))
    ]
    assert found == []


def _package_of(path: Path) -> str:
    """The package a relative import in ``path`` starts from (itself for an __init__)."""
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def test_the_private_name_check_sees_each_form_and_spares_the_rest() -> None:
    source = "\n".join(
        [
            "import media_store.db.boundary as b",
            "from media_store.db import connections",
            "from media_store.db.boundary import _acquire, run",
            "from .connections import _quiet",
            "import asyncpg",
            "b._failure(x)",
            "connections._rollback_only_reset",
            "asyncpg.pool._private",
            "run.__name__, self._db, pool._queue, b.run",
        ]
    )
    assert _private_uses(source, "media_store.db") == [
        "3: from media_store.db.boundary import _acquire",
        "4: from media_store.db.connections import _quiet",
        "6: b._failure",
        "7: connections._rollback_only_reset",
        "8: asyncpg.pool._private",
    ]


# The rooms of the package, lowest first (docs: CONTRIBUTING.md, "Layout"). A module imports
# only from its own room or the rooms below it: arrows point down. models/fields.py (field
# types and model bases) is the floor that words/ and the schemas share, so it sits below
# words/, and the schemas (which hold word columns) above it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("media_store.errors", "media_store._compiled"),
    ("media_store.config",),
    ("media_store.db", "media_store.models.fields"),
    ("media_store.words",),
    ("media_store.models", "media_store.asr"),
    ("media_store.repositories",),
    ("media_store.replicas",),
    ("media_store.store",),
    ("media_store.worker",),
    (
        "media_store.ops",
        "media_store.cli",
        "media_store.contrib",
        "media_store.fastapi",
        "media_store.demo",
        "media_store.__main__",
        "media_store",
    ),
)


def _room(module: str) -> tuple[int, str]:
    """(layer, room) of ``module``: the longest room name that is it or contains it."""
    best: tuple[int, str] | None = None
    for layer, rooms in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and (
                best is None or len(room) > len(best[1])
            ):
                best = (layer, room)
    assert best is not None, f"{module} is in no room of LAYERS"
    return best


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Each import of ``graph`` that points to a higher room, or sideways to another room of
    the same layer (the top layer's rooms excepted: they are the package's users)."""
    found = []
    for module, targets in sorted(graph.items()):
        layer, room = _room(module)
        for target in sorted(targets):
            target_layer, target_room = _room(target)
            sideways = target_layer == layer and target_room != room and layer < len(LAYERS) - 1
            if target_layer > layer or sideways:
                found.append(f"{module} ({room}) imports {target} ({target_room})")
    return found


def test_every_import_points_down_the_rooms() -> None:
    assert _upward(_graph()) == []


def test_the_room_check_sees_an_import_up_or_sideways() -> None:
    assert _upward(
        {
            "media_store.db.boundary": {"media_store.repositories.jobs"},  # up
            "media_store.asr.engines": {"media_store.models.schemas"},  # sideways
            "media_store.words.timestamps": {"media_store.models.fields"},  # down: fine
            "media_store.cli.main": {"media_store.demo.run"},  # the top layer: fine
        }
    ) == [
        "media_store.asr.engines (media_store.asr) imports media_store.models.schemas "
        "(media_store.models)",
        "media_store.db.boundary (media_store.db) imports media_store.repositories.jobs "
        "(media_store.repositories)",
    ]


def test_the_adapters_use_no_store_and_print_nothing() -> None:
    """asr/ is pure: it turns a recogniser's output into words (the CLI imports it, not the
    other way), so a worker can use it without a terminal library or a database."""
    found = []
    for path in sorted((PACKAGE / "asr").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                found += [
                    f"{path.name}: {n}"
                    for n in names
                    if n.split(".")[0] == "rich" or n in ("media_store.store", "media_store")
                ]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                found.append(f"{path.name}:{node.lineno}: print()")
    assert found == []
