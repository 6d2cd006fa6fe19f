"""Packages and the compiled kernels: the record walker and the columnar decoder.

geodata/ is the project's home of the bundled databases; it is installed as the package
flowscan._geodata, so a wheel carries the databases and flowscan.geo.locate finds them with
importlib.resources wherever it is installed. pyproject.toml cannot add a mapped package to
the ones it finds, so the package list is made here.

The record walker (flowscan/capture/_walk.c) and the columnar decoder
(flowscan/capture/_columns.c) are optional: where they cannot be built, flowscan runs the
same steps in Python (flowscan/capture/walk.py, flowscan/capture/columns.py).
"""

from setuptools import Extension, find_packages, setup

setup(packages=[*find_packages(include=["flowscan", "flowscan.*"]), "flowscan._geodata"],
      package_dir={"flowscan._geodata": "geodata"},
      ext_modules=[Extension("flowscan.capture._walk", ["flowscan/capture/_walk.c"],
                             extra_compile_args=["-O2"], optional=True),
                   Extension("flowscan.capture._columns", ["flowscan/capture/_columns.c"],
                             extra_compile_args=["-O2"], optional=True)])
