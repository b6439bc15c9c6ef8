"""Train a DCGAN / conditional GAN; the Model artifact holds the generator (``model.h5``, what gets exported) and
the discriminator (``discriminator.h5``, used by evaluation's discriminator score)."""
from __future__ import annotations

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

EXECUTION_PARAMS = ("strategy", "workers", "task_index", "checkpoint_root", "verbose")


@component(version="1", execution_params=EXECUTION_PARAMS)
def train_gan(examples: Input[Examples], model: Output[Model], family: str = "dcgan", hparams: dict | None = None,
              x_key: str = "x", y_key: str = "label", epochs: int = 30, batch_size: int = 64, seed: int = 0,
              strategy: str = "auto", workers: list[str] | None = None, task_index: int | None = None,
              checkpoint_root: str | None = None, verbose: int = 0) -> dict:
    """Fit the GAN on the train split (no early stopping: GAN losses do not measure quality); checkpoint per epoch."""
    from edgepipe.components.training.fit import (checkpoint_dir, configure_run, count_examples, data_spec, fit,
                                                  remove_checkpoints, supervised_epochs)
    from edgepipe.models.registry import build, family as get_family, validate_hparams
    from edgepipe.models.strategy import get_strategy

    fam = get_family(family)
    if fam.trainer != "gan":
        raise ConfigError(f"train_gan trains GAN families (dcgan, cgan), not '{family}'")
    hparams = validate_hparams(family, dict(hparams or {}))
    conditional = family == "cgan"
    dist = get_strategy(strategy, workers=workers, task_index=task_index)
    run = configure_run(seed, deterministic=False)  # random noise per step; op determinism is not needed here
    if conditional and y_key not in examples.feature_spec:
        raise DataError(f"{examples.path}: cgan needs labels ('{y_key}')")
    spec = data_spec(examples, "generation", x_key, y_key if conditional else "__none__")
    n_train = count_examples(examples, "train")
    global_batch = int(batch_size) * int(dist.num_replicas_in_sync)
    steps = n_train // global_batch
    if steps == 0:
        raise DataError(f"{examples.path}: train split has {n_train} examples, fewer than one batch ({global_batch})")
    epoch_data = supervised_epochs(examples, "train", spec, global_batch, seed=seed, with_labels=conditional,
                                   drop_remainder=True)
    with dist.scope():
        gan = build(family, spec, **hparams)
    ckpt = checkpoint_dir(checkpoint_root, "train_gan")
    fitted = fit(gan, epoch_data, None, epochs=epochs, steps_per_epoch=steps, patience=0, lr_schedule="constant",
                 checkpoint=ckpt, tensorboard_dir=model.file("tensorboard"), verbose=verbose)
    remove_checkpoints(ckpt)
    model.save_keras(gan.export_generator)  # the weight-averaged generator when ema_decay > 0
    gan.discriminator.save(str(model.file("discriminator.h5")), include_optimizer=False)
    losses = fitted.history
    model.write_json("history.json", {"history": losses, "train_examples": n_train, "global_batch_size": global_batch,
                                      "resumed_at_epoch": fitted.resumed_at,
                                      "run": run, "strategy": {"name": strategy, "class": type(dist).__name__}})
    model.write_json("data_spec.json", spec.to_json())
    model.properties.update(ModelCard.record(
        family=family, task="generation", trainer="gan", data_spec=spec, hparams=hparams, conditional=conditional,
        latent_dim=gan.latent_dim, num_classes=spec.num_classes, class_names=spec.class_names or None,
        exported="generator", generator_ema_decay=gan.ema_decay).to_properties())
    return {"final_d_loss": losses["d_loss"][-1], "final_g_loss": losses["g_loss"][-1], "train_examples": n_train,
            "generator_parameters": int(gan.generator.count_params())}
