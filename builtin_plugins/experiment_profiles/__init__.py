"""Experiment profiles: YAML schedules of job actions run against the cluster from the leader (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import DATASETS, EXPERIMENT_PROFILE, ROUTES, RUNS_TABLE


@hookimpl
def register_jobs():
    yield EXPERIMENT_PROFILE


@hookimpl
def register_storage():
    yield RUNS_TABLE


@hookimpl
def register_datasets():
    yield from DATASETS


@hookimpl
def register_routes():
    yield from ROUTES
