"""Templates for the model families other than the default anomaly detector.

* ``supervised``: ingest (CSV table or ``.npz`` arrays) -> train_model (mlp, cnn, rnn, conv1d, unet, mobilenet_v2,
  autoencoder) -> the variant stage shared with the anomaly template (``variant_stage.py``: prune / QAT / PQAT /
  cluster -> convert_tflite) -> evaluate_model (Keras and every variant, the family's metric) -> export_model (gated;
  int8 ``model.tflite``). Families with no int8 path (``variant_stage.NOT_QUANTIZABLE``: LSTM) skip the stage and
  ship float32, the reason recorded in ``bundle.json``;
* ``gan``: ingest -> train_gan (dcgan, cgan) -> convert_generator (float32, int8 PTQ on sampled latents, int8 QAT
  distilled from the float generator) -> evaluate_gan (sample grids, discriminator score; per variant: mean pixel
  difference vs Keras on fixed latents, discriminator score of its samples) -> export (the generator: int8 within
  the export bounds, else float32 with the reason);
* ``reinforcement``: train_dqn (TF-Agents, Gym env by name) -> convert_policy (float32, int8 PTQ on observations of
  the trained policy's episodes, int8 QAT distilled from its Q-values) -> evaluate_policy (average return; per
  variant: greedy-action agreement, its own average return) -> export (the greedy policy's Q-network, int8 within
  the bounds, else float32 with the reason).

``data.source`` is a CSV or ``.npz`` path, or ``builtin:<name>`` for the offline generated datasets of
:mod:`edgepipe.data.synthetic` (digits, shapes, waveforms, forecast), written once under ``ROOT/datasets``.
Hyperparameters (``model.hparams``) are checked against the family's builder when the pipeline is built, so a typo
or a wrong type fails before anything runs.
"""
from __future__ import annotations

from pathlib import Path

from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates.variant_stage import NOT_QUANTIZABLE, variant_stage

TEMPLATE_FAMILIES = {
    "supervised": ("mlp", "cnn", "rnn", "conv1d", "unet", "mobilenet_v2", "autoencoder"),
    "gan": ("dcgan", "cgan"),
    "reinforcement": ("dqn",),
}


def _check_family(cfg: Config, template: str) -> None:
    allowed = TEMPLATE_FAMILIES[template]
    if cfg.model.family not in allowed:
        raise ConfigError(f"config key 'model.family': template '{template}' trains {', '.join(allowed)}, "
                          f"not '{cfg.model.family}'")


def _ingest(cfg: Config):
    """The ingest node for ``data.source``: the Beam data components' ingest_csv/ingest_npz."""
    from edgepipe.components.data import ingest_csv, ingest_npz
    source = cfg.data.source
    if source.startswith("builtin:"):
        from edgepipe.data import synthetic

        name = source.split(":", 1)[1]
        if name not in synthetic.DATASETS:
            raise ConfigError(f"config key 'data.source': unknown built-in dataset '{name}' "
                              f"(allowed: {', '.join('builtin:' + n for n in synthetic.DATASETS)})")
        source = str(synthetic.ensure(name, Path(cfg.pipeline.root) / "datasets").resolve())
    path = Path(source).expanduser()
    if path.suffix == ".npz":
        # The npz's target array becomes the ``label`` feature: ``mask`` (per-pixel) for segmentation, else ``y``.
        y_key = "mask" if cfg.model.task == "segmentation" else "y"
        return ingest_npz(source=str(path), y_key=y_key, split=dict(cfg.data.split), **_beam(ingest_npz, cfg))
    if path.suffix == ".csv":
        return ingest_csv(source=str(path), label_column=cfg.data.label_column,
                          feature_columns=cfg.data.feature_columns, split=dict(cfg.data.split),
                          **_beam(ingest_csv, cfg))
    raise ConfigError(f"config key 'data.source': '{cfg.data.source}' is neither a .csv, a .npz nor builtin:<name>")


def _beam(component, cfg: Config) -> dict:
    return {"beam_args": list(cfg.pipeline.beam_args)} if "beam_args" in component.params else {}


def _execution(cfg: Config) -> dict:
    t = cfg.training
    return {"strategy": t.strategy, "workers": t.workers, "task_index": t.task_index,
            "checkpoint_root": str(Path(cfg.pipeline.root).resolve() / "checkpoints") if t.checkpoints else None}


def _export(model_ref, evaluation_ref, cfg: Config, tflite_ref=None, primary: str = "auto",
            float_reason: str | None = None):
    from edgepipe.components.export.family_bundle import export_model

    if tflite_ref is None:
        return export_model(model=model_ref, evaluation=evaluation_ref, tolerance=cfg.evaluate.tolerance,
                            float_reason=float_reason, seed=cfg.training.seed)
    return export_model(model=model_ref, evaluation=evaluation_ref, tflite=tflite_ref,
                        min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop,
                        primary=primary, seed=cfg.training.seed)


def supervised(cfg: Config) -> Pipeline:
    from edgepipe.components.evaluation.families import evaluate_model
    from edgepipe.components.training.train_model import train_model
    from edgepipe.models.registry import validate_hparams

    _check_family(cfg, "supervised")
    validate_hparams(cfg.model.family, dict(cfg.model.hparams))
    t = cfg.training
    ingest = _ingest(cfg)
    columns = {"feature_columns": list(cfg.data.feature_columns)} if cfg.data.feature_columns else {}
    train = train_model(examples=ingest.outputs["examples"], family=cfg.model.family, hparams=dict(cfg.model.hparams),
                        task=cfg.model.task, x_key=cfg.model.x_key, y_key=cfg.model.y_key, epochs=t.epochs, **columns,
                        batch_size=t.batch_size, patience=t.patience, lr_schedule=t.lr_schedule,
                        fine_tune_epochs=t.fine_tune_epochs, seed=t.seed, mixed_precision=t.mixed_precision,
                        **_execution(cfg))
    model = train.outputs["model"]
    reason = NOT_QUANTIZABLE.get(cfg.model.family)
    if reason is not None:
        evaluate = evaluate_model(examples=ingest.outputs["examples"], model=model, split=cfg.evaluate.split)
        export = _export(model, evaluate.outputs["evaluation"], cfg, float_reason=reason)
        return Pipeline(cfg.pipeline.name, [ingest, train, evaluate, export])
    stage = variant_stage(cfg, ingest.outputs["examples"], model)
    tflite = stage.convert.outputs["tflite"]
    evaluate = evaluate_model(examples=ingest.outputs["examples"], model=model, tflite=tflite,
                              split=cfg.evaluate.split, latency_runs=cfg.evaluate.latency_runs)
    export = _export(model, evaluate.outputs["evaluation"], cfg, tflite, stage.primary)
    return Pipeline(cfg.pipeline.name, [ingest, train, *stage.nodes, evaluate, export])


def gan(cfg: Config) -> Pipeline:
    from edgepipe.components.evaluation.families import evaluate_gan
    from edgepipe.components.training.train_gan import train_gan
    from edgepipe.models.registry import validate_hparams

    _check_family(cfg, "gan")
    validate_hparams(cfg.model.family, dict(cfg.model.hparams))
    t = cfg.training
    ingest = _ingest(cfg)
    train = train_gan(examples=ingest.outputs["examples"], family=cfg.model.family, hparams=dict(cfg.model.hparams),
                      x_key=cfg.model.x_key, y_key=cfg.model.y_key, epochs=t.epochs, batch_size=t.batch_size,
                      seed=t.seed, **_execution(cfg))
    judges = _judge(cfg, ingest)
    judged = {"classifier": judges[0].outputs["model"]} if judges else {}
    names = _family_variants(cfg)
    if names is None:
        evaluate = evaluate_gan(examples=ingest.outputs["examples"], model=train.outputs["model"],
                                split=cfg.evaluate.split, seed=t.seed, **judged)
        export = _export(train.outputs["model"], evaluate.outputs["evaluation"], cfg,
                         float_reason="convert.variants names no int8 variant a generator can have "
                                      "(int8_ptq, int8_qat): the float32 generator is shipped")
        return Pipeline(cfg.pipeline.name, [ingest, train, *judges, evaluate, export])
    from edgepipe.components.optimization.family_variants import convert_generator

    convert = convert_generator(model=train.outputs["model"], **_family_convert_args(cfg, names))
    evaluate = evaluate_gan(examples=ingest.outputs["examples"], model=train.outputs["model"],
                            tflite=convert.outputs["tflite"], split=cfg.evaluate.split, seed=t.seed,
                            latency_runs=cfg.evaluate.latency_runs, **judged)
    export = _family_export(train.outputs["model"], evaluate, convert, cfg, names)
    return Pipeline(cfg.pipeline.name, [ingest, train, *judges, convert, evaluate, export])


def _judge(cfg: Config, ingest) -> list:
    """The classifier that judges a GAN's samples (``evaluate.classifier``), trained on the same labelled images
    as an ordinary ``train_model`` node; none when the section is null."""
    from edgepipe.components.training.train_model import train_model

    judge = cfg.evaluate.classifier
    if judge is None:
        return []
    return [train_model(_name="train_judge", examples=ingest.outputs["examples"], family=judge.family,
                        hparams=dict(judge.hparams), task="classification", x_key=cfg.model.x_key,
                        y_key=cfg.model.y_key, epochs=judge.epochs, batch_size=32, patience=0, seed=cfg.training.seed,
                        **_execution(cfg))]


def _family_variants(cfg: Config) -> list[str] | None:
    """The variants a generator / Q-network gets (float32, int8_ptq, int8_qat: no pruning or clustering without a
    training loss), filtered like the variant stage (int8_qat needs qat enabled); None when no int8 one is left."""
    from edgepipe.components.optimization.family_variants import FAMILY_VARIANTS
    from edgepipe.components.optimization.variants import active_variants

    names = [n for n in active_variants(list(cfg.convert.variants), cfg.enabled()) if n in FAMILY_VARIANTS]
    return names if any(n != "float32" for n in names) else None


def _family_convert_args(cfg: Config, names: list[str]) -> dict:
    return {"variants": names, "representative_samples": cfg.convert.representative_samples,
            "qat_epochs": cfg.qat.epochs, "qat_learning_rate": cfg.qat.learning_rate,
            "batch_size": cfg.training.batch_size, "inference_type": cfg.convert.inference_type,
            "allow_float_fallback": cfg.convert.allow_float_fallback, "seed": cfg.training.seed}


def _family_export(model_ref, evaluate, convert, cfg: Config, names: list[str]):
    """Gated export that falls back to float32 (with the reason) rather than refusing: a generator or a policy
    whose int8 variant misses the bounds still ships, in float32."""
    from edgepipe.components.export.family_bundle import export_model

    primary = cfg.convert.primary if cfg.convert.primary in names else "auto"
    return export_model(model=model_ref, evaluation=evaluate.outputs["evaluation"], tflite=convert.outputs["tflite"],
                        min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop,
                        primary=primary, seed=cfg.training.seed, float_fallback=True)


def reinforcement(cfg: Config) -> Pipeline:
    from edgepipe.components.evaluation.families import evaluate_policy
    from edgepipe.components.training.train_dqn import train_dqn

    _check_family(cfg, "reinforcement")
    hparams = dict(cfg.model.hparams)
    env_name = hparams.pop("env_name", "CartPole-v0")
    execution = _execution(cfg)
    train = train_dqn(env_name=env_name, hparams=hparams, seed=cfg.training.seed,
                      checkpoint_root=execution["checkpoint_root"], time_budget_s=cfg.training.time_budget_s)
    names = _family_variants(cfg)
    if names is None:
        evaluate = evaluate_policy(model=train.outputs["model"], episodes=cfg.evaluate.episodes)
        export = _export(train.outputs["model"], evaluate.outputs["evaluation"], cfg,
                         float_reason="convert.variants names no int8 variant a Q-network can have "
                                      "(int8_ptq, int8_qat): the float32 Q-network is shipped")
        return Pipeline(cfg.pipeline.name, [train, evaluate, export])
    from edgepipe.components.optimization.family_variants import convert_policy

    args = _family_convert_args(cfg, names)
    args["batch_size"] = int(hparams.get("batch_size", 64))
    convert = convert_policy(model=train.outputs["model"], **args)
    evaluate = evaluate_policy(model=train.outputs["model"], tflite=convert.outputs["tflite"],
                               episodes=cfg.evaluate.episodes, variant_episodes=min(cfg.evaluate.episodes, 10),
                               latency_runs=cfg.evaluate.latency_runs)
    export = _family_export(train.outputs["model"], evaluate, convert, cfg, names)
    return Pipeline(cfg.pipeline.name, [train, convert, evaluate, export])
