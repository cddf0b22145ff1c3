"""Service settings: one pydantic-settings model per service, from a YAML file plus env overrides.

A service declares its settings once::

    class BalancerSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="XTTS_BALANCER_")

        service: ServiceSection = ServiceSection()   # nested sections subclass SettingsSection

    settings = load_settings(BalancerSettings)        # or load_settings(BalancerSettings, "b.yaml")

and gets, highest priority first: keyword arguments > environment (``XTTS_BALANCER_SERVICE__PORT=9``;
``__`` separates nested keys) > the YAML file > field defaults. The YAML file is the ``path`` given to
:func:`load_settings`, else the file named by the environment variable ``<env_prefix>CONFIG_FILE``
(override the name with :attr:`ServiceSettings.config_file_env`), else none. Unknown keys are errors
at every level (``extra="forbid"`` here and in :class:`SettingsSection`), so typos are caught. Dotenv
and secrets-directory sources are not used.

Errors name the file (and, for values, the field): a named file that is missing or not a file, a
file that is not YAML or whose top level is not a mapping raise :class:`SettingsError`; invalid
values raise pydantic's ``ValidationError`` from the constructor and :class:`SettingsError` (one
line per problem, naming the file) from :func:`load_settings`.

The YAML file is read by pydantic-settings' own ``YamlConfigSettingsSource`` with stricter file
checks. Torch-free, like everything a CPU-only broker host imports.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from xtts_core.cluster import ApiKeys
from xtts_core.errors import SettingsError

__all__ = [
    "ApiKeyAuthSection",
    "ServiceSettings",
    "SettingsError",
    "SettingsSection",
    "StrictYamlSettingsSource",
    "load_settings",
]

logger = logging.getLogger(__name__)

_S = TypeVar("_S", bound="ServiceSettings")

_UNSET: Any = object()
#: The YAML file of the settings object being built (set by ``ServiceSettings.__init__``).
_ACTIVE_FILE: ContextVar[Path | None] = ContextVar("xtts_settings_file", default=_UNSET)


class SettingsSection(BaseModel):
    """Base of a nested settings section (``service:``, ``model:``): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ApiKeyAuthSection(SettingsSection):
    """Base of a service's ``auth:`` section: client keys checked against stored hashes.

    The balancer and the broker both accept ElevenLabs' ``xi-api-key``; sharing the two fields
    and their checks means a key hash list valid for one is valid for the other, and both refuse
    to start with auth on and no keys (which would lock every client out) in the same words.
    """

    #: What to add when no key is configured, named in that error (the service's hash command).
    missing_keys_advice: ClassVar[str]

    enabled: bool = True
    """Check client keys; ``false`` (set explicitly) lets anyone stream: for local use only."""
    api_key_hashes: list[str] = Field(default_factory=list)
    """Accepted keys, hashed: ``sha256:<hex>`` (the service's ``hash-key`` command prints one)."""
    single_use_token_ttl_s: float = Field(default=900.0, gt=0)
    """How long a token of ``POST /v1/single-use-token/tts_websocket`` stays valid (ElevenLabs:
    15 minutes); each is accepted by one websocket only (:mod:`xtts_core.single_use`)."""

    @field_validator("api_key_hashes")
    @classmethod
    def _hash_form(cls, value: list[str]) -> list[str]:
        ApiKeys(value)  # raises a ValueError naming the first malformed entry
        return value

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> ApiKeyAuthSection:
        if self.enabled and not self.api_key_hashes:
            raise ValueError(
                f"auth is enabled but api_key_hashes is empty; add {self.missing_keys_advice} "
                "or set auth.enabled: false for local use"
            )
        return self


class StrictYamlSettingsSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source for one existing file, failing loudly where it is lenient.

    The stock source skips a missing file and passes parse errors through bare; this one is given
    a path known to exist and raises :class:`SettingsError` naming the file for unreadable files,
    invalid YAML and a top level that is not a mapping. An empty file means "no settings".
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self.path = path
        super().__init__(settings_cls, yaml_file=path, yaml_file_encoding="utf-8")

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data: object = super()._read_file(file_path)
        except yaml.YAMLError as exc:
            raise SettingsError(
                f"config file {file_path} is not valid YAML: {_yaml_problem(exc)}"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"cannot read config file {file_path}: {exc}") from exc
        if data is None:  # an empty file (pydantic-settings < 2.4 passes None through)
            return {}
        if not isinstance(data, dict):
            raise SettingsError(
                f"config file {file_path} must hold a mapping of settings at the top level, "
                f"got {type(data).__name__}"
            )
        return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


class ServiceSettings(BaseSettings):
    """Base of a service's settings model; see the module docstring for sources and priority.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="XTTS_<SERVICE>_")`` (the
    ``extra="forbid"`` and ``env_nested_delimiter="__"`` set here are inherited) and may set
    :attr:`config_file_env`. ``_config_file`` names the YAML file explicitly, as ``_env_file`` does
    in pydantic-settings; :func:`load_settings` is the friendlier way in.
    """

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    config_file_env: ClassVar[str | None] = None
    """Environment variable naming the YAML file; ``None`` = ``<env_prefix>CONFIG_FILE``."""

    _loaded_from: Path | None = PrivateAttr(default=None)

    def __init__(self, _config_file: str | os.PathLike[str] | None = None, **values: Any) -> None:
        path = type(self).resolve_config_file(_config_file)
        token = _ACTIVE_FILE.set(path)
        try:
            super().__init__(**values)
        finally:
            _ACTIVE_FILE.reset(token)
        self._loaded_from = path

    @property
    def loaded_from(self) -> Path | None:
        """The YAML file these settings were read from, or ``None`` if no file was used."""
        return self._loaded_from

    @classmethod
    def config_file_env_var(cls) -> str | None:
        """Name of the environment variable that points at the YAML file, if there is one."""
        if cls.config_file_env is not None:
            return cls.config_file_env
        prefix = cls.model_config.get("env_prefix") or ""
        return f"{prefix}CONFIG_FILE" if prefix else None

    @classmethod
    def resolve_config_file(cls, path: str | os.PathLike[str] | None = None) -> Path | None:
        """The YAML file to read: ``path`` if given, else the env variable's file, else ``None``.

        An env variable set to the empty string counts as unset.

        Raises:
            SettingsError: the file named by ``path`` or by the variable is missing or not a file.
        """
        if path is not None:
            origin = "config file "
            candidate = Path(path)
        else:
            env_var = cls.config_file_env_var()
            value = os.environ.get(env_var) if env_var else None
            if not value:
                return None
            origin = f"config file {env_var}="
            candidate = Path(value)
        candidate = candidate.expanduser().absolute()
        if not candidate.exists():
            raise SettingsError(f"{origin}{candidate} does not exist")
        if not candidate.is_file():
            raise SettingsError(f"{origin}{candidate} is not a file")
        return candidate

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _ACTIVE_FILE.get()
        if path is _UNSET:  # built outside __init__: resolve the file here
            path = cls.resolve_config_file()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, StrictYamlSettingsSource(settings_cls, path))


def load_settings(
    cls: type[_S], path: str | os.PathLike[str] | None = None, **overrides: Any
) -> _S:
    """Build ``cls`` from ``path`` (or the file its env variable names), the environment and
    ``overrides``, and log which file was used (also on the result's ``loaded_from``).

    Raises:
        SettingsError: the file is missing or malformed, or a value is invalid; the message names
            the file and every offending field, one ``field: reason`` per problem.
    """
    file = cls.resolve_config_file(path)
    where = f"{file}" if file is not None else "no config file"
    env_prefix = cls.model_config.get("env_prefix") or ""
    if env_prefix:
        where += f" and {env_prefix}* environment variables"
    try:
        settings = cls(_config_file=file, **overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(cls, err) for err in exc.errors(include_url=False))
        raise SettingsError(f"invalid {cls.__name__} settings (from {where}): {problems}") from exc
    except SettingsError:
        raise
    except ValueError as exc:  # pydantic_settings.SettingsError (its module moved across versions)
        raise SettingsError(f"invalid {cls.__name__} settings (from {where}): {exc}") from exc
    if file is None:
        logger.info("%s: no config file, using defaults and environment", cls.__name__)
    else:
        logger.info("%s loaded from %s", cls.__name__, file)
    return settings


def _describe_error(cls: type[BaseModel], err: Any) -> str:
    loc = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        known = _known_keys(cls, err["loc"][:-1])
        hint = f" (known keys: {', '.join(known)})" if known else ""
        return f"{loc}: unknown key{hint}"
    if err["type"] == "missing":
        return f"{loc}: required"
    value = repr(err.get("input"))
    shown = value if len(value) <= 40 else value[:37] + "..."
    return " ".join(f"{loc}: {err['msg']} (got {shown})".split())


def _known_keys(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at ``loc``; empty if it is not a plain model field."""
    model: Any = cls
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return []
        model = field.annotation
    return sorted(model.model_fields)
