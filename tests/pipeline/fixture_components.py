"""Tiny pure-Python components for testing the DAG core without TensorFlow or Beam."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from edgepipe.pipeline.artifacts import Artifact, Examples, Model
from edgepipe.pipeline.component import Input, InputPath, Output, component

# Test switches: module state so the components' code (and so their cache keys) stays the same across runs.
SWITCHES: dict[str, object] = {"fail": set(), "barrier": None}


@component
def source(out: Output[Examples], value: int = 1, path: InputPath | None = None) -> dict:
    """Writes a number, optionally plus the content of an external file."""
    extra = Path(path).read_text() if path else ""
    out.write_json("value.json", {"value": value, "extra": extra})
    out.properties["splits"] = ["train"]
    return {"value": value}


@component
def increment(examples: Input[Examples], out: Output[Examples], step: int = 1) -> dict:
    if "increment" in SWITCHES["fail"]:
        out.write_json("value.json", {"partial": True})
        raise RuntimeError("increment was told to fail")
    barrier = SWITCHES["barrier"]
    if isinstance(barrier, threading.Barrier):
        barrier.wait()
    value = examples.read_json("value.json")["value"] + step
    out.write_json("value.json", {"value": value})
    return {"value": value}


@component
def combine(left: Input[Examples], right: Input[Examples], model: Output[Model]) -> dict:
    total = left.read_json("value.json")["value"] + right.read_json("value.json")["value"]
    model.write_json("total.json", {"total": total})
    return {"total": total}


@component
def slow(examples: Input[Examples], out: Output[Examples], marker: str = "") -> dict:
    """Writes part of its output, signals through ``marker`` that it is running, then sleeps (to be killed)."""
    out.write_json("value.json", {"value": -1})
    if marker and not os.environ.get("EDGEPIPE_TEST_NO_SLEEP"):
        Path(marker).write_text("running")
        time.sleep(60)
    out.write_json("value.json", {"value": examples.read_json("value.json")["value"] * 10})
    return {}


@component
def consume_model(model: Input[Model], out: Output[Artifact]) -> dict:
    out.write_json("seen.json", model.read_json("total.json"))
    return {}


@component
def maybe_add(base: Input[Examples], out: Output[Examples], extra: Input[Examples] | None = None) -> dict:
    """An optional input: connected or not, the pipeline builds."""
    value = base.read_json("value.json")["value"] + (extra.read_json("value.json")["value"] if extra else 0)
    out.write_json("value.json", {"value": value})
    return {"value": value}
