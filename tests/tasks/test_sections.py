"""The config's ``evaluate`` section per task (``Task.evaluate``, ``tasks/sections.py``): a key only another task
reads is refused when the config is read, naming the key and the task; defaults and the task's own keys are not; the
builder's evaluate keys and the README's table are derived from the same classes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from edgepipe import tasks
from edgepipe.pipeline.config import explicit_keys, load_config, validate
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates import resolve, uses
from edgepipe.tasks.sections import EvaluateSection, key_table, readers

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
# one shipped config per evaluation kind: anomaly, classification, regression (rnn), generation, control
BY_TASK = {"anomaly": "default", "classification": "mlp", "forecasting": "rnn", "generation": "cgan",
           "control": "dqn"}


def _value(key: str) -> str:
    """A valid value of ``evaluate.<key>`` for a task that reads it (its default), as --set text."""
    cls = next(t.evaluate for t in tasks.registered().values() if key in t.evaluate.model_fields)
    default = cls.model_fields[key].get_default(call_default_factory=True)
    return json.dumps(default.model_dump() if isinstance(default, BaseModel) else default)


@pytest.mark.parametrize("task, config", BY_TASK.items(), ids=BY_TASK.keys())
def test_a_key_only_other_tasks_read_is_refused_naming_key_and_task(task, config):
    assert resolve(load_config(config)).task.name == task
    own = tasks.get(task).evaluate.model_fields
    foreign = [key for key, names in readers(tasks.registered()).items() if task not in names]
    assert foreign and set(foreign).isdisjoint(own)
    for key in foreign:
        with pytest.raises(ConfigError) as caught:
            load_config(config, [f"evaluate.{key}={_value(key)}"])
        line = str(caught.value)
        assert "\n" not in line and f"config key 'evaluate.{key}': not read by task '{task}'" in line
        assert f"it reads: {', '.join(own)}" in line


@pytest.mark.parametrize("task, config", BY_TASK.items(), ids=BY_TASK.keys())
def test_the_tasks_own_keys_and_defaults_are_accepted(task, config):
    own = list(tasks.get(task).evaluate.model_fields)
    given = load_config(config, [f"evaluate.{key}={_value(key)}" for key in own])  # every own key, explicitly
    assert type(given.evaluate) is tasks.get(task).evaluate
    assert {k for k in explicit_keys(given) if k.startswith("evaluate.")} == {f"evaluate.{k}" for k in own}
    dumped = validate(given.model_dump(mode="json"), dumped=True)  # a compiled pipeline's parameters: all present
    assert type(dumped.evaluate) is type(given.evaluate) and dumped.evaluate == given.evaluate
    assert not [k for k in explicit_keys(dumped) if k.startswith("evaluate.")]  # defaults: not "given"


def test_a_typo_is_an_unknown_key_listing_what_the_task_reads():
    with pytest.raises(ConfigError, match=r"unknown config key 'evaluate.episode' \(allowed: latency_runs, "
                                          r"tolerance, episodes\)"):
        load_config("dqn", ["evaluate.episode=3"])


def test_a_bad_value_names_the_nested_key():
    with pytest.raises(ConfigError, match=r"config key 'evaluate.classifier.family': must be one of .*'cnn'"):
        load_config("cgan", ["evaluate.classifier.family=dcgan"])
    with pytest.raises(ConfigError, match=r"config key 'evaluate.episodes': Input should be greater than 0"):
        load_config("dqn", ["evaluate.episodes=0"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_gets_its_tasks_section_and_the_builder_reads_exactly_its_keys(path):
    config = load_config(path)
    task = resolve(config).task
    assert type(config.evaluate) is task.evaluate and issubclass(task.evaluate, EvaluateSection)
    read = {k for k in uses(config) if k.startswith("evaluate.")}
    assert read == {f"evaluate.{key}" for key in task.evaluate.model_fields}


def test_a_pipeline_of_your_own_gets_the_familys_task_section():
    """taxi_tips keeps the default template with an MLP: its evaluate section is the classification one."""
    config = load_config(ROOT / "examples" / "taxi_tips" / "config.yaml")
    assert type(config.evaluate) is tasks.get("classification").evaluate and config.evaluate.latency_runs == 20


def test_readme_table_is_the_registrys():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- evaluate-keys:[^\n]*-->\n(.*?)\n<!-- /evaluate-keys -->", text, re.S)
    assert block, "README.md lost its generated evaluate-keys table"
    assert block.group(1) == key_table(tasks.builtin())  # (a toy task another test registers is not listed)
