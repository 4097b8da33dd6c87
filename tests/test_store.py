"""``Store.open``'s own frame: what an error reporter that records frame variables (Sentry
does, by default) would ship after a failed open."""

from __future__ import annotations

import socket
import traceback

import pytest

from media_store import ConfigurationError, DatabaseUnavailable, Dsn, Store
from tests.db.test_connection import assert_secret_absent, frame_variables, url_with


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("place", ["userinfo", "query"])
async def test_a_failed_connect_leaves_no_password_in_any_frame(place: str) -> None:
    url = url_with(
        "postgresql://127.0.0.1/postgres",
        user="someone",
        netloc=f"127.0.0.1:{_refused_port()}",
        place=place,
    )
    with pytest.raises(DatabaseUnavailable) as refused:
        await Store.open(url)
    variables = frame_variables(refused.value)
    # Store.open's frame is among them (the URL used to stay there, raw, as ``dsn``).
    assert any(text.startswith("open: ") for text in variables), variables
    assert_secret_absent(*variables, str(refused.value))


async def test_a_refused_url_leaves_no_password_in_any_frame() -> None:
    url = url_with("postgresql://127.0.0.1:5432/postgres", user="someone") + "&port=nope"
    url = url.replace("/postgres&", "/postgres?")
    with pytest.raises(ConfigurationError) as refused:
        await Store.open(url)
    variables = frame_variables(refused.value)
    assert any(text.startswith("__init__: ") for text in variables), variables
    assert_secret_absent(*variables, str(refused.value))


def test_a_dsn_refused_while_being_made_still_shows_itself() -> None:
    """A reporter reprs ``self`` of the refusing ``Dsn.__init__`` frame: a Dsn without a URL."""
    with pytest.raises(ConfigurationError) as refused:
        Dsn(url_with("postgresql://127.0.0.1:5432/postgres", user="someone") + "?port=nope")
    selves = [
        frame.f_locals["self"]
        for frame, _ in traceback.walk_tb(refused.value.__traceback__)
        if "self" in frame.f_locals and isinstance(frame.f_locals["self"], Dsn)
    ]
    assert selves, "the refusing frame is Dsn.__init__"
    assert [repr(dsn) for dsn in selves] == ["Dsn(<refused URL>)"]
    assert [str(dsn) for dsn in selves] == ["<refused URL>"]
