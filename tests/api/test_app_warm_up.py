"""A server's worker process builds its app warmed up (``get_app`` → ``warm_up``): the OpenAPI catalog is built
and jsonschema, redis and rq are imported before the first request, instead of inside the first requests
(0.4–2 s of a job's first start through the API on a loaded machine). Checked in a fresh interpreter, as a
gunicorn worker starts."""

from __future__ import annotations

import subprocess
import sys

WORKER = """
import sys
from reactorkit.api.app import get_app
app = get_app()
print("catalog built:", getattr(app.context, "openapi_catalog", None) is not None)
print("imported:", [name for name in ("jsonschema", "redis", "rq") if name in sys.modules])
"""


def test_a_worker_app_is_built_with_its_catalog_and_the_job_start_modules(unit_env):
    result = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, timeout=120,
                            env=unit_env.env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-2:] == ["catalog built: True", "imported: ['jsonschema', 'redis', 'rq']"]
