"""The test kit for plugin authors: ``pytest_plugins = ["reactorkit.plugin.testing"]`` in a ``conftest.py``.

Fixtures (real job processes against the real broker and the simulated vessel; each
test has its own ``$DOT_PIOREACTOR``, MQTT topic prefix and Redis database):

* ``unit_env`` — a :class:`UnitEnv` (``unit_env.env()`` is the environment of a ``pio`` process);
* ``mqtt_recorder`` — a :class:`MQTTRecorder` on that unit's prefix (``wait_for(topic_suffix, predicate)``);
* ``spawn_job`` — ``spawn_job("ph_reading", "--interval", "5")`` starts ``pio run …`` (stopped at teardown);
* ``private_broker`` / ``private_redis`` — a mosquitto / Redis of the test's own, for tests that stop them.

Markers registered: ``integration`` (needs a real mosquitto/Redis and spawns job processes).
Helpers: :func:`pio_command`, :func:`stop_process`, :class:`LocalCluster`, :func:`free_port`.
"""

from reactorkit.core.testing import (  # noqa: F401  (fixtures and pytest hooks are found by name)
    MARKERS,
    LocalCluster,
    MQTTRecorder,
    UnitEnv,
    free_port,
    mqtt_recorder,
    pio_command,
    private_broker,
    private_redis,
    pytest_configure,
    spawn_job,
    stop_process,
    unit_env,
)

__all__ = ["MARKERS", "LocalCluster", "MQTTRecorder", "UnitEnv", "free_port", "pio_command", "stop_process"]
