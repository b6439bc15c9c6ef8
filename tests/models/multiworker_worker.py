"""One worker of the multi-worker test: runs the real ``train_model`` component under MultiWorkerMirroredStrategy.

``python tests/models/multiworker_worker.py EXAMPLES_DIR OUTPUT_DIR`` with TF_CONFIG set by the test.
"""
import json
import sys

import edgepipe  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from edgepipe.components.training.train_model import train_model
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.executor import invoke

if __name__ == "__main__":
    examples_dir, output_dir, checkpoint_root = sys.argv[1:4]
    outputs, metrics = invoke(train_model, {"examples": Examples.open(examples_dir)}, {"model": output_dir},
                              {"family": "mlp", "hparams": {"units": [16], "dropout": 0.0, "learning_rate": 0.05},
                               "epochs": 4, "batch_size": 16, "patience": 0, "lr_schedule": "constant",
                               "strategy": "multi_worker", "checkpoint_root": checkpoint_root, "verbose": 0})
    print(json.dumps(metrics))
