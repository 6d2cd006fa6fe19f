"""The compiled record walker (flowscan/capture/_walk.c). Optional: where it cannot be
built, flowscan runs the same walk in Python (flowscan/capture/walk.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("flowscan.capture._walk", ["flowscan/capture/_walk.c"],
                             extra_compile_args=["-O2"], optional=True)])
