"""Descriptors of the exports plugin: routes and the datasets of the core tables (plain data)."""

from reactorkit.plugin import AUDIT_CREATE_SQL, DatasetDescriptor, RouteDescriptor, TableDescriptor

_API = "reactorkit.builtin_plugins.exports.api"

_LEADER_ROUTES = {
    "/api/datasets/exportable/{target_dataset}/preview": "Preview",
    "/api/datasets/exportable/export": "Export",
    "/api/datasets/exportable/export-to-usb": "ExportToUsb",
    "/api/exports/{filename:path}": "Download",
}
_CLASSIC_ALIASES = {
    "/api/contrib/exportable_datasets/{target_dataset}/preview": "Preview",
    "/api/contrib/exportable_datasets/export_datasets": "ClassicExport",
}
# each route's OpenAPI description: the OPENAPI table of the module that serves it
ROUTES = tuple(RouteDescriptor(path=path, resource=f"{_API}:{name}", leader_only=True, schemas=f"{_API}:OPENAPI")
               for routes in (_LEADER_ROUTES, _CLASSIC_ALIASES) for path, name in routes.items())

TABLES = (TableDescriptor(table="audit_log", create_sql=AUDIT_CREATE_SQL),)

DATASETS = (
    DatasetDescriptor(
        dataset_name="audit_log",
        display_name="Audit log",
        description="Every state-changing API request: who (token name), what (method, path), when, and the result.",
        table="audit_log",
        column_descriptions={"actor": "the token's name (anonymous: no valid token; auth-off: authentication off)",
                             "status": "the HTTP status answered", "pioreactor_unit": "the unit that served it"},
    ),
    DatasetDescriptor(
        dataset_name="experiments",
        display_name="Experiments",
        description="Every experiment with its creation time and description.",
        table="experiments",
        has_unit=False,
        default_order_by="created_at",
        timestamp_columns=("created_at",),
    ),
    DatasetDescriptor(
        dataset_name="pioreactor_unit_labels",
        display_name="Unit labels",
        description="The label each unit had in each experiment.",
        table="pioreactor_unit_labels",
        default_order_by="created_at",
        timestamp_columns=("created_at",),
    ),
    DatasetDescriptor(
        dataset_name="experiment_worker_assignments",
        display_name="Unit assignments",
        description="When each unit was assigned to, and unassigned from, each experiment.",
        query="SELECT pioreactor_unit, experiment, assigned_at, unassigned_at FROM experiment_worker_assignments_history",
        default_order_by="assigned_at",
        timestamp_columns=("assigned_at", "unassigned_at"),
    ),
)
