"""The session engine: field validation, transitions, persistence, abort, actions (unit tests with a fake runner)."""

import pytest

from reactorkit.core.calibration_sessions import (
    ABORTED_ERROR,
    CalibrationError,
    CalibrationProtocol,
    Field,
    InputError,
    SessionEngine,
    SessionNotFound,
    SessionNotInProgress,
    Step,
    UnknownProtocol,
)
from reactorkit.core.calibration_store import PersistentCache
from reactorkit.core.config import load_config


class RecordingRunner:
    """A fake action runner: records calls, returns canned results, can be told to fail."""

    def __init__(self):
        self.calls = []
        self.fail = False

    def run(self, name, payload):
        self.calls.append((name, payload))
        if self.fail:
            raise RuntimeError("pump channel is not wired")
        return {"volts": 0.25}


class TwoRunProtocol(CalibrationProtocol):
    """intro → amount (form) → run (action) → measured (form with redo) ×2 → complete."""

    protocol_name = "two_runs"

    def step_intro(self, ctx):
        return Step("intro", "info", "Welcome", next_step="amount")

    def step_amount(self, ctx):
        def submit(ctx, values):
            ctx.data["amount"] = values["amount"]
            ctx.data["label"] = values["label"]
            ctx.data["runs"] = []
            return "run"

        return Step("amount", "form", "How much?", fields=[
            Field("amount", "Amount (mL)", "float", minimum=0.5, maximum=5.0, max_error_msg="Too much."),
            Field("label", "Label", "string", default="first"),
        ], on_submit=submit)

    def step_run(self, ctx):
        def submit(ctx, values):
            ctx.data["last"] = ctx.run_action("pump", device=self.target_device, duration_s=ctx.data["amount"])
            return "measured"

        return Step("run", "action", "Run", on_submit=submit)

    def step_measured(self, ctx):
        def submit(ctx, values):
            ctx.data["runs"].append(values["volume_ml"])
            if len(ctx.data["runs"]) < 2:
                return "run"
            return ctx.complete({"title": "Done!", "runs": ctx.data["runs"]})

        return Step("measured", "form", "Measured volume", fields=[Field("volume_ml", "Volume", "float", minimum=0)],
                    metadata={"actions": [{"label": "Redo", "inputs": {"action": "redo_last"}}]},
                    on_submit=submit, on_action=lambda ctx, action: "run")


@pytest.fixture
def cache(tmp_path):
    return PersistentCache("calibration_sessions", path=tmp_path / "cache.sqlite")


@pytest.fixture
def runner():
    return RecordingRunner()


@pytest.fixture
def engine(cache, runner):
    return SessionEngine({("media_pump", "two_runs"): TwoRunProtocol}, runner=runner, unit="pio01",
                         config=load_config(), cache=cache)


def test_start_renders_the_first_step_in_the_contract_shape(engine):
    session, step = engine.start("media_pump", "two_runs")
    assert set(session) == {"session_id", "protocol_name", "target_device", "status", "step_id", "data",
                            "created_at", "updated_at", "result", "error"}
    assert (session["status"], session["step_id"]) == ("in_progress", "intro")
    assert step == {"step_id": "intro", "step_type": "info", "title": "Welcome", "body": "", "fields": [],
                    "metadata": {}}


def test_unknown_protocol_lists_what_exists(engine):
    with pytest.raises(UnknownProtocol) as error:
        engine.start("media_pump", "weight_based")
    assert "media_pump/two_runs" in error.value.remediation


def test_fields_are_rendered_with_every_contract_key(engine):
    session, _ = engine.start("media_pump", "two_runs")
    _, step = engine.advance(session["session_id"], {})
    assert step["fields"][0] == {"name": "amount", "label": "Amount (mL)", "field_type": "float", "required": True,
                                 "default": None, "options": None, "minimum": 0.5, "maximum": 5.0,
                                 "min_error_msg": None, "max_error_msg": "Too much.", "help_text": None}


@pytest.mark.parametrize("inputs, message", [
    ({}, "'amount'"),
    ({"amount": "lots"}, "expected a number"),
    ({"amount": 9}, "Too much."),
    ({"amount": 0.1}, "at least 0.5"),
    ({"amount": True}, "expected a number"),
])
def test_bad_inputs_are_refused_and_leave_the_stored_session_unchanged(engine, cache, inputs, message):
    session, _ = engine.start("media_pump", "two_runs")
    sid = session["session_id"]
    engine.advance(sid, {})
    before = cache.get(sid)
    with pytest.raises(InputError, match=message):
        engine.advance(sid, inputs)
    assert cache.get(sid) == before


def test_a_failing_action_is_an_error_and_the_step_can_be_retried(engine, runner):
    session, _ = engine.start("media_pump", "two_runs")
    sid = session["session_id"]
    engine.advance(sid, {})
    engine.advance(sid, {"amount": "2.5"})
    runner.fail = True
    with pytest.raises(CalibrationError, match="pump channel is not wired"):
        engine.advance(sid, {})
    assert engine.get(sid)[0]["step_id"] == "run"
    runner.fail = False
    session, step = engine.advance(sid, {})
    assert step["step_id"] == "measured"
    assert runner.calls[-1] == ("pump", {"device": "media_pump", "duration_s": 2.5})
    assert session["data"]["label"] == "first"  # the optional field's default


def test_a_declared_action_skips_validation_and_redoes_the_run(engine, runner):
    session, _ = engine.start("media_pump", "two_runs")
    sid = session["session_id"]
    for inputs in ({}, {"amount": 1}, {}):
        engine.advance(sid, inputs)
    session, step = engine.advance(sid, {"action": "redo_last"})
    assert step["step_id"] == "run"
    assert session["data"]["runs"] == []


def test_completion_renders_a_result_step_and_refuses_further_inputs(engine):
    session, _ = engine.start("media_pump", "two_runs")
    sid = session["session_id"]
    for inputs in ({}, {"amount": 1}, {}, {"volume_ml": 0.9}, {}, {"volume_ml": 1.1}):
        session, step = engine.advance(sid, inputs)
    assert (session["status"], session["step_id"]) == ("complete", "complete")
    assert session["result"] == {"title": "Done!", "runs": [0.9, 1.1]}
    assert step["step_type"] == "result" and step["title"] == "Done!"
    assert step["metadata"]["result"]["runs"] == [0.9, 1.1]
    with pytest.raises(SessionNotInProgress):
        engine.advance(sid, {})


def test_sessions_survive_a_new_engine(engine, cache, runner):
    session, _ = engine.start("media_pump", "two_runs")
    sid = session["session_id"]
    engine.advance(sid, {})
    engine.advance(sid, {"amount": 3})
    restarted = SessionEngine({("media_pump", "two_runs"): TwoRunProtocol}, runner=runner, unit="pio01",
                              config=load_config(), cache=PersistentCache("calibration_sessions", path=cache.path))
    session, step = restarted.get(sid)
    assert step["step_id"] == "run" and session["data"]["amount"] == 3.0


def test_abort_ends_the_session_with_the_contract_error(engine):
    session, _ = engine.start("media_pump", "two_runs")
    session, step = engine.abort(session["session_id"])
    assert session["status"] == "aborted" and session["error"] == ABORTED_ERROR
    assert step["step_type"] == "result" and step["title"] == "Protocol ended"
    assert engine.get(session["session_id"])[0]["status"] == "aborted"


def test_unknown_session_is_not_found(engine):
    with pytest.raises(SessionNotFound) as error:
        engine.get("no-such-session")
    assert error.value.status == 404


@pytest.mark.parametrize("field, raw, expected", [
    (Field("n", "N", "int"), "7", 7),
    (Field("b", "B", "bool"), "yes", True),
    (Field("l", "L", "float_list", minimum=0), "0.5, 1, 2", [0.5, 1.0, 2.0]),
    (Field("c", "C", "choice", options=["a", "b"]), "b", "b"),
    (Field("s", "S", "string"), "  name ", "name"),
])
def test_field_types_cast_submitted_values(field, raw, expected):
    assert field.parse(raw) == expected


@pytest.mark.parametrize("field, raw", [
    (Field("n", "N", "int"), 2.5),
    (Field("l", "L", "float_list", minimum=0), [1, -1]),
    (Field("c", "C", "choice", options=["a", "b"]), "z"),
    (Field("b", "B", "bool"), "maybe"),
    (Field("f", "F", "float"), "nan"),
])
def test_field_types_refuse_bad_values_naming_the_field(field, raw):
    with pytest.raises(InputError) as error:
        field.parse(raw)
    assert error.value.field == field.name


def test_a_calibration_record_carries_the_sessions_name_and_unit_the_curve_axes_points_and_device_settings():
    from reactorkit.core.calibration_sessions import SessionContext

    ctx = SessionContext({"data": {"calibration_name": "stir-1"}, "target_device": "stirring"}, unit="unit1",
                         config=None, runner=None)
    record = ctx.calibration_record("simple_stirring", {"type": "spline"}, ("DC %", (20, 40)), ("RPM", [200, 410]),
                                    pwm_hz=200.0, voltage=5.0)
    created_at = record.pop("created_at")
    assert created_at.endswith("Z")
    assert record == {"calibration_type": "simple_stirring", "calibration_name": "stir-1",
                      "calibrated_on_pioreactor_unit": "unit1", "curve_data_": {"type": "spline"}, "x": "DC %",
                      "y": "RPM", "recorded_data": {"x": [20, 40], "y": [200, 410]}, "pwm_hz": 200.0, "voltage": 5.0}
