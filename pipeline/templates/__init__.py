"""Pipeline templates: functions from a validated :class:`Config` to a :class:`Pipeline`.

A template is where configuration meets components: it binds config values to component parameters and wires
outputs to inputs. Add a template by writing such a function and registering it in ``TEMPLATES``; the
``pipeline.template`` config key selects it.
"""
from __future__ import annotations

from typing import Callable

from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates.anomaly import anomaly_detection
from edgepipe.pipeline.templates.families import gan, reinforcement, supervised

TEMPLATES: dict[str, Callable[[Config], Pipeline]] = {
    "anomaly_detection": anomaly_detection,
    "supervised": supervised,
    "gan": gan,
    "reinforcement": reinforcement,
}


def build_pipeline(config: Config) -> Pipeline:
    try:
        template = TEMPLATES[config.pipeline.template]
    except KeyError:
        raise ConfigError(f"config key 'pipeline.template': unknown template '{config.pipeline.template}' "
                          f"(allowed: {', '.join(TEMPLATES)})") from None
    return template(config)
