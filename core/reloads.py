"""Telling this unit's running processes that its plugin set changed (an install or uninstall).

What reloads, and how (:func:`after_plugin_change`, called by ``pio plugins
install/uninstall`` and by the API's install and uninstall tasks):

* the CLI index (``storage/cli_index.json``) and the storage index
  (``storage/storage_index.json``) are rebuilt at once (whatever their fingerprint says);
* the ``pio serve`` master (pid in ``$DOT_PIOREACTOR/storage/gunicorn.pid``) gets
  SIGHUP: gunicorn starts fresh workers, which load the plugins anew (routes,
  descriptors, tables created on the first database use) and ends the old ones
  once their requests are answered;
* a message on ``{root}/{unit}/$experiment/plugins/changed`` (QoS 1, not
  retained) tells the unit's jobs that care, such as the leader's ingestion, to
  load the plugins anew (tables, topic mappings) without stopping.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

PLUGINS_CHANGED = "plugins/changed"


def gunicorn_pid_path() -> Path:
    """``$DOT_PIOREACTOR/storage/gunicorn.pid``: the master of ``pio serve`` (SIGHUP reloads the app)."""
    from reactorkit.core.paths import storage_dir

    return storage_dir() / "gunicorn.pid"


def gunicorn_pid() -> int | None:
    """The pid of this unit's ``pio serve`` master, if it is running."""
    from reactorkit.core.processes import pid_alive

    try:
        pid = int(gunicorn_pid_path().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def reload_web_server() -> bool:
    """SIGHUP the ``pio serve`` master (fresh workers load the plugins anew); False when it is not running."""
    pid = gunicorn_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True


def plugins_changed_topic(unit: str, config: Any = None) -> str:
    """``{root}/{unit}/$experiment/plugins/changed``: where a unit says that its plugin set changed."""
    from reactorkit.core.mqtt import root_topic

    return f"{root_topic(config)}/{unit}/$experiment/{PLUGINS_CHANGED}"


def announce_plugins_changed(config: Any = None) -> bool:
    """Publish on :func:`plugins_changed_topic` of this unit (QoS 1); False when the broker cannot be reached."""
    from reactorkit.core.config import get_config, get_unit_name
    from reactorkit.core.mqtt import publish_messages

    config = config or get_config()
    try:
        publish_messages([(plugins_changed_topic(get_unit_name(), config), "1")], config=config)
    except (ConnectionError, OSError):
        return False
    return True


def after_plugin_change() -> dict[str, bool]:
    """Rebuild the CLI index, reload ``pio serve``'s workers and tell the unit's jobs (see the module's text).

    Returns:
        ``{"web_server_reloaded": bool, "jobs_told": bool}``: False where nothing was running
        (no ``pio serve``) or the broker could not be reached.
    """
    try:
        from reactorkit.core.cli.index import get_index

        get_index(rebuild=True)  # and the storage index: the fingerprint misses an install into a target folder
    except Exception:  # a plugin's trouble is reported by the listing, never here
        pass
    return {"web_server_reloaded": reload_web_server(), "jobs_told": announce_plugins_changed()}
