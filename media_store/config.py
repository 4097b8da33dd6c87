"""Settings (declared once: :class:`Settings`), read from keywords or the environment, and a
DSN type that never shows its password."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, quote, unquote

import annotated_types
import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

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
            url = redact(url)  # this frame's variables hold no password (see below)
            raise ConfigurationError(f"database URL must start with postgresql:// (got {url!r})")
        problem = _url_problem(url)
        if problem is not None:
            message = f"database URL is malformed ({problem}): {redact(url)!r}"
            # This frame's variables are what an error reporter records (Sentry does): none
            # may hold the URL or a part of it (the checks ran in _url_problem's frame, gone).
            url = redact(url)
            raise ConfigurationError(message)
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
        # getattr: a Dsn whose URL was refused has none, and an error reporter may still
        # show it (it is ``self`` in the refusing frame).
        url = getattr(self, "_url", None)
        return "<refused URL>" if url is None else redact(url)

    def __repr__(self) -> str:
        url = getattr(self, "_url", None)
        return "Dsn(<refused URL>)" if url is None else f"Dsn({redact(url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


def _url_problem(url: str) -> str | None:
    """What libpq (or the library) finds wrong with ``url``, said without quoting it; None
    when it is usable."""
    try:
        if _WHITESPACE.search(url.partition("?")[0]) or _SPACED_URL.search(url):
            # libpq refuses a space before the query string too, quoting the text around it:
            # another URL's password when URLs were separated by spaces. The query string,
            # which libpq does not read here (_parse), may hold spaces (pgserver's
            # ?host=/a folder/), but not another URL.
            return "a space in the URL: write it %20; separate URLs with commas"
        params = _parse(url)
    except psycopg.ProgrammingError as exc:
        # returned, not raised from here: nothing chained quotes the URL
        return _libpq_problem(url, str(exc))
    bad = _bad_ports(params)
    if bad:
        # libpq reads a port out of an unencoded "/" in the password: not quoted then
        userinfo = parts.userinfo if (parts := _UrlParts.of(url)) else ""
        return "bad port" + ("" if bad[0] in userinfo else f" {bad[0]!r}")
    return None


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


AUTO = "auto"
DEFAULT_STATEMENT_CACHE_SIZE = 100  # asyncpg's default, used when no pooler is detected
ENV_PREFIX = "MEDIA_STORE_"

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


class _KeywordOnly:
    """Field metadata: the setting is given to ``Settings(...)`` only, never read from the
    environment."""

    def __repr__(self) -> str:
        return "KEYWORD_ONLY"


KEYWORD_ONLY = _KeywordOnly()
# Fields whose input is a URL: their input is never quoted in an error (it holds a password).
_URL_FIELDS = frozenset({"dsn", "replicas"})
_NONE: Mapping[str, str] = {}
_POOL_RULE = "pool sizes must satisfy 0 <= min_size <= max_size, max_size >= 1"


class Settings(BaseSettings):
    """How to reach PostgreSQL and size the pool: every setting, its environment variable, type,
    bounds and default, declared once (``docs/configuration.md`` is generated from it by
    :func:`settings_table`).

    ``Settings(dsn=Dsn(url), max_size=5)`` uses the keywords given and the defaults, and never
    reads the environment; :meth:`from_env` reads it. A value out of bounds is a
    :class:`ConfigurationError` naming the setting (and its variable, from the environment).
    Instances are frozen; ``settings.model_copy(update={...})`` makes a changed copy.

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

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=True,
        env_ignore_empty=True,  # an empty variable is an unset one: the default
        frozen=True,
        extra="forbid",
        arbitrary_types_allowed=True,  # Dsn
        # Settings(min_size=...), whatever the variable (validation_alias) is called
        populate_by_name=True,
    )

    dsn: Dsn = Field(
        validation_alias=DATABASE_URL,
        description="The database: a `postgresql://` URL; several hosts for failover "
        "(`postgresql://h1,h2/db?target_session_attrs=read-write`) are accepted. "
        "`Settings.from_env(dsn)` uses its argument first; there is no fallback: the library "
        "never connects to a hidden default.",
    )
    min_size: int = Field(
        1,
        ge=0,
        validation_alias="MEDIA_STORE_POOL_MIN_SIZE",
        description="Connections the pool opens at start and keeps open; at most `max_size`.",
    )
    max_size: int = Field(
        10,
        ge=1,
        validation_alias="MEDIA_STORE_POOL_MAX_SIZE",
        description="Most connections the pool holds; at least `min_size`.",
    )
    command_timeout: float | None = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a statement may run before it is cancelled (`None`, as a keyword: "
        "no limit).",
    )
    statement_cache_size: int | None = Field(
        None,
        ge=0,
        description="asyncpg's per-connection cache of prepared statements. `auto` (`None`, the "
        "default): 0 when a connection pooler (PgBouncer) is detected in front (the backend "
        "pid given at login differs from `pg_backend_pid()`), else "
        f"{DEFAULT_STATEMENT_CACHE_SIZE}; a number is used as given (0 behind PgBouncer in "
        "transaction mode before 1.21 or without `max_prepared_statements`).",
    )
    application_name: Annotated[str, KEYWORD_ONLY] = Field(
        "media_store",
        description="The `application_name` of the sessions (in `pg_stat_activity`).",
    )
    server_settings: Annotated[Mapping[str, str], KEYWORD_ONLY] = Field(
        default_factory=dict,
        description="Further server settings of every session, as asyncpg's `server_settings`.",
    )
    full_reset: bool = Field(
        False,
        validation_alias="MEDIA_STORE_POOL_FULL_RESET",
        description="`1`: asyncpg's full session reset (`RESET ALL`, `UNLISTEN *`, `CLOSE ALL`, "
        "advisory locks released) when a connection returns to the pool; by default only an "
        "open transaction is rolled back, saving a round trip per pooled call (media_store sets "
        "no session state on pooled connections).",
    )
    acquire_timeout: float | None = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        validation_alias="MEDIA_STORE_POOL_ACQUIRE_TIMEOUT",
        description="Seconds a caller waits for a connection of the pool (`None`, as a "
        "keyword: forever); then `PoolExhausted` (a `DatabaseUnavailable` naming the pool's size).",
    )
    connect_timeout: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a new connection may take, all hosts of a multi-host URL "
        "together (unset, `None`: asyncpg's 60).",
    )
    replicas: Annotated[tuple[Dsn, ...], NoDecode] = Field(
        (),
        validation_alias="MEDIA_STORE_REPLICA_URLS",
        description="Read replicas for `store.replica`: `postgresql://` URLs separated by "
        "commas (a multi-host URL's own commas are kept). None: `store.replica` reads from "
        "the primary.",
    )
    replica_max_lag: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a replica may be behind (by WAL position) before it is skipped "
        "(unset, `None`: no bound).",
    )
    replica_connect_timeout: float = Field(
        2.0, gt=0, allow_inf_nan=False, description="Seconds a connection to a replica may take."
    )
    replica_retry_after: float = Field(
        5.0, gt=0, allow_inf_nan=False, description="Seconds a replica found down is left alone."
    )

    @field_validator("dsn", mode="before")
    @classmethod
    def _dsn_of_text(cls, value: object) -> object:
        return _url_setting(Dsn, value) if isinstance(value, str) else value

    @field_validator("replicas", mode="before")
    @classmethod
    def _replicas_of_text(cls, value: object) -> object:
        return _url_setting(parse_replica_urls, value) if isinstance(value, str) else value

    @field_validator("statement_cache_size", mode="before")
    @classmethod
    def _auto_cache_size(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", AUTO):
            return None
        return value

    @model_validator(mode="after")
    def _pool_sizes(self) -> Settings:
        if self.min_size > self.max_size:
            raise PydanticCustomError(
                "pool_sizes",
                f"{_POOL_RULE} (got {self.min_size}, {self.max_size})",
                {"fields": ("min_size", "max_size")},
            )
        return self

    if not TYPE_CHECKING:  # the pydantic mypy plugin types the keywords from the fields

        def __init__(self, _variables: Mapping[str, str] = _NONE, **values: Any) -> None:
            # _variables: the variable each setting was read from (from_env), for the errors
            try:
                super().__init__(**values)
                return
            except ValidationError as exc:
                problem = _problem(exc, _variables)
            raise ConfigurationError(problem)  # outside the handler: nothing chained

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keywords only: Settings(...) never reads os.environ or a .env file; from_env does.
        return (init_settings,)

    def for_replica(self, dsn: Dsn) -> Settings:
        """The settings of the pool of the replica at ``dsn``: these, with no connection opened
        ahead (a replica that is down does not stop the Store from opening), the replica
        connect timeout, and sessions that refuse writes (``default_transaction_read_only``,
        whatever the server is)."""
        return self.model_copy(
            update={
                "dsn": dsn,
                "min_size": 0,
                "connect_timeout": self.replica_connect_timeout,
                "server_settings": {
                    **self.server_settings,
                    "default_transaction_read_only": "on",
                },
                "replicas": (),
            }
        )

    @classmethod
    def from_env(
        cls, dsn: str | Dsn | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Read settings from ``env`` (default ``os.environ``): every variable of
        ``docs/configuration.md`` (:func:`settings_table`), an empty one counting as unset.

        The DSN is ``dsn`` when given, else ``DATABASE_URL``. There is no fallback: with
        neither, :class:`ConfigurationError` says how to provide one. A bad value is a
        :class:`ConfigurationError` naming its variable (and never quoting a URL's password).
        """
        settings = cls._read(dsn, os.environ if env is None else env)
        if isinstance(settings, str):  # the problem: raised here, the values read out of reach
            raise ConfigurationError(settings)
        return settings

    @classmethod
    def _read(cls, dsn: str | Dsn | None, env: Mapping[str, str]) -> Settings | str:
        values = _Environment(cls, env)()
        if dsn is not None:
            values.pop(DATABASE_URL, None)
        elif DATABASE_URL not in values:
            return "no database configured: pass a DSN or set DATABASE_URL to a postgresql:// URL"
        variables = {
            name: variable
            for name in cls.model_fields
            if (variable := env_variable(name)) and (variable in values or name in values)
        }
        if dsn is not None:
            values["dsn"] = dsn
        values["_variables"] = variables  # for the errors: see __init__
        try:
            return cls(**values)
        except ConfigurationError as exc:
            return str(exc)


def env_variable(name: str) -> str | None:
    """The environment variable of the setting ``name`` (``None``: given as a keyword only)."""
    field = Settings.model_fields[name]
    if KEYWORD_ONLY in field.metadata:
        return None
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    return ENV_PREFIX + name.upper()


class _Environment(EnvSettingsSource):
    """The settings' variables in ``env`` (rather than ``os.environ``), each under its one
    name (:func:`env_variable`), exactly as spelled."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name, value in self._env.items() if value}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = env_variable(field_name)
        key = field.validation_alias if isinstance(field.validation_alias, str) else field_name
        return (None if variable is None else self.env_vars.get(variable)), key, False


def _url_setting(parse: Callable[[str], object], text: str) -> object:
    """``parse(text)``, its :class:`ConfigurationError` (which shows URLs redacted) turned
    into a validation error of the field."""
    try:
        return parse(text)
    except ConfigurationError as exc:
        problem = str(exc)
    raise PydanticCustomError("url", "{problem}", {"problem": problem})


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "1 or 0 (true or false)",
    "bool_type": "1 or 0 (true or false)",
    "finite_number": "a finite number",
    "string_type": "a string",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _problem(exc: ValidationError, variables: Mapping[str, str]) -> str:
    """What ``exc`` found wrong, each problem naming its setting (and the variable it was read
    from: ``variables``, by setting), the value given quoted unless it is a URL."""
    fields = Settings.model_fields
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        kind, ctx, loc = error["type"], error.get("ctx", {}), error["loc"]
        key = str(loc[0]) if loc else ""
        name = next((n for n, f in fields.items() if key in (n, f.validation_alias)), key)
        label = ", ".join(
            f"{variables[each]} ({each})" if each in variables else each
            for each in ctx.get("fields", (name,))
        )
        shown = "" if name in _URL_FIELDS else f", got {error['input']!r}"
        if kind in ("pool_sizes", "url"):  # url: the message of Dsn, which redacts the URL
            problems.append(f"{label}: {error['msg']}")
        elif kind == "missing":
            problems.append(f"{label} is required")
        elif kind == "extra_forbidden":
            problems.append(f"unknown setting {key!r}")
        elif kind == "is_instance_of":
            expected = "Dsn values (see parse_replica_urls)" if len(loc) > 1 else "a Dsn"
            problems.append(f"{label} must be {expected}")
        elif kind in _BOUNDS or kind in _EXPECTED:
            if kind in _BOUNDS:
                expected = f"{_BOUNDS[kind]} {_number(next(iter(ctx.values())))}"
            else:
                expected = _EXPECTED[kind]
            if name == "statement_cache_size" and kind.startswith("int"):
                expected += f" or {AUTO!r}"
            pool = name in ("min_size", "max_size") and kind in _BOUNDS
            hint = f" ({_POOL_RULE})" if pool else ""
            problems.append(f"{label} must be {expected}{shown}{hint}")
        else:
            problems.append(f"{label}: {error['msg']}{shown}")
    return "; ".join(problems)


def _shown_type(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or re.sub(r"\b[\w.]+\.(?=\w)", "", str(annotation))


def _bounds(field: FieldInfo) -> str:
    shown = []
    for rule in field.metadata:
        for attribute, operator in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(rule, attribute, None)
            if isinstance(rule, annotated_types.BaseMetadata) and value is not None:
                shown.append(f"{operator} {value}")
        if getattr(rule, "allow_inf_nan", None) is False:
            shown.append("finite")
    return ", ".join(shown)


def settings_table() -> str:
    """Every setting of :class:`Settings` as a Markdown table (``docs/configuration.md``):
    its environment variable, keyword, type, default, bounds and description."""
    rows = [
        "| variable | keyword | type | default | bounds | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        variable = env_variable(name)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        cells = (
            f"`{variable}`" if variable else "(keyword only)",
            f"`{name}`",
            f"`{_shown_type(field.annotation)}`",
            "required" if field.is_required() else f"`{default!r}`",
            _bounds(field),
            field.description or "",
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"
