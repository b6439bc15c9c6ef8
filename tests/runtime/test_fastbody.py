"""The lean numeric body parser (runtime/fastbody.py): same arrays as ``json.loads`` for what it accepts, and None
(the full parser's turn) for anything it cannot vouch for."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.runtime.fastbody import parse_numeric_body

KEYS = ["series", "windows"]


def test_numeric_bodies_parse_to_the_same_float64_arrays_as_json():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(500, 3)) * 10.0 ** rng.integers(-30, 30, size=(500, 3))  # within float32
    raw = json.dumps({"series": series.tolist()}).encode()
    key, array = parse_numeric_body(raw, KEYS)
    assert key == "series" and array.dtype == np.float64
    assert np.array_equal(array, np.asarray(json.loads(raw)["series"], dtype=np.float64))
    windows = rng.normal(size=(4, 5, 3)).round(4)
    key, array = parse_numeric_body(json.dumps({"windows": windows.tolist()}).encode(), KEYS)
    assert key == "windows" and np.array_equal(array, windows)
    assert parse_numeric_body(b' {\n"series" : [ [1 , 2] ,\n [3,4] ] } ', KEYS)[1].tolist() == [[1, 2], [3, 4]]
    assert parse_numeric_body(b'{"series": [[1], [2]]}', KEYS)[1].shape == (2, 1)
    assert parse_numeric_body(b'{"series": [-0.0, 1E+2, 3e-2, 1e05]}', KEYS)[1].tolist() == [-0.0, 100, 0.03, 1e5]


@pytest.mark.parametrize("raw", [
    b'{"series": [[1,2],[3]]}', b'{"series": [[1,2,3],[4,5]]}', b'{"series": [[1,2]3,[4,5]]}', b'{"series": []}',
    b'{"series": [[]]}', b'{"series": [[1],[]]}', b'{"series": [[1,"2"]]}', b'{"series": [[1,null]]}',
    b'{"series": [[NaN,1]]}', b'{"series": [[true,1]]}', b'{"series": [[01,1]]}', b'{"series": [[-01,1]]}',
    b'{"series": [[+1,1]]}', b'{"series": [[1,,2]]}', b'{"series": [[1,2,]]}', b'{"series": [[1e999,2]]}',
    b'{"series": [[1e39,2]]}', b'{"series": [[1-2,3]]}', b'{"series": [[1.,2]]}', b'{"series": [[.5,2]]}',
    b'{"series": [[1e,2]]}', b'{"series": [[1.2.3,2]]}', b'{"series": [[1,2]]]}', b'{"series": [[1,2]][[3,4]]}',
    b'{"series": 5}', b'[[1]]', b'{"rows": [[1,2]]}', b'{"series": [[1,2]], "windows": []}',
    b'{"series": [[1,2]]} x', b'{"series": [1,[2]]}', b'{"series": [[[[[[1]]]]]]}',
])
def test_anything_else_is_left_to_the_full_parser(raw):
    assert parse_numeric_body(raw, KEYS) is None
