"""Per-epoch training state that lets an interrupted fit (Ctrl-C, ``kill -9``, a crash) continue where it stopped
and end with the weights an uninterrupted fit would have had. Used only by :func:`fit.fit`.

What a Keras fit carries from one epoch to the next, and where it is kept:

* model weights, optimizer slots and iterations, the epoch counter, the global ``tf.random.Generator``, and every
  generator a model or layer owns (tracked by Keras): one ``tf.train.Checkpoint`` (``ckpt-N``);
* the callbacks' own counters (early stopping's ``wait``/``best``/best weights, ReduceLROnPlateau's ``wait`` and
  cooldown) and the history so far: ``state.json`` (+ ``best-N.npz``), which names the checkpoint it belongs to and
  is replaced atomically after that checkpoint is written, so a kill between the two keeps the previous pair;
* the data order: not state at all, because :func:`fit.per_epoch` seeds each epoch's shuffle with its epoch number.

The directory is keyed by the execution's cache key (:func:`fit.checkpoint_dir`), so a changed config, input or
code never resumes a different training; the caller deletes it once the component succeeded.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
STATE = "state.json"
CALLBACK_FIELDS = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")


class EpochCheckpoint:
    """Saves after every epoch and restores before training; :meth:`callback` is added last to the fit's callbacks
    (after early stopping and the LR schedule, so it sees their updated state and re-applies restored state after
    their ``on_train_begin`` reset it)."""

    def __init__(self, directory: Path, model, callbacks: list):
        import tensorflow as tf

        self.directory = Path(directory)
        self.model = model
        self.stateful = [cb for cb in callbacks if any(hasattr(cb, f) for f in CALLBACK_FIELDS)]
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="edgepipe_epoch")
        strategy = model.distribute_strategy
        self.chief = bool(getattr(strategy.extended, "should_checkpoint", True))
        # Non-chief workers of a multi-worker job must take part in saving but not overwrite the chief's files.
        self.write_dir = self.directory if self.chief else Path(tempfile.mkdtemp(prefix="edgepipe-ckpt-worker-"))
        tracked = {"model": model, "epoch": self.epoch}
        try:  # configure_run seeds it; a generator anything draws from must continue, not restart
            tracked["rng"] = tf.random.get_global_generator()
        except RuntimeError:  # op determinism without a seeded global generator: nothing can have used it
            pass
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.write_dir), max_to_keep=2)
        self.history: dict[str, list[float]] = {}
        self.finished = False
        self._pending: list[dict[str, Any]] | None = None
        self._best_weights: list[np.ndarray] | None = None

    # ---- restore -----------------------------------------------------------------------------------------------
    def restore(self) -> int:
        """Load the last complete epoch's state if there is one; returns the epoch to continue from."""
        state_file = self.directory / STATE
        if not state_file.exists():
            return 0
        try:
            state = json.loads(state_file.read_text())
            path = self.directory / state["checkpoint"]
            with self.model.distribute_strategy.scope():
                self.checkpoint.restore(str(path)).assert_existing_objects_matched()
        except Exception as err:  # the model may be partly restored now: refuse rather than train from a mix
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise RuntimeError(f"{self.directory}: unusable training checkpoint ({detail}); delete the folder to "
                               "train from the start") from err
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.finished = bool(state.get("finished"))
        self._pending = state.get("callbacks")
        best = state.get("best_weights")
        if best:
            with np.load(self.directory / best) as saved:
                self._best_weights = [saved[f"w{i}"] for i in range(len(saved.files))]
        log.info("resuming training at epoch %d from %s", int(self.epoch.numpy()) + 1, self.directory)
        return int(self.epoch.numpy())

    def _apply_callback_state(self) -> None:
        if not self._pending:
            return
        for cb, values in zip(self.stateful, self._pending):
            for name, value in values.items():
                setattr(cb, name, value)
            if hasattr(cb, "best_weights") and self._best_weights is not None:
                cb.best_weights = self._best_weights
        self._pending = None

    # ---- save --------------------------------------------------------------------------------------------------
    def save(self, next_epoch: int, logs: dict[str, Any], finished: bool = False) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch.assign(next_epoch)
        path = Path(self.manager.save(checkpoint_number=next_epoch + (1000000 if finished else 0)))
        if not self.chief:
            return
        best_name = None
        best = next((cb.best_weights for cb in self.stateful if getattr(cb, "best_weights", None) is not None), None)
        if best is not None and not finished:
            best_name = f"best-{next_epoch}.npz"
            np.savez(self.directory / best_name, **{f"w{i}": w for i, w in enumerate(best)})
        state = {"checkpoint": path.name, "epoch": next_epoch, "finished": finished, "history": self.history,
                 "best_weights": best_name,
                 "callbacks": [{f: _plain(getattr(cb, f)) for f in CALLBACK_FIELDS if hasattr(cb, f)}
                               for cb in self.stateful]}
        tmp = self.directory / (STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.directory / STATE)
        for old in self.directory.glob("best-*.npz"):
            if old.name != best_name:
                old.unlink(missing_ok=True)

    def close(self) -> None:
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def callback(self):
        import tf_keras as keras

        owner = self

        class _Save(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                owner._apply_callback_state()

            def on_epoch_end(self, epoch, logs=None):
                owner.save(epoch + 1, logs or {})

            def on_train_end(self, logs=None):  # after early stopping restored the best weights
                owner.save(int(owner.epoch.numpy()), {}, finished=True)

        return _Save()


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
