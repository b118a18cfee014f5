"""Venue configuration files (shell): read a TOML file and hand its bytes to the pure core parser.

:mod:`bastion.core.instruments` validates configs from bytes or a mapping and never touches the file
system; this module owns the file access (``pathlib``, ``importlib.resources``) and translates OS
errors into :class:`~bastion.core.instruments.ConfigError` naming the path.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from bastion.core.instruments import ConfigError, VenueConfig, venue_config_from_dict, venue_config_from_toml

__all__ = ["ConfigError", "default_config_path", "load_default_config", "load_venue_config",
           "venue_config_from_dict", "venue_config_from_toml"]


def default_config_path() -> Traversable:
    """The packaged default venue (``bastion/configs/default.toml``)."""
    return resources.files("bastion") / "configs" / "default.toml"


def load_venue_config(path: str | os.PathLike[str] | Traversable) -> VenueConfig:
    """Load and validate a venue config TOML file.

    Args:
        path: a file path, or a packaged resource (``importlib.resources`` Traversable).

    Raises:
        ConfigError: unreadable file, not UTF-8 TOML, or any validation failure (the message names
            the path and the field).
    """
    try:
        data = Path(path).read_bytes() if isinstance(path, (str, os.PathLike)) else path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return venue_config_from_toml(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_default_config() -> VenueConfig:
    """The packaged default venue, validated."""
    return load_venue_config(default_config_path())
