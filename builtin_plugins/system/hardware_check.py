"""Does this unit's hardware fit a bioreactor model? (``/unit_api/hardware/check``, domain facts §1.4).

A model change runs this check; its answer is ``ok``, ``warning`` or ``skipped``:

* ``skipped`` off a Raspberry Pi — the simulated and replay backends
  (:func:`reactorkit.core.hardware.backend_name`) have no buses to probe, and
  the reason says so;
* on a Pi every check below must pass for ``ok``, else ``warning`` naming what is missing:

  - ``gpio``: RPi.GPIO is importable (PWM, LEDs, tachometer of the Pi backend);
  - ``spi_adc``: the photodiode ADC's device node ``/dev/spidev<adc_bus>.<adc_device>``
    exists (``[hardware.pi]``, default ``/dev/spidev0.0``);
  - ``i2c``: each address of ``[hardware.pi] i2c_addresses`` (e.g. ``0x48``, the
    board's I2C devices) answers on ``/dev/i2c-<i2c_bus>`` (default bus 1) — a
    one-byte read after ``ioctl(I2C_SLAVE)`` (``0x0703``, linux/i2c-dev.h); an
    address bound to a kernel driver (``EBUSY``) counts as present. With no
    addresses configured this check is reported as not configured and not counted.

The result is also logged on the unit (log file, and the MQTT log topic of
``$experiment`` when the broker answers): NOTICE for ``ok``, WARNING for ``warning``.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

I2C_SLAVE = 0x0703  # linux/i2c-dev.h
DEV = Path("/dev")


def parse_addresses(text: str) -> list[int]:
    """``"0x48, 0x2c"`` → ``[72, 44]`` (hex with ``0x``, else decimal).

    Raises:
        ValueError: an entry is not a 7-bit I2C address (0x03–0x77).
    """
    out = []
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        value = int(part, 16) if part.lower().startswith("0x") else int(part)
        if not 0x03 <= value <= 0x77:
            raise ValueError(f"{part} is not a 7-bit I2C address (0x03–0x77)")
        out.append(value)
    return out


def i2c_device_present(address: int, bus: int = 1) -> bool:
    """Whether a device answers at ``address`` on ``/dev/i2c-<bus>``.

    Raises:
        OSError: the bus device cannot be opened.
    """
    import fcntl

    fd = os.open(str(DEV / f"i2c-{bus}"), os.O_RDWR)
    try:
        try:
            fcntl.ioctl(fd, I2C_SLAVE, address)
        except OSError as exc:
            if exc.errno == errno.EBUSY:  # a kernel driver owns it: the device is there
                return True
            raise
        try:
            os.read(fd, 1)
            return True
        except OSError:
            return False
    finally:
        os.close(fd)


def gpio_installed() -> bool:
    """Whether ``RPi.GPIO`` can be imported (looked up, not imported)."""
    return importlib.util.find_spec("RPi") is not None and importlib.util.find_spec("RPi.GPIO") is not None


def _check(name: str, ok: bool | None, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


def pi_checks(config: Any) -> list[dict[str, Any]]:
    """The checks of a Pi (see the module docstring): ``[{name, ok (None: not configured), detail}]``."""
    section = config["hardware.pi"] if config.has_section("hardware.pi") else {}
    checks = []
    gpio = gpio_installed()
    checks.append(_check("gpio", gpio, "RPi.GPIO is installed." if gpio
                         else "RPi.GPIO is not installed: pip install 'reactorkit[pi]'."))
    spi = DEV / f"spidev{section.get('adc_bus', '0')}.{section.get('adc_device', '0')}"
    checks.append(_check("spi_adc", spi.exists(), f"{spi} exists." if spi.exists()
                         else f"{spi} is missing: enable SPI (raspi-config) and check [hardware.pi] adc_bus/adc_device."))
    raw = str(section.get("i2c_addresses", "") or "")
    try:
        addresses = parse_addresses(raw)
    except ValueError as exc:
        checks.append(_check("i2c", False, f"[hardware.pi] i2c_addresses: {exc}."))
        return checks
    if not addresses:
        checks.append(_check("i2c", None, "No I2C devices are configured ([hardware.pi] i2c_addresses)."))
        return checks
    bus = int(section.get("i2c_bus", 1))
    try:
        missing = [a for a in addresses if not i2c_device_present(a, bus)]
    except OSError as exc:
        checks.append(_check("i2c", False, f"/dev/i2c-{bus} cannot be opened ({exc.strerror or exc}): enable I2C "
                             "(raspi-config)."))
        return checks
    found = ", ".join(hex(a) for a in addresses if a not in missing)
    if missing:
        detail = f"No answer at {', '.join(hex(a) for a in missing)} on /dev/i2c-{bus}" + (
            f" (found {found})." if found else ".")
    else:
        detail = f"Every I2C device answered on /dev/i2c-{bus}: {found}."
    checks.append(_check("i2c", not missing, detail))
    return checks


def check_hardware(model_name: str, model_version: str) -> dict[str, Any]:
    """Task: check this unit's hardware for a model.

    Returns:
        ``{"status": "ok" | "warning" | "skipped", "model_name", "model_version", "unit", "backend",
        "checks": [{name, ok, detail}], "reason"}``.
    """
    from reactorkit.plugin import get_config, get_unit_name
    from reactorkit.plugin import backend_name

    config = get_config()
    backend = backend_name(config)
    base = {"model_name": model_name, "model_version": model_version, "unit": get_unit_name(), "backend": backend}
    if backend != "pi":
        result = {**base, "status": "skipped", "checks": [],
                  "reason": f"This unit uses the {backend} hardware backend, not a Raspberry Pi: there are no "
                            "GPIO, SPI or I2C buses to check."}
        _log(result, logging.INFO, config)
        return result
    checks = pi_checks(config)
    failed = [c for c in checks if c["ok"] is False]
    if failed:
        result = {**base, "status": "warning", "checks": checks,
                  "reason": f"Hardware check failed for {model_name} {model_version}: "
                            + " ".join(c["detail"] for c in failed)}
        _log(result, logging.WARNING, config)
    else:
        result = {**base, "status": "ok", "checks": checks,
                  "reason": f"Correct hardware found for {model_name} {model_version}."}
        from reactorkit.plugin import NOTICE

        _log(result, NOTICE, config)
    return result


def _log(result: dict[str, Any], level: int, config: Any) -> None:
    """Best effort: the unit's log file, and its MQTT log (``$experiment``) when the broker answers."""
    from reactorkit.plugin import create_logger

    client = None
    try:
        from reactorkit.plugin import mqtt as mq

        client = mq.create_client(config=config, timeout=2.0)
    except Exception:
        client = None
    try:
        logger = create_logger("hardware_check", unit=result["unit"], experiment="$experiment", mqtt_client=client,
                               config=config)
        logger.log(level, result["reason"])
        deadline = time.monotonic() + 2.0
        while client is not None and client.want_write() and time.monotonic() < deadline:
            time.sleep(0.005)
    except Exception:
        pass
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
