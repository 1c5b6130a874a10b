"""Descriptors of the experiment-profiles plugin: plain data, nothing heavy imported."""

from reactorkit.plugin import (
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    RouteDescriptor,
    TableDescriptor,
)

_PKG = "reactorkit.builtin_plugins.experiment_profiles"

EXPERIMENT_PROFILE = JobDescriptor(
    job_name="experiment_profile",
    display_name="Experiment profile",
    description="Runs an experiment profile (YAML in $DOT_PIOREACTOR/experiment_profiles/) against the cluster; "
                "started on the leader with: pio run experiment_profile execute <profile> <experiment>.",
    display=False,
    published_settings=(
        PublishedSetting(key="experiment_profile_name", type="string", label="Profile"),
        PublishedSetting(key="start_time_utc", type="string", label="Started at (UTC)"),
        PublishedSetting(key="profile_filename", type="string", label="Profile file", display=False),
        PublishedSetting(key="action_count", type="numeric", datatype="integer", label="Actions", display=False),
    ),
    cli_options=(CliOption(name="dry_run", type="flag", help="Validate and print the schedule; start nothing."),),
    cli_arguments=("command", "profile_path", "profile_experiment"),
    is_long_running=True,
    runner=f"{_PKG}.job:run_profile",
)

RUNS_TABLE = TableDescriptor(
    table="experiment_profile_runs",
    create_sql="""
        CREATE TABLE IF NOT EXISTS experiment_profile_runs (
            started_at TEXT NOT NULL,
            experiment_profile_name TEXT NOT NULL,
            experiment TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS experiment_profile_runs_ix ON experiment_profile_runs (experiment, started_at);
    """,
)

DATASETS = (
    DatasetDescriptor(
        dataset_name="experiment_profile_runs",
        display_name="Experiment profile runs",
        description="When each experiment profile was started, and for which experiment.",
        table="experiment_profile_runs",
        has_unit=False,
        default_order_by="started_at",
        timestamp_columns=("started_at",),
    ),
)

_API = f"{_PKG}.api"
_LEADER_ROUTES = {
    "/api/experiment_profiles": "Profiles",
    "/api/experiment_profiles/{filename:path}": "ProfileFile",
    "/api/experiments/{experiment}/experiment_profiles/running": "RunningProfiles",
    "/api/experiments/{experiment}/experiment_profiles/recent": "RecentRuns",
}
_CLASSIC_ALIASES = {
    "/api/contrib/experiment_profiles": "ClassicProfiles",
    "/api/contrib/experiment_profiles/{filename:path}": "ProfileFile",
    "/api/experiment_profiles/running/experiments/{experiment}": "RunningProfiles",
}
# each route's OpenAPI description: the OPENAPI table of the module that serves it
ROUTES = tuple(RouteDescriptor(path=path, resource=f"{_API}:{name}", leader_only=True, schemas=f"{_API}:OPENAPI")
               for routes in (_LEADER_ROUTES, _CLASSIC_ALIASES) for path, name in routes.items())
