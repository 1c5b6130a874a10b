"""The docs pages' assets ship inside the package (the units are offline: no CDN)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[3]
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-favicon.png", "swagger-ui.LICENSE")


def test_a_built_wheel_holds_the_docs_assets(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("reactorkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ASSETS:
        assert f"reactorkit/api/static/{asset}" in names
    bundle = zipfile.ZipFile(wheel).read("reactorkit/api/static/swagger-ui-bundle.js")
    assert len(bundle) > 1_000_000 and b"SwaggerUIBundle" in bundle
