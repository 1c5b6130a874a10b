"""``monitor``: each unit's long-running job that tells the web UI what the unit is.

One per unit, started with the unit (``pio cluster``'s supervisord, a systemd unit
on a Raspberry Pi; see README "Running on a Raspberry Pi"), under the experiment
``$experiment`` (domain facts §3.9). Its ``$state`` is the unit's status dot in the
UI's Inventory and Leader pages (``ready`` online, ``lost`` by the last will when
the unit drops off, ``disconnected`` when stopped); its published settings, on
``pioreactor/{unit}/$experiment/monitor/{setting}`` (retained):

* ``versions``: ``{app, hat, firmware, hat_serial, rpi_machine, timestamp}``, once at start;
* ``computer_statistics``: ``{available_disk_space (% of the root filesystem free),
  cpu_temperature_celcius (°C, null without a thermal zone), timestamp}``, refreshed every
  ``[monitor] statistics_interval_s`` wall seconds (default 300);
* ``ipv4``, ``wlan_mac_address``, ``eth_mac_address`` (empty when the unit has none;
  ``ipv4`` refreshed with the statistics);
* ``button_down``: ``False``. In the Pioreactor software the HAT's push button sets it while held; the
  hardware layer (:class:`reactorkit.plugin.Hardware`, on a Pi ``[hardware.pi]``) has no button input to
  read, so it never changes, on a Pi or off one.

A message on ``…/monitor/flicker_led_response_okay`` (the UI's "Blink" button, ``POST /api/workers/{u}/blink``)
is answered with a log line (the UI's event log): the hardware layer has no status LED to flicker.

``voltage_on_pwm_rail`` is not published: the hardware layer has no rail voltage to read.

Self-checks (:mod:`.self_checks`: disk, web server, MQTT, the leader for a worker, CPU and heater-PCB
temperature) run once at start and every ``[monitor.config] self_check_interval_hours`` (default 12) of the
clock's time (simulated time when the clock is sped up), in a timer thread of their own: a check that waits
(an HTTP probe: up to 5 s a try, tries 15 s apart) holds neither the MQTT client's network thread nor the
statistics. Each finding is a log line (DEBUG when all is well; WARNING or ERROR saying what is wrong and
what to do); a failed check's error code is published (QoS 1, not retained) on
``…/$experiment/monitor/flicker_led_with_error_code``, and while the broker is away the codes wait for the
reconnection (the lines are in the unit's log file at once).
A check that raises is logged and the others still run; nothing a check does stops the job.

The readers below are plain functions of the files they read (paths as arguments), so a
missing file (no thermal zone, no network interface, not a Raspberry Pi) gives None, never
an error. The job's idle cost is two threads waiting between rounds: the statistics' and the self-checks'.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from reactorkit.plugin import (BackgroundJob, RepeatedTimer, backend_name, dot_pioreactor, get_hardware,
                               get_leader_hostname, unit_url)
from reactorkit.plugin import mqtt as mq

from . import self_checks as sc
from .descriptors import MONITOR

UNIVERSAL_EXPERIMENT = "$experiment"
BLINK_TOPIC = "flicker_led_response_okay"  # domain facts §2.6: fixed topic under the monitor's
ERROR_CODE_TOPIC = "flicker_led_with_error_code"  # domain facts §2.6, §3.9
DEFAULT_STATISTICS_INTERVAL_S = 300.0
#: What Pioreactor's software reports for a HAT it cannot read (its test environment); used off a Pi.
SIMULATED_HAT = "0.0"
SIMULATED_FIRMWARE = "0.0"
SIMULATED_HAT_SERIAL = "00000000-0000-0000-0000-000000000000"

DEVICE_TREE = Path("/proc/device-tree")
THERMAL = Path("/sys/class/thermal")
NET = Path("/sys/class/net")


def _read_text(path: Path) -> str | None:
    """``path``'s text without NULs and surrounding blanks (device-tree strings end in NUL); None when unreadable or empty."""
    try:
        text = path.read_bytes().replace(b"\x00", b"").decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    return text or None


def app_version() -> str:
    """The app version this unit reports, as ``GET /unit_api/versions/app`` does (``reactorkit.__version__``)."""
    from reactorkit import __version__

    return __version__


def read_rpi_machine(device_tree: Path = DEVICE_TREE) -> str:
    """The board's model, e.g. ``"Raspberry Pi 4 Model B Rev 1.4"`` (``{device_tree}/model``); off a Pi, the
    platform's, e.g. ``"Linux x86_64"`` (:mod:`platform`)."""
    model = _read_text(device_tree / "model")
    if model:
        return model
    return " ".join(p for p in (platform.system(), platform.machine()) if p) or "unknown"


def read_hat(device_tree: Path = DEVICE_TREE) -> tuple[str | None, str | None]:
    """``(product version, serial)`` of the HAT the Pi read from its EEPROM at boot (``{device_tree}/hat/product_ver``
    and ``…/uuid``, as the Raspberry Pi HAT specification defines them); ``(None, None)`` without a HAT."""
    hat = device_tree / "hat"
    return _read_text(hat / "product_ver"), _read_text(hat / "uuid")


def read_cpu_temperature(thermal: Path = THERMAL) -> float | None:
    """CPU temperature in °C, one decimal, from the first thermal zone (``{thermal}/thermal_zone0/temp``,
    millidegrees Celsius as the Linux thermal sysfs interface gives it); None without one or on a bad value."""
    text = _read_text(thermal / "thermal_zone0" / "temp")
    try:
        return round(int(text) / 1000.0, 1) if text is not None else None
    except ValueError:
        return None


def read_available_disk_space(path: str | os.PathLike[str] = "/") -> int | None:
    """Free space of the filesystem holding ``path``, in percent of its size (0–100, rounded), as
    ``shutil.disk_usage`` gives it; None when it cannot be read."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    if usage.total <= 0:
        return None
    return round(100.0 * usage.free / usage.total)


def _interfaces(net: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(net) if entry.name != "lo")
    except OSError:
        return []


def _mac(net: Path, interface: str) -> str | None:
    mac = _read_text(net / interface / "address")
    return None if mac in (None, "00:00:00:00:00:00") else mac


def read_mac_addresses(net: Path = NET) -> tuple[str | None, str | None]:
    """``(wlan MAC, ethernet MAC)`` from the kernel's network interfaces (``{net}/<interface>/address``).

    Wireless: ``wlan0``, else the first interface with a ``wireless`` folder. Ethernet: ``eth0``, else the first
    other interface backed by a device (``{net}/<interface>/device``: not a bridge, VPN or loopback). None for
    either one the unit lacks.
    """
    names = _interfaces(net)
    wireless = [n for n in names if (net / n / "wireless").exists()]
    wlan = "wlan0" if "wlan0" in names else (wireless[0] if wireless else None)
    wired = [n for n in names if n not in wireless and n != wlan and (net / n / "device").exists()]
    eth = "eth0" if "eth0" in names else (wired[0] if wired else None)
    return (_mac(net, wlan) if wlan else None), (_mac(net, eth) if eth else None)


def read_ipv4(probe: Callable[[], str] | None = None) -> str | None:
    """The IPv4 address other machines reach this unit at: the source address of the route to a private address
    (a UDP socket's ``connect`` picks it; nothing is sent). None without a route or for a loopback address."""
    def default_probe() -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.254.254.254", 1))
            return s.getsockname()[0]

    try:
        address = (probe or default_probe)()
    except OSError:
        return None
    return None if not address or address.startswith("127.") or address == "0.0.0.0" else address


def versions(config: Any, timestamp: str, device_tree: Path = DEVICE_TREE) -> dict[str, Any]:
    """``{app, hat, firmware, hat_serial, rpi_machine, timestamp}``.

    Off a Pi (the ``simulated`` or ``replay`` hardware backend) the HAT and firmware are Pioreactor's simulated
    values (:data:`SIMULATED_HAT`, ``$FIRMWARE`` or :data:`SIMULATED_FIRMWARE`, :data:`SIMULATED_HAT_SERIAL`); on
    a Pi the HAT's EEPROM (:func:`read_hat`), and no firmware (the ``pi`` backend drives the board directly).
    """
    try:
        simulated = backend_name(config) != "pi"
    except Exception:  # noqa: BLE001 - an unknown backend name: the other jobs refuse to start, this one reports
        simulated = True
    if simulated:
        hat, firmware, serial = SIMULATED_HAT, os.environ.get("FIRMWARE") or SIMULATED_FIRMWARE, SIMULATED_HAT_SERIAL
    else:
        (hat, serial), firmware = read_hat(device_tree), None
    return {"app": app_version(), "hat": hat, "firmware": firmware, "hat_serial": serial,
            "rpi_machine": read_rpi_machine(device_tree), "timestamp": timestamp}


def computer_statistics(timestamp: str, disk_path: str | os.PathLike[str] = "/", thermal: Path = THERMAL) -> dict[str, Any]:
    """``{available_disk_space (%), cpu_temperature_celcius (°C or None), timestamp}`` (the contract's spelling)."""
    return {"available_disk_space": read_available_disk_space(disk_path),
            "cpu_temperature_celcius": read_cpu_temperature(thermal), "timestamp": timestamp}


class Monitor(BackgroundJob):
    """The unit's monitor (see the module docstring); runs under ``$experiment`` whatever ``experiment`` says.

    Args:
        unit: This unit's name.
        experiment: Ignored: this long-running job always runs under ``$experiment``.
        statistics_interval_s: Wall seconds between refreshes of ``computer_statistics`` and ``ipv4`` (default
            ``[monitor] statistics_interval_s``, else 300).
        self_check_interval_hours: Hours of the clock's time between self-checks (default ``[monitor.config]
            self_check_interval_hours``, else 12). A configured value that is not a positive number is logged
            (error) and the default used: the monitor is the unit's status, it starts whatever the config says.

    Raises:
        ValueError: ``statistics_interval_s`` or ``self_check_interval_hours`` (given as an argument) is not
            positive.
        JobAlreadyRunning: a monitor already runs on this unit.
        ConnectionError: the broker cannot be reached at start.
    """

    job_name = MONITOR.job_name
    published_settings = MONITOR.published_settings
    is_long_running = True

    def __init__(self, unit: str, experiment: str = UNIVERSAL_EXPERIMENT, *,
                 statistics_interval_s: float | None = None, self_check_interval_hours: float | None = None,
                 **kwargs: Any) -> None:
        if self_check_interval_hours is not None and not self_check_interval_hours > 0:
            raise ValueError(f"self_check_interval_hours must be > 0, not {self_check_interval_hours}")
        self._pending_codes: list[int] = []  # error codes found while the broker was away (set before the connection)
        self._codes_lock = threading.Lock()
        super().__init__(unit, UNIVERSAL_EXPERIMENT, **kwargs)
        if statistics_interval_s is None:
            statistics_interval_s = self.config.getfloat("monitor", "statistics_interval_s",
                                                         fallback=DEFAULT_STATISTICS_INTERVAL_S)
        if not statistics_interval_s > 0:
            raise ValueError(f"statistics_interval_s must be > 0 seconds, not {statistics_interval_s}")
        self.statistics_interval_s = float(statistics_interval_s)
        self._stop_refreshing = threading.Event()
        wlan, eth = read_mac_addresses()
        self.versions = versions(self.config, self.clock.utc_iso())
        self.wlan_mac_address = wlan
        self.eth_mac_address = eth
        self.button_down = False
        self.ipv4 = None
        self.computer_statistics = None
        self.refresh()
        self._refresher = threading.Thread(target=self._refresh_loop, name="monitor-refresh", daemon=True)
        self._refresher.start()
        self.self_check_interval_hours = (self_check_interval_hours if self_check_interval_hours is not None
                                          else self._configured_self_check_interval_hours())
        self._self_check_lock = threading.Lock()
        self._self_checker = RepeatedTimer(
            self.self_check_interval_hours * 3600.0, self.self_check, clock=self.clock, run_immediately=True,
            on_error=lambda exc: self.logger.error("Self-checks failed: %s", exc), name="monitor-self-check",
        ).start()

    def _configured_self_check_interval_hours(self) -> float:
        default = sc.DEFAULTS["self_check_interval_hours"]
        try:
            hours = self.config.getfloat(sc.SECTION, "self_check_interval_hours", fallback=default)
        except ValueError:
            hours = float("nan")
        if hours > 0 and hours != float("inf"):
            return hours
        raw = self.config.get(sc.SECTION, "self_check_interval_hours", fallback="")
        self.logger.error("[%s] self_check_interval_hours = %r is not a positive number of hours; self-checks run "
                          "every %g h. Fix it in config.ini and restart the monitor.", sc.SECTION, raw, default)
        return default

    def _threshold(self, key: str) -> float:
        """``[monitor.config] key`` as a float (default :data:`self_checks.DEFAULTS`); ValueError when it is not
        a number (the check that reads it is logged as not run)."""
        return self.config.getfloat(sc.SECTION, key, fallback=sc.DEFAULTS[key])

    # ------------------------------------------------------------------ self-checks
    def self_checks(self) -> list[tuple[str, Callable[[], sc.Finding | None]]]:
        """``[(name, check)]`` in the order they run; each check returns a :class:`self_checks.Finding`, or None
        when it does not apply to this unit."""
        return [("disk", self.check_disk), ("mqtt", self.check_mqtt), ("web_server", self.check_web_server),
                ("network", self.check_network), ("cpu", self.check_cpu), ("heater_pcb", self.check_heater_pcb)]

    def self_check(self) -> list[sc.Finding]:
        """Run every check once (one round at a time): log each finding, publish the codes of failed ones.

        A check that raises is logged (ERROR, with the exception) and the next one runs; this never raises
        (but for what logging itself raises). Returns the findings of the checks that ran.
        """
        findings: list[sc.Finding] = []
        with self._self_check_lock:
            for name, check in self.self_checks():
                if self._stop_refreshing.is_set():
                    break  # stopping: the rest would report on a job that is going away
                try:
                    finding = check()
                except Exception as exc:  # noqa: BLE001 - a check that fails to run never stops the monitor
                    self.logger.error("Self-check %r could not run (%s: %s); the other checks ran, and it is tried "
                                      "again at the next self-check, in %g h.", name, type(exc).__name__, exc,
                                      self.self_check_interval_hours)
                    continue
                if finding is None:
                    self.logger.debug("Self-check %r does not apply to this unit.", name)
                    continue
                findings.append(finding)
                self.logger.log(finding.level, "%s", finding.message if not finding.ok
                                else f"Self-check {name}: {finding.message}")
                if not finding.ok and finding.code is not None:
                    self.publish_error_code(finding.code)
        return findings

    def publish_error_code(self, code: int) -> None:
        """Publish ``code`` on ``…/$experiment/monitor/flicker_led_with_error_code`` (QoS 1, not retained), as
        Pioreactor's jobs ask the monitor to blink it. While the client is not connected, it is kept and published
        at the reconnection (:meth:`on_mqtt_connect`), each code once."""
        with self._codes_lock:
            if not self.mqtt.is_connected():
                if code not in self._pending_codes:
                    self._pending_codes.append(code)
                return
        self.mqtt.publish(self._error_code_topic(), str(code), qos=mq.QOS_AT_LEAST_ONCE)

    def _error_code_topic(self) -> str:
        return mq.job_topic(self.unit, UNIVERSAL_EXPERIMENT, self.job_name, ERROR_CODE_TOPIC, config=self.config)

    def check_disk(self) -> sc.Finding:
        """Free space of the filesystem holding ``$DOT_PIOREACTOR`` (:func:`self_checks.check_disk`)."""
        return sc.check_disk(dot_pioreactor(), self._threshold("min_free_disk_space_percent"),
                             read_available_disk_space)

    def web_server_url(self) -> tuple[str, bool]:
        """``(base URL, verify TLS)`` of this unit's own API: ``[monitor.config] web_server_url`` when set
        (certificate checked), else ``{[ui] proto}://127.0.0.1:{port}`` with the unit's port
        (``[cluster.addresses]``, else ``[ui] port``), certificate not checked: it names the unit's host, and the
        check is whether the server answers, on this machine.

        Raises:
            ValueError: the unit's address names a port that is not a number.
        """
        configured = self.config.get(sc.SECTION, "web_server_url", fallback="").strip()
        if configured:
            return configured, True
        from urllib.parse import urlsplit

        own = urlsplit(unit_url(self.unit, self.config))
        return f"{own.scheme}://127.0.0.1:{own.port or (443 if own.scheme == 'https' else 80)}", False

    def probe(self, url: str, verify: bool = True) -> str | None:
        """:func:`self_checks.http_health` of ``url``, tried :data:`self_checks.HTTP_ATTEMPTS` times
        ``[monitor.config] http_retry_wait_seconds`` (wall, default 15) apart until it answers (a stop ends the
        wait); None once it answered, else the last failure and how many tries it took.

        Raises:
            ValueError: ``http_retry_wait_seconds`` is not a number.
        """
        wait_s = max(0.0, self._threshold("http_retry_wait_seconds"))
        failure = None
        for attempt in range(1, sc.HTTP_ATTEMPTS + 1):
            failure = sc.http_health(url, verify=verify)
            if failure is None:
                return None
            if attempt < sc.HTTP_ATTEMPTS and self._stop_refreshing.wait(wait_s):
                break
        return f"{failure}; {attempt} tries, {wait_s:g} s apart"

    def check_web_server(self) -> sc.Finding:
        """This unit's API answers its health route (:func:`self_checks.check_web_server`)."""
        url, verify = self.web_server_url()
        return sc.check_web_server(url, lambda u: self.probe(u, verify=verify))

    def check_mqtt(self) -> sc.Finding:
        """The job's own MQTT connection (:func:`self_checks.check_mqtt`)."""
        host, port, _, _ = mq.broker_settings(self.config)
        return sc.check_mqtt(self.mqtt, f"{host}:{port}")

    def check_network(self) -> sc.Finding | None:
        """A worker reaches its leader's API (:func:`self_checks.check_leader`); None on the leader."""
        leader = get_leader_hostname(self.config)
        if leader == self.unit:
            return None
        return sc.check_leader(leader, unit_url(leader, self.config), self.probe)

    def check_cpu(self) -> sc.Finding | None:
        """The first thermal zone's temperature (:func:`self_checks.check_cpu_temperature`); None without one."""
        return sc.check_cpu_temperature(read_cpu_temperature(), self._threshold("max_cpu_temperature_c"))

    def check_heater_pcb(self) -> sc.Finding | None:
        """The hardware layer's heater-PCB temperature against the model's ``max_temp_to_disable_heating``
        (:func:`self_checks.check_pcb_temperature`).

        None on a Pi: opening the Pi backend in this process would set up every PWM and LED pin and drive them
        at 0 % against the jobs that use them; there the temperature automation's own safety checks (every
        53 s) guard the heater. Off a Pi, the simulated (or replayed) vessel's sensor is read.

        Raises:
            HardwareError: the sensor does not answer.
        """
        if backend_name(self.config) == "pi":
            return None
        celsius = get_hardware(self.config, self.unit).read_temperature()
        return sc.check_pcb_temperature(celsius, sc.disable_heating_c(self.config))

    def refresh(self) -> None:
        """Read and publish ``computer_statistics`` (always: its timestamp moves) and ``ipv4`` (when it changed)."""
        self.computer_statistics = computer_statistics(self.clock.utc_iso())
        ipv4 = read_ipv4()
        if ipv4 != self.ipv4:
            self.ipv4 = ipv4

    def _refresh_loop(self) -> None:
        while not self._stop_refreshing.wait(self.statistics_interval_s):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - a reading that fails is logged; the next one may work
                self.logger.debug("refresh failed: %s", exc)

    def on_mqtt_connect(self, client: Any) -> None:
        client.subscribe(mq.job_topic(self.unit, UNIVERSAL_EXPERIMENT, self.job_name, BLINK_TOPIC, config=self.config),
                         qos=mq.QOS_AT_LEAST_ONCE)
        with self._codes_lock:
            pending, self._pending_codes[:] = list(self._pending_codes), []
        if pending:  # found by self-checks while the broker was away (their lines are in the unit's log file)
            for code in pending:
                client.publish(self._error_code_topic(), str(code), qos=mq.QOS_AT_LEAST_ONCE)
            self.logger.warning("Connected to the MQTT broker again; error code(s) %s found by self-checks while it "
                                "was away are published now (see the unit's log file for what they found).",
                                ", ".join(map(str, pending)))

    def on_message(self, message: Any) -> None:
        if message.retain or not message.topic.endswith(f"/{BLINK_TOPIC}"):
            return  # a blink asked before this monitor started is not answered
        self.logger.info("Asked to blink: %s has no status LED to flicker; it is online.", self.unit)

    def on_disconnected(self) -> None:
        self._stop_refreshing.set()
        checker = self.__dict__.get("_self_checker")
        if checker is not None:
            checker.cancel()
