"""Train the window autoencoder: the model whose reconstruction error becomes the anomaly score.

By default it learns from normal windows only (``train_on="normal"``): an autoencoder that has seen anomalies
learns to reconstruct them and the score loses its contrast. Early stopping watches the loss on the eval split's
normal windows, i.e. how well *unseen normal* behaviour is reconstructed, which is what the threshold relies on.
The fit is the shared one (``fit.py``): per-epoch checkpoints under ``checkpoint_root`` make an interrupted training
resume at its last complete epoch and end with the weights an uninterrupted one would have had.
"""
from __future__ import annotations

import logging
import math

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import DataError

log = logging.getLogger(__name__)
SHUFFLE_BUFFER = 4096  # windows; as inputs.autoencoder_dataset(shuffle=True)


@component(execution_params=("strategy", "checkpoint_root"))
def train_autoencoder(windows: Input[Examples], model: Output[Model], filters: list[int] = [32, 16],
                      kernel_size: int = 7, epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3,
                      train_on: str = "normal", seed: int = 0, strategy: str = "auto", patience: int = 5,
                      checkpoint_root: str | None = None) -> dict:
    """Fit a Conv1D autoencoder on the train split's windows; save ``model.h5`` and ``history.json``.

    ``batch_size`` is per replica (global batch = batch_size * replicas). ``patience`` epochs without improvement
    of the eval-split normal-window loss stop training and restore the best weights. ``checkpoint_root`` (an
    execution parameter) keeps a checkpoint per epoch there until the component succeeds.
    """
    from edgepipe.components.training.fit import (checkpoint_dir, configure_run, epoch_seed, fit,
                                                  remove_checkpoints)
    from edgepipe.components.training.inputs import autoencoder_dataset, check_train_on, count_windows, window_shape
    from edgepipe.models.registry import build
    from edgepipe.models.strategy import get_strategy

    only_normal = check_train_on(train_on)
    window_size, channels = window_shape(windows)
    dist = get_strategy(strategy)
    replicas = int(dist.num_replicas_in_sync)
    global_batch = int(batch_size) * replicas
    run = configure_run(seed)

    n_train = count_windows(windows, "train", only_normal)
    if n_train == 0:
        raise DataError(f"train split of {windows.path} has no {'normal ' if only_normal else ''}windows to train on")
    n_eval = count_windows(windows, "eval", only_normal=True)
    drop = type(dist).__name__.startswith("TPU")  # TPUs need static batch shapes
    steps = n_train // global_batch if drop else math.ceil(n_train / global_batch)
    if steps == 0:
        raise DataError(f"train split of {windows.path} has fewer windows ({n_train}) than one batch ({global_batch})")

    # Streamed once in file order; each epoch shuffles it with its own seed, so a resumed fit sees the same batches.
    # (Building the whole input pipeline per epoch instead costs ~0.6 s an epoch before training starts.)
    stream = autoencoder_dataset(windows, "train", global_batch, only_normal).unbatch()

    def train_epoch(epoch: int):
        return stream.shuffle(SHUFFLE_BUFFER, seed=epoch_seed(seed, epoch)).batch(global_batch, drop_remainder=drop)

    eval_ds = autoencoder_dataset(windows, "eval", global_batch, True, drop_remainder=drop) if n_eval else None

    with dist.scope():
        net = build("autoencoder", window_size=window_size, channels=channels, filters=list(filters),
                    kernel_size=kernel_size, learning_rate=learning_rate)
    monitor = "val_loss" if eval_ds is not None else "loss"
    if eval_ds is None:
        log.warning("eval split has no normal windows: early stopping watches the training loss")
    ckpt = checkpoint_dir(checkpoint_root, "train_autoencoder")
    fitted = fit(net, train_epoch, eval_ds, epochs=epochs, steps_per_epoch=steps, learning_rate=learning_rate,
                 patience=max(1, patience), lr_schedule="constant", checkpoint=ckpt)
    remove_checkpoints(ckpt)

    losses = fitted.history
    best_epoch = int(min(range(len(losses[monitor])), key=losses[monitor].__getitem__))
    best = losses[monitor][best_epoch]
    model.save_keras(net)
    model.write_json("history.json", {
        "history": losses, "monitor": monitor, "best_epoch": best_epoch + 1, "epochs_run": len(losses["loss"]),
        "train_windows": n_train, "eval_normal_windows": n_eval, "global_batch_size": global_batch,
        "steps_per_epoch": steps, "resumed_at_epoch": fitted.resumed_at, "run": run,
        "strategy": {"name": strategy, "class": type(dist).__name__, "replicas": replicas}})
    model.properties.update(ModelCard.record(
        family="autoencoder", task="anomaly", window_size=window_size, channels=channels, train_on=train_on,
        hparams={"filters": list(filters), "kernel_size": kernel_size, "learning_rate": learning_rate},
        input_feature="window", score="reconstruction_mse").to_properties())
    return {"best_" + monitor: best, "epochs_run": len(losses["loss"]), "train_windows": n_train,
            "parameters": int(net.count_params())}
