"""The pipeline (flowscan/pipeline.py): its stages in the documented order, and the one
options object it runs on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import flowscan
from flowscan import ScanOptions, UsageError
from flowscan.pipeline import STAGES, Stage

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_stages_run_in_the_order_the_readme_gives() -> None:
    block = README.split("names the stages and is the one place that runs them")[1]
    listed = re.search(r"```\n(.*?)```", block, re.S)
    assert listed is not None
    words = [w.strip() for w in listed.group(1).replace("\n", " ").split("->")]
    assert words == [str(stage) for stage in STAGES]
    assert STAGES[0] is Stage.READ and STAGES[-1] is Stage.REPORT


def test_the_options_object_and_keywords_give_the_same_report() -> None:
    """scan(path, ScanOptions(...)) and scan(path, **fields) are one call; giving both is
    refused, and an option the engine cannot honour is refused when the object is made."""
    path = "captures/lab/p2p-webrtc/capture.pcapng"
    keys = ("captures/lab/p2p-webrtc/keys.log",)
    by_object = flowscan.scan(path, ScanOptions(home="EU", keylog=keys))
    by_keywords = flowscan.scan(path, home="EU", keylog=list(keys))
    assert by_object == by_keywords
    assert any(f.encryption and f.encryption.basis == "decrypted" for f in by_object.flows)
    with pytest.raises(TypeError):
        flowscan.scan(path, ScanOptions(), home="EU")
    with pytest.raises(UsageError, match="cannot honour --keylog"):
        ScanOptions(engine="tshark", keylog=keys)
