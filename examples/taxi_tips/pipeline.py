"""TFX's taxi big-tipper as a pipeline of your own: ``edgepipe run examples/taxi_tips/pipeline.py
examples/taxi_tips/config.yaml``.

raw CSV -> ingest_csv -> label_big_tippers (this project's component, ``label.py``) -> statistics -> transform
(missing values imputed, strings to vocabulary indices, fitted on train) -> MLP -> float32 + int8 TFLite ->
evaluate on the held-out split -> verified bundle. Everything the run may vary comes from the config (``data``,
``model``, ``training``, ``convert``, ``evaluate``, ``export``), so ``--set`` and a compiled Kubeflow pipeline's
parameters reach it.
"""
from __future__ import annotations

from edgepipe.components.data import compute_statistics, ingest_csv, transform_features
from edgepipe.components.evaluation import evaluate
from edgepipe.components.export import export_bundle
from edgepipe.components.optimization import convert_tflite
from edgepipe.components.training.train_model import train_model
from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline

from taxi_tips.label import label_big_tippers

TASK = "classification"


def create_pipeline(config: Config) -> Pipeline:
    d, t, beam = config.data, config.training, list(config.pipeline.beam_args)
    features = list(d.feature_columns or [])
    ingest = ingest_csv(source=d.source, label_column=d.label_column, feature_columns=features or None,
                        split=dict(d.split), max_reject_fraction=d.max_reject_fraction, beam_args=beam)
    label = label_big_tippers(examples=ingest.outputs["examples"])
    statistics = compute_statistics(examples=label.outputs["labeled"], beam_args=beam)
    transform = transform_features(examples=label.outputs["labeled"], statistics=statistics.outputs["statistics"],
                                   categorical="index", beam_args=beam)
    examples = transform.outputs["transformed"]
    train = train_model(examples=examples, family=config.model.family, hparams=dict(config.model.hparams),
                        task=TASK, feature_columns=features or None, epochs=t.epochs, batch_size=t.batch_size,
                        patience=t.patience, seed=t.seed)
    convert = convert_tflite(model=train.outputs["model"], examples=examples, task=TASK,
                             variants=list(config.convert.variants), seed=t.seed,
                             representative_samples=config.convert.representative_samples)
    evaluation = evaluate(model=train.outputs["model"], examples=examples, tflite=convert.outputs["tflite"], task=TASK,
                          settings=config.evaluate)  # the task's evaluate section, whole
    export = export_bundle(model=train.outputs["model"], evaluation=evaluation.outputs["evaluation"],
                           tflite=convert.outputs["tflite"], transform=transform.outputs["params"], task=TASK,
                           primary=config.convert.primary, min_agreement=config.export.min_agreement,
                           max_metric_drop=config.export.max_metric_drop, seed=t.seed)
    return Pipeline(config.pipeline.name,
                    [ingest, label, statistics, transform, train, convert, evaluation, export])
