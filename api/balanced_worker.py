"""gunicorn's threaded worker, sharing a burst of new connections with its sibling workers.

``pio serve``'s default worker class (``reactorkit.api.balanced_worker.BalancedThreadWorker``).
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker that lets a sibling take a new connection when it already holds its share.

    Why: the workers of one gunicorn server share one listening socket, and each accepts whatever waits on
    it when it wakes. A client that opens many keep-alive connections at once (wrk's 16 within microseconds;
    a browser's six) finds one worker already on a CPU, which accepts the whole burst before its sibling,
    asleep in ``epoll_wait``, is scheduled; keep-alive then keeps that split for the connections' life. One
    worker process runs on one core (one interpreter lock), so the server then gets half the machine:
    measured on 2 cores with 2 workers × 4 threads and 16 wrk connections, a constant-body app ran at
    ~5,000 req/s in the 2 of 25 runs where one worker held all 16, 12,900–16,243 req/s otherwise; the
    light API routes 2,400–3,100 req/s instead of 6,863–11,558 (``benchmarks/api_light_routes.py``).
    A listening socket per worker (``SO_REUSEPORT``, the kernel spreading connections by address) still
    gave one worker all 16 in 1 of 12 runs.

    What it does: a worker that holds at least as many connections as it has threads (``--threads``;
    kept-alive ones count) and finds a new one waiting stops watching the listening socket for
    :attr:`accept_defer_s`, so a sibling woken by the same connection can accept it (a sibling holding
    fewer accepts at once). When the time is up it accepts one connection still waiting, however many it
    holds, and watches again: past its share it takes one waiting connection per :attr:`accept_defer_s`
    while the siblings take the rest as fast as they are scheduled. Accepting every waiting connection
    at the deferral's end instead gave 12/4 splits at a quiet machine and 15/1 at load 8 (the sibling not
    scheduled within 5 ms); one per deferral gave 8/8 or 9/7 in 12 of 12 runs at load 10–14. When no
    sibling takes any (all full, busy or stopped), the n-th connection past the share waits n ×
    :attr:`accept_defer_s` (12 × 5 ms for the last of a 16-connection burst). Requests on connections it
    already holds are served all the while.

    With one worker (``--workers 1``) there is no sibling to wait for, and it behaves as ``gthread``.
    """

    #: seconds a worker holding its share leaves a waiting connection to its siblings before accepting it
    accept_defer_s: float = 0.005

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deferring = False  # the listening sockets are unwatched until _defer_until (time.monotonic())
        self._defer_until = 0.0

    def accept(self, listener) -> None:
        """Accept a connection waiting on ``listener``, or leave it to a sibling for :attr:`accept_defer_s`."""
        if self.cfg.workers > 1 and self.nr_conns >= self.cfg.threads:
            self._defer_until = time.monotonic() + self.accept_defer_s
            self._deferring = True
            super().set_accept_enabled(False)
            return
        super().accept(listener)

    def set_accept_enabled(self, enabled: bool) -> None:
        """As ``gthread``'s, but the listening sockets stay unwatched until a deferral's end, and then one
        connection waiting on each is accepted."""
        if not (enabled and self._deferring):
            super().set_accept_enabled(enabled)
            return
        if time.monotonic() < self._defer_until:
            return
        self._deferring = False
        super().set_accept_enabled(True)  # non-blocking listening sockets, watched again
        for listener in self.sockets:
            # one connection waiting now, left to the siblings for accept_defer_s already (none: EAGAIN, ignored);
            # another one still waiting wakes the poller and is deferred in turn
            super().accept(listener)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """As ``gthread``'s, waking no later than a deferral's end (``timeout`` in s)."""
        if self._deferring:
            timeout = min(timeout, max(self._defer_until - time.monotonic(), 0.0))
        super().wait_for_and_dispatch_events(timeout)
