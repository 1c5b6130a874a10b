"""OD calibration protocols (domain facts §6.4, §6.5).

- ``standards`` for ``od45`` / ``od90`` / ``od135`` (each configured angle) and
  ``od`` (all angles at once, when at least two are configured): a series of
  OD600 standards and a blank, each read with the IR LED at a fixed numeric
  intensity; one smoothing-spline ``od600`` calibration (x = OD600,
  y = Voltage) per photodiode channel, saved as device ``od{angle}`` and made active.
- ``od_fusion_standards`` for ``od_fused`` (priority 1): ≥ 4 standards read at
  every angle; fits the multi-angle ``od_fused_estimator``
  (:mod:`.fusion`) and makes it active.
- ``od_fusion_offset`` for ``od_fused`` (priority 2): two known standards
  re-centre the active estimator's per-angle curves (a constant shift in
  log-voltage) and save the result as a new active estimator.

``od_reading`` and ``stirring`` must not be running (the protocol drives the
IR LED itself). Placing a vial is the person's job; on the simulated backend
the ``place_standard_vial`` action emulates it.

Imported when protocols are listed: imports nothing heavy at module level.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from reactorkit.plugin import CalibrationProtocol, Field, InputError, SessionContext, Step, utc_now_iso
from reactorkit.plugin import CalibrationProtocolDescriptor

ANGLES = ("45", "90", "135")
MODULE = "reactorkit.builtin_plugins.od_reading.calibration_protocols"


def configured_angles(config: Any) -> dict[str, str]:
    """``{channel: angle}`` of configured 45/90/135 photodiodes (REF, 180 and empty entries left out)."""
    if not config.has_section("od_config.photodiode_channel"):
        return {}
    return {k: v for k, v in config.items("od_config.photodiode_channel") if v in ANGLES}


def _default_intensity(config: Any) -> float:
    raw = config.get("od_reading.config", "ir_led_intensity", fallback="80")
    try:
        return float(raw)
    except ValueError:  # "auto" is not allowed for calibrations; 80 % is the default
        return 80.0


def _check_jobs_off(ctx: SessionContext, jobs: tuple[str, ...]) -> None:
    from reactorkit.plugin import JobRegistry

    registry = JobRegistry(config=ctx.config)
    try:
        running = [j for j in jobs if registry.running(job_name=j)]
    finally:
        registry.close()
    if running:
        raise InputError(None, f"{' and '.join(running)} must not run during this calibration",
                         remediation="Stop them (pio kill --job-name <job>) and continue.")


def _today() -> str:
    return f"{datetime.now(timezone.utc):%Y-%m-%d}"


def _check_new_name(device: str, name: str, field: str, estimator: bool = False) -> None:
    from reactorkit.plugin import InvalidCalibration, calibration_path, estimator_path

    try:
        path = (estimator_path if estimator else calibration_path)(device, name)
    except InvalidCalibration as exc:
        raise InputError(field, str(exc)) from None
    if path.exists():
        raise InputError(field, f"{name!r} already exists for {device}", remediation="Choose another name.")


# ------------------------------------------------------------------ standards


class ODStandardsProtocol(CalibrationProtocol):
    """OD600 standards and a blank → one spline calibration per photodiode channel."""

    protocol_name = "standards"
    first_step = "intro"
    samples_per_standard = 5

    def channels(self, ctx: SessionContext) -> dict[str, str]:
        """``{channel: angle}`` this session calibrates (all angles for ``od``)."""
        angles = configured_angles(ctx.config)
        if self.target_device == "od":
            return angles
        wanted = self.target_device.removeprefix("od")
        for channel, angle in angles.items():
            if angle == wanted:
                return {channel: angle}
        return {}

    def step_intro(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            if not self.channels(ctx):
                raise InputError(None, f"no photodiode for {self.target_device} in [od_config.photodiode_channel]",
                                 remediation="Configure the photodiode angle first.")
            _check_jobs_off(ctx, ("od_reading", "stirring"))
            return "settings"

        return Step("intro", "info", "OD600 calibration using standards",
                    body=("You need OD600 standards (including a blank of plain media), vials and stir bars. "
                          "Stirring and OD reading must be off. Each standard is read with the IR LED on; "
                          "finish with the blank."),
                    on_submit=submit)

    def step_settings(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            for angle in self.channels(ctx).values():
                _check_new_name(f"od{angle}", values["calibration_name"], "calibration_name")
            ctx.data.update(calibration_name=values["calibration_name"],
                            ir_led_intensity=values["ir_led_intensity"], standards=[])
            return "place_standard"

        return Step("settings", "form", "Calibration settings",
                    fields=[Field("calibration_name", "Calibration name", "string", default=f"od-cal-{_today()}"),
                            Field("ir_led_intensity", "IR LED intensity (%)", "float",
                                  default=_default_intensity(ctx.config), minimum=1.0, maximum=100.0,
                                  help_text="Must match [od_reading.config] ir_led_intensity when the calibration is used.")],
                    on_submit=submit)

    def _measure(self, ctx: SessionContext, od600: float) -> dict[str, float]:
        ctx.run_action("place_standard_vial", od600=od600)
        result = ctx.run_action("od_standards_measure", ir_led_intensity=ctx.data["ir_led_intensity"],
                                channels=[int(c) for c in self.channels(ctx)], samples=self.samples_per_standard)
        return {str(c): float(v) for c, v in result["means"].items()}

    def _table(self, ctx: SessionContext) -> dict[str, Any]:
        channels = self.channels(ctx)
        return {"title": "Recorded standards",
                "columns": ["OD600"] + [f"{angle}° (V)" for angle in channels.values()],
                "rows": [[s["od600"]] + [round(s["means"].get(c, float("nan")), 6) for c in channels]
                         for s in ctx.data.get("standards", [])]}

    def step_place_standard(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            od600 = values["od600"]
            if any(abs(s["od600"] - od600) < 1e-12 for s in ctx.data["standards"]):
                raise InputError("od600", f"a standard of OD600 {od600:g} was already recorded")
            ctx.data["standards"].append({"od600": od600, "means": self._measure(ctx, od600)})
            return "next"

        return Step("place_standard", "form", "Place a standard",
                    body="Insert a vial with an OD600 standard (with its stir bar) and enter its OD600.",
                    fields=[Field("od600", "OD600 of the standard", "float", minimum=0.0001, maximum=100.0,
                                  min_error_msg="A standard must have OD600 > 0; the blank comes last.")],
                    metadata={"table": self._table(ctx)},
                    on_submit=submit)

    def step_next(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            return "place_standard" if values["next"] == "another_standard" else "place_blank"

        return Step("next", "form", "Another standard?",
                    fields=[Field("next", "Next", "choice", options=["another_standard", "blank"],
                                  default="another_standard")],
                    metadata={"table": self._table(ctx)},
                    on_submit=submit)

    def step_place_blank(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            blank = values["blank_od600"]
            if any(abs(s["od600"] - blank) < 1e-12 for s in ctx.data["standards"]):
                raise InputError("blank_od600", "the blank's OD600 equals a standard's")
            ctx.data["standards"].append({"od600": blank, "means": self._measure(ctx, blank)})
            return self._finish(ctx)

        return Step("place_blank", "form", "Place the blank",
                    body="Insert a vial of plain media (the blank) and continue.",
                    fields=[Field("blank_od600", "OD600 of the blank", "float", default=0.0, minimum=0.0,
                                  maximum=100.0, required=False)],
                    metadata={"table": self._table(ctx)},
                    on_submit=submit)

    def _finish(self, ctx: SessionContext) -> str:
        from reactorkit.plugin import fit_spline

        standards = sorted(ctx.data["standards"], key=lambda s: s["od600"])
        saved = []
        for channel, angle in self.channels(ctx).items():
            xs = [s["od600"] for s in standards]
            ys = [s["means"][channel] for s in standards]
            record = ctx.calibration_record("od600", fit_spline(xs, ys), ("OD600", xs), ("Voltage", ys),
                                            ir_led_intensity=float(ctx.data["ir_led_intensity"]), angle=angle,
                                            pd_channel=channel)
            out = ctx.run_action("save_calibration", device=f"od{angle}", record=record, set_active=True)
            saved.append({"device": f"od{angle}", "calibration_name": record["calibration_name"], "path": out["path"]})
        return ctx.complete({"calibrations": saved})


# --------------------------------------------------------------------- fusion


class FusionStandardsProtocol(CalibrationProtocol):
    """≥ 4 OD600 standards read at every angle → an active ``od_fused_estimator``."""

    protocol_name = "od_fusion_standards"
    first_step = "intro"
    min_standards = 4

    def step_intro(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            if len(configured_angles(ctx.config)) < 2:
                raise InputError(None, "fused OD needs at least two photodiode angles",
                                 remediation="Configure 45/90/135 in [od_config.photodiode_channel].")
            _check_jobs_off(ctx, ("od_reading",))
            return "settings"

        return Step("intro", "info", "Fusion OD using standards",
                    body=(f"Read at least {self.min_standards} OD600 standards (no blank needed) at every angle. "
                          "OD reading must be off."),
                    on_submit=submit)

    def step_settings(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            _check_new_name("od_fused", values["estimator_name"], "estimator_name", estimator=True)
            ctx.data.update(estimator_name=values["estimator_name"], ir_led_intensity=values["ir_led_intensity"],
                            samples=values["samples_per_standard"], observations=[], standards=[])
            return "place_standard"

        return Step("settings", "form", "Estimator settings",
                    fields=[Field("estimator_name", "Estimator name", "string",
                                  default=f"od-fused-estimator-{_today()}"),
                            Field("ir_led_intensity", "IR LED intensity (%)", "float",
                                  default=_default_intensity(ctx.config), minimum=1.0, maximum=100.0),
                            Field("samples_per_standard", "Readings per standard", "int", default=5,
                                  minimum=2, maximum=50)],
                    on_submit=submit)

    def step_place_standard(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            od600 = values["od600"]
            if od600 in ctx.data["standards"]:
                raise InputError("od600", f"a standard of OD600 {od600:g} was already recorded")
            ctx.run_action("place_standard_vial", od600=od600)
            out = ctx.run_action("od_fusion_standard_observation", ir_led_intensity=ctx.data["ir_led_intensity"],
                                 samples=ctx.data["samples"])
            for angle, volts in out["by_angle"].items():
                ctx.data["observations"].extend([od600, angle, v] for v in volts)
            ctx.data["standards"].append(od600)
            return "next"

        return Step("place_standard", "form", f"Standard {len(ctx.data.get('standards', [])) + 1}",
                    body="Insert a vial with an OD600 standard and enter its OD600.",
                    fields=[Field("od600", "OD600 of the standard", "float", minimum=0.0001, maximum=100.0)],
                    on_submit=submit)

    def step_next(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            if values["next"] == "another_standard":
                return "place_standard"
            if len(ctx.data["standards"]) < self.min_standards:
                raise InputError("next", f"record at least {self.min_standards} standards before finishing "
                                 f"({len(ctx.data['standards'])} so far)")
            return self._finish(ctx)

        return Step("next", "form", "Another standard?",
                    body=f"{len(ctx.data.get('standards', []))} standard(s) recorded.",
                    fields=[Field("next", "Next", "choice", options=["another_standard", "finish"],
                                  default="another_standard")],
                    on_submit=submit)

    def _finish(self, ctx: SessionContext) -> str:
        from .fusion import DEVICE, FusionError, fit_estimator

        try:
            record = fit_estimator([tuple(o) for o in ctx.data["observations"]],
                                   estimator_name=ctx.data["estimator_name"], unit=ctx.unit,
                                   created_at=utc_now_iso(), ir_led_intensity=ctx.data["ir_led_intensity"],
                                   min_standards=self.min_standards)
        except FusionError as exc:
            raise InputError(None, str(exc)) from None
        out = ctx.run_action("save_estimator", device=DEVICE, record=record, set_active=True)
        return ctx.complete({"title": "Fusion estimator saved", "device": DEVICE,
                             "estimator_name": record["estimator_name"], "path": out["path"]})


class FusionOffsetProtocol(CalibrationProtocol):
    """Two standards shift the active estimator's per-angle curves; saved as a new active estimator."""

    protocol_name = "od_fusion_offset"
    first_step = "intro"

    def _active(self) -> Any:
        from reactorkit.plugin import active_estimator
        from .fusion import DEVICE

        return active_estimator(DEVICE)

    def step_intro(self, ctx: SessionContext) -> Step:
        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            active = self._active()
            if active is None:
                raise InputError(None, "no active od_fused estimator to adjust",
                                 remediation="Run the od_fusion_standards protocol first.")
            _check_jobs_off(ctx, ("od_reading",))
            ctx.data.update(base_estimator=active.name, points=[])
            return "settings"

        return Step("intro", "info", "Fusion OD two-point offset",
                    body="Read two known OD600 standards to re-centre the active fused-OD estimator on this unit.",
                    on_submit=submit)

    def step_settings(self, ctx: SessionContext) -> Step:
        base = ctx.data.get("base_estimator", "estimator")

        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            _check_new_name("od_fused", values["estimator_name"], "estimator_name", estimator=True)
            ctx.data["estimator_name"] = values["estimator_name"]
            return "place_standard"

        return Step("settings", "form", "New estimator name",
                    fields=[Field("estimator_name", "Estimator name", "string", default=f"{base}-offset-{_today()}")],
                    on_submit=submit)

    def step_place_standard(self, ctx: SessionContext) -> Step:
        n = len(ctx.data.get("points", []))

        def submit(ctx: SessionContext, values: dict[str, Any]) -> str:
            from reactorkit.plugin import load_estimator
            from .fusion import DEVICE

            record = load_estimator(DEVICE, ctx.data["base_estimator"])
            od600 = values["od600"]
            ctx.run_action("place_standard_vial", od600=od600)
            out = ctx.run_action("od_fusion_standard_observation", ir_led_intensity=record["ir_led_intensity"],
                                 samples=5)
            ctx.data["points"].append({"od600": od600, "by_angle": out["by_angle"]})
            return "place_standard" if n == 0 else self._finish(ctx, record)

        return Step("place_standard", "form", f"Standard {n + 1} of 2",
                    body="Insert a vial with a known OD600 standard and enter its OD600.",
                    fields=[Field("od600", "OD600 of the standard", "float", minimum=0.0001, maximum=100.0)],
                    on_submit=submit)

    def _finish(self, ctx: SessionContext, record: dict[str, Any]) -> str:
        import math

        from reactorkit.plugin import evaluate_curve as evaluate
        from .fusion import DEVICE, offset_estimator

        offsets: dict[str, float] = {}
        for angle in record["angles"]:
            diffs = []
            for point in ctx.data["points"]:
                volts = [v for v in point["by_angle"].get(str(angle), []) if v > 0]
                if volts:
                    mean_log = sum(math.log(v) for v in volts) / len(volts)
                    diffs.append(mean_log - evaluate(record["mu_splines"][str(angle)], math.log10(point["od600"])))
            if diffs:
                offsets[str(angle)] = sum(diffs) / len(diffs)
        new = offset_estimator(record, offsets, estimator_name=ctx.data["estimator_name"], created_at=utc_now_iso(),
                               calibrated_on_pioreactor_unit=ctx.unit)
        out = ctx.run_action("save_estimator", device=DEVICE, record=new, set_active=True)
        return ctx.complete({"title": "Fusion estimator adjusted", "device": DEVICE,
                             "estimator_name": new["estimator_name"], "path": out["path"], "offsets": offsets})


# ----------------------------------------------------------------- descriptors


def protocol_descriptors(config: Any = None) -> list[CalibrationProtocolDescriptor]:
    """``standards`` per configured angle (+ ``od`` with ≥ 2 angles) and the two fusion protocols (≥ 2 angles)."""
    from reactorkit.plugin import get_config

    config = config or get_config()
    angles = sorted(set(configured_angles(config).values()), key=int)
    devices = [f"od{a}" for a in angles] + (["od"] if len(angles) >= 2 else [])
    out = [
        CalibrationProtocolDescriptor(
            target_device=device,
            protocol_name="standards",
            title="OD600 calibration using standards",
            description="Calibrate {device} channels using a series of OD600 standards and a blank.",
            requirements=("OD600 standards (including a blank)", "Vials", "Stir bars"),
            session_class=f"{MODULE}:ODStandardsProtocol",
        )
        for device in devices
    ]
    if len(angles) >= 2:
        out.append(CalibrationProtocolDescriptor(
            target_device="od_fused",
            protocol_name="od_fusion_standards",
            title="Fusion OD using standards",
            description="Fit a multi-angle fused OD estimator from at least 4 OD600 standards read at every angle.",
            priority=1,
            requirements=("Pioreactor XR (photodiodes at 45°, 90° and 135°)", "At least 4 OD600 standards", "Vials"),
            session_class=f"{MODULE}:FusionStandardsProtocol",
        ))
        out.append(CalibrationProtocolDescriptor(
            target_device="od_fused",
            protocol_name="od_fusion_offset",
            title="Fusion OD two-point offset",
            description="Adjust the active fused OD estimator with two known OD600 standards.",
            priority=2,
            requirements=("An active od_fused estimator", "Two OD600 standards", "Vials"),
            session_class=f"{MODULE}:FusionOffsetProtocol",
        ))
    return out
