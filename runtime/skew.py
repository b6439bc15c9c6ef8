"""Raw table rows -> model input with the bundle's fitted transform, and a skew report against the train schema.

Why here: a table bundle (``preprocessing.kind: table`` with a ``transform`` object) was trained on imputed, scaled
and encoded columns (``components/data/transform.py``); a device has the CSV rows a user actually has -- blanks,
strings, categories never seen in training. :class:`TableTransform` re-implements the transform in NumPy with the
pipeline's arithmetic (cells parsed as the ingest parses them: float columns stored as float32, missing tokens
``"" NA NaN null``; imputation in raw units, then ``(x - center) / scale`` in float64, clipped, stored as float32;
vocabulary lookups with one OOV slot), so the runtime's input equals the pipeline's for the same row.

The skew report compares the rows of one request with what training saw (``preprocessing.schema``: the train
split's ``schema.json``), with the anomaly kinds of the pipeline's ``validate_examples``::

    {"rows": 2, "anomalies": [{"feature", "kind", "detail"}], "counts": {kind: n},
     "columns": {name: {"missing": k, "out_of_range": k, "new_categories": [...], "mean": m, "drift": d}}}

* ``missing_column``: a column of the schema absent from the input (its values are imputed, or refused without
  imputation); ``type_change``: text in a numeric column (imputed as missing);
* ``missing_values``: a missing share above train's + 5 points (only where the bundle has the train schema: without
  it the train share is unknown, and the count is in ``columns`` only); ``out_of_range``: values outside the train
  [min, max]; ``new_category``: strings outside the train domain (they use the OOV slot);
* ``mean_drift``: ``|mean - train mean| / train std > 1`` -- only for requests of at least ``MIN_DRIFT_ROWS`` rows
  (the mean of a handful of rows says little about the data's distribution); ``drift`` is always in ``columns``.

A skew finding never fails a prediction: it is reported beside it (``predict`` output, ``serve`` response).

A *series* (anomaly bundles: no schema, but the train split's normalization and the model's input domain,
``input_clip``) gets the same report from :func:`series_skew`, with two differences: values beyond the train range
count as skew only when they are more than ``SERIES_OUT_OF_RANGE`` of the input (a spike outside the range is what
the detector is for; a level outside it for a twentieth of the input is data the model never saw, fed to it clipped,
so its scores saturate); the mean drifts only beyond ``SERIES_MEAN_DRIFT`` train standard deviations (a stretch of a
series sits away from its overall mean by nature: one machine's first 400 rows of the embedded sensors are 1.25 std
off the pooled train mean); and the report is returned only when it finds something (a series' output is its steps).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgepipe.runtime.errors import InputError

MISSING = ("", "NA", "NaN", "null")  # the ingest's missing-value tokens (components/data/sources/shared.py)
OOV = "#oov"
MAX_MEAN_DRIFT = 1.0
MAX_MISSING_INCREASE = 0.05
MIN_DRIFT_ROWS = 30
SERIES_OUT_OF_RANGE = 0.05
SERIES_MEAN_DRIFT = 3.0
CLIP_SLACK = 1e-4  # train std: float32 rounding of input_clip, far below any skew worth reporting


def onehot_names(name: str, vocab: list[str]) -> list[str]:
    return [f"{name}={v}" for v in vocab] + [name + OOV]


class TableTransform:
    """The fitted transform of a table bundle: raw columns (``{name: [cell text or None, ...]}``) -> model input."""

    def __init__(self, pre: dict[str, Any]):
        self.rules: dict[str, dict[str, Any]] = pre["transform"]["features"]
        self.clip = pre["transform"].get("clip")
        self.features: list[str] = list(pre["features"])  # model input columns, in order
        self.columns: list[str] = list(pre.get("columns") or self.rules)
        self.schema: dict[str, Any] = (pre.get("schema") or {}).get("features") or {}

    def prepare(self, columns: dict[str, list[Any]]) -> tuple[np.ndarray, dict[str, Any]]:
        """``(x [n, features] float32, skew report)``; InputError for a missing value no rule can fill."""
        present = [c for c in self.columns if c in columns]
        if not present:
            raise InputError(f"rows: none of the bundle's columns ({', '.join(self.columns)}) are present")
        n = len(columns[present[0]])
        if n == 0:
            raise InputError("rows: empty (no rows)")
        report = Skew(n)
        out: dict[str, np.ndarray] = {}
        for name in self.columns:
            rule = self.rules[name]
            cells = columns.get(name)
            if cells is None:
                report.add(name, "missing_column", f"column '{name}' is missing: every value imputed")
                cells = [None] * n
            elif len(cells) != n:
                raise InputError(f"rows: column '{name}' has {len(cells)} values, '{present[0]}' has {n}")
            if rule["kind"] == "numeric":
                raw, text = self._numbers(name, cells)
                report.numeric(name, raw, text, self.schema.get(name, {}))
                missing = ~np.isfinite(raw)
                if missing.any() and rule.get("fill") is None:
                    row = int(np.flatnonzero(missing)[0])
                    raise InputError(f"row {row + 1}: column '{name}': missing value, and the bundle's transform "
                                     "has no imputation for it (transform.impute: none)")
                filled = np.where(missing, rule.get("fill") or 0.0, raw)
                scaled = (filled - rule["center"]) / rule["scale"]
                if self.clip is not None:
                    scaled = np.clip(scaled, -self.clip, self.clip)
                out[name] = scaled.astype(np.float32)
                if rule.get("indicator"):
                    out[rule["indicator"]] = missing.astype(np.float32)
            else:
                values = [_text(v) for v in cells]
                report.strings(name, values, self.schema.get(name, {}), rule["vocab"])
                lookup = {v: i for i, v in enumerate(rule["vocab"])}
                idx = np.array([lookup.get(v, rule["oov_index"]) for v in values], np.int64)
                if rule["encoding"] == "index":
                    out[name] = idx.astype(np.float32)
                else:
                    hot = np.eye(rule["oov_index"] + 1, dtype=np.float32)[idx]
                    for k, column in enumerate(onehot_names(name, rule["vocab"])):
                        out[column] = hot[:, k]
        x = np.stack([out[f] for f in self.features], axis=1)
        return x, report.done()

    def _numbers(self, name: str, cells: list[Any]) -> tuple[np.ndarray, int]:
        """Cells as the ingest parses them (float32 storage for float columns); text that is no number counts
        as missing, returned as how many."""
        values = np.full(len(cells), np.nan)
        text = 0
        for i, cell in enumerate(cells):
            if cell is None or isinstance(cell, bool):
                continue
            if isinstance(cell, (int, float)):
                values[i] = float(cell)
                continue
            cell = str(cell).strip()
            if cell in MISSING:
                continue
            try:
                values[i] = float(cell)
            except ValueError:
                text += 1
        values[~np.isfinite(values)] = np.nan
        if (self.schema.get(name) or {}).get("type", "float") == "float":
            values = values.astype(np.float32).astype(np.float64)
        return values, text


def check_transform(c: Any, pre: dict, names: list[str]) -> None:
    """Bundle validation (``c``: a ``runtime/checker.py`` Checker) of a transformed table: raw ``columns``, one rule
    each; ``transform.outputs`` are the model's ``features``; numeric rules scale by a positive number (``fill``
    null: no imputation), string rules have a vocabulary with the OOV slot after it; ``schema`` (optional) is an
    object of per-column objects."""
    t = c.obj(pre["transform"], "preprocessing.transform")
    columns = c.strings(c.get(pre, "columns", "preprocessing"), "preprocessing.columns")
    rules = c.obj(c.get(t, "features", "preprocessing.transform"), "preprocessing.transform.features")
    if sorted(columns) != sorted(rules):
        c.fail("preprocessing.columns", f"must name the transform's columns ({', '.join(rules)})")
    outputs = c.strings(c.get(t, "outputs", "preprocessing.transform"), "preprocessing.transform.outputs")
    if sorted(outputs) != sorted(names):
        c.fail("preprocessing.transform.outputs", "must name the same columns as preprocessing.features (the model "
                                                  "inputs, stacked in preprocessing.features order)")
    if t.get("clip") is not None:
        c.number(t["clip"], "preprocessing.transform.clip", positive=True)
    for name, rule in rules.items():
        key = f"preprocessing.transform.features.{name}"
        rule = c.obj(rule, key)
        if c.string(c.get(rule, "kind", key), f"{key}.kind", ("numeric", "categorical")) == "numeric":
            c.number(c.get(rule, "center", key), f"{key}.center")
            c.number(c.get(rule, "scale", key), f"{key}.scale", positive=True)
            if rule.get("fill") is not None:
                c.number(rule["fill"], f"{key}.fill")
        else:
            c.string(c.get(rule, "encoding", key), f"{key}.encoding", ("index", "onehot"))
            vocab = c.strings(c.get(rule, "vocab", key), f"{key}.vocab")
            if c.integer(c.get(rule, "oov_index", key), f"{key}.oov_index", minimum=0) != len(vocab):
                c.fail(f"{key}.oov_index", f"must be len(vocab) = {len(vocab)}")
    schema = pre.get("schema")
    if schema is not None:
        features = c.obj(c.get(c.obj(schema, "preprocessing.schema"), "features", "preprocessing.schema"),
                         "preprocessing.schema.features")
        for name, entry in features.items():
            c.obj(entry, f"preprocessing.schema.features.{name}")


class Skew:
    """Findings of one request against the train schema (see the module docstring)."""

    def __init__(self, rows: int):
        self.rows = rows
        self.anomalies: list[dict[str, Any]] = []
        self.columns: dict[str, dict[str, Any]] = {}

    def add(self, feature: str, kind: str, detail: str) -> None:
        self.anomalies.append({"feature": feature, "kind": kind, "detail": detail})

    def numeric(self, name: str, raw: np.ndarray, text: int, want: dict[str, Any], tolerance: float = 0.0,
                max_drift: float = MAX_MEAN_DRIFT) -> None:
        """``tolerance``: the share of values beyond the train range that is not yet skew (tables: none);
        ``max_drift``: the mean's distance from train's, in train std, that is not yet skew."""
        finite = raw[np.isfinite(raw)]
        stats: dict[str, Any] = {"missing": int(len(raw) - len(finite))}
        if text:
            self.add(name, "type_change", f"{text} of {len(raw)} value(s) are text in a numeric column")
        self._missing(name, stats["missing"], want)
        if len(finite) and want.get("min") is not None:
            outside = int(((finite < want["min"]) | (finite > want["max"])).sum())
            stats["out_of_range"] = outside
            if outside > tolerance * len(finite):
                self.add(name, "out_of_range", f"{outside} of {len(finite)} value(s) ({outside / len(finite):.1%}) "
                                               f"outside the training range [{want['min']:.6g}, {want['max']:.6g}]")
        if len(finite) and want.get("mean") is not None:
            mean, std = float(finite.mean()), want.get("std") or 0.0
            drift = abs(mean - want["mean"]) / std if std > 0 else (0.0 if mean == want["mean"] else math.inf)
            stats.update(mean=mean, drift=drift)
            if drift > max_drift and len(finite) >= MIN_DRIFT_ROWS:
                self.add(name, "mean_drift", f"mean {mean:.6g} vs train {want['mean']:.6g} ({drift:.2f} train std "
                                             f"> {max_drift})")
        self.columns[name] = stats

    def strings(self, name: str, values: list[str], want: dict[str, Any], vocab: list[str]) -> None:
        missing = sum(1 for v in values if v in MISSING)
        self._missing(name, missing, want)
        known = set(want.get("domain") or vocab)
        new = sorted({v for v in values if v not in MISSING and v not in known})
        count = sum(1 for v in values if v not in MISSING and v not in known)
        self.columns[name] = {"missing": missing, "new_categories": new[:10]}
        if new:
            what = "train domain" if want.get("domain") else "vocabulary"
            self.add(name, "new_category", f"{count} value(s) outside the {what} ({count / len(values):.1%}), "
                                           f"e.g. {new[0]!r}: encoded as out-of-vocabulary")

    def _missing(self, name: str, missing: int, want: dict[str, Any]) -> None:
        """Only against a known train share: a bundle without ``preprocessing.schema`` (a pipeline of your own
        without ``infer_schema``) has none, and reading it as 0% flagged training's own blanks as skew."""
        train = want.get("missing_fraction")
        share = missing / self.rows
        if missing and train is not None and share > train + MAX_MISSING_INCREASE:
            self.add(name, "missing_values", f"{missing} of {self.rows} value(s) missing ({share:.1%}; train "
                                             f"{train:.1%}): imputed")

    def done(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for a in self.anomalies:
            counts[a["kind"]] = counts.get(a["kind"], 0) + 1
        return {"rows": self.rows, "anomalies": self.anomalies, "counts": counts, "columns": self.columns}


def series_skew(series: np.ndarray, names: list[str], center: np.ndarray, scale: np.ndarray,
                clip: tuple[float, float] | None, method: str | None) -> dict[str, Any] | None:
    """The skew report of a raw series ``[T, C]`` against an anomaly bundle's training (module docstring), or None
    when nothing is found. The train range is the model's input domain (``input_clip``, in normalized units) mapped
    back through the normalization; the mean and spread are the normalization's own only for ``zscore`` (minmax and
    robust centres are not a mean). The range is widened by ``CLIP_SLACK`` normalized units: ``input_clip`` is stored
    in float32, and mapped back it put the floor of art_daily_no_noise (20.0, 42% of its steps) "outside" [20, 80]."""
    skew = Skew(len(series))
    for c, name in enumerate(names):
        want: dict[str, Any] = {}
        if clip is not None:
            want.update(min=float(center[c] + scale[c] * (clip[0] - CLIP_SLACK)),
                        max=float(center[c] + scale[c] * (clip[1] + CLIP_SLACK)))
        if method == "zscore":
            want.update(mean=float(center[c]), std=float(scale[c]))
        skew.numeric(name, np.asarray(series[:, c], dtype=np.float64), 0, want, tolerance=SERIES_OUT_OF_RANGE,
                     max_drift=SERIES_MEAN_DRIFT)
    return skew.done() if skew.anomalies else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
