"""What the pipeline knows about each task, declared once: the task registry and the variant catalogue.

A task (classification, segmentation, anomaly detection, generation, control ...) is one :class:`Task` registered
in one module of this package. Everything that used to list tasks by hand derives from here: the config's
``model.task`` Literal, the data spec's checks, the training and fine-tuning loss, the variant metric and decision
agreement, the int8 calibration source, the runtime task a bundle is written for, the bundle's task fields and
preprocessing, the verification inputs, the report's sections. Model families (``edgepipe.models.registry``)
name the tasks they do; the pipeline builder (``edgepipe.pipeline.templates``) asks the task for its stages.

No TensorFlow at import: config validation, ``edgepipe models`` and the KFP compiler read these declarations.
"""
from edgepipe.tasks.base import Task, builtin, chosen, get, names, register, registered, runtime_tasks, templates

__all__ = ["Task", "builtin", "chosen", "get", "names", "register", "registered", "runtime_tasks", "templates"]
