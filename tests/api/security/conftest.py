"""Apps with authentication on (the leader's and a worker's, in-process) and tokens of every scope."""

from __future__ import annotations

from dataclasses import dataclass

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.auth.tokens import TokenStore
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry


@dataclass
class Tokens:
    read: str
    control: str
    admin: str
    revoked: str

    def of(self, scope: str) -> str:
        return getattr(self, scope)


@pytest.fixture(scope="module")
def secured_root(tmp_path_factory: pytest.TempPathFactory):
    """A state folder shared by the module's apps, with ``REACTORKIT_API_AUTH=on``."""
    root = tmp_path_factory.mktemp("secured")
    patch = pytest.MonkeyPatch()
    patch.setenv("DOT_PIOREACTOR", str(root))
    patch.setenv("REACTORKIT_API_AUTH", "on")
    (root / "config.ini").write_text("[cluster.topology]\nleader_hostname = leader\n")
    set_config(None)
    yield root
    patch.undo()
    set_config(None)


@pytest.fixture(scope="module")
def tokens(secured_root) -> Tokens:
    store = TokenStore(secured_root)
    made = {scope: store.create(f"t-{scope}", scope)[0] for scope in ("read", "control", "admin")}
    revoked, record = store.create("t-revoked", "admin")
    store.revoke(record.id)
    return Tokens(**made, revoked=revoked)


@pytest.fixture(scope="module")
def secured_registry():
    return Registry.installed()


@pytest.fixture(scope="module")
def secured_leader(secured_root, secured_registry):
    return falcon.testing.TestClient(create_app(secured_registry, unit="leader", leader=True))


@pytest.fixture(scope="module")
def secured_worker(secured_root, secured_registry):
    return falcon.testing.TestClient(create_app(secured_registry, unit="worker1", leader=False))

