"""``pid_morbidostat``: hold the growth rate at a target with an inhibitory alt media.

Every ``duration`` minutes, once the normalized OD exceeds 0.7 × its target,
a volume V_dose = target_growth_rate · V · duration / 60 (mL; V the vial
volume) is exchanged — 2.5 × that when the normalized OD exceeds 1.25 × its
target. A PID controller on the growth rate (gains ``[dosing_automation.pid_morbidostat]``
Kp 5, Ki 0, Kd 0, negated: a growth rate above target gives more alt media;
output clamped to 0–1) decides the alt-media fraction of the dose. Parts
smaller than ``minimum_dosing_volume_ml`` (0.1 mL) are dropped (domain facts §3.5;
the design follows Toprak et al. 2013, *Nat. Protoc.* 8:555).

Inputs: ``growth_rate_calculating/growth_rate`` (h⁻¹) and
``growth_rate_calculating/od_filtered``; a missing input or one older than
5 minutes (simulated) gives ``ErrorOccurred`` instead of a dose.
"""

from __future__ import annotations

from typing import Any

from reactorkit.builtin_plugins.dosing.automation import DosingAutomationJob, positive
from reactorkit.builtin_plugins.dosing.automations.signals import parse_signal, signal_topic
from reactorkit.plugin import AddAltMediaEvent, AutomationEvent, ErrorOccurred, NoEvent
from reactorkit.plugin import get_config
from reactorkit.plugin import QOS_AT_LEAST_ONCE
from reactorkit.plugin import PID
from reactorkit.builtin_plugins.dosing.descriptors import AUTOMATIONS
from reactorkit.plugin import automation_settings

SECTION = "dosing_automation.pid_morbidostat"
STALE_AFTER_S = 5 * 60.0
START_FRACTION_OF_TARGET_OD = 0.7
HIGH_FRACTION_OF_TARGET_OD = 1.25
HIGH_OD_VOLUME_FACTOR = 2.5


class PIDMorbidostat(DosingAutomationJob):
    """Dose media and alt media so the growth rate approaches ``target_growth_rate``.

    Args:
        target_growth_rate: h⁻¹ (> 0).
        target_normalized_od: Normalized OD around which to keep the culture (> 0).
        duration: Minutes between doses (default 60).

    Raises:
        ValueError: a non-positive parameter.
    """

    automation_name = "pid_morbidostat"
    watches_od = True
    pumps = ("add_media", "add_alt_media", "remove_waste")
    published_settings = automation_settings(AUTOMATIONS, "pid_morbidostat")  # its fields, declared once

    def __init__(self, unit: str, experiment: str, *, target_growth_rate: float, target_normalized_od: float,
                 duration: float = 60.0, **kwargs: Any) -> None:
        target_gr = positive("target_growth_rate", target_growth_rate)
        target_od = positive("target_normalized_od", target_normalized_od)
        positive("duration", duration)
        config = kwargs.get("config") or get_config()
        self._gr_topic, self._gr_key = signal_topic("growth_rate", unit, experiment, config)
        self._od_topic, self._od_key = signal_topic("normalized_od", unit, experiment, config)
        self._inputs: dict[str, tuple[float, float]] = {}  # name -> (value, received at, simulated s)
        self.minimum_dosing_volume_ml = config.getfloat(SECTION, "minimum_dosing_volume_ml", fallback=0.1)
        self.pid = PID(
            -config.getfloat(SECTION, "Kp", fallback=5.0),
            -config.getfloat(SECTION, "Ki", fallback=0.0),
            -config.getfloat(SECTION, "Kd", fallback=0.0),
            setpoint=target_gr,
            output_limits=(0.0, 1.0),
        )
        super().__init__(unit, experiment, duration=duration, **kwargs)
        self.target_growth_rate = target_gr
        self.target_normalized_od = target_od

    def set_target_growth_rate(self, value: float) -> None:
        self.target_growth_rate = positive("target_growth_rate", value)
        self.pid.setpoint = self.target_growth_rate

    def set_target_normalized_od(self, value: float) -> None:
        self.target_normalized_od = positive("target_normalized_od", value)

    def set_duration(self, value: float) -> None:
        super().set_duration(positive("duration", value))

    def subscribe_inputs(self, client: Any) -> None:
        client.subscribe(self._gr_topic, qos=QOS_AT_LEAST_ONCE)
        client.subscribe(self._od_topic, qos=QOS_AT_LEAST_ONCE)

    def on_input(self, message: Any) -> None:
        if message.topic == self._gr_topic:
            self._inputs["growth_rate"] = (parse_signal(message.payload, self._gr_key), self.clock.now())
        elif message.topic == self._od_topic:
            self._inputs["normalized_od"] = (parse_signal(message.payload, self._od_key), self.clock.now())

    def _fresh_input(self, name: str) -> float | None:
        found = self._inputs.get(name)
        if found is None or self.clock.now() - found[1] > STALE_AFTER_S:
            return None
        return found[0]

    def dose_volume_ml(self) -> float:
        """target_growth_rate (h⁻¹) · V (mL) · duration (min) / 60: the volume that dilutes at the target rate."""
        return self.target_growth_rate * self.current_volume_ml() * self.duration / 60.0

    def execute(self) -> AutomationEvent:
        growth_rate = self._fresh_input("growth_rate")
        normalized_od = self._fresh_input("normalized_od")
        if growth_rate is None or normalized_od is None:
            missing = [n for n, v in (("growth_rate", growth_rate), ("normalized_od", normalized_od)) if v is None]
            return ErrorOccurred(message=f"no recent {' or '.join(missing)} (needs growth_rate_calculating running)")
        if normalized_od <= START_FRACTION_OF_TARGET_OD * self.target_normalized_od:
            return NoEvent(message=f"normalized OD {normalized_od:.3g} below "
                                   f"{START_FRACTION_OF_TARGET_OD} × target {self.target_normalized_od:g}")
        fraction = self.pid.update(growth_rate, dt=self.duration * 60.0)
        volume = self.dose_volume_ml()
        if normalized_od > HIGH_FRACTION_OF_TARGET_OD * self.target_normalized_od:
            volume *= HIGH_OD_VOLUME_FACTOR
        alt_media_ml = fraction * volume
        media_ml = (1.0 - fraction) * volume
        if alt_media_ml < self.minimum_dosing_volume_ml:
            alt_media_ml = 0.0
        if media_ml < self.minimum_dosing_volume_ml:
            media_ml = 0.0
        if media_ml + alt_media_ml <= 0:
            return NoEvent(message="dose below the minimum dosing volume")
        moved = self.execute_io_action(media_ml=media_ml, alt_media_ml=alt_media_ml, waste_ml=media_ml + alt_media_ml)
        return AddAltMediaEvent(
            message=f"growth rate {growth_rate:.3g} h⁻¹ (target {self.target_growth_rate:g}): "
                    f"{moved['alt_media_ml']:.2f} mL alt media, {moved['media_ml']:.2f} mL media",
            data={"growth_rate": growth_rate, "normalized_od": normalized_od, "alt_media_fraction_of_dose": fraction,
                  "volumes_moved_ml": moved},
        )
