"""Stirring calibration protocol ``dc_based`` (domain facts §6.4).

With stirring off and a vial with a stir bar in place, the protocol sweeps 15
duty cycles down, up and down again within 0.66–1.33 × ``[stirring.config]
initial_duty_cycle``, measures RPM at each, drops zero-RPM points and fits a
smoothing spline x = DC %, y = RPM, saved as the active ``simple_stirring``
calibration. The stirring job then starts from the duty cycle this curve gives
for its target RPM.

Imported when protocols are listed: imports nothing heavy at module level.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from reactorkit.plugin import CalibrationProtocol, Field, InputError, SessionContext, Step
from reactorkit.plugin import CalibrationProtocolDescriptor

N_POINTS = 15


class DCBasedStirringProtocol(CalibrationProtocol):
    """Duty cycle → RPM curve of the stirrer."""

    protocol_name = "dc_based"
    first_step = "intro"

    def step_intro(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            from reactorkit.plugin import pwm_channel_of
            from reactorkit.plugin import JobRegistry

            if pwm_channel_of(ctx.config, "stirring") is None:
                raise InputError(None, "no [PWM] channel is assigned to stirring",
                                 remediation="Add e.g. '1 = stirring' to [PWM].")
            registry = JobRegistry(config=ctx.config)
            try:
                running = bool(registry.running(job_name="stirring"))
            finally:
                registry.close()
            if running:
                raise InputError(None, "stirring must be off during its calibration",
                                 remediation="Stop it (pio kill --job-name stirring) and continue.")
            return "settings"

        return Step("intro", "info", "DC-based stirring calibration",
                    body=("Place a vial with water and a stir bar in the unit. Stirring must be off. The stirrer "
                          f"then runs at {N_POINTS} duty cycles while its speed is measured (about a minute)."),
                    on_submit=submit)

    def step_settings(self, ctx: SessionContext) -> Step:
        default_dc = ctx.config.getfloat("stirring.config", "initial_duty_cycle", fallback=30.0)

        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            from reactorkit.plugin import InvalidCalibration, calibration_path

            try:
                exists = calibration_path("stirring", values["calibration_name"]).exists()
            except InvalidCalibration as exc:
                raise InputError("calibration_name", str(exc)) from None
            if exists:
                raise InputError("calibration_name", f"{values['calibration_name']!r} already exists for stirring",
                                 remediation="Choose another name.")
            ctx.data.update(calibration_name=values["calibration_name"], initial_dc=values["initial_duty_cycle"])
            return "run"

        return Step("settings", "form", "Calibration settings",
                    fields=[Field("calibration_name", "Calibration name", "string",
                                  default=f"stirring-calibration-{datetime.now(timezone.utc):%Y-%m-%d_%H-%M}"),
                            Field("initial_duty_cycle", "Centre duty cycle (%)", "float", default=default_dc,
                                  minimum=5.0, maximum=75.0,
                                  help_text="The sweep covers 0.66–1.33 × this value.")],
                    on_submit=submit)

    def step_run(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            from reactorkit.plugin import fit_spline

            out = ctx.run_action("stirring_calibration", initial_dc=ctx.data["initial_dc"], n_points=N_POINTS)
            dcs, rpms = out["dcs"], out["rpms"]
            if len(set(dcs)) < 2:
                raise InputError(None, "the stirrer did not turn (fewer than 2 duty cycles gave a non-zero RPM)",
                                 remediation="Check the stir bar, the fan and the tachometer, then retry.")
            pwm_hz = ctx.config.getfloat("stirring.config", "pwm_hz", fallback=200.0)
            voltage = ctx.run_action("read_aux_voltage").get("voltage", -1.0)
            record = ctx.calibration_record("simple_stirring", fit_spline(dcs, rpms), ("DC %", dcs), ("RPM", rpms),
                                            pwm_hz=pwm_hz, voltage=float(voltage))
            saved = ctx.run_action("save_calibration", device="stirring", record=record, set_active=True)
            return ctx.complete({"calibrations": [{"device": "stirring", "calibration_name": record["calibration_name"],
                                                   "path": saved["path"]}]})

        return Step("run", "action", "Measure the stirrer",
                    body="Continue to run the sweep. The stirrer changes speed several times.",
                    on_submit=submit)


def protocol_descriptors(config: Any = None) -> list[CalibrationProtocolDescriptor]:
    """The ``dc_based`` stirring protocol."""
    return [CalibrationProtocolDescriptor(
        target_device="stirring",
        protocol_name="dc_based",
        title="DC-based stirring calibration",
        description="Build a duty-cycle-to-RPM curve of the stirrer by sweeping the duty cycle and measuring RPM.",
        requirements=("Vial with water and a stir bar", "Stirring off"),
        session_class="reactorkit.builtin_plugins.stirring.calibration_protocols:DCBasedStirringProtocol",
    )]
