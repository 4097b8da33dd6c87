"""Settings from the environment, and a DSN type that never shows its password."""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from media_store.errors import ConfigurationError

DATABASE_URL = "DATABASE_URL"

# libpq parameters whose values are secrets: the password, and the client key's passphrase.
SECRET_PARAMETERS = ("password", "sslpassword")
_SECRET_NAMES = "|".join(SECRET_PARAMETERS)
# In a URL's query string: ?password=... or &sslpassword=...
_QUERY_SECRET = re.compile(rf"(?<=[?&])({_SECRET_NAMES})=[^&#]*", re.IGNORECASE)
# In a key=value conninfo string: password=word or password='quoted \' value'
_CONNINFO_SECRET = re.compile(rf"\b({_SECRET_NAMES})\s*=\s*('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE)
# Anywhere in a text (a fragment libpq quotes, a second URL typed after the first): a secret
# parameter not yet hidden, whatever form it is in (the value runs to the next space).
_ANY_SECRET = re.compile(
    rf"\b({_SECRET_NAMES})\s*=\s*(?!\*\*\*(?:[&#\s]|$))('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE
)
# Anywhere in a text: user:password@, the user info starting a word or following "//". The
# password runs to the last "@" before a space: more is hidden rather than less.
_ANY_USERINFO = re.compile(r"(?:(?<=//)|(?<=[\s\"',(])|^)([^\s:/?#@\"',]*):(?!//|@)\S*@")


@dataclass(frozen=True)
class _UrlParts:
    """A URL cut where libpq and asyncpg would look for the credentials, without decoding.

    ``userinfo`` ends at the last ``@`` before the query string. The parsers stop earlier
    (at the first ``/``), but a password typed without percent-encoding its ``@`` or ``/`` is
    then still hidden whole; a database name containing ``@`` is the price (shown redacted).
    """

    scheme: str  # "postgresql://"
    userinfo: str  # "user:password" (may be empty)
    rest: str  # "host:port,host2/db?query"

    @classmethod
    def of(cls, url: str) -> _UrlParts | None:
        scheme, sep, after = url.partition("://")
        if not sep:
            return None
        at = after.partition("?")[0].rfind("@")
        if at < 0:
            return cls(scheme + sep, "", after)
        return cls(scheme + sep, after[:at], after[at + 1 :])

    @property
    def raw_password(self) -> str | None:
        _, colon, password = self.userinfo.partition(":")
        return password if colon else None

    def redacted(self) -> str:
        userinfo = self.userinfo
        if self.raw_password:  # none, or empty as in pgserver's URLs: nothing to hide
            userinfo = userinfo.partition(":")[0] + ":***"
        head = f"{self.scheme}{userinfo}@" if self.userinfo else self.scheme
        return head + _QUERY_SECRET.sub(r"\1=***", self.rest)


def redact(conninfo: str) -> str:
    """``conninfo`` (a ``postgresql://`` URL or a ``key=value`` string) with every password
    (in the user info, ``?password=``, ``password=``, ``sslpassword``) replaced by ``***``.

    Never raises, even on a malformed URL: it only cuts the text where a parser would find a
    password, and hides more rather than less when the URL is ambiguous. It also hides every
    ``user:password@`` and ``password=`` further on: a fragment of a URL, or several URLs in one
    text (a separator typed wrong), show no password either.
    """
    parts = _UrlParts.of(conninfo)
    if parts is None:
        return _mask_fragments(_CONNINFO_SECRET.sub(r"\1=***", conninfo))
    return _mask_fragments(parts.redacted())


def _mask_fragments(text: str) -> str:
    """``text`` with every ``user:password@`` and ``password=...`` left in it hidden: what a
    text holding several URLs, or a fragment of one, still shows after the first URL's."""
    return _ANY_USERINFO.sub(r"\1:***@", _ANY_SECRET.sub(r"\1=***", text))


def _secrets(url: str) -> set[str]:
    """Every form in which ``url``'s secrets may be quoted: as written, decoded, re-encoded."""
    found: set[str] = set()
    parts = _UrlParts.of(url)
    if parts is not None:
        if parts.raw_password:
            found.add(parts.raw_password)
        query = parts.rest.partition("?")[2].partition("#")[0]
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name.lower() in SECRET_PARAMETERS and value:
                found.add(value)
    else:
        for match in _CONNINFO_SECRET.finditer(url):
            value = match.group(2)
            if value:
                found |= {value, value.strip("'")}
    found |= {unquote(form) for form in found} | {quote(unquote(form), safe="") for form in found}
    return {form for form in found if form}


def _parse(url: str) -> dict[str, str]:
    """libpq's reading of ``url`` (what psycopg and the migrations see), query options kept
    as given. Raises ``psycopg.ProgrammingError`` on a malformed URL.

    The query string is read here, not by libpq: libpq refuses parameters it does not know,
    which asyncpg passes to the server as settings (``?search_path=...``).
    """
    base, _, query = url.partition("?")
    params = {key: str(value) for key, value in conninfo_to_dict(base).items()}
    params.update(parse_qsl(query.partition("#")[0], keep_blank_values=True))
    return params


def _bad_ports(params: Mapping[str, str]) -> list[str]:
    # One port per host, or one for all; an empty entry means the default (5432).
    ports = params.get("port", "").split(",")
    return [p for p in ports if p and not (p.isdigit() and 0 < int(p) < 65536)]


class Dsn:
    """A ``postgresql://`` URL whose ``str`` and ``repr`` never contain the password.

    Any URL libpq and asyncpg accept is accepted, including several hosts for failover
    (``postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write``) and a password in
    the query string (``?password=...``); both places are hidden.

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
        problem: str | None = None
        try:
            if _WHITESPACE.search(url.partition("?")[0]) or _SPACED_URL.search(url):
                # libpq refuses a space before the query string too, quoting the text around
                # it: another URL's password when URLs were separated by spaces. The query
                # string, which libpq does not read here (_parse), may hold spaces (pgserver's
                # ?host=/a folder/), but not another URL.
                problem = "a space in the URL: write it %20; separate URLs with commas"
                params = {}
            else:
                params = _parse(url)
        except psycopg.ProgrammingError as exc:
            problem = _libpq_problem(url, str(exc))
        else:
            bad = _bad_ports(params)
            if bad:
                # libpq reads a port out of an unencoded "/" in the password: not quoted then
                userinfo = parts.userinfo if (parts := _UrlParts.of(url)) else ""
                problem = "bad port" + ("" if bad[0] in userinfo else f" {bad[0]!r}")
        if problem is not None:  # raised outside the handler: nothing chained quotes the URL
            raise ConfigurationError(f"database URL is malformed ({problem}): {redact(url)!r}")
        self._url = url

    def reveal(self) -> str:
        return self._url

    @property
    def password(self) -> str | None:
        """The password, from the user info or the query string (decoded), if any."""
        try:
            return _parse(self._url).get("password") or None
        except psycopg.ProgrammingError:  # not reached: the URL was parsed on creation
            return None

    def scrub(self, text: str) -> str:
        """Remove this DSN's password (and the full URL) from ``text``."""
        return _scrub(self._url, text)

    def __str__(self) -> str:
        return redact(self._url)

    def __repr__(self) -> str:
        return f"Dsn({redact(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


_WHITESPACE = re.compile(r"\s")
_SPACED_URL = re.compile(r"\s(?:postgres(?:ql)?:)?//", re.IGNORECASE)
# A quoted text in libpq's message that may be shown: an option's name, or one character.
_QUOTED = re.compile(r'"([^"]*)"')


def _libpq_problem(url: str, message: str) -> str:
    """libpq's complaint about ``url``, its quotations of the URL left out (they may hold a
    fragment of a password that matches no whole secret): only option names and single
    characters (``"="``, ``"]"``) stay. The error names the URL redacted besides."""

    def quoted(match: re.Match[str]) -> str:
        text = match.group(1)
        keep = len(text) <= 1 or (text in _libpq_keywords() and text not in _secrets(url))
        return match.group(0) if keep else '"..."'

    return redact(_scrub(url, _QUOTED.sub(quoted, message.strip())))


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


def _scrub(url: str, text: str) -> str:
    text = text.replace(url, redact(url))
    # longest first: a secret's encoded form may contain its decoded one
    for form in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(form, "***")
    return text


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


def _seconds_env(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float_env(env, name, default)
    return default if value is None else value


AUTO = "auto"
DEFAULT_STATEMENT_CACHE_SIZE = 100  # asyncpg's default, used when no pooler is detected


def _cache_size_env(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip().lower() in ("", AUTO):
        return None
    return _int_env(env, name, DEFAULT_STATEMENT_CACHE_SIZE)


# A URL in MEDIA_STORE_REPLICA_URLS ends at a comma followed by the next URL's scheme: a
# multi-host URL's own commas (postgresql://h1,h2/db) stay inside it.
_NEXT_URL = re.compile(r",\s*(?=postgres(?:ql)?://)", re.IGNORECASE)


def parse_replica_urls(raw: str | None) -> tuple[Dsn, ...]:
    """The replica URLs of ``MEDIA_STORE_REPLICA_URLS``: ``postgresql://`` URLs separated by
    commas (a multi-host URL's own commas are kept). Raises :class:`ConfigurationError` on a
    malformed one, naming it redacted."""
    if raw is None or not raw.strip():
        return ()
    return tuple(Dsn(part.strip()) for part in _NEXT_URL.split(raw.strip()) if part.strip())


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be a positive number of seconds or None")


@dataclass(frozen=True)
class Settings:
    """How to reach PostgreSQL and size the pool.

    ``acquire_timeout``: the longest a caller waits for a connection of the pool (seconds;
    default 30; ``None`` waits forever). When every connection is held (by slow or stuck
    transactions), the wait ends with :class:`~media_store.errors.PoolExhausted`, which names
    the pool's size; a connection that could not be opened in time ends it with
    :class:`~media_store.errors.DatabaseUnavailable`. It covers every borrow: repository calls
    on the Store, ``store.connection()``, ``store.transaction()`` and ``store.pool.acquire()``.

    ``statement_cache_size``: asyncpg's per-connection cache of prepared statements. ``None``
    (the default, ``auto``) detects a connection pooler between media_store and PostgreSQL
    when the first connection opens (the backend process id the server reports at login
    differs from ``pg_backend_pid()``, as behind PgBouncer, which hands out its own) and then
    disables the cache (0); without a pooler it is 100. A number is used as given: ``0`` is
    required behind PgBouncer in transaction pooling mode (before 1.21, or without
    ``max_prepared_statements``), where consecutive statements may run on different server
    connections and a cached statement is missing, or a different one, on the next. Behind a
    session-mode pooler, or PgBouncer >= 1.21 with ``max_prepared_statements`` set, give a
    number to keep the cache the detection would turn off.

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
    statement_cache_size: int | None = None
    application_name: str = "media_store"
    server_settings: Mapping[str, str] = field(default_factory=dict)
    full_reset: bool = False
    acquire_timeout: float | None = 30.0
    connect_timeout: float | None = None
    replicas: tuple[Dsn, ...] = ()
    replica_max_lag: float | None = None
    replica_connect_timeout: float = 2.0
    replica_retry_after: float = 5.0

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.max_size < 1 or self.min_size > self.max_size:
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size, max_size >= 1 "
                f"(got {self.min_size}, {self.max_size})"
            )
        if self.statement_cache_size is not None and self.statement_cache_size < 0:
            raise ConfigurationError("statement_cache_size must be >= 0 (or None: auto)")
        _check_timeout("command_timeout", self.command_timeout)
        _check_timeout("acquire_timeout", self.acquire_timeout)
        _check_timeout("connect_timeout", self.connect_timeout)
        _check_timeout("replica_max_lag", self.replica_max_lag)
        _check_timeout("replica_connect_timeout", self.replica_connect_timeout)
        _check_timeout("replica_retry_after", self.replica_retry_after)
        if not all(isinstance(replica, Dsn) for replica in self.replicas):
            raise ConfigurationError("replicas must be Dsn values (see parse_replica_urls)")

    def for_replica(self, dsn: Dsn) -> Settings:
        """The settings of the pool of the replica at ``dsn``: these, with no connection opened
        ahead (a replica that is down does not stop the Store from opening), the replica
        connect timeout, and sessions that refuse writes (``default_transaction_read_only``,
        whatever the server is)."""
        return replace(
            self,
            dsn=dsn,
            min_size=0,
            connect_timeout=self.replica_connect_timeout,
            server_settings={**self.server_settings, "default_transaction_read_only": "on"},
            replicas=(),
        )

    @classmethod
    def from_env(
        cls, dsn: str | Dsn | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Read settings from ``env`` (default ``os.environ``).

        The DSN is ``dsn`` when given, else ``DATABASE_URL``. There is no fallback: with
        neither, :class:`ConfigurationError` says how to provide one.

        Other variables: ``MEDIA_STORE_POOL_MIN_SIZE``, ``MEDIA_STORE_POOL_MAX_SIZE``,
        ``MEDIA_STORE_POOL_ACQUIRE_TIMEOUT`` (seconds, default 30),
        ``MEDIA_STORE_COMMAND_TIMEOUT`` (seconds), ``MEDIA_STORE_STATEMENT_CACHE_SIZE``
        (a number, or ``auto``, the default), ``MEDIA_STORE_POOL_FULL_RESET`` (1 to reset the
        whole session on release), ``MEDIA_STORE_CONNECT_TIMEOUT`` (seconds a new connection
        may take; default asyncpg's 60).

        Read replicas (see :mod:`media_store.replicas`): ``MEDIA_STORE_REPLICA_URLS`` (URLs
        separated by commas), ``MEDIA_STORE_REPLICA_MAX_LAG`` (seconds; unset: no bound),
        ``MEDIA_STORE_REPLICA_CONNECT_TIMEOUT`` (seconds, default 2),
        ``MEDIA_STORE_REPLICA_RETRY_AFTER`` (seconds a replica found down is left alone,
        default 5).
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
            statement_cache_size=_cache_size_env(env, "MEDIA_STORE_STATEMENT_CACHE_SIZE"),
            full_reset=bool(_int_env(env, "MEDIA_STORE_POOL_FULL_RESET", 0)),
            acquire_timeout=_float_env(env, "MEDIA_STORE_POOL_ACQUIRE_TIMEOUT", 30.0),
            connect_timeout=_float_env(env, "MEDIA_STORE_CONNECT_TIMEOUT", None),
            replicas=parse_replica_urls(env.get("MEDIA_STORE_REPLICA_URLS")),
            replica_max_lag=_float_env(env, "MEDIA_STORE_REPLICA_MAX_LAG", None),
            replica_connect_timeout=_seconds_env(env, "MEDIA_STORE_REPLICA_CONNECT_TIMEOUT", 2.0),
            replica_retry_after=_seconds_env(env, "MEDIA_STORE_REPLICA_RETRY_AFTER", 5.0),
        )
