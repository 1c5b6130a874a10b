"""Every hook a plugin may implement.

All hooks are "collect from everyone": each plugin returns an iterable of typed
records from :mod:`reactorkit.core.descriptors`, and the host
(:mod:`reactorkit.core.plugins`) calls them plugin by plugin so that one broken
plugin never hides the others. Records are validated when constructed; anything
that is not the expected record type is reported with the plugin's name.

Keys given twice follow one rule: built-ins (source ``"app"``) first, then
third-party plugins in name order; the later one wins and the override is
logged (see :class:`reactorkit.core.plugins.Registry`).
"""

from __future__ import annotations

from typing import Iterable

from reactorkit.core.descriptors import (
    ConfigSection,
    SettingsCollection,
    AutomationDescriptor,
    CalibrationProtocolDescriptor,
    ChartDescriptor,
    CliCommandDescriptor,
    DatasetDescriptor,
    JobDescriptor,
    RouteDescriptor,
    TableDescriptor,
    TopicMapping,
)

from . import hookspec


@hookspec
def register_jobs() -> Iterable[JobDescriptor]:
    """Contribute background jobs and actions: what ``pio run <job_name>`` can start.

    Served by ``/unit_api/jobs/descriptors`` and ``/api/jobs/descriptors``.

    Returns:
        Zero or more ``JobDescriptor`` (job_name, display_name, description,
        published_settings, cli_options, job_class or runner).

    Errors:
        If this raises or yields anything but a ``JobDescriptor``, the host logs
        it, drops this plugin's jobs and lists the failure; other plugins are
        unaffected.

    Example::

        @hookimpl
        def register_jobs():
            yield JobDescriptor(job_name="ph_reading", display_name="pH reading",
                                job_class="my_plugin.job:PhReading")
    """
    return ()


@hookspec
def register_automations() -> Iterable[AutomationDescriptor]:
    """Contribute automations for the host job of their type (``{type}_automation``).

    Served by ``/api/automations/descriptors/{automation_type}``.

    Returns:
        Zero or more ``AutomationDescriptor`` (automation_type, automation_name,
        display_name, fields, automation_class).

    Errors:
        As :func:`register_jobs`.
    """
    return ()


@hookspec
def register_charts() -> Iterable[ChartDescriptor]:
    """Contribute charts for the overview page (``/api/charts/descriptors``).

    Returns:
        Zero or more ``ChartDescriptor`` (chart_key, data_source, title,
        y_axis_label, mqtt_topic, payload_key, lookback, …).
    """
    return ()


@hookspec
def register_datasets() -> Iterable[DatasetDescriptor]:
    """Contribute exportable datasets (``/api/datasets/exportable``).

    Returns:
        Zero or more ``DatasetDescriptor`` (dataset_name, display_name, table or
        query, has_experiment, has_unit, default_order_by, timestamp_columns).
    """
    return ()


@hookspec
def register_calibration_protocols() -> Iterable[CalibrationProtocolDescriptor]:
    """Contribute calibration protocols (listed and run by the calibrations plugin's routes).

    Returns:
        Zero or more ``CalibrationProtocolDescriptor`` (target_device,
        protocol_name, title, priority, requirements, session_class).
    """
    return ()


@hookspec
def register_storage() -> Iterable[TableDescriptor | TopicMapping]:
    """Contribute leader-database tables and MQTT-topic-to-table mappings.

    The leader creates every ``TableDescriptor`` at start-up (idempotently) and
    its ingestion job stores each message matching a
    ``TopicMapping`` into that mapping's table.

    Returns:
        Zero or more ``TableDescriptor`` (table, create_sql, version, migrations)
        and ``TopicMapping`` (topic, table, parse).
    """
    return ()


@hookspec
def register_routes() -> Iterable[RouteDescriptor]:
    """Contribute Falcon routes to the API app.

    Returns:
        Zero or more ``RouteDescriptor`` (path under ``/api/`` or
        ``/unit_api/``, resource, leader_only).
    """
    return ()


@hookspec
def register_cli_commands() -> Iterable[CliCommandDescriptor]:
    """Contribute ``pio`` subcommands.

    Returns:
        Zero or more ``CliCommandDescriptor`` (name, help, command). The click
        command is loaded only when the user invokes it.
    """
    return ()


@hookspec
def register_settings_collections() -> Iterable[SettingsCollection]:
    """Contribute per-unit settings collections (``/unit_api/settings/descriptors``).

    Returns:
        Zero or more ``SettingsCollection`` (key, display_name, published_settings,
        defaults from the config). The dosing plugin registers ``bioreactor``, the LED
        plugin ``leds``.
    """
    return ()


@hookspec
def register_config_sections() -> Iterable[ConfigSection]:
    """Contribute default ``config.ini`` sections (merged without overwriting the user's values).

    Returns:
        Zero or more ``ConfigSection`` (section, values, comment).
    """
    return ()
