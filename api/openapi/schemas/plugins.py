"""Operation descriptions of the built-in plugins' routes: calibrations, dosing, exports, experiment profiles
and system — with USB drives, the local access point and the hardware check (domain facts §1.4, §3.8, §6, §7,
§8, §9, §11).

Kept here rather than in the plugins' descriptor files; a third-party plugin
declares its own with ``RouteDescriptor(schemas=…)`` instead.
"""

from __future__ import annotations

from typing import Any

from reactorkit.api.openapi.schemas.common import (
    ANY,
    BINARY,
    BOOL,
    INT,
    NUM,
    OBJ,
    OCTETS,
    STATUS,
    STR,
    TEXT,
    TOPIC_LEVEL,
    ZIP,
    Content,
    array,
    fan_out,
    mapping,
    nullable,
    obj,
    op,
    task,
)

# ------------------------------------------------------------- calibrations
RECORD = obj(("is_active", "pioreactor_unit"), is_active=BOOL, pioreactor_unit=STR,
             _doc="A stored calibration or estimator, with is_active and pioreactor_unit.")
SESSION_REPLY = obj(
    ("session", "step"),
    session=obj(("session_id", "status"), session_id=STR, protocol_name=STR, target_device=STR, status=STR,
                step_id=STR, data=ANY, created_at=STR, updated_at=STR, result=ANY, error=ANY),
    step=nullable(obj(("step_id",), step_id=STR, step_type=STR, title=nullable(STR), body=nullable(STR),
                      fields=array(OBJ), metadata=ANY)),
)
MSG = obj(("msg",), msg=STR)
NEW_CALIBRATION = obj(
    calibration_data={"type": ["string", "object"], "description": "The calibration as YAML text (or an object)."},
    estimator_data={"type": ["string", "object"]},
    set_as_active=BOOL,
)
SESSION_START = obj(target_device=STR, protocol_name=STR)  # missing names: the engine says which (400)
SESSION_INPUTS = obj(inputs=nullable(OBJ))


def _calibrations() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/unit_api/calibration_protocols"): op("Calibration protocols of this unit.", ok=array(OBJ)),
        ("GET", "/unit_api/zipped_calibrations"): op("Every calibration YAML in a ZIP.", ok=ZIP),
        ("POST", "/unit_api/calibrations/sessions"): op("Start a calibration session.", ok=SESSION_REPLY,
                                                        status=201, body=SESSION_START, body_required=True),
        ("GET", "/unit_api/calibrations/sessions/{session_id}"): op("A session and its current step.",
                                                                    ok=SESSION_REPLY),
        ("POST", "/unit_api/calibrations/sessions/{session_id}/inputs"): op(
            "Submit the current step's inputs (400 leaves the session unchanged).", ok=SESSION_REPLY,
            body=SESSION_INPUTS),
        ("POST", "/unit_api/calibrations/sessions/{session_id}/abort"): op("Abort a session.", ok=SESSION_REPLY),
        ("POST", "/unit_api/calibrations/{device}"): op("Store a calibration (YAML) for a device.", status=201,
                                                        ok=obj(("msg",), msg=STR, path=STR), body=NEW_CALIBRATION,
                                                        body_required=True),
    }
    for kind in ("calibrations", "estimators"):
        one = kind[:-1]
        out.update({
            ("GET", f"/unit_api/{kind}"): op(f"Every {one} by device.", ok=mapping(array(RECORD))),
            ("GET", f"/unit_api/{kind}/{{device}}"): op(f"The {kind} of a device.", ok=array(RECORD)),
            ("GET", f"/unit_api/{kind}/{{device}}/{{name}}"): op(f"One {one}.", ok=RECORD),
            ("DELETE", f"/unit_api/{kind}/{{device}}/{{name}}"): op(f"Delete one {one}.", ok=MSG),
            ("GET", f"/unit_api/active_{kind}"): op(f"The active {one} of each device.", ok=mapping(RECORD)),
            ("DELETE", f"/unit_api/active_{kind}/{{device}}"): op(f"No active {one} for the device.", ok=STATUS),
            ("PATCH", f"/unit_api/active_{kind}/{{device}}/{{name}}"): op(f"Make a {one} the device's active one.",
                                                                          ok=STATUS),
        })
        w = f"/api/workers/{{pioreactor_unit}}"
        out.update({
            ("GET", f"{w}/{kind}"): fan_out(f"Every {one} of the workers.", mapping(array(RECORD))),
            ("GET", f"{w}/{kind}/{{device}}"): fan_out(f"The workers' {kind} of a device.", array(RECORD)),
            ("GET", f"{w}/{kind}/{{device}}/{{name}}"): fan_out(f"One {one} on the workers.", RECORD),
            ("DELETE", f"{w}/{kind}/{{device}}/{{name}}"): fan_out(f"Delete one {one} on the workers."),
            ("GET", f"{w}/active_{kind}"): fan_out(f"The workers' active {kind}.", mapping(RECORD)),
            ("DELETE", f"{w}/active_{kind}/{{device}}"): fan_out(f"No active {one} for the device on the workers."),
            ("PATCH", f"{w}/active_{kind}/{{device}}/{{name}}"): fan_out(f"Activate a {one} on the workers."),
        })
    w = "/api/workers/{pioreactor_unit}"
    out.update({
        ("GET", f"{w}/calibration_protocols"): fan_out("Calibration protocols of the workers.", array(OBJ)),
        ("POST", f"{w}/calibrations/{{device}}"): fan_out("Store a calibration on the workers.",
                                                          body=NEW_CALIBRATION, body_required=True),
        ("GET", f"{w}/zipped_calibrations"): op("The workers' calibrations in one ZIP (<unit>/<device>/<name>.yaml).",
                                                ok=ZIP),
        ("POST", f"{w}/calibrations/sessions"): op("Start a session on one worker (synchronous proxy).",
                                                   ok=SESSION_REPLY, status=201, body=SESSION_START,
                                                   body_required=True, proxy=True),
        ("GET", f"{w}/calibrations/sessions/{{session_id}}"): op("A worker's session.", ok=SESSION_REPLY, proxy=True),
        ("POST", f"{w}/calibrations/sessions/{{session_id}}/inputs"): op("Submit inputs to a worker's session.",
                                                                         ok=SESSION_REPLY, body=SESSION_INPUTS,
                                                                         proxy=True),
        ("POST", f"{w}/calibrations/sessions/{{session_id}}/abort"): op("Abort a worker's session.",
                                                                        ok=SESSION_REPLY, proxy=True),
    })
    return out


# -------------------------------------------------------------------- dosing
BIOREACTOR_VALUES = obj(
    current_volume_ml={"type": "number", "minimum": 0}, efflux_tube_volume_ml={"type": "number", "minimum": 0},
    alt_media_fraction={"type": "number", "minimum": 0, "maximum": 1},
    cumulative_media_added_ml={"type": "number", "minimum": 0},
    cumulative_alt_media_added_ml={"type": "number", "minimum": 0},
    cumulative_waste_removed_ml={"type": "number", "minimum": 0},
    _extra=False, _doc="Bioreactor variables (mL, fraction 0–1).",
)


def _dosing() -> dict[tuple[str, str], dict[str, Any]]:
    path = "/unit_api/bioreactor/experiments/{experiment}"
    return {
        ("GET", path): op("The six bioreactor variables of an experiment on this unit.",
                          ok=obj(("values",), values=mapping(NUM))),
        ("PATCH", path): op("Correct some bioreactor variables (stored and published).", ok=STATUS,
                            body=obj(("values",), values={**BIOREACTOR_VALUES, "minProperties": 1}),
                            body_required=True, path={"experiment": TOPIC_LEVEL}),
        ("PATCH", "/api/workers/{pioreactor_unit}/bioreactor/update/experiments/{experiment}"): fan_out(
            "Correct bioreactor variables on a worker ($broadcast: the active workers assigned to the experiment).",
            obj(_doc='The worker\'s {"status": "success"}, stripped of its status (§1.2): {}.'),
            body=obj(("values",), values={**BIOREACTOR_VALUES, "minProperties": 1}), body_required=True,
            path={"experiment": TOPIC_LEVEL}),
    }


# ------------------------------------------------------------------- exports
EXPORT_BODY = obj(
    ("datasets", "partition_by_unit", "partition_by_experiment"),
    datasets=array(STR, minItems=1), experiments=array(STR), experiment=STR,
    partition_by_unit=BOOL, partition_by_experiment=BOOL,
    start_time={"type": ["string", "null"], "description": "ISO-8601 with Z or ±HH:MM."},
    end_time={"type": ["string", "null"], "description": "ISO-8601 with Z or ±HH:MM."},
)
EXPORT_RESULT = obj(result=ANY, filename=STR, msg=STR)
USB_EXPORT_RESULT = obj(("filename", "drive", "path"), result=ANY, filename=STR, msg=STR, drive=STR, device=STR,
                        path=STR)
PREVIEW_QUERY = {"n_rows": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Rows (default 5)."}}


def _exports() -> dict[tuple[str, str], dict[str, Any]]:
    preview = op("The first rows of a dataset, unfiltered.", ok=array(OBJ), query=PREVIEW_QUERY)
    return {
        ("GET", "/api/datasets/exportable/{target_dataset}/preview"): preview,
        ("GET", "/api/contrib/exportable_datasets/{target_dataset}/preview"): preview,
        ("POST", "/api/datasets/exportable/export"): task("Export datasets to a zip (GET /api/exports/{filename}).",
                                                          body=EXPORT_BODY, body_required=True,
                                                          result=EXPORT_RESULT),
        ("POST", "/api/datasets/exportable/export-to-usb"): task(
            "Export datasets to a zip on the leader's mounted USB drive (409 when none is mounted).", body=EXPORT_BODY,
            body_required=True, result=USB_EXPORT_RESULT),
        ("POST", "/api/contrib/exportable_datasets/export_datasets"): op(
            "Export datasets and wait for the zip (classic).", ok=EXPORT_RESULT, body=EXPORT_BODY,
            body_required=True),
        ("GET", "/api/exports/{filename}"): op("A finished export.", ok=ZIP),
    }


# --------------------------------------------------------------- profiles
PROFILE_REPLY = obj(("status",), status=STR, diagnostics=array(OBJ))
PROFILE_ROW = obj(("file",), experimentProfile=ANY, file=STR, fullpath=STR)


def _profiles() -> dict[tuple[str, str], dict[str, Any]]:
    text = Content("text/plain", STR)
    new = obj(("filename", "body"), filename=STR, body=STR)
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/api/experiment_profiles"): op("Experiment profiles, newest first.", ok=array(PROFILE_ROW)),
        ("POST", "/api/experiment_profiles"): op("Create a profile (checked first; 409 when it exists).",
                                                 ok=PROFILE_REPLY, body=new, body_required=True),
        ("GET", "/api/contrib/experiment_profiles"): op("Experiment profiles (classic).", ok=array(PROFILE_ROW)),
        ("POST", "/api/contrib/experiment_profiles"): op("Create a profile (classic).", ok=PROFILE_REPLY, body=new,
                                                         body_required=True),
        ("PATCH", "/api/contrib/experiment_profiles"): op("Replace a profile named in the body (classic).",
                                                          ok=PROFILE_REPLY, body=new, body_required=True),
        ("GET", "/api/experiments/{experiment}/experiment_profiles/running"): op(
            "Profiles running for the experiment.",
            ok=array(obj(("job_name", "job_id"), job_name=STR, experiment=STR, job_id=INT, settings=OBJ))),
        ("GET", "/api/experiment_profiles/running/experiments/{experiment}"): op(
            "Profiles running for the experiment (classic).",
            ok=array(obj(("job_name", "job_id"), job_name=STR, experiment=STR, job_id=INT, settings=OBJ))),
        ("GET", "/api/experiments/{experiment}/experiment_profiles/recent"): op(
            "Recent profile runs of the experiment.",
            ok=array(obj(("started_at",), started_at=STR, experiment_profile_name=nullable(STR), experiment=STR))),
    }
    for base in ("/api/experiment_profiles/{filename}", "/api/contrib/experiment_profiles/{filename}"):
        out.update({
            ("GET", base): op("A profile's YAML text.", ok=text),
            ("PATCH", base): op("Replace a profile (checked first).", ok=PROFILE_REPLY,
                                body=obj(("body",), body=STR), body_required=True),
            ("DELETE", base): op("Delete a profile.", ok=STATUS),
        })
    return out


# -------------------------------------------------------------------- system
PLUGIN_BODY = obj(
    ("args",), args=array(STR, minItems=1, description="[package name]"),
    options=obj(source={"type": "string", "description": "A path in $DOT_PIOREACTOR or a URL."}),
    env=OBJ,
)
UPDATE_BODY = obj(options=obj(source=STR, version=STR), args=array(STR), env=OBJ)
UPLOAD = obj(file=BINARY)
ARCHIVE = obj(archive={"type": "string", "format": "binary"})
PLUGIN = obj(("name",), name=STR, version=nullable(STR), description=nullable(STR), homepage=nullable(STR),
             source=nullable(STR), author=nullable(STR))


SIZE = nullable({"type": "integer", "minimum": 0})
DRIVE = obj(("device", "disk", "mount_point"), device=STR, disk=STR, mount_point=STR, fstype=STR, read_only=BOOL,
            label=nullable(STR), size_bytes=SIZE, free_bytes=SIZE, _doc="A mounted USB filesystem.")
PARTITION = obj(("device", "disk"), device=STR, disk=STR, size_bytes=SIZE, label=nullable(STR),
                _doc="A USB partition that is not mounted.")
USB_STATUS = obj(("present", "mounted", "drives", "unmounted"), present=BOOL, mounted=BOOL, drives=array(DRIVE),
                 unmounted=array(PARTITION))
ARTIFACT = obj(("name", "path", "drive", "kind"), name=STR, path=STR, drive=STR,
               kind={"type": "string", "enum": ["wheel", "sdist", "zip"]}, package=nullable(STR),
               version=nullable(STR), size_bytes=INT, modified_at=STR)
USB_ARTIFACTS = obj(("drives", "artifacts"), drives=array(STR), artifacts=array(ARTIFACT))
USB_DEVICE_BODY = obj(device={"type": "string", "minLength": 1,
                              "description": "A device (/dev/sda1), disk (sda) or mount point; default: any."})
MOUNTED = obj(("mounted", "device", "mount_point"), mounted=BOOL, device=STR, mount_point=STR, drive=DRIVE)
EJECTED = obj(("ejected",), ejected=array(obj(("device", "mount_point"), device=STR, disk=STR, mount_point=STR)),
              powered_off=mapping(BOOL), power_off_errors=mapping(STR))
ACCESS_POINT = obj(("active", "flag_file", "reason"), active=BOOL, flag_file=STR, flag_present=BOOL,
                   network_manager=BOOL, ssid=nullable(STR), proto=nullable(STR), interface=STR,
                   address=nullable(STR), reason=STR)
HARDWARE_CHECK_BODY = obj(("model_name", "model_version"), model_name={"type": "string", "minLength": 1},
                          model_version={"type": ["string", "number"], "minLength": 1},
                          _doc="A model of GET /api/models.")
HARDWARE_CHECK = obj(("status", "model_name", "model_version"),
                     status={"type": "string", "enum": ["ok", "warning", "skipped"]}, model_name=STR,
                     model_version=STR, unit=STR, backend=STR, reason=STR,
                     checks=array(obj(("name", "ok"), name=STR, ok=nullable(BOOL), detail=STR)))


def _devices() -> dict[tuple[str, str], dict[str, Any]]:
    u = "/api/units/{pioreactor_unit}"
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/unit_api/usb"): op("USB drives plugged into this unit, mounted or not.", ok=USB_STATUS),
        ("GET", "/unit_api/usb/artifacts"): op("Wheels, sdists and zips on this unit's mounted USB drives.",
                                               ok=USB_ARTIFACTS),
        ("POST", "/unit_api/usb/mount"): task("Mount a USB partition (409 when there is none to mount).",
                                              body=USB_DEVICE_BODY, result=MOUNTED),
        ("POST", "/unit_api/usb/eject"): task("Unmount and power off USB drives (409 when none is mounted).",
                                              body=USB_DEVICE_BODY, result=EJECTED),
        ("GET", f"{u}/usb"): fan_out("USB drives of the units ($broadcast: every unit).", USB_STATUS),
        ("GET", f"{u}/usb/artifacts"): fan_out("Artifacts on the units' USB drives.", USB_ARTIFACTS),
        ("POST", f"{u}/usb/mount"): fan_out("Mount a USB drive on the units.", body=USB_DEVICE_BODY),
        ("POST", f"{u}/usb/eject"): fan_out("Eject the units' USB drives.", body=USB_DEVICE_BODY),
        ("GET", "/api/local_access_point"): op("The leader's local access point (Wi-Fi it hosts itself).",
                                               ok=ACCESS_POINT),
        ("GET", "/api/is_local_access_point_active"): op("Whether the leader's local access point is on (classic).",
                                                         ok=obj(("result",), result=BOOL)),
    }
    for method in ("POST", "PATCH"):
        out[(method, "/unit_api/hardware/check")] = task(
            "Check this unit's hardware for a model: ok, warning or skipped (off a Raspberry Pi).",
            body=HARDWARE_CHECK_BODY, body_required=True, result=HARDWARE_CHECK)
    return out


def _system() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/unit_api/plugins/installed"): op("Installed plugins.", ok=array(PLUGIN),
                                                   query={"include_builtin": BOOL}),
        ("GET", "/unit_api/plugins/installed/{filename}"): op("A plugin file's source.", ok=TEXT),
        ("GET", "/unit_api/system/web_server/status"): op("State of the web server and task worker.",
                                                          ok=obj(("state",), service=STR, state=STR, raw_status=STR)),
        ("GET", "/unit_api/system/path"): op("The state folder: {current, dirs, files}.",
                                             ok=obj(("dirs", "files"), current=STR, dirs=array(STR),
                                                    files=array(STR))),
        ("GET", "/unit_api/system/path/{req_path}"): op(
            "A folder ({current, dirs, files}) or a file (its bytes) of the state folder.",
            ok=(obj(("dirs", "files"), current=STR, dirs=array(STR), files=array(STR)), Content("*/*", BINARY))),
        ("GET", "/unit_api/system/uploads/{filename}"): op("A file uploaded to this unit.", ok=OCTETS),
        ("GET", "/unit_api/zipped_dot_pioreactor"): op("This unit's state folder as a zip.", ok=ZIP),
        ("POST", "/unit_api/import_zipped_dot_pioreactor"): task(
            "Restore the state folder from a zip (multipart field archive).", body=ARCHIVE,
            body_content="multipart/form-data", body_required=True),
        ("POST", "/api/system/upload"): op("Upload a file (multipart field file) to the leader's uploads.",
                                           ok=obj(("save_path",), message=STR, save_path=STR), body=UPLOAD,
                                           body_content="multipart/form-data", body_required=True),
        ("POST", "/api/system/update_next_version"): task("Every unit updates the app."),
        ("POST", "/api/system/update_from_archive"): task(
            "Every unit (or units) updates the app from an uploaded archive.", body_required=True,
            body=obj(("release_archive_location",), release_archive_location=STR, units=array(STR))),
        ("GET", "/api/units/{pioreactor_unit}/plugins/installed"): fan_out("Installed plugins of the units.",
                                                                           array(PLUGIN)),
        ("GET", "/api/units/{pioreactor_unit}/zipped_dot_pioreactor"): op(
            "A unit's state folder as a zip ($broadcast: a zip of <unit>.zip).", ok=ZIP, proxy=True),
        ("POST", "/api/units/{pioreactor_unit}/import_zipped_dot_pioreactor"): task(
            "Restore a unit's state folder from a zip (multipart field archive).", body=ARCHIVE,
            body_content="multipart/form-data", body_required=True),
    }
    for method in ("POST", "PATCH"):
        out.update({
            (method, "/unit_api/plugins/install"): task("Install a plugin (pip).", body=PLUGIN_BODY,
                                                        body_required=True),
            (method, "/unit_api/plugins/uninstall"): task("Uninstall a plugin.", body=PLUGIN_BODY,
                                                          body_required=True),
            (method, "/unit_api/system/reboot"): task("Reboot the unit (only where system commands are enabled)."),
            (method, "/unit_api/system/shutdown"): task("Shut the unit down (where enabled)."),
            (method, "/unit_api/system/repair"): task("Repair the state folder's ownership (where enabled)."),
            (method, "/unit_api/system/update"): task("Update the app.", body=UPDATE_BODY),
            (method, "/unit_api/system/update/{target}"): task("Update a target (app).", body=UPDATE_BODY),
            (method, "/unit_api/system/web_server/restart"): task("Restart the web server (gunicorn reload)."),
            (method, "/unit_api/system/remove_file"): task(
                "Delete a file of the state folder.", body=obj(("filepath",), filepath=STR), body_required=True),
            (method, "/api/units/{pioreactor_unit}/plugins/install"): task("Install a plugin on the units.",
                                                                           body=PLUGIN_BODY, body_required=True),
            (method, "/api/units/{pioreactor_unit}/plugins/uninstall"): task("Uninstall a plugin on the units.",
                                                                             body=PLUGIN_BODY, body_required=True),
            (method, "/api/units/{pioreactor_unit}/plugins/install-from-leader-usb"): fan_out(
                "Install a plugin from the leader's USB drive on the units (args: [package name, optionally with a "
                "version specifier, or a file name on the drive]; 409 without a drive, 404 when nothing matches).",
                body=PLUGIN_BODY, body_required=True),
        })
    for kind in ("reboot", "shutdown", "repair"):
        out[("POST", f"/api/units/{{pioreactor_unit}}/system/{kind}")] = task(f"{kind.capitalize()} the units.")
    return out


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    **_calibrations(),
    **_dosing(),
    **_exports(),
    **_profiles(),
    **_system(),
    **_devices(),
}
