"""The unit's task queue: rq on the unit's Redis.

Each unit has one queue named after it (``reactorkit:{unit}``) on the Redis of
``[redis] url`` (``$REDIS_URL`` overrides). ``pio worker`` executes its tasks;
the API enqueues long or side-effecting work there and answers
``202 {unit, task_id, result_url_path}``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from reactorkit.core.config import Config, get_config, get_unit_name


def redis_url(config: Config | None = None) -> str:
    return os.environ.get("REDIS_URL") or (config or get_config()).get("redis", "url", fallback="redis://127.0.0.1:6379/0")


def queue_name(unit: str | None = None, config: Config | None = None) -> str:
    """``reactorkit:{[redis] queue_prefix}{unit}``: the prefix lets several local clusters share one Redis."""
    prefix = os.environ.get("REACTORKIT_QUEUE_PREFIX") or (config or get_config()).get("redis", "queue_prefix", fallback="")
    return f"reactorkit:{prefix}{unit or get_unit_name()}"


_CLIENTS: dict[tuple[str, int], Any] = {}


def redis_client(config: Config | None = None) -> Any:
    """This process's ``redis.Redis`` client of :func:`redis_url` (one per URL, kept: its connection pool
    is reused by every call and thread, instead of a connection set up per request).

    Kept per process id: a forked child (an rq work horse, a gunicorn worker) makes its own and never uses
    its parent's connections. Making it connects to nothing; a connection the server dropped (Redis
    restarted) is opened again by the pool at its next use.

    A command is sent once: no retry after a connection error or a timeout (``Retry(NoBackoff(), 0)``, what
    redis-py 7 gives a client made from a URL; ``redis.Redis(...)`` itself retries 3 times). A command the
    server ran but whose answer was lost, sent again, would answer for the first: the API's ``SET NX`` of a
    job's run window would find its own key and refuse the start (429). The caller gets the error instead.

    Raises:
        ValueError: the URL is not a Redis URL (``redis://``, ``rediss://``, ``unix://``).
    """
    url = redis_url(config)
    key = (url, os.getpid())
    client = _CLIENTS.get(key)
    if client is None:
        from redis import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = _CLIENTS.setdefault(key, Redis.from_url(url, retry=Retry(NoBackoff(), 0)))
    return client


def get_queue(unit: str | None = None, config: Config | None = None) -> Any:
    """The rq ``Queue`` of ``unit`` (default: this unit)."""
    from rq import Queue

    return Queue(queue_name(unit, config), connection=redis_client(config))


def enqueue(func: Callable[..., Any] | str, *args: Any, unit: str | None = None, timeout_s: int = 600, **kwargs: Any) -> str:
    """Queue ``func(*args, **kwargs)`` for this unit's worker; returns the task id."""
    job = get_queue(unit).enqueue(func, args=args, kwargs=kwargs, job_timeout=timeout_s, result_ttl=86_400,
                                  failure_ttl=86_400)
    return job.id


def rechecking_worker_class(worker_class: Any) -> Any:
    """``worker_class`` (an rq ``Worker`` class) whose every task starts with the config files as they are now:
    before the task runs (before the work horse is forked, for a forking worker),
    :func:`reactorkit.core.config.recheck_config_files` forgets the config (and the clock built from it) that
    the worker process read when it started or at an earlier task, if a file was saved or replaced since
    (``PATCH …/config…``, a state archive imported). The horse, a fork of the worker, would otherwise run with
    the worker's copy: a task reading ``leader_hostname``, ``[mqtt]`` or a calibration default would use the
    values of the day ``pio worker`` started.

    Cost per task: one ``stat`` per config file; the files are read again only when one changed.
    """
    from reactorkit.core.config import recheck_config_files

    class ConfigRecheckingWorker(worker_class):
        def execute_job(self, job: Any, queue: Any) -> Any:
            recheck_config_files()
            return super().execute_job(job, queue)

    return ConfigRecheckingWorker


def run_worker(*, burst: bool = False, unit: str | None = None) -> None:
    """Run an rq worker on this unit's queue (blocks), with the outbox keeper and the PWM watchdog
    (:mod:`reactorkit.core.hardware.leases`) as daemon threads."""
    from redis import Redis
    from rq import Queue, Worker

    from reactorkit.core.hardware.leases import start_watchdog
    from reactorkit.core.outbox_keeper import start_thread as keep_outbox

    connection = Redis.from_url(redis_url())
    queue = Queue(queue_name(unit), connection=connection)
    launcher = None
    if not burst:
        from reactorkit.core.launcher_keeper import keep_launcher

        keep_outbox()  # send what ended jobs left in the unit's outbox
        start_watchdog()  # switch off PWM channels left on by processes that died
        from reactorkit.core.restore import restore_after_unclean_stop

        try:
            restore_after_unclean_stop()  # jobs a power cut or a crash stopped: restored, or said to stay stopped
        except Exception as exc:  # a bad policy value or a busy registry never keeps the worker from starting
            logging.getLogger("reactorkit.restore").error("restore after an unclean stop failed: %s", exc)
        launcher = keep_launcher()  # forks `pio run` jobs with the framework already imported
    # imported once here, so that each task's work horse (a fork of this process) starts with them
    import reactorkit.core.cli.index  # noqa: F401
    import reactorkit.core.launch_client  # noqa: F401
    import reactorkit.core.task_functions  # noqa: F401

    try:
        rechecking_worker_class(Worker)([queue], connection=connection,
                                        name=f"{queue_name(unit)}:{os.getpid()}").work(burst=burst,
                                                                                       with_scheduler=False)
    finally:
        if launcher is not None:
            launcher.stop()
