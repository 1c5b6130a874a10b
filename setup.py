"""Map the repository folders onto the ``reactorkit`` import root.

``core/`` is ``reactorkit.core``, ``api/`` is ``reactorkit.api``,
``builtin_plugins/`` is ``reactorkit.builtin_plugins`` and ``pkgroot/`` holds
``reactorkit/__init__.py`` itself and ``reactorkit.plugin`` (the public API for plugins). Sub-packages are found automatically, so a
new built-in plugin folder needs no change here.
"""
from setuptools import find_packages, setup

ROOTS = {"core": "reactorkit.core", "api": "reactorkit.api", "builtin_plugins": "reactorkit.builtin_plugins"}

package_dir = {"reactorkit": "pkgroot"}
packages = ["reactorkit", *(f"reactorkit.{sub}" for sub in find_packages("pkgroot"))]
for folder, name in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

# the Swagger UI files are data; listing their folder as a package keeps setuptools from warning
packages.append("reactorkit.api.static")
setup(packages=packages, package_dir=package_dir, package_data={"reactorkit.api.static": ["*"]})
