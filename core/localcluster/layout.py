"""The layout of a local simulated cluster: units, ports, state folders and their config.

A cluster lives under one root folder::

    <root>/cluster.json             names, ports, broker ports, queue prefix, clock origin, speed-up
    <root>/supervisord.conf         the process manager's configuration
    <root>/mosquitto.conf           the cluster's broker (TCP and WebSocket listeners)
    <root>/admin_token              the cluster's admin API token (mode 0600)
    <root>/units/<unit>/            each unit's $DOT_PIOREACTOR (config.ini, storage/, logs/)
    <root>/logs/                    one log per supervised process

Every unit's ``config.ini`` names the leader (``[cluster.topology]``), every
unit's address (``[cluster.addresses] unit = 127.0.0.1:port``), the cluster's own
broker (``[mqtt]``: a mosquitto on free TCP and WebSocket ports, see
:mod:`.broker`; topics carry no prefix, as on a real deployment), a queue prefix
unique to this cluster (so several clusters can share one Redis), the simulation
speed-up and a common clock origin, and the sections the web UI reads
(:mod:`reactorkit.core.webui.defaults`); the leader's also ``[ui] static_dir`` when
a UI build is installed.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reactorkit.core.cluster import free_port
from reactorkit.core.paths import atomic_write


@dataclass
class ClusterLayout:
    """What ``pio cluster up`` set up.

    Attributes:
        root: The cluster's folder.
        leader: Name of the leader unit (serves ``/api``; runs no vessel jobs by default).
        workers: Names of the simulated workers.
        ports: ``unit -> HTTP port``.
        prefix: MQTT topic prefix of this cluster (ends with ``/``).
        speedup: Simulated seconds per wall second.
        clock_origin: Epoch second where simulated and wall time coincide.
        redis_url: Redis of the task queues.
        replay: ``unit -> recorded OD file`` for units that replay real data (``HARDWARE=replay``).
        mqtt_port, mqtt_ws_port: The cluster's own mosquitto (TCP, WebSocket); ``mqtt_ws_port`` 0
            means the machine's broker on ``mqtt_port``, shared under ``prefix``.
        queue_prefix: Prefix of the rq queues (unique per cluster; default from ``prefix``).
        ui_dir: The web UI build the leader serves (empty: none installed).
    """

    root: Path
    leader: str = "leader"
    workers: list[str] = field(default_factory=lambda: ["worker1", "worker2"])
    ports: dict[str, int] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"rk{uuid.uuid4().hex[:8]}/")
    speedup: float = 1.0
    clock_origin: float = field(default_factory=time.time)
    redis_url: str = "redis://127.0.0.1:6379/0"
    replay: dict[str, str] = field(default_factory=dict)
    mqtt_port: int = 1883
    mqtt_ws_port: int = 0
    queue_prefix: str = ""
    ui_dir: str = ""

    @property
    def own_broker(self) -> bool:
        """True when the cluster runs its own mosquitto (new layouts do)."""
        return self.mqtt_ws_port > 0

    def queue(self) -> str:
        """Prefix of the cluster's rq queue names (``REACTORKIT_QUEUE_PREFIX``), e.g. ``"rk1a2b3c4d:"``."""
        return self.queue_prefix or self.prefix.rstrip("/") + ":"

    @property
    def units(self) -> list[str]:
        return [self.leader, *[w for w in self.workers if w != self.leader]]

    def unit_dir(self, unit: str) -> Path:
        return self.root / "units" / unit

    def url(self, unit: str | None = None) -> str:
        """``http://127.0.0.1:<port>`` of ``unit`` (default the leader)."""
        return f"http://127.0.0.1:{self.ports[unit or self.leader]}"

    def env(self, unit: str) -> dict[str, str]:
        """Environment of every process of ``unit``."""
        extra = {"REPLAY_FILE": self.replay[unit]} if unit in self.replay else {}
        return {
            **extra,
            "DOT_PIOREACTOR": str(self.unit_dir(unit)),
            "HOSTNAME": unit,
            "HARDWARE": "replay" if unit in self.replay else "simulated",
            "MQTT_TOPIC_PREFIX": self.prefix,
            "REACTORKIT_SPEEDUP": repr(self.speedup),
            "REACTORKIT_CLOCK_ORIGIN": repr(self.clock_origin),
            "REACTORKIT_QUEUE_PREFIX": self.queue(),
            "REDIS_URL": self.redis_url,
            "PYTHONUNBUFFERED": "1",
            "REACTORKIT_API_AUTH": "on",
        }

    @property
    def admin_token_file(self) -> Path:
        """``<root>/admin_token``: the cluster's ``admin`` API token (mode 0600)."""
        return self.root / "admin_token"

    def admin_token(self) -> str:
        """The ``admin`` API token ``pio cluster up`` created ("" before the first start)."""
        try:
            return self.admin_token_file.read_text().strip()
        except OSError:
            return ""

    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer <admin token>`` for calls to the cluster's API."""
        return {"Authorization": f"Bearer {self.admin_token()}"}

    def mqtt_credentials(self, unit: str | None = None) -> tuple[str, str] | None:
        """``(username, password)`` of ``unit`` (default the leader) on the cluster's own broker, or None."""
        from reactorkit.core.auth.mqtt import read_unit_credentials

        return read_unit_credentials(self.unit_dir(unit or self.leader))

    def provision_tokens(self) -> str:
        """Give the leader the cluster token and an ``admin`` token (reused while valid), and every worker
        the token list and the cluster token; returns the admin token."""
        from reactorkit.core.auth.provision import provision

        return provision(self.unit_dir(self.leader), [self.unit_dir(w) for w in self.workers if w != self.leader],
                         admin_file=self.admin_token_file)

    def config_ini(self, unit: str, ui_sections: str = "") -> str:
        """The ``config.ini`` of ``unit``; ``ui_sections`` (the web UI's) are appended."""
        from reactorkit.core.webui.defaults import mqtt_section, section

        addresses = "\n".join(f"{u} = 127.0.0.1:{self.ports[u]}" for u in self.units)
        ui = {"port": self.ports[unit], **({"static_dir": self.ui_dir} if self.ui_dir and unit == self.leader else {})}
        return (
            "[cluster.topology]\n"
            f"leader_hostname = {self.leader}\n"
            "leader_address = 127.0.0.1\n\n"
            f"[cluster.addresses]\n{addresses}\n\n"
            f"{section('ui', ui)}\n"
            f"{mqtt_section(broker_address='127.0.0.1', broker_port=self.mqtt_port, broker_ws_port=self.mqtt_ws_port or 9001, topic_prefix=self.prefix)}\n"
            f"[redis]\nurl = {self.redis_url}\nqueue_prefix = {self.queue()}\n\n"
            f"[hardware]\nbackend = {'replay' if unit in self.replay else 'simulated'}\n\n"
            # a local cluster starts its own experiment each time: jobs of a run that was killed are reported, not
            # restarted ([reliability] restore_policy, reactorkit.core.restore)
            "[reliability]\nrestore_policy = stay_stopped\n\n"
            f"[simulation]\nspeedup = {self.speedup!r}\nclock_origin = {self.clock_origin!r}\n"
            f"seed = {abs(hash(unit)) % 10_000}\n"
            + (f"\n{ui_sections}" if ui_sections else "")
        )

    def write(self) -> None:
        """Create the folders and write ``cluster.json`` and every unit's ``config.ini``."""
        from reactorkit.core.webui.defaults import ui_sections

        web_ui = ui_sections()  # every unit: the UI reads a worker's merged config on its page
        for unit in self.units:
            folder = self.unit_dir(unit)
            (folder / "storage").mkdir(parents=True, exist_ok=True)
            atomic_write(folder / "config.ini", self.config_ini(unit, web_ui))
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["root"] = str(self.root)
        atomic_write(self.root / "cluster.json", json.dumps(data, indent=2))

    @classmethod
    def load(cls, root: Path) -> "ClusterLayout":
        """Read ``<root>/cluster.json``.

        Raises:
            FileNotFoundError: no cluster was set up under ``root``.
        """
        data = json.loads((root / "cluster.json").read_text())
        data["root"] = Path(data["root"])
        return cls(**data)

    @classmethod
    def new(cls, root: Path, *, workers: list[str], speedup: float, leader: str = "leader",
            redis_url: str = "redis://127.0.0.1:6379/0", replay: dict[str, str] | None = None) -> "ClusterLayout":
        """A fresh layout with a free port per unit."""
        layout = cls(root=root, leader=leader, workers=workers, speedup=speedup, redis_url=redis_url,
                     replay=dict(replay or {}), prefix="", queue_prefix=f"rk{uuid.uuid4().hex[:8]}:")
        ports: set[int] = set()
        while len(ports) < len(layout.units) + 2:  # one per unit, and the broker's TCP and WebSocket ports
            ports.add(free_port())
        *unit_ports, layout.mqtt_port, layout.mqtt_ws_port = sorted(ports)
        layout.ports = dict(zip(layout.units, unit_ports))
        return layout
