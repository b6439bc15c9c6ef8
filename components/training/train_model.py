"""Train any supervised model family (mlp, cnn, rnn, conv1d, unet, mobilenet_v2, autoencoder) under tf.distribute.

The family and its hyperparameters come from the config (``model.family``, ``model.hparams``); the data spec
(input shape, classes) from the Examples artifact, so the same component trains a penguin classifier and a U-Net.
Hyperparameters and data/family fit are validated before the strategy starts or anything trains (one ConfigError).
"""
from __future__ import annotations

import logging
import math
from typing import Any

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

log = logging.getLogger(__name__)
EXECUTION_PARAMS = ("strategy", "workers", "task_index", "checkpoint_root", "verbose")


@component(version="1", execution_params=EXECUTION_PARAMS)
def train_model(examples: Input[Examples], model: Output[Model], family: str, hparams: dict | None = None,
                task: str = "classification", x_key: str = "x", y_key: str = "label",
                feature_columns: list[str] | None = None, num_classes: int | None = None, epochs: int = 20,
                batch_size: int = 32, patience: int = 5, lr_schedule: str = "plateau", fine_tune_epochs: int = 0,
                seed: int = 0, mixed_precision: bool = False, strategy: str = "auto",
                workers: list[str] | None = None, task_index: int | None = None,
                checkpoint_root: str | None = None, verbose: int = 0) -> dict:
    """Fit ``family`` on the train split (early stopping on the eval split), save ``model.h5``, ``history.json``,
    ``data_spec.json`` and TensorBoard logs (``tensorboard/``); ``encoder.h5`` too for autoencoders.

    ``batch_size`` is per replica. ``checkpoint_root`` (an execution parameter) enables resume: a checkpoint per
    epoch under a directory keyed by this execution's inputs and parameters, restored when the same training is
    retried after a failure and deleted once it succeeds.
    """
    from edgepipe.components.training.nonfinite import describe_cause
    from edgepipe.components.training.fit import (checkpoint_dir, configure_run, count_examples, data_spec, fit,
                                                  remove_checkpoints, supervised_dataset, supervised_epochs)
    from edgepipe.models.registry import family as get_family
    from edgepipe.models.registry import hyperparameters, validate_hparams
    from edgepipe.models.strategy import get_strategy

    fam = get_family(family)
    if fam.trainer not in ("supervised", "autoencoder"):
        raise ConfigError(f"model family '{family}' is trained by its own component ({fam.trainer}), not train_model")
    hparams = validate_hparams(family, dict(hparams or {}))
    if fam.trainer == "autoencoder":
        task = "reconstruction"
    elif task not in fam.tasks:
        raise ConfigError(f"model family '{family}' does not do task '{task}' (supported: {', '.join(fam.tasks)})")
    if epochs <= 0 or batch_size <= 0:
        raise ConfigError(f"epochs and batch_size must be positive (got {epochs}, {batch_size})")
    dist = get_strategy(strategy, workers=workers, task_index=task_index)  # before other TF work (multi_worker)
    run = configure_run(seed, mixed_precision)
    spec = data_spec(examples, task, x_key, y_key, feature_columns, num_classes)
    replicas = int(dist.num_replicas_in_sync)
    global_batch = int(batch_size) * replicas
    n_train = count_examples(examples, "train")
    if n_train == 0:
        raise DataError(f"train split of {examples.path} is empty")
    n_eval = count_examples(examples, "eval")
    labels = fam.trainer != "autoencoder"
    epoch_data = supervised_epochs(examples, "train", spec, global_batch, seed=seed, with_labels=labels)
    train_ds = epoch_data if labels else (lambda epoch: epoch_data(epoch).map(lambda x: (x, x)))
    steps = math.ceil(n_train / global_batch)
    eval_ds = supervised_dataset(examples, "eval", spec, global_batch, with_labels=labels) if n_eval else None
    if not labels and eval_ds is not None:
        eval_ds = eval_ds.map(lambda x: (x, x))
    with dist.scope():
        net = _build(family, spec, hparams)  # ConfigError here: nothing trained yet
    learning_rate = float(hparams.get("learning_rate", hyperparameters(family).get("learning_rate") or 1e-3))
    ckpt = checkpoint_dir(checkpoint_root, "train_model")
    cause = describe_cause(examples, list(spec.extra.get("features") or [x_key]), y_key if labels else None)
    first = fit(net, train_ds, eval_ds, epochs=epochs, steps_per_epoch=steps, learning_rate=learning_rate,
                patience=patience, lr_schedule=lr_schedule, checkpoint=ckpt / "phase1" if ckpt else None,
                tensorboard_dir=model.file("tensorboard/phase1"), verbose=verbose, non_finite=cause)
    history = first.history
    phases = {"phase1": history}
    resumed = {"phase1": first.resumed_at}
    fine_tune = getattr(net, "_edgepipe_fine_tune", None)
    if fine_tune_epochs > 0 and fine_tune is not None:
        from edgepipe.models.mobilenet import unfreeze_for_fine_tuning

        with dist.scope():
            trainable = unfreeze_for_fine_tuning(net, spec, fine_tune["fine_tune_at"], fine_tune["learning_rate"],
                                                 fine_tune["optimizer"])
        tuned = fit(net, train_ds, eval_ds, epochs=fine_tune_epochs, steps_per_epoch=steps,
                    learning_rate=fine_tune["learning_rate"], patience=patience, lr_schedule=lr_schedule,
                    checkpoint=ckpt / "fine_tune" if ckpt else None,
                    tensorboard_dir=model.file("tensorboard/fine_tune"), verbose=verbose, non_finite=cause)
        phases["fine_tune"], resumed["fine_tune"] = tuned.history, tuned.resumed_at
        phases["fine_tune_trainable_base_layers"] = trainable
    elif fine_tune_epochs > 0:
        log.warning("fine_tune_epochs is set but family '%s' has no frozen base: ignored", family)
    remove_checkpoints(ckpt)

    model.save_keras(net)
    if fam.trainer == "autoencoder":
        from edgepipe.models.autoencoder import encoder

        encoder(net).save(str(model.file("encoder.h5")), include_optimizer=False)
    monitor = "val_loss" if eval_ds is not None else "loss"
    final = phases.get("fine_tune") or history
    kept = tuned.best_epoch if "fine_tune" in phases else first.best_epoch  # numbered across phases, as the curves
    best_epoch = (len(history.get("loss", [])) + kept if "fine_tune" in phases else kept) if kept else None
    model.write_json("history.json", {
        "phases": phases, "monitor": monitor, "best_epoch": best_epoch, "train_examples": n_train, "eval_examples": n_eval,
        "global_batch_size": global_batch, "steps_per_epoch": steps, "resumed_at_epoch": resumed,
        "strategy": {"name": strategy, "class": type(dist).__name__, "replicas": replicas}, "run": run,
        "checkpoint_dir": str(ckpt) if ckpt else None})
    model.write_json("data_spec.json", spec.to_json())
    model.properties.update(ModelCard.record(
        family=family, task=spec.task, trainer=fam.trainer, data_spec=spec, hparams=hparams, input_feature=x_key,
        label_feature=y_key, encoder="encoder.h5" if fam.trainer == "autoencoder" else None).to_properties())
    metrics: dict[str, Any] = {"epochs_run": sum(len(h["loss"]) for h in (history, phases.get("fine_tune") or {})
                                                 if h), "train_examples": n_train,
                               "parameters": int(net.count_params())}
    metrics[f"final_{monitor}"] = final[monitor][-1]
    for key in ("val_accuracy", "accuracy", "val_mae"):
        if key in final:
            metrics[f"final_{key}"] = final[key][-1]
    return metrics


def _build(family: str, spec, hparams: dict):
    from edgepipe.models.registry import build

    return build(family, spec, **hparams)
