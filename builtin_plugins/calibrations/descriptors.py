"""Descriptors of the calibrations plugin: routes and the ``pio calibrations`` command (plain data)."""

from reactorkit.plugin import CliCommandDescriptor, RouteDescriptor

_R = "reactorkit.builtin_plugins.calibrations.resources:"
_L = "reactorkit.builtin_plugins.calibrations.leader:"

UNIT_ROUTES = (
    ("/unit_api/calibration_protocols", "CalibrationProtocols"),
    ("/unit_api/calibrations", "AllRecords"),
    ("/unit_api/calibrations/{device}", "DeviceRecords"),
    ("/unit_api/calibrations/{device}/{name}", "OneRecord"),
    ("/unit_api/active_calibrations", "ActiveRecords"),
    ("/unit_api/active_calibrations/{device}", "ActiveDevice"),
    ("/unit_api/active_calibrations/{device}/{name}", "SetActive"),
    ("/unit_api/estimators", "AllEstimators"),
    ("/unit_api/estimators/{device}", "DeviceEstimators"),
    ("/unit_api/estimators/{device}/{name}", "OneEstimator"),
    ("/unit_api/active_estimators", "ActiveEstimators"),
    ("/unit_api/active_estimators/{device}", "ActiveEstimatorDevice"),
    ("/unit_api/active_estimators/{device}/{name}", "SetActiveEstimator"),
    ("/unit_api/zipped_calibrations", "ZippedCalibrations"),
    ("/unit_api/calibrations/sessions", "Sessions"),
    ("/unit_api/calibrations/sessions/{session_id}", "Session"),
    ("/unit_api/calibrations/sessions/{session_id}/inputs", "SessionInputs"),
    ("/unit_api/calibrations/sessions/{session_id}/abort", "SessionAbort"),
)

_W = "/api/workers/{pioreactor_unit}"
LEADER_ROUTES = (
    (f"{_W}/calibration_protocols", "ProtocolsFanOut"),
    (f"{_W}/calibrations", "CalibrationsFanOut"),
    (f"{_W}/calibrations/{{device}}", "DeviceCalibrationsFanOut"),
    (f"{_W}/calibrations/{{device}}/{{name}}", "CalibrationFanOut"),
    (f"{_W}/active_calibrations", "ActiveCalibrationsFanOut"),
    (f"{_W}/active_calibrations/{{device}}", "ActiveCalibrationDeviceFanOut"),
    (f"{_W}/active_calibrations/{{device}}/{{name}}", "SetActiveCalibrationFanOut"),
    (f"{_W}/estimators", "EstimatorsFanOut"),
    (f"{_W}/estimators/{{device}}", "DeviceEstimatorsFanOut"),
    (f"{_W}/estimators/{{device}}/{{name}}", "EstimatorFanOut"),
    (f"{_W}/active_estimators", "ActiveEstimatorsFanOut"),
    (f"{_W}/active_estimators/{{device}}", "ActiveEstimatorDeviceFanOut"),
    (f"{_W}/active_estimators/{{device}}/{{name}}", "SetActiveEstimatorFanOut"),
    (f"{_W}/zipped_calibrations", "ZippedCalibrationsProxy"),
    (f"{_W}/calibrations/sessions", "SessionsProxy"),
    (f"{_W}/calibrations/sessions/{{session_id}}", "SessionProxy"),
    (f"{_W}/calibrations/sessions/{{session_id}}/inputs", "SessionInputsProxy"),
    (f"{_W}/calibrations/sessions/{{session_id}}/abort", "SessionAbortProxy"),
)

# each route's OpenAPI description: the OPENAPI table of the module that serves it
ROUTES = tuple(RouteDescriptor(path=path, resource=_R + name, schemas=_R + "OPENAPI")
               for path, name in UNIT_ROUTES) + tuple(
    RouteDescriptor(path=path, resource=_L + name, leader_only=True, schemas=_L + "OPENAPI")
    for path, name in LEADER_ROUTES
)

CLI_COMMANDS = (
    CliCommandDescriptor(
        name="calibrations",
        help="List, display, activate, delete and run calibrations of this unit.",
        command="reactorkit.builtin_plugins.calibrations.cli:calibrations",
    ),
)
