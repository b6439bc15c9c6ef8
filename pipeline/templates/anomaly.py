"""The default pipeline: sensor time series -> Conv1D autoencoder -> verified int8 TFLite anomaly detector.

ingest -> statistics -> normalize -> window -> train -> {prune -> pqat, qat, cluster [-> cqat]} -> convert (one
.tflite per variant in ``convert.variants``) -> evaluate (every variant vs the Keras float model) -> report -> export
(the primary int8 variant is gated; the others are exported only when they pass the same bounds)
"""
from __future__ import annotations

from pathlib import Path

from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows, normalize
from edgepipe.components.evaluation import evaluate_anomaly
from edgepipe.components.export import export_bundle
from edgepipe.components.optimization import cluster_model, convert_tflite, prune_model, quantize_model
from edgepipe.components.optimization.variants import VARIANTS, active_variants, primary_variant
from edgepipe.components.report import render_report
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
    float_model = train.outputs["model"]  # the reference every variant is compared with
    optimized = _optimization_nodes(cfg, windows, float_model)
    nodes += list(optimized.values())
    active = active_variants(list(cfg.convert.variants), cfg.enabled())
    convert = convert_tflite(
        windows=windows, float_model=float_model,
        **{f"{source}_model": node.outputs[output] for source, (node, output) in
           _outputs(optimized).items()},
        variants=active, inference_type=cfg.convert.inference_type,
        allow_float_fallback=cfg.convert.allow_float_fallback,
        representative_samples=cfg.convert.representative_samples, seed=train_cfg.seed)
    evaluate = evaluate_anomaly(windows=windows, float_model=float_model, tflite=convert.outputs["tflite"],
                                threshold_quantile=cfg.evaluate.threshold_quantile,
                                threshold_margin=cfg.evaluate.threshold_margin,
                                latency_runs=cfg.evaluate.latency_runs)
    # The report comes before export, so a run whose export the verification gate refuses still has one.
    primary = primary_variant(cfg.convert.primary, active)
    report = render_report(statistics=statistics.outputs["statistics"], rejects=ingest.outputs["rejects"],
                           model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"],
                           tflite=convert.outputs["tflite"], primary=primary)
    export = export_bundle(tflite=convert.outputs["tflite"], evaluation=evaluate.outputs["evaluation"],
                           report=report.outputs["report"],
                           transform=transform.outputs["params"], windows=windows,
                           min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop,
                           primary=primary)
    nodes += [convert, evaluate, report, export]
    return Pipeline(cfg.pipeline.name, nodes)


def _optimization_nodes(cfg: Config, windows, float_model) -> dict:
    """The fine-tuning nodes the configured variants need, keyed by the model they produce (see variants.NEEDS)."""
    train_cfg = cfg.training
    active = active_variants(list(cfg.convert.variants), cfg.enabled())
    sources = {VARIANTS[name].source for name in active}
    common = {"windows": windows, "batch_size": train_cfg.batch_size, "seed": train_cfg.seed,
              "strategy": train_cfg.strategy}
    qat_args = {"epochs": cfg.qat.epochs, "learning_rate": cfg.qat.learning_rate}
    nodes = {}
    if sources & {"pruned", "pqat"}:
        nodes["pruned"] = prune_model(model=float_model, target_sparsity=cfg.prune.target_sparsity,
                                      epochs=cfg.prune.epochs, schedule=cfg.prune.schedule,
                                      learning_rate=cfg.prune.learning_rate, skip_layers=list(cfg.prune.skip_layers),
                                      structured_2_4=cfg.prune.structured_2_4, **common)
    if "qat" in sources:
        nodes["qat"] = quantize_model(model=float_model, scheme="default", **qat_args, **common)
    if "pqat" in sources:
        nodes["pqat"] = quantize_model(model=nodes["pruned"].outputs["pruned"], scheme="pqat", **qat_args,
                                       **common).named("pqat_model")
    if sources & {"clustered", "cqat"}:
        nodes["clustered"] = cluster_model(model=float_model, number_of_clusters=cfg.cluster.number_of_clusters,
                                           epochs=cfg.cluster.epochs, learning_rate=cfg.cluster.learning_rate,
                                           skip_layers=list(cfg.cluster.skip_layers), **common)
    if "cqat" in sources:
        nodes["cqat"] = quantize_model(model=nodes["clustered"].outputs["clustered"], scheme="cqat", **qat_args,
                                       **common).named("cqat_model")
    return nodes


def _outputs(nodes: dict) -> dict:
    output = {"pruned": "pruned", "qat": "qat_model", "pqat": "qat_model", "clustered": "clustered",
              "cqat": "qat_model"}
    return {source: (node, output[source]) for source, node in nodes.items()}
