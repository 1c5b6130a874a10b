"""Changing LED intensities, and the ``led_intensity`` action (``pio run led_intensity --A 50 --B 0``).

Every change goes through :func:`change_leds`, which (under a per-unit file
lock, so concurrent jobs do not interleave):

1. sets the requested channels on the hardware;
2. records the state of all four channels in
   ``$DOT_PIOREACTOR/storage/led_intensities_<unit>.json`` (the hardware of one
   process cannot know what another process set);
3. publishes the state, retained, on ``pioreactor/{unit}/{experiment}/leds/intensity``
   as ``{"A": %, "B": %, "C": %, "D": %}``;
4. publishes one ``led_change_events`` message ``{channel, intensity,
   source_of_event, timestamp}`` (QoS 0) per channel whose intensity changed
   (domain facts §2.6, §3.7).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterable, Mapping

LED_CHANNELS = ("A", "B", "C", "D")


class InvalidLedIntensity(ValueError):
    """A channel that is not A–D, or an intensity that is not a percentage."""


def parse_intensities(options: Mapping[str, Any]) -> dict[str, float]:
    """``{"A": "50", "b": 0}`` → ``{"A": 50.0, "B": 0.0}`` (channels A–D, any case; intensities in %).

    Raises:
        InvalidLedIntensity: unknown channel or an intensity outside 0–100 (names it).
    """
    out: dict[str, float] = {}
    for key, value in options.items():
        channel = str(key).upper()
        if channel not in LED_CHANNELS:
            raise InvalidLedIntensity(f"unknown LED channel {key!r}; use --A, --B, --C or --D")
        try:
            intensity = float(value)
        except (TypeError, ValueError):
            raise InvalidLedIntensity(f"--{channel} must be an intensity in %, got {value!r}") from None
        if not math.isfinite(intensity) or not 0.0 <= intensity <= 100.0:
            raise InvalidLedIntensity(f"--{channel} must be within 0–100 %, got {value!r}")
        out[channel] = intensity
    return out


def _state_path(unit: str):
    from reactorkit.plugin import storage_dir

    return storage_dir() / f"led_intensities_{unit}.json"


def current_intensities(unit: str) -> dict[str, float]:
    """The last recorded ``{A, B, C, D}`` intensities (%) of ``unit`` (all 0 when none were set)."""
    try:
        data = json.loads(_state_path(unit).read_text())
        return {c: float(data.get(c, 0.0)) for c in LED_CHANNELS}
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return {c: 0.0 for c in LED_CHANNELS}


def change_leds(
    intensities: Mapping[str, float],
    *,
    unit: str,
    experiment: str,
    source_of_event: str,
    hardware: Any,
    mqtt_client: Any,
    clock: Any,
    config: Any = None,
    logger: Any = None,
) -> tuple[dict[str, float], list[Any]]:
    """Set LED channels and publish the new state and one change event per changed channel.

    Args:
        intensities: ``channel -> %`` (validated with :func:`parse_intensities`).
        source_of_event: e.g. ``"CLI"``, ``"UI"``, ``"led_automation:light_dark_cycle"``.
        hardware: Anything with ``set_led(channel, %)``.
        mqtt_client: A connected paho client.
        clock: For event timestamps: the time of the request, taken before the hardware and the
            state file are written (file locks and fsyncs can take a while on a busy machine).
        logger: Logs each change at INFO when given.

    Returns:
        ``(state, infos)``: the intensities of all four channels after the change
        and the paho publish infos (wait on them before disconnecting).

    Raises:
        InvalidLedIntensity: bad channel or intensity; nothing is changed.
    """
    from filelock import FileLock

    from reactorkit.plugin import mqtt as mq
    from reactorkit.plugin import atomic_write

    wanted = parse_intensities(intensities)
    timestamp = clock.utc_iso()
    path = _state_path(unit)
    with FileLock(str(path) + ".lock"):
        before = current_intensities(unit)
        for channel, intensity in wanted.items():
            hardware.set_led(channel, intensity)
        after = {**before, **wanted}
        atomic_write(path, json.dumps(after))
    infos = [mqtt_client.publish(mq.job_topic(unit, experiment, "leds", "intensity", config=config),
                                 json.dumps(after), qos=mq.QOS_EXACTLY_ONCE, retain=True)]
    for channel in LED_CHANNELS:
        if channel in wanted and wanted[channel] != before[channel]:
            event = {"channel": channel, "intensity": wanted[channel], "source_of_event": source_of_event,
                     "timestamp": timestamp}
            infos.append(mqtt_client.publish(f"{mq.root_topic(config)}/{unit}/{experiment}/led_change_events",
                                             json.dumps(event), qos=mq.QOS_AT_MOST_ONCE))
            if logger is not None:
                logger.info("Updated LED %s from %g%% to %g%%.", channel, before[channel], wanted[channel])
    return after, infos


def wait_for_publishes(infos: Iterable[Any], timeout: float = 5.0) -> None:
    """Block until each paho message was handed to the broker (best effort, ``timeout`` s each)."""
    for info in infos:
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            pass


def run_led_intensity(*, unit: str, experiment: str, config: Any, source_of_event: str | None = None,
                      no_log: bool = False, **channels: Any) -> int:
    """Runner of ``pio run led_intensity --A 50 --B 0 …``: change the LEDs once and exit.

    Channel options arrive as strings (``--A 50``); ``--source-of-event``
    defaults to ``CLI``; ``--no-log`` skips the INFO log lines.

    Returns:
        0 on success; 1 when the broker cannot be reached or the hardware fails;
        2 for a bad channel or intensity (nothing changed).
    """
    try:
        wanted = parse_intensities(channels)
    except InvalidLedIntensity as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    if not wanted:
        print("Error: give at least one channel, e.g. pio run led_intensity --A 50 --B 0", file=sys.stderr)
        return 2
    from reactorkit.plugin import mqtt as mq
    from reactorkit.plugin import get_clock
    from reactorkit.plugin import HardwareError, get_hardware
    from reactorkit.plugin import create_logger, start_failure

    clock = get_clock(config)
    try:
        client = mq.create_client(client_id=None, config=config)
    except ConnectionError as exc:
        return start_failure("led_intensity", exc)
    try:
        logger = create_logger("led_intensity", unit=unit, experiment=experiment, mqtt_client=client, config=config,
                               clock=clock)
        try:
            _, infos = change_leds(wanted, unit=unit, experiment=experiment, source_of_event=source_of_event or "CLI",
                                   hardware=get_hardware(config, unit), mqtt_client=client, clock=clock,
                                   config=config, logger=None if no_log else logger)
        except HardwareError as exc:
            logger.error("Could not change LEDs: %s", exc)
            return 1
        wait_for_publishes(infos)
        return 0
    finally:
        client.disconnect()
        client.loop_stop()
