"""Refuse to convert from non-finite weights or calibration data, saying so.

Why: the TFLite converter calibrates int8 ranges on the representative inputs; a NaN there (or a model whose weights
are NaN because it trained on NaN) makes ranges NaN, and the converter then "leaves ops in float" -- reported as
``FULLY_CONNECTED ... no int8 kernel``, which is false and sends the user after the wrong layer. This check runs
before any int8 conversion and names the real cause: which weights, or which input column of the calibration
data and how many values.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edgepipe.pipeline.errors import DataError


def check_finite(net: Any, representative: Callable[[], Iterable[list[np.ndarray]]] | None,
                 feature_names: Sequence[str] | None = None) -> None:
    """DataError when a weight of ``net`` or a value the representative dataset yields is NaN/inf."""
    bad_weights = [w.name for w in net.weights if not np.isfinite(np.asarray(w.numpy(), np.float64)).all()]
    if bad_weights:
        raise DataError(f"model '{net.name}' has non-finite weights ({', '.join(bad_weights[:3])}"
                        f"{' ...' if len(bad_weights) > 3 else ''}): training produced NaN/inf, so int8 calibration "
                        "cannot compute ranges; fix the data (missing values: transform.impute) and retrain")
    if representative is None:
        return
    per_column: np.ndarray | None = None
    total = 0
    for batch in representative():
        x = np.asarray(batch[0])
        if not np.issubdtype(x.dtype, np.floating):
            continue
        bad = ~np.isfinite(x.reshape(len(x), -1))
        total += int(bad.sum())
        per_column = bad.sum(axis=0) if per_column is None else per_column + bad.sum(axis=0)
    if not total:
        return
    column = int(np.argmax(per_column))
    name = (f" '{feature_names[column]}'" if feature_names and column < len(feature_names)
            and len(per_column) == len(feature_names) else "")
    raise DataError(f"int8 calibration data holds {total:,} non-finite value(s), most in input column {column}{name} "
                    f"({int(per_column[column]):,}): the converter cannot calibrate NaN ranges (not a missing int8 "
                    "kernel); impute missing values (transform.impute) and retrain")
