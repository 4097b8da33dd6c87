"""Settings from the environment, and a DSN type that never shows its password."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from media_store.errors import ConfigurationError

DATABASE_URL = "DATABASE_URL"


def redact(url: str) -> str:
    """Return ``url`` with its password, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if not parts.password:  # none, or empty as in pgserver's URLs: nothing to hide
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed netloc (bad port, unbalanced IPv6 brackets)
        return "<unparseable database URL>"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, ""))


class Dsn:
    """A ``postgresql://`` URL whose ``str`` and ``repr`` never contain the password.

    ``reveal()`` is the only way to get the full URL; it is called where the driver is
    handed the URL, and nowhere else.
    """

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("postgresql", "postgres"):
            raise ConfigurationError(
                f"database URL must start with postgresql:// (got {redact(url)!r})"
            )
        try:
            urlsplit(url).port  # noqa: B018 - parsing the port validates it (and IPv6 brackets)
            malformed = False
        except ValueError:
            malformed = True
        if malformed:  # raised outside the handler: the parser's message may quote the URL
            raise ConfigurationError(
                f"database URL is malformed (bad host or port): {redact(url)!r}"
            )
        self._url = url

    def reveal(self) -> str:
        return self._url

    @property
    def password(self) -> str | None:
        return urlsplit(self._url).password

    def scrub(self, text: str) -> str:
        """Remove this DSN's password (and the full URL) from ``text``."""
        text = text.replace(self._url, str(self))
        pw = self.password
        if pw:
            # the URL carries it percent-encoded; a driver may quote it either way
            for form in {pw, unquote(pw)}:
                text = text.replace(form, "***")
        return text

    def __str__(self) -> str:
        return redact(self._url)

    def __repr__(self) -> str:
        return f"Dsn({redact(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _float_env(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """How to reach PostgreSQL and size the pool.

    ``statement_cache_size=0`` is required behind PgBouncer in transaction pooling mode,
    where consecutive statements may run on different server connections.

    ``full_reset``: when a connection goes back to the pool, asyncpg always rolls back an open
    transaction. With ``full_reset`` it also runs its full session reset (``RESET ALL``,
    ``UNLISTEN *``, ``CLOSE ALL``, release advisory locks): one more round trip per pooled call,
    which is a quarter of a millisecond here and dominates short reads. media_store changes no
    session state on pooled connections, so it is off by default; turn it on if your own code
    runs ``SET`` (not ``SET LOCAL``), ``LISTEN`` or session advisory locks on borrowed connections.
    """

    dsn: Dsn
    min_size: int = 1
    max_size: int = 10
    command_timeout: float | None = 30.0
    statement_cache_size: int = 100
    application_name: str = "media_store"
    server_settings: Mapping[str, str] = field(default_factory=dict)
    full_reset: bool = False

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.max_size < 1 or self.min_size > self.max_size:
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size, max_size >= 1 "
                f"(got {self.min_size}, {self.max_size})"
            )
        if self.statement_cache_size < 0:
            raise ConfigurationError("statement_cache_size must be >= 0")
        if self.command_timeout is not None and self.command_timeout <= 0:
            raise ConfigurationError("command_timeout must be positive or None")

    @classmethod
    def from_env(
        cls, dsn: str | Dsn | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Read settings from ``env`` (default ``os.environ``).

        The DSN is ``dsn`` when given, else ``DATABASE_URL``. There is no fallback: with
        neither, :class:`ConfigurationError` says how to provide one.

        Other variables: ``MEDIA_STORE_POOL_MIN_SIZE``, ``MEDIA_STORE_POOL_MAX_SIZE``,
        ``MEDIA_STORE_COMMAND_TIMEOUT`` (seconds), ``MEDIA_STORE_STATEMENT_CACHE_SIZE``,
        ``MEDIA_STORE_POOL_FULL_RESET`` (1 to reset the whole session on release).
        """
        env = os.environ if env is None else env
        if dsn is None:
            raw = env.get(DATABASE_URL)
            if not raw:
                raise ConfigurationError(
                    "no database configured: pass a DSN or set DATABASE_URL to a postgresql:// URL"
                )
            dsn = raw
        return cls(
            dsn=dsn if isinstance(dsn, Dsn) else Dsn(dsn),
            min_size=_int_env(env, "MEDIA_STORE_POOL_MIN_SIZE", 1),
            max_size=_int_env(env, "MEDIA_STORE_POOL_MAX_SIZE", 10),
            command_timeout=_float_env(env, "MEDIA_STORE_COMMAND_TIMEOUT", 30.0),
            statement_cache_size=_int_env(env, "MEDIA_STORE_STATEMENT_CACHE_SIZE", 100),
            full_reset=bool(_int_env(env, "MEDIA_STORE_POOL_FULL_RESET", 0)),
        )
