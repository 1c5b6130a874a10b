"""Pump calibration protocol ``duration_based`` (domain facts §6.4, §6.5).

Flow: three intro screens → ``calibration_name`` → ``mls_to_calibrate_for`` →
``hz`` (250) / ``dc`` (100) → prime (``prime_duration_s``) → a 1 s tracer run
and its ``volume_ml`` → 10 timed runs, each followed by its ``volume_ml``
(``{"action": "redo_last"}`` repeats the last run instead) → a zero-intercept
least-squares line volume = slope × duration (the measured run time of each
run), saved as the pump's active
``simple_peristaltic_pump`` calibration (x = Duration s, y = Volume mL).

The timed runs' durations spread the volumes to calibrate for over 10 runs,
using the tracer's flow rate: targets are 10 evenly spaced volumes between the
smallest and largest of ``mls_to_calibrate_for`` (± 50 % around a single
value), each divided by the tracer's mL/s.

This module is imported when protocols are listed: it imports nothing heavy.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from reactorkit.plugin import CalibrationProtocol, Field, InputError, SessionContext, Step
from reactorkit.plugin import CalibrationProtocolDescriptor

PUMPS = (("media", "media_pump"), ("alt_media", "alt_media_pump"), ("waste", "waste_pump"))
N_TIMED_RUNS = 10
TRACER_DURATION_S = 1.0


def _pretty(device: str) -> str:
    return device.replace("_", " ")


class DurationBasedPumpProtocol(CalibrationProtocol):
    """Duration → volume calibration of one peristaltic pump (``media_pump``, ``alt_media_pump``, ``waste_pump``)."""

    protocol_name = "duration_based"
    first_step = "intro"

    # ----------------------------------------------------------- intro
    def step_intro(self, ctx: SessionContext) -> Step:
        return Step("intro", "info", f"Calibrate the {_pretty(self.target_device)}",
                    body=("This protocol measures how much liquid the pump moves per second. You will run the "
                          "pump several times and weigh (or measure) what it dispensed each time."),
                    next_step="intro_safety")

    def step_intro_safety(self, ctx: SessionContext) -> Step:
        return Step("intro_safety", "info", "Before you start",
                    body=("Keep liquids away from the electronics. Use clean water for the calibration. The pump "
                          "runs on its own during the timed steps; do not touch the tubing then."),
                    next_step="intro_setup")

    def step_intro_setup(self, ctx: SessionContext) -> Step:
        return Step("intro_setup", "info", "Set up the tubing",
                    body=(f"Put the inlet of the {_pretty(self.target_device)} in a container of clean water and its "
                          "outlet into an empty vial on a scale (1 g of water ≈ 1 mL)."),
                    next_step="name")

    # ----------------------------------------------------------- settings
    def step_name(self, ctx: SessionContext) -> Step:
        default = f"{self.target_device}-{datetime.now(timezone.utc):%Y-%m-%d}"

        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            from reactorkit.plugin import InvalidCalibration, calibration_path

            name = values["calibration_name"]
            try:
                path = calibration_path(self.target_device, name)
            except InvalidCalibration as exc:
                raise InputError("calibration_name", str(exc)) from None
            if path.exists():
                raise InputError("calibration_name", f"a calibration named {name!r} already exists for "
                                 f"{self.target_device}", remediation="Choose another name, or delete the old one.")
            ctx.data["calibration_name"] = name
            return "volumes"

        return Step("name", "form", "Name this calibration",
                    fields=[Field("calibration_name", "Calibration name", "string", default=default,
                                  help_text="Letters, digits, '.', '_' and '-'.")],
                    on_submit=submit)

    def step_volumes(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            ctx.data["mls_to_calibrate_for"] = sorted(values["mls_to_calibrate_for"])
            return "pwm"

        return Step("volumes", "form", "Volumes to calibrate for",
                    body="Which volumes (mL) will you dose with this pump? The calibration is most accurate there.",
                    fields=[Field("mls_to_calibrate_for", "Volumes (mL)", "float_list", default=[1.0],
                                  minimum=0.05, maximum=20.0,
                                  min_error_msg="Volumes must be at least 0.05 mL.",
                                  max_error_msg="Volumes must be at most 20 mL.")],
                    on_submit=submit)

    def step_pwm(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            ctx.data["hz"] = values["hz"]
            ctx.data["dc"] = values["dc"]
            return "prime"

        return Step("pwm", "form", "Pump drive settings",
                    body="Frequency and duty cycle of the pump's PWM signal during dosing.",
                    fields=[Field("hz", "PWM frequency (Hz)", "float", default=250.0, minimum=1.0, maximum=10000.0),
                            Field("dc", "Duty cycle (%)", "float", default=100.0, minimum=1.0, maximum=100.0,
                                  min_error_msg="Duty cycle must be between 1 and 100 %.",
                                  max_error_msg="Duty cycle must be between 1 and 100 %.")],
                    on_submit=submit)

    def step_prime(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            duration = values["prime_duration_s"]
            if duration > 0:
                ctx.run_action("pump", device=self.target_device, duration_s=duration,
                               dc=ctx.data["dc"], hz=ctx.data["hz"])
            return "tracer"

        return Step("prime", "form", "Prime the tubing",
                    body="The pump runs until the tubing is full of water. Empty the vial afterwards.",
                    fields=[Field("prime_duration_s", "Priming duration (s)", "float", default=20.0,
                                  minimum=0.0, maximum=100.0,
                                  help_text="At most 100 s: each step must finish within the API's request timeout.")],
                    on_submit=submit)

    # ------------------------------------------------------------ tracer
    def step_tracer(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            out = ctx.run_action("pump", device=self.target_device, duration_s=TRACER_DURATION_S,
                                 dc=ctx.data["dc"], hz=ctx.data["hz"])
            ctx.data["tracer_duration_s"] = float(out.get("actual_duration_s", TRACER_DURATION_S))
            return "tracer_volume"

        return Step("tracer", "action", "Tracer run",
                    body=f"With an empty vial on the scale, continue: the pump runs for {TRACER_DURATION_S:g} s.",
                    metadata={"duration_s": TRACER_DURATION_S},
                    on_submit=submit)

    def step_tracer_volume(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            rate = values["volume_ml"] / ctx.data.get("tracer_duration_s", TRACER_DURATION_S)
            ctx.data["tracer_ml_per_s"] = rate
            ctx.data["durations_s"] = planned_durations(ctx.data["mls_to_calibrate_for"], rate)
            ctx.data["run_index"] = 0
            ctx.data["recorded_x"], ctx.data["recorded_y"] = [], []
            return "timed_run"

        return Step("tracer_volume", "form", "Tracer volume",
                    body="How much liquid did the tracer run dispense? Empty the vial afterwards.",
                    fields=[Field("volume_ml", "Volume (mL)", "float", minimum=0.001, maximum=50.0,
                                  min_error_msg="The tracer must dispense some liquid (> 0 mL); check the tubing.")],
                    on_submit=submit)

    # -------------------------------------------------------- timed runs
    def step_timed_run(self, ctx: SessionContext) -> Step:
        i = ctx.data["run_index"]
        duration = ctx.data["durations_s"][i]

        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            out = ctx.run_action("pump", device=self.target_device, duration_s=duration,
                                 dc=ctx.data["dc"], hz=ctx.data["hz"])
            ctx.data["actual_duration_s"] = float(out.get("actual_duration_s", duration))
            return "timed_volume"

        return Step("timed_run", "action", f"Run {i + 1} of {N_TIMED_RUNS}",
                    body=f"With an empty vial on the scale, continue: the pump runs for {duration:g} s.",
                    metadata={"duration_s": duration, "run_index": i},
                    on_submit=submit)

    def step_timed_volume(self, ctx: SessionContext) -> Step:
        i = ctx.data["run_index"]
        duration = ctx.data["durations_s"][i]

        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            ctx.data["recorded_x"].append(ctx.data.get("actual_duration_s", duration))
            ctx.data["recorded_y"].append(values["volume_ml"])
            ctx.data["run_index"] = i + 1
            if i + 1 < N_TIMED_RUNS:
                return "timed_run"
            return self._finish(ctx)

        def redo(ctx: SessionContext, action: dict[str, Any]) -> str:
            return "timed_run"

        points = [{"x": x, "y": y} for x, y in zip(ctx.data["recorded_x"], ctx.data["recorded_y"])]
        return Step("timed_volume", "form", f"Volume of run {i + 1} of {N_TIMED_RUNS}",
                    body=f"How much liquid did the {duration:g} s run dispense? Empty the vial afterwards.",
                    fields=[Field("volume_ml", "Volume (mL)", "float", minimum=0.0, maximum=100.0)],
                    metadata={"actions": [{"label": "Redo last run", "inputs": {"action": "redo_last"}}],
                              "chart": {"title": "Recorded runs", "x_label": "Duration (s)", "y_label": "Volume (mL)",
                                        "series": [{"id": "runs", "label": "Runs", "points": points}]}},
                    on_submit=submit, on_action=redo)

    # ------------------------------------------------------------ finish
    def _finish(self, ctx: SessionContext) -> str:
        from reactorkit.plugin import fit_poly_with_stats

        xs, ys = ctx.data["recorded_x"], ctx.data["recorded_y"]
        if not any(y > 0 for y in ys):
            raise InputError("volume_ml", "every run dispensed 0 mL; the pump or its tubing is not working",
                             remediation="Check the pump and redo the runs.")
        curve, stats = fit_poly_with_stats(xs, ys)
        voltage = ctx.run_action("read_aux_voltage").get("voltage", -1.0)
        record = ctx.calibration_record("simple_peristaltic_pump", curve, ("Duration", xs), ("Volume", ys),
                                        hz=float(ctx.data["hz"]), dc=float(ctx.data["dc"]), voltage=float(voltage))
        ctx.run_action("save_calibration", device=self.target_device, record=record, set_active=True)
        return ctx.complete({
            "calibration": record,
            "calibration_link": f"/calibrations/{ctx.unit}/{self.target_device}/{record['calibration_name']}",
            "stats": stats,
            "recommended_volume_range_ml": [round(min(ys), 3), round(max(ys), 3)],
        })


def planned_durations(mls_to_calibrate_for: list[float], ml_per_s: float, n: int = N_TIMED_RUNS) -> list[float]:
    """Durations (s) of the timed runs: ``n`` target volumes spread over the requested range ÷ the tracer's rate.

    One requested volume ``v`` spans ``[0.5 v, 1.5 v]``. Each duration is
    rounded to 3 decimals and kept within [0.1, 600] s.

    Raises:
        InputError: the rate is not positive.
    """
    if not ml_per_s > 0:
        raise InputError("volume_ml", "the tracer dispensed nothing; check the tubing and redo it")
    lo, hi = min(mls_to_calibrate_for), max(mls_to_calibrate_for)
    if hi - lo < 1e-9:
        lo, hi = 0.5 * lo, 1.5 * hi
    targets = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    return [round(min(max(t / ml_per_s, 0.1), 600.0), 3) for t in targets]


def protocol_descriptors(config: Any = None) -> list[CalibrationProtocolDescriptor]:
    """One ``duration_based`` protocol per pump that has a ``[PWM]`` channel."""
    from reactorkit.plugin import get_config, pwm_channel_of

    config = config or get_config()
    out = []
    for pwm_name, device in PUMPS:
        if pwm_channel_of(config, pwm_name) is None:
            continue
        out.append(CalibrationProtocolDescriptor(
            target_device=device,
            protocol_name="duration_based",
            title="Duration-based pump calibration",
            description="Build a duration-to-volume curve for the {device} using a simple multi-step flow.",
            requirements=("DC Peristaltic pump assigned to {device}", "Pioreactor vial", "Container of clean water"),
            session_class="reactorkit.builtin_plugins.dosing.calibration_protocols:DurationBasedPumpProtocol",
        ))
    return out
