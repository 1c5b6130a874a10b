"""The monitor's periodic self-checks: what each one looks at, and what it says when something is wrong.

The Pioreactor software's monitor checks its unit once at start and every ``[monitor.config]
self_check_interval_hours`` (12) and blinks the HAT's LED with an error code when a check fails (domain facts
§3.9): 1 network, 2 MQTT, 3 disk, 4 stirring, 5 ADC, 6 heater-PCB temperature, 7 voltage, 8 web server. Here
each check is a function that returns a :class:`Finding` (None: the check does not apply to this unit); the
monitor (:mod:`.monitor`) logs it and publishes its code on
``pioreactor/{unit}/$experiment/monitor/flicker_led_with_error_code`` (as stirring publishes 4).

Checks made here (``[monitor.config]`` keys and defaults in :data:`DEFAULTS`):

* disk: free space of the filesystem holding ``$DOT_PIOREACTOR`` below ``min_free_disk_space_percent`` (10 %)
  → warning, code 3;
* web server: the unit's own API does not answer ``GET /unit_api/health`` → error, code 8;
* MQTT: the job's connection to the broker is down → error, code 2 (published once the connection is back);
* network (a worker only): the leader's API does not answer ``GET /unit_api/health`` → error, code 1;
* CPU: the first thermal zone above ``max_cpu_temperature_c`` (80 °C) → warning, no code (none of the eight
  is for the CPU);
* heater PCB: the hardware layer's temperature sensor (:meth:`reactorkit.plugin.Hardware.read_temperature`) at
  or above ``max_temp_to_disable_heating`` → error, code 6.

Codes 4 (stirring), 5 (ADC) and 7 (voltage) are not checked here: stirring reports its own stalls, the ADC is
read by the jobs that use it, and the hardware layer has no rail voltage to read.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, NamedTuple

NETWORK_ERROR_CODE = 1
MQTT_ERROR_CODE = 2
DISK_ERROR_CODE = 3
PCB_TEMPERATURE_ERROR_CODE = 6
WEB_SERVER_ERROR_CODE = 8

SECTION = "monitor.config"
#: ``[monitor.config]`` keys and their defaults. The interval is Pioreactor's (12 h). 10 % free is where a
#: unit's SQLite files, logs and exports start to risk a full disk within days of readings. 80 °C is where
#: the Raspberry Pi's firmware starts to throttle the CPU (Raspberry Pi documentation, "Frequency management
#: and thermal control").
DEFAULTS = {
    "self_check_interval_hours": 12.0,
    "min_free_disk_space_percent": 10.0,
    "max_cpu_temperature_c": 80.0,
    "http_retry_wait_seconds": 15.0,
}
#: Tries of an HTTP health check before it fails, ``http_retry_wait_seconds`` (wall) apart: at a unit's boot the
#: monitor may start before its API (or a worker's before the leader's) answers; three tries 15 s apart give them
#: 30 s before the start's round reports them.
HTTP_ATTEMPTS = 3
#: ``max_temp_to_disable_heating`` (°C) by ``(model_name, model_version)`` (domain facts §1.4); every other model
#: 80 °C. The temperature plugin's ``limits`` module holds the same table (built-in plugins do not import each
#: other); ``[temperature_automation.config] max_temp_to_disable_heating`` overrides both.
_DISABLE_HEATING_C = {("pioreactor_20ml", "1.0"): 65.0}
_DEFAULT_DISABLE_HEATING_C = 80.0
DEFAULT_MODEL = ("pioreactor_20ml", "1.5")
#: Seconds an HTTP health check waits for an answer (the leader's reachability probe waits as long).
HTTP_TIMEOUT_S = 5.0
HEALTH_ROUTE = "/unit_api/health"


class Finding(NamedTuple):
    """What one check found.

    Attributes:
        check: The check's name, e.g. ``"disk"``.
        ok: True when nothing is wrong.
        message: One line: what was seen and, when something is wrong, what to do.
        level: ``logging`` level of the line (DEBUG when ok).
        code: Error code to publish when not ok (None: none).
    """

    check: str
    ok: bool
    message: str
    level: int = logging.DEBUG
    code: int | None = None


def disable_heating_c(config: Any) -> float:
    """The heater-PCB temperature (°C) above which heating must be off: ``[temperature_automation.config]
    max_temp_to_disable_heating``, else the model's (``$MODEL_NAME`` / ``$MODEL_VERSION``, default
    ``pioreactor_20ml`` 1.5: 80 °C; 65 °C on the 20 mL v1.0).

    Raises:
        ValueError: the configured value is not a number.
    """
    model = (os.environ.get("MODEL_NAME") or DEFAULT_MODEL[0], os.environ.get("MODEL_VERSION") or DEFAULT_MODEL[1])
    return config.getfloat("temperature_automation.config", "max_temp_to_disable_heating",
                           fallback=_DISABLE_HEATING_C.get(model, _DEFAULT_DISABLE_HEATING_C))


def passed(check: str, message: str) -> Finding:
    """A passing :class:`Finding` (logged at DEBUG)."""
    return Finding(check, True, message)


def check_disk(path: str | os.PathLike[str], min_free_percent: float,
               free_percent: Callable[[str | os.PathLike[str]], int | None]) -> Finding:
    """Free space of the filesystem holding ``path`` (``free_percent(path)``: 0–100 %, None when unreadable)
    against ``min_free_percent``; below it: warning, :data:`DISK_ERROR_CODE`.

    Raises:
        OSError: the free space cannot be read.
    """
    free = free_percent(path)
    if free is None:
        raise OSError(f"cannot read the free space of the filesystem holding {path}")
    if free < min_free_percent:
        return Finding("disk", False,
                       f"Only {free} % of the disk holding {path} is free (below [{SECTION}] "
                       f"min_free_disk_space_percent = {min_free_percent:g} %). Free some space (old exports, "
                       f"backups, logs) or use a larger card: with a full disk the unit stops storing readings "
                       f"and settings.", logging.WARNING, DISK_ERROR_CODE)
    return passed("disk", f"{free} % of the disk holding {path} is free.")


def http_health(url: str, timeout_s: float = HTTP_TIMEOUT_S, verify: bool = True) -> str | None:
    """``GET {url}`` once, without proxies; None when it answered below 500, else what went wrong (``"HTTP 503"``,
    ``"ConnectionRefusedError: [Errno 111] Connection refused"``), as the leader's reachability probe judges a
    unit's health route. ``verify=False`` does not check an HTTPS server's certificate.

    The standard library's client (:mod:`urllib.request`), not httpx: httpx and what it imports would add about
    8 MB to the monitor's resident memory (30.3 MB against 21.9 MB for a process with paho alone), for one GET per
    check.
    """
    import http.client
    import urllib.error
    import urllib.request

    handlers: list[Any] = [urllib.request.ProxyHandler({})]
    if url.startswith("https:") and not verify:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"{type(reason).__name__}: {reason}"
    return None if status < 500 else f"HTTP {status}"


def check_web_server(base_url: str, probe: Callable[[str], str | None]) -> Finding:
    """The unit's own API answers ``{base_url}/unit_api/health`` (``probe(url)``: None when it answered, else
    the failure); otherwise error, :data:`WEB_SERVER_ERROR_CODE`."""
    url = base_url.rstrip("/") + HEALTH_ROUTE
    failure = probe(url)
    if failure is not None:
        return Finding("web_server", False,
                       f"This unit's web server does not answer {url} ({failure}): the web UI and the leader "
                       f"cannot reach its API. Check that `pio serve` runs (its systemd unit on a Pi, its supervisord "
                       f"program in a local cluster) and restart it.",
                       logging.ERROR, WEB_SERVER_ERROR_CODE)
    return passed("web_server", f"The web server answers {url}.")


def check_leader(leader: str, base_url: str, probe: Callable[[str], str | None]) -> Finding:
    """A worker reaches its leader's API at ``{base_url}/unit_api/health``; otherwise error,
    :data:`NETWORK_ERROR_CODE`."""
    url = base_url.rstrip("/") + HEALTH_ROUTE
    failure = probe(url)
    if failure is not None:
        return Finding("network", False,
                       f"Cannot reach the leader {leader} at {url} ({failure}). Check this unit's network "
                       f"(Wi-Fi or Ethernet), that the leader is on and its API runs, and [cluster.topology] "
                       f"leader_hostname / [cluster.addresses] in config.ini.", logging.ERROR, NETWORK_ERROR_CODE)
    return passed("network", f"The leader {leader} answers {url}.")


def check_mqtt(client: Any, broker: str) -> Finding:
    """The job's MQTT client (``client.is_connected()``) is connected to ``broker`` (``"host:port"``);
    otherwise error, :data:`MQTT_ERROR_CODE`. The line cannot reach the web UI while the broker is away: it is in
    the unit's log file (``[logging] log_file``) at once."""
    if client.is_connected():
        return passed("mqtt", f"Connected to the MQTT broker at {broker}.")
    return Finding("mqtt", False,
                   f"Not connected to the MQTT broker at {broker}: the web UI does not see this unit, and readings "
                   f"wait in the unit's outbox. Check that mosquitto runs there and [mqtt] broker_address / "
                   f"broker_port in config.ini; the job reconnects by itself. Error code {MQTT_ERROR_CODE} is "
                   f"published once the connection is back.", logging.ERROR, MQTT_ERROR_CODE)


def check_cpu_temperature(celsius: float | None, limit_c: float) -> Finding | None:
    """The CPU temperature (°C, None without a thermal zone: the check does not apply) against ``limit_c``;
    above it: warning, no code."""
    if celsius is None:
        return None
    if celsius > limit_c:
        return Finding("cpu", False,
                       f"CPU temperature is {celsius:g} °C, above [{SECTION}] max_cpu_temperature_c = "
                       f"{limit_c:g} °C: the CPU slows down and the unit may become unresponsive. Give the "
                       f"computer air (case, heat sink, away from the heater) and check what runs on it.",
                       logging.WARNING)
    return passed("cpu", f"CPU temperature is {celsius:g} °C.")


def check_pcb_temperature(celsius: float, disable_c: float) -> Finding:
    """The heater PCB's temperature (°C) against ``disable_c`` (``[temperature_automation.config]
    max_temp_to_disable_heating``, by model: domain facts §1.4); at or above it: error,
    :data:`PCB_TEMPERATURE_ERROR_CODE`."""
    if celsius >= disable_c:
        return Finding("heater_pcb", False,
                       f"Heater PCB is at {celsius:.1f} °C, at or above max_temp_to_disable_heating = "
                       f"{disable_c:g} °C, where the heater should already be off. Stop temperature_automation, "
                       f"let the unit cool and check the heater and its PCB before heating again.",
                       logging.ERROR, PCB_TEMPERATURE_ERROR_CODE)
    return passed("heater_pcb", f"Heater PCB is at {celsius:.1f} °C.")
