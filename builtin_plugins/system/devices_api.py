"""Routes for the machine itself: USB drives, the local access point and the hardware check.

Unit (``/unit_api``):

* ``GET usb`` → ``{present, mounted, drives, unmounted}`` (:func:`.usb.status`);
* ``GET usb/artifacts`` → ``{drives, artifacts}`` (:func:`.usb_artifacts.artifacts`);
* ``POST usb/mount {device?}`` / ``POST usb/eject {device?}`` → 202 task
  (:mod:`.usb_tasks`); 409 at once when there is nothing to mount or eject;
* ``POST|PATCH hardware/check {model_name, model_version}`` → 202 task whose
  result says ``ok``, ``warning`` or ``skipped`` (:mod:`.hardware_check`).

Leader (``/api``):

* ``GET units/{u}/usb``, ``GET units/{u}/usb/artifacts``, ``POST units/{u}/usb/mount|eject``
  → 202 task fanning out to those unit routes (``{unit: envelope}``; ``$broadcast``
  is every unit, leader included);
* ``POST|PATCH units/{u}/plugins/install-from-leader-usb {args: [name]}`` → 202
  task (:mod:`.usb_install`); 409 when the leader has no drive mounted, 404
  when nothing on it matches;
* ``GET local_access_point`` → :func:`.access_point.state`;
  ``GET is_local_access_point_active`` → ``{"result": bool}``.
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.plugin import ApiError, RouteResource
from reactorkit.plugin import enqueue_task, invalid, read_body
from reactorkit.plugin import openapi as oa

_PKG = "reactorkit.builtin_plugins.system"


def _unit() -> str:
    from reactorkit.plugin import get_unit_name

    return get_unit_name()


def no_drive(cause: str, remediation: str) -> ApiError:
    """409: the request is fine but the machine has no (suitable) USB drive."""
    return ApiError(falcon.HTTP_409, "No USB drive to act on.", cause=cause, remediation=remediation)


def _device(req: falcon.Request) -> str | None:
    device = read_body(req).get("device")  # a non-empty string: checked by the schema middleware
    if device is not None and "\x00" in device:
        raise invalid("Field 'device' must name a device (/dev/sda1), a disk (sda) or a mount point.")
    return device


# --------------------------------------------------------------------- unit
class UsbStatus:
    """``GET /unit_api/usb``: the USB drives plugged into this unit, mounted or not."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .usb import status

        resp.media = status()


class UsbArtifacts:
    """``GET /unit_api/usb/artifacts``: wheels, sdists and zips on this unit's mounted USB drives."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .usb_artifacts import artifacts

        resp.media = artifacts()


class UsbMount:
    """``POST /unit_api/usb/mount {device?}`` → 202 task mounting a USB partition (409: nothing to mount)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .usb import NoDrive, choose_unmounted

        device = _device(req)
        try:
            choose_unmounted(device)
        except NoDrive as exc:
            raise no_drive(str(exc), "Plug a USB drive into this unit (GET /unit_api/usb lists what is there).") \
                from None
        enqueue_task(resp, _unit(), f"{_PKG}.usb_tasks.mount", device, timeout_s=180)


class UsbEject:
    """``POST /unit_api/usb/eject {device?}`` → 202 task unmounting and powering off (409: nothing mounted)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .usb import NoDrive, choose_mounted

        device = _device(req)
        try:
            choose_mounted(device)
        except NoDrive as exc:
            raise no_drive(str(exc), "See GET /unit_api/usb for the mounted drives of this unit.") from None
        enqueue_task(resp, _unit(), f"{_PKG}.usb_tasks.eject", device, timeout_s=180)


class HardwareCheck:
    """``POST|PATCH /unit_api/hardware/check {model_name, model_version}`` → 202 task (``ok|warning|skipped``).

    400 when a field is missing or the model is not one of ``GET /api/models`` (§1.4).
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.plugin import find_model

        body = read_body(req)  # both fields given and not empty: checked by the schema middleware
        name, version = body["model_name"], str(body["model_version"])
        if find_model(name, version) is None:
            raise ApiError(falcon.HTTP_400, "Unknown model.", cause=f"No model {name!r} version {version!r}.",
                           remediation="Use a model_name and model_version of GET /api/models.")
        enqueue_task(resp, _unit(), f"{_PKG}.hardware_check.check_hardware", name, version, timeout_s=120)

    on_patch = on_post


# ------------------------------------------------------------------- leader

class ClusterUsbRead(RouteResource):
    """``GET /api/units/{u}/usb[/artifacts]`` → 202 task: each unit's ``/unit_api/usb[/artifacts]``."""

    def __init__(self, unit_path: str) -> None:
        self.unit_path = unit_path

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        units = self.context.fanout.targets(pioreactor_unit, "units")
        enqueue_task(resp, _unit(), "reactorkit.api.fanout.fan_out_task", "GET", units, self.unit_path,
                     timeout_s=120)


class ClusterUsbStatus(ClusterUsbRead):
    def __init__(self) -> None:
        super().__init__("/unit_api/usb")


class ClusterUsbArtifacts(ClusterUsbRead):
    def __init__(self) -> None:
        super().__init__("/unit_api/usb/artifacts")


class ClusterUsbAction(RouteResource):
    """``POST /api/units/{u}/usb/{mount|eject} {device?}`` → 202 task: each unit's action, awaited (≤ 2 min)."""

    def __init__(self, action: str) -> None:
        self.action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        device = _device(req)
        units = self.context.fanout.targets(pioreactor_unit, "units")
        body = {"device": device} if device else {}
        enqueue_task(resp, _unit(), f"{_PKG}.plugin_tasks.fan_out_long", "POST", units,
                     f"/unit_api/usb/{self.action}", body, poll_minutes=2.0, timeout_s=300)


class ClusterUsbMount(ClusterUsbAction):
    def __init__(self) -> None:
        super().__init__("mount")


class ClusterUsbEject(ClusterUsbAction):
    def __init__(self) -> None:
        super().__init__("eject")


class InstallFromLeaderUsb(RouteResource):
    """``POST|PATCH /api/units/{u}/plugins/install-from-leader-usb {args: [name or file]}`` → 202 task.

    ``name`` is a package name with an optional version specifier (the newest matching wheel, else sdist, on the
    leader's drive) or a file name on the drive. 409 when the leader has no USB drive mounted; 404 when nothing
    on it matches.
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        from .api import _installs_disallowed, plugin_request
        from .usb import mounted_drives
        from .usb_artifacts import find_plugin_artifact

        _installs_disallowed()
        name, _ = plugin_request(read_body(req), with_source=False)
        units = self.context.fanout.targets(pioreactor_unit, "units")
        if not mounted_drives():
            raise no_drive("No USB drive is mounted on the leader.",
                           "Plug the drive into the leader and mount it (POST /api/units/<leader>/usb/mount).")
        if find_plugin_artifact(name) is None:
            raise ApiError(falcon.HTTP_404, f"No plugin {name!r} on the leader's USB drive.",
                           cause="No wheel or sdist on the drive matches the name (and version).",
                           remediation="See GET /api/units/<leader>/usb/artifacts for what is on the drive.")
        enqueue_task(resp, _unit(), f"{_PKG}.usb_install.install_from_leader_usb", name, units, timeout_s=1800)

    on_patch = on_post


class LocalAccessPoint:
    """``GET /api/local_access_point``: whether the leader hosts its own Wi-Fi network, and how."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .access_point import state

        resp.media = state()


class IsLocalAccessPointActive:
    """``GET /api/is_local_access_point_active`` → ``{"result": bool}`` (classic)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .access_point import is_active

        resp.media = {"result": is_active()}


# ------------------------------------------------------------------------ OpenAPI
# The operation descriptions of this module's routes, keyed by (METHOD, path): the routes' descriptors name this
# table (``RouteDescriptor(schemas=…)``) and the API's OpenAPI document takes each route's entries from it.
SIZE = oa.nullable({"type": "integer", "minimum": 0})
DRIVE = oa.obj(("device", "disk", "mount_point"), device=oa.STR, disk=oa.STR, mount_point=oa.STR, fstype=oa.STR,
               read_only=oa.BOOL, label=oa.nullable(oa.STR), size_bytes=SIZE, free_bytes=SIZE,
               _doc="A mounted USB filesystem.")
PARTITION = oa.obj(("device", "disk"), device=oa.STR, disk=oa.STR, size_bytes=SIZE, label=oa.nullable(oa.STR),
                _doc="A USB partition that is not mounted.")
USB_STATUS = oa.obj(("present", "mounted", "drives", "unmounted"), present=oa.BOOL, mounted=oa.BOOL,
                    drives=oa.array(DRIVE), unmounted=oa.array(PARTITION))
ARTIFACT = oa.obj(("name", "path", "drive", "kind"), name=oa.STR, path=oa.STR, drive=oa.STR,
               kind={"type": "string", "enum": ["wheel", "sdist", "zip"]}, package=oa.nullable(oa.STR),
               version=oa.nullable(oa.STR), size_bytes=oa.INT, modified_at=oa.STR)
USB_ARTIFACTS = oa.obj(("drives", "artifacts"), drives=oa.array(oa.STR), artifacts=oa.array(ARTIFACT))
USB_DEVICE_BODY = oa.obj(device={"type": "string", "minLength": 1,
                              "description": "A device (/dev/sda1), disk (sda) or mount point; default: any."})
MOUNTED = oa.obj(("mounted", "device", "mount_point"), mounted=oa.BOOL, device=oa.STR, mount_point=oa.STR, drive=DRIVE)
EJECTED = oa.obj(("ejected",),
                 ejected=oa.array(oa.obj(("device", "mount_point"), device=oa.STR, disk=oa.STR, mount_point=oa.STR)),
                 powered_off=oa.mapping(oa.BOOL), power_off_errors=oa.mapping(oa.STR))
ACCESS_POINT = oa.obj(("active", "flag_file", "reason"), active=oa.BOOL, flag_file=oa.STR, flag_present=oa.BOOL,
                   network_manager=oa.BOOL, ssid=oa.nullable(oa.STR), proto=oa.nullable(oa.STR), interface=oa.STR,
                   address=oa.nullable(oa.STR), reason=oa.STR)
HARDWARE_CHECK_BODY = oa.obj(("model_name", "model_version"), model_name={"type": "string", "minLength": 1},
                          model_version={"type": ["string", "number"], "minLength": 1},
                          _doc="A model of GET /api/models.")
HARDWARE_CHECK = oa.obj(("status", "model_name", "model_version"),
                     status={"type": "string", "enum": ["ok", "warning", "skipped"]}, model_name=oa.STR,
                     model_version=oa.STR, unit=oa.STR, backend=oa.STR, reason=oa.STR,
                     checks=oa.array(oa.obj(("name", "ok"), name=oa.STR, ok=oa.nullable(oa.BOOL), detail=oa.STR)))


def _devices() -> dict[tuple[str, str], dict[str, Any]]:
    from .api import PLUGIN_BODY

    u = "/api/units/{pioreactor_unit}"
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/unit_api/usb"): oa.op("USB drives plugged into this unit, mounted or not.", ok=USB_STATUS),
        ("GET", "/unit_api/usb/artifacts"): oa.op("Wheels, sdists and zips on this unit's mounted USB drives.",
                                               ok=USB_ARTIFACTS),
        ("POST", "/unit_api/usb/mount"): oa.task("Mount a USB partition (409 when there is none to mount).",
                                              body=USB_DEVICE_BODY, result=MOUNTED),
        ("POST", "/unit_api/usb/eject"): oa.task("Unmount and power off USB drives (409 when none is mounted).",
                                              body=USB_DEVICE_BODY, result=EJECTED),
        ("GET", f"{u}/usb"): oa.fan_out("USB drives of the units ($broadcast: every unit).", USB_STATUS),
        ("GET", f"{u}/usb/artifacts"): oa.fan_out("Artifacts on the units' USB drives.", USB_ARTIFACTS),
        ("POST", f"{u}/usb/mount"): oa.fan_out("Mount a USB drive on the units.", body=USB_DEVICE_BODY),
        ("POST", f"{u}/usb/eject"): oa.fan_out("Eject the units' USB drives.", body=USB_DEVICE_BODY),
        ("GET", "/api/local_access_point"): oa.op("The leader's local access point (Wi-Fi it hosts itself).",
                                               ok=ACCESS_POINT),
        ("GET", "/api/is_local_access_point_active"): oa.op("Whether the leader's local access point is on (classic).",
                                                         ok=oa.obj(("result",), result=oa.BOOL)),
    }
    for method in ("POST", "PATCH"):
        out[(method, "/api/units/{pioreactor_unit}/plugins/install-from-leader-usb")] = oa.fan_out(
            "Install a plugin from the leader's USB drive on the units (args: [package name, optionally with a "
            "version specifier, or a file name on the drive]; 409 without a drive, 404 when nothing matches).",
            body=PLUGIN_BODY, body_required=True)
        out[(method, "/unit_api/hardware/check")] = oa.task(
            "Check this unit's hardware for a model: ok, warning or skipped (off a Raspberry Pi).",
            body=HARDWARE_CHECK_BODY, body_required=True, result=HARDWARE_CHECK)
    return out


OPENAPI = _devices()
