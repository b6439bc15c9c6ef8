"""The default pipeline: sensor time series -> Conv1D autoencoder -> verified int8 TFLite anomaly detector.

ingest -> statistics -> normalize -> window -> train -> variant stage (``variant_stage.py``: {prune -> pqat, qat,
cluster [-> cqat]} -> convert, one .tflite per variant in ``convert.variants``) -> evaluate (every variant vs the Keras float model) -> report -> export
(the primary int8 variant is gated; the others are exported only when they pass the same bounds)
"""
from __future__ import annotations

from pathlib import Path

from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows, normalize
from edgepipe.components.evaluation import evaluate_anomaly
from edgepipe.components.export import export_bundle
from edgepipe.components.report import render_report
from edgepipe.components.training import train_autoencoder
from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates.variant_stage import variant_stage

BUILTIN_SOURCES = {"builtin:sensors": "default_dataset_path"}


def resolve_source(source: str) -> str:
    """``builtin:sensors`` names the embedded default data; anything else is a path or glob used as given."""
    if source.startswith("builtin:"):
        from edgepipe import data

        if source not in BUILTIN_SOURCES:
            raise ConfigError(f"config key 'data.source': unknown built-in source '{source}' "
                              f"(allowed: {', '.join(BUILTIN_SOURCES)})")
        return str(getattr(data, BUILTIN_SOURCES[source])())
    if "://" in source:  # a URL (gs://...): Path() would fold '//' into '/'
        return source
    return str(Path(source).expanduser())


def anomaly_detection(cfg: Config) -> Pipeline:
    beam = list(cfg.pipeline.beam_args)
    train_cfg = cfg.training
    ingest = ingest_timeseries(
        source=resolve_source(cfg.data.source), timestamp_column=cfg.data.timestamp_column,
        series_column=cfg.data.series_column, feature_columns=cfg.data.feature_columns,
        label_column=cfg.data.label_column, labels_json=cfg.data.labels_json, labels_key=cfg.data.labels_key,
        split=cfg.data.split, max_reject_fraction=cfg.data.max_reject_fraction, chunk_size=cfg.data.chunk_size,
        resample=cfg.data.resample, gaps=cfg.data.gaps, bucket_rows=cfg.data.bucket_rows, beam_args=beam)
    statistics = compute_statistics(examples=ingest.outputs["examples"], beam_args=beam)
    transform = normalize(examples=ingest.outputs["examples"], statistics=statistics.outputs["statistics"],
                          method=cfg.normalize.method, beam_args=beam)
    window = make_windows(examples=transform.outputs["transformed"], size=cfg.window.size,
                          stride=cfg.window.stride, label_mode=cfg.window.label_mode,
                          score_splits=["eval", "test"], beam_args=beam)  # what evaluate_anomaly scores
    windows = window.outputs["windows"]
    train = train_autoencoder(
        windows=windows, filters=list(cfg.model.filters), kernel_size=cfg.model.kernel_size,
        epochs=train_cfg.epochs, batch_size=train_cfg.batch_size, learning_rate=train_cfg.learning_rate,
        train_on=train_cfg.train_on, seed=train_cfg.seed, strategy=train_cfg.strategy,
        checkpoint_root=str(Path(cfg.pipeline.root).resolve() / "checkpoints") if train_cfg.checkpoints else None)
    nodes = [ingest, statistics, transform, window, train]
    float_model = train.outputs["model"]  # the reference every variant is compared with
    stage = variant_stage(cfg, windows, float_model)
    nodes += stage.nodes
    convert = stage.convert
    evaluate = evaluate_anomaly(windows=windows, float_model=float_model, tflite=convert.outputs["tflite"],
                                threshold_quantile=cfg.evaluate.threshold_quantile,
                                threshold_margin=cfg.evaluate.threshold_margin,
                                input_clip=cfg.evaluate.input_clip,
                                latency_runs=cfg.evaluate.latency_runs)
    # The report comes before export, so a run whose export the verification gate refuses still has one.
    primary = stage.primary
    report = render_report(statistics=statistics.outputs["statistics"], rejects=ingest.outputs["rejects"],
                           model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"],
                           tflite=convert.outputs["tflite"], primary=primary,
                           min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop)
    export = export_bundle(tflite=convert.outputs["tflite"], evaluation=evaluate.outputs["evaluation"],
                           report=report.outputs["report"],
                           transform=transform.outputs["params"], windows=windows,
                           min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop,
                           primary=primary)
    nodes += [evaluate, report, export]
    return Pipeline(cfg.pipeline.name, nodes)

