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

The readers below are plain functions of the files they read (paths as arguments), so a
missing file (no thermal zone, no network interface, not a Raspberry Pi) gives None, never
an error. The job's idle cost is one thread waiting on an event between refreshes.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from reactorkit.plugin import BackgroundJob, backend_name
from reactorkit.plugin import mqtt as mq

from .descriptors import MONITOR

UNIVERSAL_EXPERIMENT = "$experiment"
BLINK_TOPIC = "flicker_led_response_okay"  # domain facts §2.6: fixed topic under the monitor's
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

    Raises:
        ValueError: ``statistics_interval_s`` is not positive.
        JobAlreadyRunning: a monitor already runs on this unit.
        ConnectionError: the broker cannot be reached at start.
    """

    job_name = MONITOR.job_name
    published_settings = MONITOR.published_settings
    is_long_running = True

    def __init__(self, unit: str, experiment: str = UNIVERSAL_EXPERIMENT, *,
                 statistics_interval_s: float | None = None, **kwargs: Any) -> None:
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

    def on_message(self, message: Any) -> None:
        if message.retain or not message.topic.endswith(f"/{BLINK_TOPIC}"):
            return  # a blink asked before this monitor started is not answered
        self.logger.info("Asked to blink: %s has no status LED to flicker; it is online.", self.unit)

    def on_disconnected(self) -> None:
        self._stop_refreshing.set()
