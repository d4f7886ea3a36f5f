"""The plugin manager: finds plugins through entry points and collects what they register.

Built-in loaders are ordinary plugins in the ``datasette_scisearch`` entry-point
group.  ``SCISEARCH_PLUGINS`` limits which plugins load: a comma-separated list
of entry-point names (empty means none), useful for tests and for debugging a
misbehaving third-party plugin.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass

import pluggy

from . import hookspecs
from .errors import CONFLICT, ScisearchError

ENTRY_POINT_GROUP = "datasette_scisearch"

pm = pluggy.PluginManager("datasette_scisearch")
pm.add_hookspecs(hookspecs)

_entry_points_loaded = False


def load_entry_point_plugins() -> None:
    """Import and register every installed plugin once (lazily, on first use)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    allowed = os.environ.get("SCISEARCH_PLUGINS")
    allowed_names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed_names is not None and entry_point.name not in allowed_names:
            continue
        if pm.has_plugin(entry_point.name):
            continue
        try:
            module = entry_point.load()
        except Exception as error:  # one broken plugin must not take the tool down
            print(f"warning: plugin {entry_point.name!r} failed to load: {error}", file=sys.stderr)
            continue
        pm.register(module, name=entry_point.name)
        dist = getattr(entry_point, "dist", None)
        if dist is not None:
            _distributions[entry_point.name] = (dist.metadata["Name"], dist.version)


_distributions: dict[str, tuple[str, str]] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    load_entry_point_plugins()
    return pm


class PluginConflict(ScisearchError):
    """Two plugins register a tagger or loader under the same name: one would silently shadow the other."""

    kind = CONFLICT


def _collect(hook_name: str) -> list:
    """What every plugin registers through ``hook_name``, refused when two plugins use the same name."""
    items: list = []
    owners: dict[str, str] = {}
    # pluggy calls the last registered first; keep that order, which decides which loader claims a file first.
    for implementation in reversed(getattr(get_plugin_manager().hook, hook_name).get_hookimpls()):
        if implementation.hookwrapper or getattr(implementation, "wrapper", False):
            continue
        registered: list = []
        implementation.function(register=registered.append)
        for item in registered:
            name = getattr(item, "name", None)
            if name in owners and owners[name] != implementation.plugin_name:
                what = hook_name.removeprefix("register_")[:-1]
                first, second = owners[name], implementation.plugin_name
                raise PluginConflict(
                    f"two plugins register a {what} named {name!r}: {first!r} and {second!r}",
                    fix="uninstall one of them, or load only one: SCISEARCH_PLUGINS=<the plugins to load>",
                )
            owners[name] = implementation.plugin_name
        items += registered
    return items


def get_loaders() -> list:
    """Every registered loader, FileLoaders and RecordLoaders alike."""
    return _collect("register_loaders")


def get_taggers() -> list:
    return _collect("register_taggers")


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    hooks: list[str]
    provides: list[str]


def describe_plugins() -> list[PluginInfo]:
    """What ``scisearch plugins`` prints: each plugin, its package and the hooks it implements."""
    manager = get_plugin_manager()
    infos = []
    for plugin in manager.get_plugins():
        name = manager.get_name(plugin)
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        provides: list[str] = []
        for hook in ("register_loaders", "register_taggers"):
            implementation = getattr(plugin, hook, None)
            if hook in hooks and implementation is not None:
                found: list = []
                implementation(register=found.append)
                provides += [f"{hook.removeprefix('register_')[:-1]}:{item.name}" for item in found]
        distribution, version = _distributions.get(name, (None, None))
        infos.append(PluginInfo(name, distribution, version, hooks, provides))
    return sorted(infos, key=lambda info: info.name)
