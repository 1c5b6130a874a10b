"""The public API for plugins: everything a plugin imports from reactorkit.

A plugin (built-in or third-party) imports from this module only, plus its own
package, the standard library and third-party libraries::

    from reactorkit.plugin import hookimpl, JobDescriptor, PublishedSetting, BackgroundJob

Names resolve on first use (PEP 562 module ``__getattr__``), so a plugin's
``__init__`` that imports ``hookimpl`` and a few records does not pull in the
HTTP stack, MQTT or numpy: ``pio`` and the job processes start as fast as before.

What is here (each name documented where it is defined; ``help(reactorkit.plugin.NAME)``):

* the hook marker ``hookimpl`` (and ``yields``, a hook that hands over records) and every
  record a hook returns (``JobDescriptor``, ``PublishedSetting``, ``AutomationDescriptor``, ``ChartDescriptor``,
  ``DatasetDescriptor``, ``TableDescriptor``, ``TopicMapping``, ``RouteDescriptor``,
  ``CliCommandDescriptor``, ``CalibrationProtocolDescriptor`` …), and ``Record`` (with ``record_field``,
  ``record_asdict``, ``record_replace``), the base they are built on, for data classes of a job's start;
* job and automation base classes: ``BackgroundJob``, ``AutomationJob`` and the
  automation events, ``DosingAutomationJob``, ``LedAutomationJob``,
  ``TemperatureAutomationJob``;
* calibration protocols: ``CalibrationProtocol``, ``Step``, ``Field``,
  ``SessionContext`` and their errors;
* the periodic-job helper ``RepeatedTimer`` (runs a function every N simulated
  seconds on the shared clock; ``pause()``/``unpause()`` for sleeping jobs);
* HTTP helpers for routes: ``RouteResource`` and ``AppContext`` (a route is built with the
  app's context: ``context.registry``, ``context.config``, ``context.leader_db``,
  ``context.fanout``), ``read_body``, ``body_field``, ``invalid``, ``ApiError``,
  ``enqueue_task``, ``fanout`` (fan-out to units), ``target_units``, and ``openapi`` (the
  building blocks of a route's OpenAPI description);
* services: config, clock, hardware (and its PWM leases), MQTT topics, paths, SQLite files (``open_sqlite``),
  logs, calibrations store, the job registry, the task queue;
* the test kit: ``pytest_plugins = ["reactorkit.plugin.testing"]``.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> "module" (same attribute name) or "module:attribute"
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        public, _, attr = name.partition("=")
        _EXPORTS[public] = f"{module}:{attr or public}"


# the contract: hook marker and records
_export("reactorkit.core.hooks", "hookimpl", "yields")
_export(
    "reactorkit.core.descriptors",
    "AutomationDescriptor", "AutomationField", "ConfigSection", "CalibrationProtocolDescriptor", "ChartDescriptor",
    "CliCommandDescriptor", "CliOption", "DatasetDescriptor", "JobDescriptor", "PublishedSetting",
    "RouteDescriptor", "SettingsCollection", "TableDescriptor", "TimeSeries", "TopicMapping", "resolve_reference=resolve",
    "automation_settings", "automation_host_job",
)
_export("reactorkit.core.plugins", "Registry", "ENTRY_POINT_GROUP", "make_plugin_manager")
# records: classes declared as dataclasses, without generating their methods at import (reactorkit.core.records)
_export("reactorkit.core.records", "Record", "record_field=field", "record_asdict=asdict", "record_replace=replace")

# jobs and automations
_export("reactorkit.core.job", "BackgroundJob", "DISCONNECTED", "READY")
_export(
    "reactorkit.core.automation",
    "AutomationJob", "AutomationEvent", "NoEvent", "DilutionEvent", "AddMediaEvent", "AddAltMediaEvent",
    "ChangedLedIntensity", "ErrorOccurred", "UpdatedHeaterDC", "run_automation", "run_automation_host",
)
_export("reactorkit.core.start_errors", "start_failure")
_export("reactorkit.builtin_plugins.dosing.automation", "DosingAutomationJob")
_export("reactorkit.builtin_plugins.leds.base", "LedAutomationJob")
_export("reactorkit.builtin_plugins.temperature.base", "TemperatureAutomationJob")
_export("reactorkit.core.pid", "PID")

# calibration protocols (the base classes of register_calibration_protocols)
_export(
    "reactorkit.core.calibration_sessions",
    "CalibrationProtocol", "Step", "Field", "SessionContext", "SessionEngine", "CalibrationError", "InputError",
    "ActionFailed", "result_step", "utc_now_iso",
)
_export(
    "reactorkit.core.calibration_store",
    "InvalidCalibration", "PersistentCache", "active_calibration", "active_curve_inverse", "active_estimator",
    "calibration_path", "estimator_path", "load_estimator", "save_calibration", "save_estimator",
)
_export("reactorkit.core.curves", "evaluate_curve=evaluate", "fit_poly_with_stats", "fit_spline", "fit_akima")

# time, config, paths, logs, hardware, MQTT
_export("reactorkit.core.clock", "Clock", "RepeatedTimer", "get_clock", "parse_iso", "utc_iso_ms")
_export(
    "reactorkit.core.config",
    "Config", "get_config", "get_experiment", "get_leader_hostname", "get_unit_name", "is_leader",
    "led_channel_of", "pwm_channel_of",
)
_export("reactorkit.core.config_guard", "ProtectedSetting", "protected_changes")
_export("reactorkit.core.paths", "UnsafePath", "atomic_write", "dot_pioreactor", "durable_replace", "fsync_dir",
        "safe_join", "storage_dir")
# SQLite files: one opener (busy timeout, WAL, synchronous) for every store
_export("reactorkit.core.sqlite", "open_sqlite", "use_wal")
_export("reactorkit.core.logs", "LOG_LEVELS=LEVELS", "NOTICE", "create_logger")
_export("reactorkit.core.hardware", "Hardware", "HardwareError", "backend_name", "get_hardware")
_export("reactorkit.core.hardware.base", "check_duty_cycle")
# PWM leases: channels switched on are journalled, so none stays on after its process dies
_export("reactorkit.core.hardware.leases", "PwmLeases", "sweep_pwm_leases=sweep", "holder_token", "holder_alive",
        "leases_path", "lease_database=database")
_export("reactorkit.core.mqtt", "QOS_AT_LEAST_ONCE", "QOS_EXACTLY_ONCE", "job_topic", "publish_messages")
_export("reactorkit.core.cluster", "unit_url")
_export("reactorkit.core.auth.client", "cluster_headers")
_export("reactorkit.core.audit", "AUDIT_CREATE_SQL=CREATE_SQL")

# the unit's jobs and tasks
_export("reactorkit.core.job_registry", "JobAlreadyRunning", "JobRegistry", "pid_alive")
_export("reactorkit.core.processes", "release_free_heap")
# asyncio without an ssl import at each connection's check of its socket, in a process without TLS
_export("reactorkit.core.deferred_imports", "import_asyncio")
_export("reactorkit.core.launch_client", "launcher_runtime_paths=runtime_paths")
_export("reactorkit.core.jobs_control", "stop_jobs")
_export("reactorkit.core.task_functions", "TaskFailed", "fail_task=fail", "start_job")
_export("reactorkit.core.tasks", "get_queue", "queue_name", "redis_url")

# the leader's database and MQTT-to-table rows
_export(
    "reactorkit.core.leader_db",
    "LeaderDB", "connect_leader_db=connect", "leader_database_path=database_path", "now_iso",
)
_export("reactorkit.core.storage_index", "installed_storage")
_export("reactorkit.core.storage_rows", "row_from_topic", "automation_settings_row", "automation_event_row")
_export("reactorkit.core.storage_records", "unit_table", "automation_host_records")

# the outbox protocol, for the ingestion side (numbered messages, acknowledgements) and subscribers that must
# handle each message once (a unit's outbox sends an unacknowledged message again)
_export(
    "reactorkit.core.outbox",
    "REANNOUNCE_PROPERTY", "STORED_TOPICS_SETTING", "ack_topic", "sequence_from_pairs", "sequence_of", "to_ranges", "holes",
    "in_ranges", "merge_ranges", "outbox_path",
)

# the command line and the API server of this unit
_export("reactorkit.core.cli.index", "rebuild_cli_index=get_index")
_export("reactorkit.core.plugin_packages", "install_package", "uninstall_package", "installed_plugins", "PACKAGE_NAME=NAME")
_export("reactorkit.core.config_defaults", "merge_config_sections", "merge_installed_config_sections")
_export("reactorkit.core.reloads", "gunicorn_pid_path", "gunicorn_pid", "reload_web_server", "after_plugin_change",
        "plugins_changed_topic")

# a local cluster of simulated units (pio cluster, pio demo)
_export("reactorkit.core.localcluster.layout", "ClusterLayout")
_export("reactorkit.core.localcluster.commands", "start_cluster", "stop_cluster", "echo_addresses",
        "default_cluster_root=default_root")
_export("reactorkit.core.localcluster.broker", "mosquitto_config")
_export("reactorkit.core.hardware.simulated", "simulated_vessel_parameters=parameters_from_config")

# HTTP helpers for plugin routes
_export("reactorkit.api.context", "AppContext", "RouteResource")
_export("reactorkit.api.errors", "ApiError")
_export("reactorkit.api.unit.common", "read_body", "body_field=field", "invalid", "enqueue_task", "unavailable_queue")
_export("reactorkit.api.unit.leader", "target_units=resolve")
_export("reactorkit.api.unit.system", "task_status")
_export("reactorkit.api.leader.models", "find_model")

# service modules, for code that uses several of their names (``from reactorkit.plugin import mqtt as mq``)
_MODULES: dict[str, str] = {
    "mqtt": "reactorkit.core.mqtt",
    "cluster_supervisor": "reactorkit.core.localcluster.supervisor",
    "fanout": "reactorkit.api.fanout",
    "calibration_store": "reactorkit.core.calibration_store",
    # the building blocks of a route's OpenAPI description (``RouteDescriptor(schemas=…)``): ``op``, ``task``,
    # ``fan_out``, ``obj``, ``array``, ``mapping``, ``nullable``, ``Content`` and the common schemas (``STR`` …)
    "openapi": "reactorkit.api.openapi.schemas.common",
}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562)."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _EXPORTS:
        module, _, attr = _EXPORTS[name].partition(":")
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'reactorkit.plugin' has no attribute {name!r}; see reactorkit.plugin.__all__")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
