"""Package discovery (the metadata is in setup.cfg).

Every package under ``pyro_vaes/`` is found automatically, and so is every package under ``models/`` and
``guides/``, which install as ``pyro_vaes.models`` and ``pyro_vaes.guides`` (never as top-level ``models`` or
``guides``): a new subpackage needs no edit here. ``tests/test_package.py`` builds the wheel and checks it.
"""

from setuptools import find_packages, setup

MAPPED = ("models", "guides")  # folders at the repository root installed under the pyro_vaes namespace

packages = find_packages(include=["pyro_vaes", "pyro_vaes.*"])
for folder in MAPPED:
    packages += [f"pyro_vaes.{folder}"] + [f"pyro_vaes.{folder}.{p}" for p in find_packages(folder)]

setup(packages=packages, package_dir={f"pyro_vaes.{folder}": folder for folder in MAPPED})
