"""Ground truth of a running simulated cluster: each worker's vessel state, sampled while an experiment runs."""

from __future__ import annotations

import threading

from reactorkit.builtin_plugins.simulation.experiment import read_vessel
from reactorkit.core.localcluster.layout import ClusterLayout


class VesselSampler(threading.Thread):
    """Reads each worker's vessel state (``read_vessel``: simulated time ``t`` in s, ``od``, volumes in mL …)
    every 0.1 s of wall time into ``samples[unit]`` until ``stop`` is set; a cluster not yet laid out under
    ``root`` is waited for."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.samples: dict[str, list[dict]] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.1):
            try:
                layout = ClusterLayout.load(self.root)
            except (OSError, ValueError):
                continue
            for unit in layout.workers:
                state = read_vessel(layout, unit)
                if state:
                    self.samples.setdefault(unit, []).append(state)
