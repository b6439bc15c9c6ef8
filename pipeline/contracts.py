"""Typed contracts for what components hand each other through artifacts: variant rows, the evaluation report,
the facts an Examples artifact states about itself.

Why: evaluation writes ``variants.json`` and ``evaluation.json``; export, the report, blessing, the tasks' bundle
code and the budget search read them; the data components write facts (``kind``, ``channels``, ``counts`` ...)
into ``Examples.properties`` that training, statistics and windowing read. Read as loose dict keys
(``row.get("fits")``, ``properties.get("kind")``) a renamed key or a differing default fails far from where it was
written. Each record here names every key once, with its type and default (the house example is
``models/card.py``'s :class:`ModelCard`).

The files are unchanged: a record keeps the keys it was read or built with, in order, explicit nulls included
(``recorded``), and any key this version does not know (``extra``), so ``from_dict(d).to_dict() == d`` for files
written before these classes existed, and a newer writer's file round-trips too. A value of the wrong type is a
:class:`DataError` naming the key and where it was read. A writer builds its record with ``build`` (a misspelt
field is a TypeError there) and checks it before writing (``checked``: ``ModelEvaluation.write_report``), so a
mistake fails at the writer. This module sits in ``pipeline`` beside the artifacts that load them
(``ModelEvaluation.report()``, ``.variant_rows()``, ``Examples.info()``), imports nothing else of edgepipe but the
errors, and no TensorFlow, so components, tasks, the search driver and config may all import it.
"""
from __future__ import annotations

import functools
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from edgepipe.pipeline.errors import DataError

R = TypeVar("R", bound="Record")
_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,),
            "tuple": (list, tuple), "list": (list, tuple)}


class Record:
    """Base of the frozen records: ``from_dict``/``to_dict`` keeping key order and unknown keys, ``updated``.

    A subclass is a ``@dataclass(frozen=True)`` ending in ``extra`` and ``recorded`` fields; ``_codecs`` maps a field
    to (decode JSON value, encode to JSON) where the typed value differs from the JSON one (a tuple for a list, a
    nested record for an object)."""

    _codecs: ClassVar[dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]]] = {}
    extra: dict[str, Any]
    recorded: tuple[str, ...]

    @classmethod
    def from_dict(cls: type[R], values: Mapping[str, Any], where: str = "") -> R:
        """The record of a JSON object; ``where`` (a file, a row) names it in the error of a mistyped value."""
        if not isinstance(values, Mapping):
            raise DataError(f"{where or cls.__name__}: expected a JSON object, got {type(values).__name__}")
        known, typed, extra = _known(cls), {}, {}
        for key, value in values.items():
            if key in known:
                typed[key] = _decode(cls, key, value, where)
            else:
                extra[key] = value
        missing = [f.name for f in fields(cls) if f.name in known and f.default is MISSING
                   and f.default_factory is MISSING and f.name not in typed]
        if missing:
            raise DataError(f"{where or cls.__name__}: no '{missing[0]}'")
        return cls(**typed, extra=extra, recorded=tuple(values))

    @classmethod
    def of(cls: type[R], value: R | Mapping[str, Any], where: str = "") -> R:
        """``value`` itself when it is already this record, else :meth:`from_dict`."""
        return value if isinstance(value, cls) else cls.from_dict(value, where)

    @classmethod
    def build(cls: type[R], extra: Mapping[str, Any] | None = None, **values: Any) -> R:
        """A writer's record: ``values`` by field name (typed values: tuples, nested records), each recorded, so
        ``to_dict`` writes exactly these keys (defaults and nulls included) plus ``extra``. A name that is no field
        is a TypeError here, where it was misspelt; keys of no field go in ``extra``."""
        known = _known(cls)
        wrong = [k for k in values if k not in known] + [k for k in extra or {} if k in known]
        if wrong:
            raise TypeError(f"{cls.__name__}: '{wrong[0]}' " + ("is a field: pass it by name, not in extra"
                            if wrong[0] in known else f"is no field (fields: {', '.join(known)}; others go in extra)"))
        extra = dict(extra or {})
        return cls(**values, extra=extra, recorded=(*values, *extra))

    def checked(self: R, where: str = "") -> R:
        """This record once every field holds its declared type (a nested record is checked too), else a DataError
        naming the key: what a writer calls before writing, so a wrong type fails at the writer, not at a reader."""
        for key in _known(type(self)):
            value = getattr(self, key)
            if value is None:
                continue
            _check(type(self), key, value, where)
            nested = _record_type(type(self), key)
            if nested is not None and not isinstance(value, nested):
                raise DataError(f"{where or type(self).__name__}: '{key}' must be {nested.__name__}, got {value!r}")
            if isinstance(value, Record):
                value.checked(f"{where or type(self).__name__} {key}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the recorded keys in order, then any field set since that differs from its default,
        then the unknown keys it was read with."""
        known = _known(type(self))
        keys = list(self.recorded)
        keys += [k for k in known if k not in keys and getattr(self, k) != _default(type(self), k)]
        keys += [k for k in self.extra if k not in keys]
        return {k: _encode(self, k) if k in known else self.extra[k] for k in keys}

    def updated(self: R, **values: Any) -> R:
        """A copy with ``values`` set (each recorded, ``None`` too; unknown keys go to ``extra``)."""
        known = _known(type(self))
        typed = {k: _decode(type(self), k, v, "") for k, v in values.items() if k in known}
        extra = {**self.extra, **{k: v for k, v in values.items() if k not in known}}
        recorded = self.recorded + tuple(k for k in values if k not in self.recorded)
        return replace(self, **typed, extra=extra, recorded=recorded)


def _known(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in ("extra", "recorded"))


def _default(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else (None if f.default is MISSING else f.default)


def _decode(cls: type, key: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    _check(cls, key, value, where)
    codec = cls._codecs.get(key)
    return codec[0](value) if codec else value


def _encode(record: Record, key: str) -> Any:
    value = getattr(record, key)
    codec = type(record)._codecs.get(key)
    return codec[1](value) if codec and value is not None else value


def _check(cls: type, key: str, value: Any, where: str) -> None:
    """A JSON value of the field's declared type (``int | None`` accepts an int; a float field an int), else a
    DataError naming the key; a nested record or anything else is checked by its codec."""
    hint = _hints(cls)[key]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    options = tuple(o for o in options if o is not type(None))
    allowed: tuple[type, ...] = ()
    for option in options:
        name = getattr(typing.get_origin(option) or option, "__name__", "")
        if name not in _SCALARS:
            return  # Any or a nested record: its codec decides
        allowed += _SCALARS[name]
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
        wanted = " or ".join(dict.fromkeys(getattr(typing.get_origin(o) or o, "__name__", str(o)) for o in options))
        raise DataError(f"{where or cls.__name__}: '{key}' must be {wanted}, got {value!r}")


def _record_type(cls: type, key: str) -> type | None:
    """The nested record type a field declares (``AgreementGate | None``), or None."""
    hint = _hints(cls)[key]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, Record)), None)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _tuple(value: Any) -> tuple:
    return tuple(value)


_LIST = (_tuple, list)


# ---- the variant table --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantRow(Record):
    """One row of the variant table (``variants.json``): a model variant and everything measured on it.

    Built by ``components/evaluation/variants.build_rows``, judged by ``gate`` (``exported``, ``reason``), the
    agreement re-read by the export gate, ``file``/``primary`` set by the bundle; read by export, report, blessing,
    ``tasks.variants.gated_primary`` and the budget search. Family evaluators add their own diagnostics
    (``mean_abs_pixel_diff``, ``max_abs_q_diff`` ...), kept in ``extra``."""

    variant: str  # "keras" (the float reference) or a catalogue name (tasks/variants.py)
    label: str | None = None  # human name ("int8 QAT")
    source: str | None = None  # which model it is converted from ("float", "qat", "pruned" ...)
    mode: str | None = None  # the converter mode ("int8", "float16" ...)
    file: str | None = None  # the .tflite file (evaluation: the variant's; bundle: the shipped name or None)
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    params: int | None = None
    sparsity: float | None = None
    latency_us: float | None = None  # batch-1 single-thread XNNPACK median
    metric_name: str | None = None  # the task metric ("f1", "accuracy", "average_return" ...)
    metric: float | None = None  # the variant's own value of it (None: undefined, e.g. no labels)
    metric_drop: float | None = None  # how much worse than Keras, in the metric's units
    agreement: float | None = None  # agreement of decisions with the Keras model (the one the gate judges)
    input_dtype: str | None = None
    float_ops: tuple[str, ...] | None = None  # ops an int8 model still runs in float
    exported: bool | None = None  # the gate's verdict (None: the Keras reference, or not gated yet)
    macs: int | None = None  # device cost from the graph (components/optimization/cost.py)
    arena_bytes: int | None = None
    energy_uj: float | None = None
    target: str | None = None  # a device target's name, and its judgement (components/optimization/targets.py)
    fits: bool | None = None
    fit_reasons: tuple[str, ...] | None = None
    size_vs_float32: float | None = None  # ratios to the float32 TFLite model
    gzip_vs_float32: float | None = None
    latency_vs_float32: float | None = None
    reason: str | None = None  # why the gate refused it
    primary: bool | None = None  # the bundle's table: shipped as model.tflite
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    recorded: tuple[str, ...] = field(default=(), repr=False, compare=False)

    _codecs: ClassVar[dict] = {"float_ops": _LIST, "fit_reasons": _LIST}

    @property
    def reference(self) -> bool:
        """The Keras float model every variant is compared with (never gated, never shipped)."""
        return self.variant == "keras"


def rows_from_json(values: Any, where: str) -> list[VariantRow]:
    """The rows of a ``variants.json`` document (a list of objects); DataError naming the file and row."""
    if not isinstance(values, list):
        raise DataError(f"{where}: expected a list of variant rows, got {type(values).__name__}")
    return [VariantRow.from_dict(row, f"{where} row {i}") for i, row in enumerate(values)]


def rows_to_json(rows: list[VariantRow]) -> list[dict[str, Any]]:
    return [row.to_dict() for row in rows]


# ---- the evaluation report --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgreementGate(Record):
    """Which agreement the export gate judges (``evaluation.json`` ``agreement_gate``; anomaly: ``decisive``)."""

    on: str = "all"  # the key of ``EvaluationReport.agreement[variant]`` the gate reads
    band: float | None = None  # the relative band around the threshold left out of ``decisive``
    definition: str | None = None  # what the gated agreement is measured on, in words
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    recorded: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class EvaluationReport(Record):
    """``evaluation.json``: what every evaluator hands export, the report and blessing.

    Common: ``metrics`` (the task's own report; the anomaly evaluator's is per model per split), ``models`` (each
    evaluated model: kind, file, sha256), ``agreement`` (per variant, per scope: ``all``, ``decisive`` ...), the
    variant metric. The anomaly evaluator adds thresholds, the input clip, counts and ``agreement_gate``; the
    supervised ones ``task``, ``split``, ``predictions_file``; the export adds ``blessing`` to the bundle's copy."""

    schema_version: int = 1
    task: str | None = None  # None for the anomaly evaluator's (its ``score`` says so)
    family: str | None = None
    score: str | dict[str, Any] | None = None  # the anomaly score: its name, or its description (runtime/scores.py)
    reference: str | None = None  # the model the variants are compared with ("keras")
    split: str | None = None  # the split a supervised model was scored on
    splits: tuple[str, ...] | None = None  # the splits the anomaly evaluator pooled
    threshold_quantile: float | None = None
    threshold_margin: float | None = None
    models: dict[str, Any] = field(default_factory=dict)  # model -> {kind, file, sha256, ...}
    input_clip: dict[str, Any] | None = None  # {"min", "max"} every model was fed (anomaly)
    thresholds: dict[str, Any] | None = None  # model -> anomaly threshold
    metrics: dict[str, Any] = field(default_factory=dict)
    metric_name: str | None = None  # the task metric the variants are compared by
    variant_metrics: dict[str, Any] | None = None  # model -> that metric
    variant_checks: dict[str, Any] | None = None  # a family's per-variant diagnostics
    agreement: dict[str, Any] = field(default_factory=dict)  # variant -> {scope: agreement}
    agreement_gate: AgreementGate | None = None
    counts: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    errors_file: str | None = None  # errors.npz (anomaly scores per window)
    predictions_file: str | None = None  # predictions.npz (supervised inputs and outputs)
    blessing: dict[str, Any] | None = None  # a retrain's blessing summary (the bundle's copy)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    recorded: tuple[str, ...] = field(default=(), repr=False, compare=False)

    _codecs: ClassVar[dict] = {"splits": _LIST, "warnings": _LIST,
                               "agreement_gate": (lambda v: AgreementGate.from_dict(v, "agreement_gate"),
                                                  AgreementGate.to_dict)}

    @property
    def pooled(self) -> str:
        """The anomaly splits the ``all`` metrics pooled, as summaries name them ("eval+test", "eval" without a
        test split); "eval+test" for a report that predates ``splits``."""
        return "+".join(self.splits or ("eval", "test"))

    def gated_agreement(self, variant: str) -> float | None:
        """The agreement the export gate judges: the scope ``agreement_gate.on`` names, else ``all``."""
        scope = self.agreement_gate.on if self.agreement_gate is not None else "all"
        return (self.agreement.get(variant) or {}).get(scope)

    def agreement_all(self, variant: str) -> float | None:
        """Agreement of decisions with the reference on all evaluated data."""
        return (self.agreement.get(variant) or {}).get("all")

    def model_metrics(self, model: str) -> dict[str, Any]:
        """The per-model metrics of the anomaly evaluator (``metrics[model]``: per split and ``all``)."""
        return self.metrics.get(model) or {}

    def sha256(self, variant: str) -> str | None:
        return (self.models.get(variant) or {}).get("sha256")

    @property
    def gate_scope(self) -> str:
        """What the gated agreement is measured on, in words."""
        return (self.agreement_gate.definition if self.agreement_gate else None) or "the evaluated data"


# ---- Examples ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExamplesInfo(Record):
    """The facts an Examples artifact states about itself (``Examples.properties``), as one typed view.

    Written by the ingest components (``kind``, ``channels``, ``counts``, ``class_names`` ...), carried by
    normalize/transform, extended by ``make_windows`` (``stride``, ``window_size``, ``label_mode``); read by
    windowing, statistics, normalization, training and the report. Lineage stores the properties as they are."""

    splits: tuple[str, ...] = ()
    feature_spec: dict[str, Any] = field(default_factory=dict)  # feature -> {"dtype", "shape"}
    kind: str | None = None  # "timeseries_chunks", "windows", "images", "rows" ...
    source: str | None = None  # where the examples came from ("tfds:mnist", a file)
    # series: the channel names in value order; images (ingest_images/_segmentation): the channel count
    channels: tuple[str, ...] | int | None = None
    counts: dict[str, Any] | None = None  # split -> examples (or windows)
    class_names: tuple[str, ...] | None = None  # label names, by class index
    num_classes: int | None = None
    transform: dict[str, Any] | None = None  # transform_features' numeric/categorical/impute
    normalization: str | None = None  # normalize's method
    has_labels: bool | None = None
    window_size: int | None = None  # make_windows: time steps per window
    stride: int | None = None  # make_windows: steps between window starts
    label_mode: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    recorded: tuple[str, ...] = field(default=(), repr=False, compare=False)

    _codecs: ClassVar[dict] = {"splits": _LIST, "class_names": _LIST,
                               "channels": (lambda v: v if isinstance(v, int) else tuple(v),
                                            lambda v: v if isinstance(v, int) else list(v))}

    @property
    def channel_names(self) -> list[str]:
        """The series' channel names (empty when the examples are not a series: images record a count)."""
        return [] if isinstance(self.channels, int) else list(self.channels or [])

    @property
    def impute(self) -> str | None:
        """transform_features' imputation (None: not transformed)."""
        return (self.transform or {}).get("impute")
