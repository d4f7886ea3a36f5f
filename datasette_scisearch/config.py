"""Facility settings: time zone, clock-skew tolerance, instrument names, user-log columns.

They live in the ``plugins: datasette-scisearch:`` block of Datasette's
``metadata.yml`` so that one file configures the web and the command line.
"""

from __future__ import annotations

import fnmatch
import os
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ScisearchError

PLUGIN_KEY = "datasette-scisearch"
DEFAULT_USERLOG_COLUMNS = {
    "instrument": "instrument",
    "user": "user",
    "start": "start",
    "end": "end",
    "proposal_id": "proposal",
    "notes": "notes",
}


class ConfigError(ScisearchError):
    """The facility's settings cannot be used; the message says which setting and why."""


@dataclass
class InstrumentRule:
    """A canonical instrument name, the metadata strings that mean it and the folders that hold its data."""

    name: str
    match: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    description: str | None = None

    def matches_reported(self, reported: str) -> bool:
        text = reported.strip().lower()
        patterns = [self.name, *self.match]
        return any(fnmatch.fnmatch(text, pattern.lower()) for pattern in patterns)

    def matches_folder(self, path: Path) -> bool:
        parts = {part.lower() for part in path.parts[:-1]}
        return any(folder.lower() in parts for folder in self.folders)


@dataclass
class Settings:
    timezone: str = "UTC"
    link_tolerance_minutes: float = 10.0
    instruments: list[InstrumentRule] = field(default_factory=list)
    userlog_columns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_USERLOG_COLUMNS))
    # Per-tagger options (model, checkpoint, vocabulary, dictionary …), keyed by tagger name.
    taggers: dict[str, dict] = field(default_factory=dict)
    # Where a catalog's search indexes live: a folder per catalog, "{catalog}" standing for the catalog's file
    # name; relative to the catalog's own folder.  Never inside a folder Datasette serves files from.
    index_folder: str = "{catalog}.indexes"
    # How long a proposal's data stays its team's after its last session (periods.py), unless its record says.
    proprietary_period_days: int = 730
    # The server loads the models that embed queries in a background thread at start-up, so the first hybrid
    # search does not pay for them (it waits only for what is still loading); false: at the first search instead.
    preload_query_models: bool = True
    source: str | None = None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def instrument_for(self, reported: str | None, path: Path | None) -> str | None:
        """The canonical instrument for a file: from its metadata first, else from its folders."""
        if reported:
            for rule in self.instruments:
                if rule.matches_reported(reported):
                    return rule.name
        if path is not None:
            for rule in self.instruments:
                if rule.matches_folder(path):
                    return rule.name
        return reported.strip() if reported and reported.strip() else None

    def canonical_instrument(self, name: str | None) -> str | None:
        """The canonical name for an instrument as a user log writes it."""
        if not name or not name.strip():
            return None
        for rule in self.instruments:
            if rule.matches_reported(name):
                return rule.name
        return name.strip()


# The repository's metadata.yml, shipped inside the package so an installed tool has the same defaults.
PACKAGED_METADATA = Path(__file__).with_name("default_metadata.yml")


def find_metadata(path: str | Path | None = None) -> Path | None:
    """The metadata.yml to use: ``path``, ``$SCISEARCH_CONFIG``, ./metadata.yml, else the packaged one."""
    candidate = path or os.environ.get("SCISEARCH_CONFIG")
    if candidate is None and Path("metadata.yml").exists():
        candidate = "metadata.yml"
    if candidate is None and PACKAGED_METADATA.exists():
        candidate = PACKAGED_METADATA
    return Path(candidate) if candidate is not None else None


def load_settings(path: str | Path | None = None) -> Settings:
    """Facility settings from the metadata.yml that ``find_metadata`` picks; defaults without one."""
    candidate = find_metadata(path)
    settings = settings_from_dict(plugin_config(path))
    settings.source = str(candidate) if candidate is not None else None
    return settings


def plugin_config(path: str | Path | None = None) -> dict:
    """The plugin's block of the metadata.yml that ``find_metadata`` picks, as written ({} without one): what
    ``Settings`` does not hold (the ``hub:`` of other facilities) is read from here."""
    candidate = find_metadata(path)
    if candidate is None:
        return {}
    if not candidate.exists():
        raise ConfigError(f"config file '{candidate}' does not exist")
    try:
        document = yaml.safe_load(candidate.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{candidate}' is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file '{candidate}' is not a mapping of Datasette metadata")
    return (document.get("plugins") or {}).get(PLUGIN_KEY) or {}


def settings_from_dict(block: dict) -> Settings:
    settings = Settings()
    if "timezone" in block:
        settings.timezone = str(block["timezone"])
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {settings.timezone!r}: use an IANA name such as 'America/Los_Angeles'"
        ) from None
    if "link_tolerance_minutes" in block:
        settings.link_tolerance_minutes = float(block["link_tolerance_minutes"])
    for name, rule in (block.get("instruments") or {}).items():
        rule = rule or {}
        settings.instruments.append(
            InstrumentRule(
                name=str(name),
                match=[str(m) for m in rule.get("match", [])],
                folders=[str(f) for f in rule.get("folders", [])],
                description=rule.get("description"),
            )
        )
    if "index_folder" in block:
        settings.index_folder = str(block["index_folder"])
        if "{catalog}" not in settings.index_folder:
            raise ConfigError(
                "'index_folder' must contain {catalog} (the catalog's file name), so that each catalog has its own "
                "indexes: for example '/var/lib/scisearch/{catalog}.indexes'"
            )
    if "proprietary_period_days" in block:
        try:
            settings.proprietary_period_days = int(block["proprietary_period_days"])
        except (TypeError, ValueError):
            settings.proprietary_period_days = -1
        if settings.proprietary_period_days < 0:
            raise ConfigError(
                f"'proprietary_period_days' must be a whole number of days, 0 or more "
                f"(got {block['proprietary_period_days']!r}): for example 730 for two years"
            )
    if "preload_query_models" in block:
        if not isinstance(block["preload_query_models"], bool):
            raise ConfigError("'preload_query_models' must be true or false")
        settings.preload_query_models = block["preload_query_models"]
    settings.userlog_columns.update({k: str(v) for k, v in (block.get("userlog_columns") or {}).items()})
    taggers = block.get("taggers") or {}
    if not isinstance(taggers, dict):
        raise ConfigError("'taggers' in the config must map tagger names to their options")
    settings.taggers = {str(name): dict(options or {}) for name, options in taggers.items()}
    return settings
