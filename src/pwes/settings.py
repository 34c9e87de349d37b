"""Settings dataclasses from config mappings: :func:`parse_settings` turns a mapping (a dict or
DictConfig) into a settings dataclass with one-line errors naming the bad setting, and
:func:`require` states a condition on one setting. Shared by the model, the callbacks and scoring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from pwes.config import ConfigError

SettingsT = TypeVar("SettingsT")


def parse_settings(cls: type[SettingsT], values: Mapping[str, Any] | None, where: str) -> SettingsT:
    """Build the settings dataclass ``cls`` from ``values`` (a dict or DictConfig).

    Unknown keys and values the dataclass rejects become a :class:`ConfigError` naming
    ``where.<key>``, so a typo in a YAML file fails with one clear line.
    """
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(values).__name__}")
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in values if k not in defaults)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(defaults))})")
    kwargs = {str(key): _coerce(value, defaults[str(key)], f"{where}.{key}") for key, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` checked against the type of the setting's ``default`` (ints accepted as floats,
    sequences as tuples)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(default, int) and not float(value).is_integer():
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return type(default)(value)
    if isinstance(default, tuple):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def require(condition: bool, setting: str, message: str) -> None:
    """Raise ``ConfigError("<setting>: <message>")`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{setting}: {message}")
