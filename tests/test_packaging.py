"""The built wheel works outside the checkout: it carries sql/, migrations/ and py.typed, and
an installed media_store migrates a fresh database and stores a job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from media_store import migrate

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = textwrap.dedent(
    """
    import asyncio
    import sysconfig
    from pathlib import Path

    import media_store
    from media_store.db.bundled import migrations_dir, sql_dir

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for found in (Path(media_store.__file__), sql_dir(), migrations_dir()):
        assert found.resolve().is_relative_to(site), (found, site)
    assert (Path(media_store.__file__).parent / "py.typed").is_file()


    async def main() -> None:
        async with await media_store.Store.open() as store:  # DATABASE_URL
            job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
            fetched = await store.jobs.get_by_id(job.id)
            assert fetched == job, (fetched, job)
            print("stored job", fetched.id, fetched.status.value, "from", sql_dir())


    asyncio.run(main())
    """
)


def run(command: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT],
        cwd=ROOT,
        env=dict(os.environ),
    )
    (built,) = out.glob("media_store-*.whl")
    return built


@pytest.mark.slow
def test_wheel_carries_sql_migrations_and_py_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert "media_store/py.typed" in names
    for folder in ("sql", "migrations"):
        shipped = {
            name for name in names if re.fullmatch(rf"media_store/{folder}/[^/]+\.sql", name)
        }
        in_checkout = {
            f"media_store/{folder}/{path.name}" for path in (ROOT / folder).glob("*.sql")
        }
        assert shipped == in_checkout
        assert shipped, folder


@pytest.mark.slow
def test_installed_wheel_migrates_and_stores_outside_the_checkout(
    wheel: Path, empty_db_url: str, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    bin_dir = venv / "bin"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "DATABASE_URL": empty_db_url,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    run([sys.executable, "-m", "venv", venv], cwd=outside, env=env)
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", wheel], cwd=outside, env=env)

    migrated = run([bin_dir / "media-store", "migrate"], cwd=outside, env=env)
    expected = migrate.migration_ids()
    assert f"applied {len(expected)} migration(s)" in migrated
    status = run([bin_dir / "media-store", "migrate-status"], cwd=outside, env=env)
    assert re.findall(r"\[(applied|pending)\] (\S+)", status) == [
        ("applied", migration) for migration in expected
    ]

    stored = run([bin_dir / "python", "-c", SNIPPET], cwd=outside, env=env)
    assert re.search(r"stored job [0-9a-f-]{36} pending from \S+site-packages", stored), stored
