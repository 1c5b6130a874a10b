"""``turbidostat``: hold the culture's biomass signal at a target by exchanging media.

On each new (non-retained) message of the biomass signal at or above
``target_biomass``, ``exchange_volume_ml`` of media is added and the same of
waste removed; after a dose the signal is ignored for 30 s (simulated) so the
diluted culture is measured before dosing again (domain facts §3.5).
"""

from __future__ import annotations

from typing import Any

from reactorkit.builtin_plugins.dosing.automation import DosingAutomationJob, exchange_volume, positive
from reactorkit.builtin_plugins.dosing.automations.signals import parse_signal, resolve_biomass_signal, signal_topic
from reactorkit.builtin_plugins.dosing.descriptors import AUTOMATIONS
from reactorkit.plugin import AutomationEvent, DilutionEvent, NoEvent, PublishedSetting, automation_settings
from reactorkit.plugin import get_config
from reactorkit.plugin import QOS_AT_LEAST_ONCE

QUIET_PERIOD_S = 30.0



class Turbidostat(DosingAutomationJob):
    """Dilute whenever the biomass signal reaches ``target_biomass``.

    Args:
        target_biomass: Target in the signal's units (normalized OD, OD600 or fused OD; > 0).
        exchange_volume_ml: mL exchanged per dilution (default 1.0; > 0).
        biomass_signal: ``auto`` (default), ``normalized_od``, ``od`` or ``od_fused``.

    Raises:
        ValueError: a non-positive parameter or an unknown signal.
    """

    automation_name = "turbidostat"
    watches_od = True
    pumps = ("add_media", "remove_waste")
    published_settings = (*automation_settings(AUTOMATIONS, "turbidostat"),  # its fields, declared once
                          PublishedSetting(key="latest_biomass", type="numeric", display=False))

    def __init__(self, unit: str, experiment: str, *, target_biomass: float, exchange_volume_ml: float = 1.0,
                 biomass_signal: str = "auto", duration: Any = None, **kwargs: Any) -> None:
        target = positive("target_biomass", target_biomass)
        exchange = exchange_volume("exchange_volume_ml", exchange_volume_ml, kwargs.get("config"))
        config = kwargs.get("config") or get_config()
        signal = resolve_biomass_signal(config, str(biomass_signal or "auto"))
        # MQTT callbacks may fire during super().__init__: set what they read first
        self._signal_topic, self._signal_key = signal_topic(signal, unit, experiment, config)
        self._target = target
        self._quiet_until = 0.0
        super().__init__(unit, experiment, **kwargs)
        self.biomass_signal = signal
        self.target_biomass = target
        self.exchange_volume_ml = exchange
        self.latest_biomass = None

    def set_target_biomass(self, value: float) -> None:
        self.target_biomass = self._target = positive("target_biomass", value)

    def set_exchange_volume_ml(self, value: float) -> None:
        self.exchange_volume_ml = exchange_volume("exchange_volume_ml", value, self.config)

    def subscribe_inputs(self, client: Any) -> None:
        client.subscribe(self._signal_topic, qos=QOS_AT_LEAST_ONCE)

    def on_input(self, message: Any) -> None:
        if message.topic != self._signal_topic or message.retain:
            return
        value = parse_signal(message.payload, self._signal_key)
        self.latest_biomass = value
        if self.state != "ready" or self.clock.now() < self._quiet_until:
            return
        if value >= self._target:
            self.run_in_background()

    def execute(self) -> AutomationEvent:
        latest = self.latest_biomass
        if latest is None or latest < self._target:
            return NoEvent(message=f"biomass {latest} below target {self._target}")
        volume = self.exchange_volume_ml
        try:
            moved = self.execute_io_action(media_ml=volume, waste_ml=volume)
        finally:
            self._quiet_until = self.clock.now() + QUIET_PERIOD_S
        return DilutionEvent(
            message=f"biomass {latest:.4g} ≥ target {self._target:.4g}: exchanged {moved['media_ml']:.2f} mL",
            data={"latest_biomass": latest, "target_biomass": self._target, "exchange_volume_ml": volume,
                  "volumes_moved_ml": moved},
        )
