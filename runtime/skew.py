"""Raw table rows -> model input with the bundle's fitted transform, and a skew report against the train schema.

Why here: a table bundle (``preprocessing.kind: table`` with a ``transform`` object) was trained on imputed, scaled
and encoded columns (``components/data/transform.py``); a device has the CSV rows a user actually has -- blanks,
strings, categories never seen in training. :class:`TableTransform` re-implements the transform in NumPy with the
pipeline's arithmetic (cells parsed as the ingest parses them: float columns stored as float32, missing tokens
``"" NA NaN null``; imputation in raw units, then ``(x - center) / scale`` in float64, clipped, stored as float32;
vocabulary lookups with one OOV slot), so the runtime's input equals the pipeline's for the same row.

The skew report compares the rows of one request with what training saw (``preprocessing.schema``: the train
split's ``schema.json``), with the anomaly kinds of the pipeline's ``validate_examples``::

    {"rows": 2, "anomalies": [{"feature", "kind", "detail", "rows": [1-based rows, the first few]}],
     "counts": {kind: n}, "columns": {name: {"missing": k, "text": k, "out_of_range": k, "new_categories": [...],
     "mean": m, "drift": d}}, "not_checked": ["out_of_range: no train schema in the bundle", ...]}

A bundle of your own pipeline without ``infer_schema`` has no schema, but its fitted transform still knows what
training saw: a ``zscore`` rule's center and scale are the train mean and std, ``train_missing``/``train_rows`` the
train missing share, a vocabulary the train categories. Those checks run on them; one that nothing in the bundle
allows (the train range without a schema) is listed in ``not_checked`` rather than reported as "none". A finding
about values names where they are: the first rows (1-based; for a file also its line) and a value.

* ``missing_column``: a column of the schema absent from the input (its values are imputed, or refused without
  imputation); ``type_change``: text in a numeric column (imputed, but counted as text, not as a missing value);
* ``missing_values``: a missing share above train's + 5 points (only where the train share is known: without it
  the count is in ``columns`` only); ``out_of_range``: values outside the train
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
NAMED_ROWS = 5  # rows a finding names (and lists under "rows"): enough to find the bad data, not a copy of it


class Rows(dict):
    """Raw table columns ``{name: [cell, ...]}`` and, for a file, each row's line in it (``lines``), so that a
    finding names the lines to fix."""

    def __init__(self, columns: dict[str, list[Any]], lines: list[int] | None = None):
        super().__init__(columns)
        self.lines = lines


def as_columns(raw: Any) -> dict[str, list[Any]]:
    """A dict of columns (``{name: [cell, ...]}``, or ``{name: cell}`` for one row) as columns. Row objects (a list
    of them, or a body ``{"rows": [...]}``) are converted and checked by ``runtime/bodies.py`` ``_rows``, the one
    reader of rows for requests, JSON Lines files and Python callers alike."""
    if not isinstance(raw, dict):
        raise InputError(f"rows: expected a dict of columns, a list of row objects or {{\"rows\": [...]}}, got "
                         f"{type(raw).__name__}")
    if isinstance(raw, Rows) or not raw:
        return raw
    listed = [isinstance(v, (list, tuple, np.ndarray)) for v in raw.values()]
    if not any(listed):  # one row as {column: value}
        return Rows({name: [value] for name, value in raw.items()})
    if not all(listed):
        name = next(n for n, is_list in zip(raw, listed) if not is_list)
        raise InputError(f"rows: column '{name}' is a single value, the others are lists")
    return Rows({name: list(values) for name, values in raw.items()})


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
        self.train, self.not_checked = train_expectations(pre)

    def prepare(self, raw: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """``(x [n, features] float32, skew report)`` from raw rows (see :func:`as_columns`); InputError for a
        missing value no rule can fill."""
        columns = as_columns(raw)
        present = [c for c in self.columns if c in columns]
        if not present:
            raise InputError(f"rows: none of the bundle's columns ({', '.join(self.columns)}) are present"
                             + (f" (got: {', '.join(list(columns)[:10])})" if columns else ""))
        n = len(columns[present[0]])
        if n == 0:
            raise InputError("rows: empty (no rows)")
        report = Skew(n, getattr(columns, "lines", None), self.not_checked)
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
                report.numeric(name, raw, text, self.train.get(name, {}))
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
                report.strings(name, values, self.train.get(name, {}), rule["vocab"])
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

    def _numbers(self, name: str, cells: list[Any]) -> tuple[np.ndarray, dict[int, str]]:
        """Cells as the ingest parses them (float32 storage for float columns); text that is no number is NaN
        (imputed), and returned by row index so the report counts it as text, not as a missing value."""
        values = np.full(len(cells), np.nan)
        text: dict[int, str] = {}
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
                text[i] = cell
        values[~np.isfinite(values)] = np.nan
        if (self.schema.get(name) or {}).get("type", "float") == "float":
            values = values.astype(np.float32).astype(np.float64)
        return values, text


def train_expectations(pre: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """What each column looked like in training -- the schema entry where the bundle has the train schema, else
    what the fitted transform knows (module docstring) -- and the checks that nothing in the bundle allows."""
    transform = pre["transform"]
    rules: dict[str, dict[str, Any]] = transform["features"]
    schema = (pre.get("schema") or {}).get("features") or {}
    train: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name, rule in rules.items():
        if name in schema:
            train[name] = schema[name]
            continue
        want: dict[str, Any] = {}
        if rule.get("train_rows"):
            want["missing_fraction"] = rule.get("train_missing", 0) / rule["train_rows"]
        else:
            skipped["missing_values"] = "no train missing share in the bundle"
        if rule["kind"] == "numeric":
            skipped["out_of_range"] = "no train schema in the bundle"
            if transform.get("numeric") == "zscore":
                want.update(mean=rule["center"], std=rule["scale"])
            else:
                skipped["mean_drift"] = f"no train mean and std in the bundle (scaling {transform.get('numeric')})"
        train[name] = want
    return train, [f"{check}: {why}" for check, why in skipped.items()]


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
        for count in ("train_missing", "train_rows"):  # optional: the train missing share of the skew report
            if rule.get(count) is not None:
                c.integer(rule[count], f"{key}.{count}", minimum=0)
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

    def __init__(self, rows: int, lines: list[int] | None = None, not_checked: list[str] | None = None):
        self.rows = rows
        self.lines = lines  # the file line of each row, where the rows come from a file
        self.not_checked = list(not_checked or [])
        self.anomalies: list[dict[str, Any]] = []
        self.columns: dict[str, dict[str, Any]] = {}

    def add(self, feature: str, kind: str, detail: str, rows: list[int] | None = None, value: Any = None) -> None:
        """One finding; ``rows``: 0-based indices of the rows it is about (named with the first ``value``)."""
        entry: dict[str, Any] = {"feature": feature, "kind": kind, "detail": detail + self._where(rows, value)}
        if rows:
            entry["rows"] = [i + 1 for i in rows[:NAMED_ROWS]]
        self.anomalies.append(entry)

    def _where(self, rows: list[int] | None, value: Any) -> str:
        """`` (rows 11, 27; e.g. 'twelve' at line 12)``: the first rows, 1-based, and the first one's value."""
        if not rows:
            return ""
        named = ", ".join(str(i + 1) for i in rows[:NAMED_ROWS]) + (f" and {len(rows) - NAMED_ROWS} more"
                                                                     if len(rows) > NAMED_ROWS else "")
        shown = repr(value) if isinstance(value, str) else f"{value:.6g}"
        line = f" at line {self.lines[rows[0]]}" if self.lines else ""
        return f" (row{'s' if len(rows) > 1 else ''} {named}; e.g. {shown}{line})"

    def numeric(self, name: str, raw: np.ndarray, text: dict[int, str], want: dict[str, Any],
                tolerance: float = 0.0, max_drift: float = MAX_MEAN_DRIFT) -> None:
        """``text``: row index -> the text found in this numeric column (NaN in ``raw``, but not missing);
        ``tolerance``: the share of values beyond the train range that is not yet skew (tables: none);
        ``max_drift``: the mean's distance from train's, in train std, that is not yet skew."""
        finite_mask = np.isfinite(raw)
        finite = raw[finite_mask]
        stats: dict[str, Any] = {"missing": int(len(raw) - len(finite) - len(text))}
        if text:
            stats["text"] = len(text)
            rows = sorted(text)
            self.add(name, "type_change", f"{len(text)} of {len(raw)} value(s) are text in a numeric column, "
                                          "imputed", rows, text[rows[0]])
        self._missing(name, stats["missing"], want)
        if len(finite) and want.get("min") is not None:
            outside_mask = finite_mask & ((raw < want["min"]) | (raw > want["max"]))
            outside = int(outside_mask.sum())
            stats["out_of_range"] = outside
            if outside > tolerance * len(finite):
                rows = np.flatnonzero(outside_mask).tolist()
                self.add(name, "out_of_range", f"{outside} of {len(finite)} value(s) ({outside / len(finite):.1%}) "
                                               f"outside the training range [{want['min']:.6g}, {want['max']:.6g}]",
                         rows, float(raw[rows[0]]))
        if len(finite) and want.get("mean") is not None:
            mean, std = float(finite.mean()), want.get("std") or 0.0
            drift = abs(mean - want["mean"]) / std if std > 0 else (0.0 if mean == want["mean"] else math.inf)
            stats.update(mean=mean, drift=drift)
            if drift > max_drift and len(finite) >= MIN_DRIFT_ROWS:
                self.add(name, "mean_drift", f"mean {mean:.3g} vs train {want['mean']:.3g} ({drift:.3g} train std "
                                             f"> {max_drift:g})")
        self.columns[name] = stats

    def strings(self, name: str, values: list[str], want: dict[str, Any], vocab: list[str]) -> None:
        missing = sum(1 for v in values if v in MISSING)
        self._missing(name, missing, want)
        known = set(want.get("domain") or vocab)
        rows = [i for i, v in enumerate(values) if v not in MISSING and v not in known]
        new = sorted({values[i] for i in rows})
        self.columns[name] = {"missing": missing, "new_categories": new[:10]}
        if rows:
            what = "train domain" if want.get("domain") else "vocabulary"
            self.add(name, "new_category", f"{len(rows)} value(s) outside the {what} ({len(rows) / len(values):.1%}"
                                           "): encoded as out-of-vocabulary", rows, values[rows[0]])

    def _missing(self, name: str, missing: int, want: dict[str, Any]) -> None:
        """Only against a known train share (the schema's, or the transform's ``train_missing / train_rows``): a
        bundle with neither has none, and reading it as 0% flagged training's own blanks as skew."""
        train = want.get("missing_fraction")
        share = missing / self.rows
        if missing and train is not None and share > train + MAX_MISSING_INCREASE:
            self.add(name, "missing_values", f"{missing} of {self.rows} value(s) missing ({share:.1%}; train "
                                             f"{train:.1%}): imputed")

    def done(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for a in self.anomalies:
            counts[a["kind"]] = counts.get(a["kind"], 0) + 1
        return {"rows": self.rows, "anomalies": self.anomalies, "counts": counts, "columns": self.columns,
                **({"not_checked": self.not_checked} if self.not_checked else {})}


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
        skew.numeric(name, np.asarray(series[:, c], dtype=np.float64), {}, want, tolerance=SERIES_OUT_OF_RANGE,
                     max_drift=SERIES_MEAN_DRIFT)
    return skew.done() if skew.anomalies else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
