"""Routes, commands and the unit's monitor job of the system plugin (plain data; resources and job classes are
imported when they are used)."""

from reactorkit.plugin import CliCommandDescriptor, CliOption, JobDescriptor, PublishedSetting, RouteDescriptor

_API = "reactorkit.builtin_plugins.system.api"
_DEVICES = "reactorkit.builtin_plugins.system.devices_api"

_UNIT = {
    "/unit_api/plugins/installed": "InstalledPlugins",
    "/unit_api/plugins/installed/{filename:path}": "InstalledPluginFile",
    "/unit_api/plugins/install": "InstallPlugin",
    "/unit_api/plugins/uninstall": "UninstallPlugin",
    "/unit_api/system/reboot": "Reboot",
    "/unit_api/system/shutdown": "Shutdown",
    "/unit_api/system/repair": "Repair",
    "/unit_api/system/update": "Update",
    "/unit_api/system/update/{target}": "Update",
    "/unit_api/system/web_server/status": "WebServerStatus",
    "/unit_api/system/web_server/restart": "WebServerRestart",
    "/unit_api/system/path": "SystemPath",
    "/unit_api/system/path/{req_path:path}": "SystemPath",
    "/unit_api/system/remove_file": "RemoveFile",
    "/unit_api/system/uploads/{filename:path}": "UploadedFile",
    "/unit_api/zipped_dot_pioreactor": "ZippedDotPioreactor",
    "/unit_api/import_zipped_dot_pioreactor": "ImportZippedDotPioreactor",
}

_LEADER = {
    "/api/system/upload": "Upload",
    "/api/system/update_next_version": "UpdateNextVersion",
    "/api/system/update_from_archive": "UpdateFromArchive",
    "/api/units/{pioreactor_unit}/plugins/installed": "ClusterInstalledPlugins",
    "/api/units/{pioreactor_unit}/plugins/install": "ClusterInstall",
    "/api/units/{pioreactor_unit}/plugins/uninstall": "ClusterUninstall",
    "/api/units/{pioreactor_unit}/system/reboot": "ClusterReboot",
    "/api/units/{pioreactor_unit}/system/shutdown": "ClusterShutdown",
    "/api/units/{pioreactor_unit}/system/repair": "ClusterRepair",
    "/api/units/{pioreactor_unit}/zipped_dot_pioreactor": "ClusterZippedDotPioreactor",
    "/api/units/{pioreactor_unit}/import_zipped_dot_pioreactor": "ClusterImportZippedDotPioreactor",
}

# USB drives, the local access point, the hardware check
_DEVICES_UNIT = {
    "/unit_api/usb": "UsbStatus",
    "/unit_api/usb/artifacts": "UsbArtifacts",
    "/unit_api/usb/mount": "UsbMount",
    "/unit_api/usb/eject": "UsbEject",
    "/unit_api/hardware/check": "HardwareCheck",
}

_DEVICES_LEADER = {
    "/api/units/{pioreactor_unit}/usb": "ClusterUsbStatus",
    "/api/units/{pioreactor_unit}/usb/artifacts": "ClusterUsbArtifacts",
    "/api/units/{pioreactor_unit}/usb/mount": "ClusterUsbMount",
    "/api/units/{pioreactor_unit}/usb/eject": "ClusterUsbEject",
    "/api/units/{pioreactor_unit}/plugins/install-from-leader-usb": "InstallFromLeaderUsb",
    "/api/local_access_point": "LocalAccessPoint",
    "/api/is_local_access_point_active": "IsLocalAccessPointActive",
}

# each route's OpenAPI description: the OPENAPI table of the module that serves it
ROUTES = tuple(
    RouteDescriptor(path=path, resource=f"{module}:{name}", leader_only=leader_only, schemas=f"{module}:OPENAPI")
    for module, leader_only, routes in ((_API, False, _UNIT), (_API, True, _LEADER), (_DEVICES, False, _DEVICES_UNIT),
                                        (_DEVICES, True, _DEVICES_LEADER))
    for path, name in routes.items()
)

CLI_COMMANDS = (
    CliCommandDescriptor(name="serve", help="Serve /unit_api (and /api on the leader) with gunicorn.",
                         command="reactorkit.builtin_plugins.system.serve:serve"),
)


MONITOR = JobDescriptor(
    job_name="monitor",
    display_name="Monitor",
    description="Reports the unit's software and board versions, network addresses, free disk space and CPU "
                "temperature; its state is the unit's status in the UI's Inventory.",
    display=False,
    is_long_running=True,
    autostart=True,
    published_settings=(
        PublishedSetting(key="versions", type="json", editable=True, display=False,
                         description="{app, hat, firmware, hat_serial, rpi_machine, timestamp}"),
        PublishedSetting(key="computer_statistics", type="json", display=False,
                         description="{available_disk_space (% free), cpu_temperature_celcius (°C), timestamp}"),
        PublishedSetting(key="ipv4", type="string", display=False),
        PublishedSetting(key="wlan_mac_address", type="string", display=False),
        PublishedSetting(key="eth_mac_address", type="string", display=False),
        PublishedSetting(key="button_down", type="boolean", display=False,
                         description="Whether the HAT's button is held down (always false: the hardware layer has "
                                     "no button input)"),
    ),
    cli_options=(
        CliOption(name="statistics_interval_s", type="float", default=None, min=1.0,
                  help="Wall seconds between refreshes of the computer statistics and IPv4 address (default 300)."),
    ),
    job_class="reactorkit.builtin_plugins.system.monitor:Monitor",
)
