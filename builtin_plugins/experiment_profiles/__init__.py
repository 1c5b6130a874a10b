"""Experiment profiles: YAML schedules of job actions run against the cluster from the leader (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import DATASETS, EXPERIMENT_PROFILE, ROUTES, RUNS_TABLE

register_jobs = yields(EXPERIMENT_PROFILE)
register_storage = yields(RUNS_TABLE)
register_datasets = yields(*DATASETS)
register_routes = yields(*ROUTES)
