"""The runtime's JSON in and out: nesting is a ValueError, never a RecursionError; output is always strict JSON."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from edgepipe.runtime import jsonsafe, outputs


def strict(text: str):
    """Parse refusing the Infinity/NaN tokens Python's json writes by default."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"invalid JSON token {token}"))


def test_non_finite_numbers_are_written_as_null():
    record = {"score": math.inf, "scores": np.array([1.5, np.nan, -np.inf], np.float32), "n": np.int64(3),
              "nested": [{"x": float("nan")}]}
    assert strict(jsonsafe.dumps(record)) == {"score": None, "scores": [1.5, None, None], "n": 3,
                                              "nested": [{"x": None}]}


def test_predict_jsonl_and_csv_stay_valid_with_an_infinite_score():
    out = io.StringIO()
    assert outputs.write([{"series": "m1", "score": float("inf"), "errors": [1.0, float("inf")]}], out, "jsonl") == 1
    assert strict(out.getvalue()) == {"series": "m1", "score": None, "errors": [1.0, None]}
    out = io.StringIO()
    outputs.write([{"series": "m1", "score": float("inf"), "errors": [1.0, float("nan")]}], out, "csv")
    assert out.getvalue().splitlines()[1] == 'm1,,"[1.0, null]"'


def test_nesting_beyond_the_parser_or_the_limit_is_a_value_error():
    with pytest.raises(jsonsafe.NestingError, match="nested too deeply"):
        jsonsafe.loads("[" * 100000 + "]" * 100000)
    with pytest.raises(jsonsafe.NestingError, match="more than 3 levels"):
        jsonsafe.loads('{"a": [[{"b": 1}]]}', max_depth=3)
    assert jsonsafe.loads('{"a": [[1]]}', max_depth=3) == {"a": [[1]]}


def test_the_server_response_is_strict_json():
    pytest.importorskip("fastapi")
    from edgepipe.runtime.server import StrictJSONResponse

    body = StrictJSONResponse({"score": float("inf"), "values": np.array([np.nan])}).body
    assert strict(body.decode()) == {"score": None, "values": [None]}
