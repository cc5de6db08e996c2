"""Plugins found by entry point: an installed package that declares the group ``impactx_bench.plugins`` is loaded
without ``--plugin``.

In the plugin's ``pyproject.toml``::

    [project.entry-points."impactx_bench.plugins"]
    my-method = "my_pkg.my_method"            # a module whose import registers methods (as --plugin imports it)
    # or
    my-method = "my_pkg.plugin:register"      # a function, called once with no arguments

A plugin that fails to load is reported (a warning naming it and its distribution) and skipped: one broken
installed package must not stop every run. Loading is idempotent within a process.
"""
from __future__ import annotations

import importlib.metadata
import logging

GROUP = "impactx_bench.plugins"
log = logging.getLogger(__name__)
_loaded: dict[str, str] = {}  # entry-point value -> "ok" / error text


def load_installed_plugins() -> list[str]:
    """Load every entry point of :data:`GROUP` not loaded yet; returns the values of those loaded fine."""
    loaded = []
    for entry in importlib.metadata.entry_points(group=GROUP):
        if entry.value in _loaded:
            continue
        try:
            target = entry.load()
            if callable(target) and ":" in entry.value:
                target()
        except Exception as err:  # noqa: BLE001 - any error in someone else's package
            dist = getattr(getattr(entry, "dist", None), "name", None) or "?"
            _loaded[entry.value] = f"{type(err).__name__}: {err}"
            log.warning("plugin %r (%s, from distribution %s) failed to load and is skipped: %s: %s; fix or "
                        "uninstall that package", entry.name, entry.value, dist, type(err).__name__, err)
            continue
        _loaded[entry.value] = "ok"
        loaded.append(entry.value)
        log.debug("loaded plugin %s = %s", entry.name, entry.value)
    return loaded
