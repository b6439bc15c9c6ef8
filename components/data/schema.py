"""infer_schema and validate_examples: what the training data looks like, and whether other data still does.

``schema.json`` (from the TRAIN split's statistics): ``{"fit_split", "kind", "features": {name: {"type":
"float"|"int"|"string", "shape", "required", "min", "max", "mean", "std", "missing_fraction", "domain"}}}``
(``domain``: the string values seen in train, when there are at most ``max_domain_size``).

``validation.json``: ``{"anomalies": [{"split", "feature", "kind", "detail", "measure"}], "counts": {kind: n},
"checked": [splits], "failed": bool}`` (``measure``, where a kind has numbers: ``drift``; ``unseen``, ``share``;
``fraction``). Anomaly kinds:

* ``missing_column``: a feature of the schema is absent from the split's statistics;
* ``unexpected_column``: a feature the schema does not know;
* ``type_change``: float/int/string differs;
* ``out_of_range``: a numeric min/max beyond the training range widened by ``range_margin`` x its span;
* ``mean_drift``: ``|mean - train mean| / train std > max_mean_drift``;
* ``missing_values``: missing fraction above train's + ``max_missing_increase``;
* ``new_category``: string values outside the training domain (the unseen share of the top values).

Every anomaly is reported; the run fails (DataError, one line) only for kinds listed in ``fail_on``.
"""
from __future__ import annotations

import math

from edgepipe.pipeline.artifacts import ExampleStatistics, Schema, ValidationReport
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

ANOMALY_KINDS = ("missing_column", "unexpected_column", "type_change", "out_of_range", "mean_drift",
                 "missing_values", "new_category")


@component(version="1")
def infer_schema(statistics: Input[ExampleStatistics], schema: Output[Schema], fit_split: str = "train",
                 max_domain_size: int = 100) -> dict:
    """Expected features, types, ranges and string domains from the statistics of the train split."""
    stats = statistics.read_json("statistics.json")
    fitted = stats.get("splits", {}).get(fit_split)
    if fitted is None:
        raise DataError(f"{statistics.path}: statistics have no '{fit_split}' split to infer a schema from")
    features = {}
    total = max(int(fitted.get("num_steps", fitted.get("num_examples", 0))), 1)
    for name, st in (fitted.get("features") or fitted.get("channels") or {}).items():
        entry = {"type": st.get("type", "float"), "shape": st.get("shape"), "required": True}
        present = st.get("count", 0) + st.get("missing", 0)
        entry["missing_fraction"] = st.get("missing", 0) / max(present, 1) if present else 0.0
        if entry["type"] == "string":
            if st.get("unique", 0) <= max_domain_size:
                entry["domain"] = sorted(v for v, _ in st.get("top", []))
        else:
            entry.update(min=st.get("min"), max=st.get("max"), mean=st.get("mean"), std=st.get("std"))
        features[name] = entry
    out = {"fit_split": fit_split, "kind": stats.get("kind", ""), "num_examples": total, "features": features}
    schema.write_json("schema.json", out)
    schema.properties.update(fit_split=fit_split, features=sorted(features))
    return {"features": len(features)}


def check_split(split: str, stats: dict, schema: dict, max_mean_drift: float, range_margin: float,
                max_missing_increase: float) -> list[dict]:
    found = stats.get("features") or stats.get("channels") or {}
    expected = schema["features"]
    anomalies = []

    def add(feature, kind, detail, **measure):
        """``measure``: the finding's numbers, for readers that summarize it (the run summary) without parsing
        ``detail``; an infinite drift (train std 0) is stored as null, which strict JSON can hold."""
        record = {"split": split, "feature": feature, "kind": kind, "detail": detail}
        if measure:
            record["measure"] = {k: (v if v is None or math.isfinite(v) else None) for k, v in measure.items()}
        anomalies.append(record)

    for name, want in expected.items():
        got = found.get(name)
        if got is None:
            add(name, "missing_column", f"feature '{name}' is missing")
            continue
        got_type = got.get("type", "float")
        if got_type != want["type"]:
            add(name, "type_change", f"type {want['type']} -> {got_type}")
            continue
        present = got.get("count", 0) + got.get("missing", 0)
        fraction = got.get("missing", 0) / present if present else 0.0
        if fraction > want.get("missing_fraction", 0.0) + max_missing_increase:
            add(name, "missing_values", f"missing {fraction:.2%} (train {want.get('missing_fraction', 0):.2%})",
                fraction=fraction)
        if want["type"] == "string":
            domain = want.get("domain")
            if domain is not None and got.get("count", 0):
                unseen = [(v, c) for v, c in got.get("top", []) if v not in set(domain)]
                if unseen:
                    share = sum(c for _, c in unseen) / got["count"]
                    add(name, "new_category", f"{len(unseen)} unseen values ({share:.2%} of values), e.g. "
                                              f"{unseen[0][0]!r}", unseen=len(unseen), share=share)
            continue
        if not got.get("count") or want.get("min") is None:
            continue
        span = (want["max"] - want["min"]) or abs(want["max"]) or 1.0
        lo, hi = want["min"] - range_margin * span, want["max"] + range_margin * span
        if got["min"] < lo or got["max"] > hi:
            add(name, "out_of_range", f"[{got['min']:.6g}, {got['max']:.6g}] outside training range "
                                      f"[{want['min']:.6g}, {want['max']:.6g}]")
        std = want.get("std") or 0.0
        drift = abs(got["mean"] - want["mean"]) / std if std > 0 else (0.0 if got["mean"] == want["mean"]
                                                                        else float("inf"))
        if drift > max_mean_drift:
            add(name, "mean_drift", f"mean {got['mean']:.6g} vs train {want['mean']:.6g} "
                                    f"({drift:.2f} train std > {max_mean_drift})", drift=drift)
    for name in found:
        if name not in expected:
            add(name, "unexpected_column", f"feature '{name}' is not in the schema")
    return anomalies


@component(version="1")
def validate_examples(statistics: Input[ExampleStatistics], schema: Input[Schema],
                      report: Output[ValidationReport], max_mean_drift: float = 1.0, range_margin: float = 0.0,
                      max_missing_increase: float = 0.05, fail_on: list[str] = [],
                      splits: list[str] | None = None) -> dict:
    """Check splits' statistics (default: all but the schema's training split) against the schema; write every
    anomaly to ``validation.json``; raise DataError if any anomaly's kind is listed in ``fail_on``."""
    unknown = [k for k in fail_on if k not in ANOMALY_KINDS]
    if unknown:
        raise ConfigError(f"validate_examples: unknown anomaly kind(s) {unknown} in fail_on "
                          f"(allowed: {', '.join(ANOMALY_KINDS)})")
    stats = statistics.read_json("statistics.json")
    spec = schema.read_json("schema.json")
    available = list(stats.get("splits", {}))
    chosen = list(splits) if splits is not None else [s for s in available if s != spec.get("fit_split")]
    missing = [s for s in chosen if s not in available]
    if missing:
        raise DataError(f"{statistics.path}: statistics have no split(s) {missing} (available: {available})")
    anomalies = []
    for split in chosen:
        anomalies += check_split(split, stats["splits"][split], spec, max_mean_drift, range_margin,
                                 max_missing_increase)
    counts = {kind: sum(1 for a in anomalies if a["kind"] == kind) for kind in ANOMALY_KINDS}
    fatal = [a for a in anomalies if a["kind"] in fail_on]
    report.write_json("validation.json", {"anomalies": anomalies, "counts": counts, "checked": chosen,
                                          "failed": bool(fatal), "fail_on": list(fail_on)})
    report.properties.update(checked=chosen, anomalies=len(anomalies), failed=bool(fatal))
    if fatal:
        first = fatal[0]
        raise DataError(f"{len(fatal)} anomal{'y' if len(fatal) == 1 else 'ies'} of kind(s) "
                        f"{sorted({a['kind'] for a in fatal})} in fail_on; first: split '{first['split']}', "
                        f"feature '{first['feature']}': {first['kind']}: {first['detail']}")
    return {"anomalies": len(anomalies), **{k: v for k, v in counts.items() if v}}
