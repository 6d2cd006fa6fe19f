"""The lab: reference captures made by real media stacks, with their ground truth.

`flowscan lab list` names the scenarios; `flowscan lab run SCENARIO -o DIR` runs one in
network namespaces the lab creates (root, iproute2, tcpdump; aiortc, coturn or baresip as
the scenario needs) and writes its capture, keys and manifest.
"""
