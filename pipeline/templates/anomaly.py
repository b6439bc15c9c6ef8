"""The default pipeline: sensor time series -> Conv1D autoencoder -> pruned, QAT int8 TFLite anomaly detector.

ingest -> statistics -> normalize -> window -> train -> [prune] -> [qat] -> convert -> evaluate -> export
"""
from __future__ import annotations

from pathlib import Path

from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows, normalize
from edgepipe.components.evaluation import evaluate_anomaly
from edgepipe.components.export import export_bundle
from edgepipe.components.optimization import convert_tflite, prune_model, quantize_model
from edgepipe.components.training import train_autoencoder
from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ConfigError

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
        beam_args=beam)
    statistics = compute_statistics(examples=ingest.outputs["examples"], beam_args=beam)
    transform = normalize(examples=ingest.outputs["examples"], statistics=statistics.outputs["statistics"],
                          method=cfg.normalize.method, beam_args=beam)
    window = make_windows(examples=transform.outputs["transformed"], size=cfg.window.size,
                          stride=cfg.window.stride, label_mode=cfg.window.label_mode, beam_args=beam)
    windows = window.outputs["windows"]
    train = train_autoencoder(
        windows=windows, filters=list(cfg.model.filters), kernel_size=cfg.model.kernel_size,
        epochs=train_cfg.epochs, batch_size=train_cfg.batch_size, learning_rate=train_cfg.learning_rate,
        train_on=train_cfg.train_on, seed=train_cfg.seed, strategy=train_cfg.strategy)
    nodes = [ingest, statistics, transform, window, train]
    float_model = train.outputs["model"]
    if cfg.prune.enabled:
        prune = prune_model(windows=windows, model=float_model, target_sparsity=cfg.prune.target_sparsity,
                            epochs=cfg.prune.epochs, schedule=cfg.prune.schedule, batch_size=train_cfg.batch_size,
                            learning_rate=cfg.prune.learning_rate, seed=train_cfg.seed)
        nodes.append(prune)
        float_model = prune.outputs["pruned"]
    int8_source = float_model  # without QAT the int8 model is post-training quantized from the float model
    if cfg.qat.enabled:
        qat = quantize_model(windows=windows, model=float_model, epochs=cfg.qat.epochs,
                             batch_size=train_cfg.batch_size, learning_rate=cfg.qat.learning_rate,
                             seed=train_cfg.seed)
        nodes.append(qat)
        int8_source = qat.outputs["qat_model"]
    convert = convert_tflite(windows=windows, float_model=float_model, qat_model=int8_source,
                             representative_samples=cfg.convert.representative_samples, seed=train_cfg.seed)
    evaluate = evaluate_anomaly(windows=windows, float_model=float_model, tflite=convert.outputs["tflite"],
                                threshold_quantile=cfg.evaluate.threshold_quantile,
                                threshold_margin=cfg.evaluate.threshold_margin)
    export = export_bundle(tflite=convert.outputs["tflite"], evaluation=evaluate.outputs["evaluation"],
                           transform=transform.outputs["params"], windows=windows,
                           min_agreement=cfg.export.min_agreement)
    nodes += [convert, evaluate, export]
    return Pipeline(cfg.pipeline.name, nodes)
