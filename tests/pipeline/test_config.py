"""Typed config: defaults, dotted overrides, and one-line errors naming the key and what is allowed."""
import subprocess
import sys

import pytest

from edgepipe.pipeline.config import Config, apply_override, load_config
from edgepipe.pipeline.errors import ConfigError


def test_default_config_is_the_bundled_default_yaml():
    config = load_config()
    assert isinstance(config, Config)
    assert config.pipeline.template == "anomaly_detection"
    assert config.window.size == 32 and config.export.min_agreement == 0.98


def test_dotted_overrides_are_parsed_as_yaml_values():
    config = load_config(None, ["window.size=64", "data.split={train: 0.5, eval: 0.25, test: 0.25}",
                                "prune.enabled=false", "pipeline.beam_args=[--runner=DirectRunner]"])
    assert config.window.size == 64
    assert config.data.split == {"train": 0.5, "eval": 0.25, "test": 0.25}
    assert config.prune.enabled is False


@pytest.mark.parametrize("override, message", [
    ("window.sizee=3", "unknown config key 'window.sizee' (allowed: size, stride, label_mode)"),
    ("bogus.x=1", "unknown config key 'bogus' (allowed: pipeline, data, normalize"),
    ("window.size=-1", "config key 'window.size': Input should be greater than 0 (got -1)"),
    ("window.size=abc", "config key 'window.size': Input should be a valid integer"),
    ("training.strategy=gpu", "config key 'training.strategy': must be one of 'auto'"),
    ("data.split={train: 0.9, eval: 0.3}", "config key 'data.split': fractions must be positive"),
    ("window.size=30", "window.size=30 must be divisible by 2**len(model.filters)=4"),
    ("evaluate.score_steps=33", "evaluate.score_steps=33 exceeds window.size=32"),
    ("evaluate.score=max", "config key 'evaluate.score': must be one of 'reconstruction_mse' or 'newest_mse'"),
    ("window=5", "config key 'window': Input should be a valid dictionary"),
    ("noequals", "expected dotted.key=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("window:\n  size: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+: not valid YAML"):
        load_config(bad)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file 'nope.yaml' does not exist"):
        load_config("nope.yaml")


def test_override_into_value_is_rejected():
    with pytest.raises(ConfigError, match="'size' is a value, not a section"):
        apply_override({"window": {"size": 3}}, "window.size.x=1")


def test_cli_exits_2_with_one_line_for_a_bad_key():
    proc = subprocess.run([sys.executable, "-m", "edgepipe", "run", "--set", "window.sizee=3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown config key 'window.sizee'" in lines[0]


def test_time_series_options_reach_the_ingest_node():
    from edgepipe.pipeline.templates import build_pipeline

    config = load_config(None, ["data.resample=10min", "data.gaps=interpolate", "data.bucket_rows=5000"])
    ingest = next(node for node in build_pipeline(config).nodes if node.component.name == "ingest_timeseries")
    assert (ingest.params["resample"], ingest.params["gaps"], ingest.params["bucket_rows"]) == ("10min",
                                                                                                "interpolate", 5000)
    with pytest.raises(ConfigError, match="data.gaps"):
        load_config(None, ["data.gaps=fill"])


@pytest.mark.parametrize("override, message", [
    ("window.sizee=64", "--set window.sizee=64: unknown config key 'window.sizee' (allowed: size, stride, label_mode)"),
    ("windo.size=3", "--set windo.size=3: unknown config key 'windo' (allowed: pipeline, data"),
    ("window.size=abc", "--set window.size=abc: config key 'window.size': Input should be a valid integer"),
    ("data.split={train: 0.9, eval: 0.3}", "--set data.split={train: 0.9, eval: 0.3}: config key 'data.split'"),
    ("window.size=30", "--set window.size=30: window.size=30 must be divisible by 2**len(model.filters)=4"),
    ("evaluate.episodes=3", "--set evaluate.episodes=3: config key 'evaluate.episodes': not read by task 'anomaly'"),
    ("evaluate.bogus=1", "--set evaluate.bogus=1: unknown config key 'evaluate.bogus'"),
])
def test_a_mistake_made_by_set_names_the_set_not_the_yaml_file(override, message):
    """The key came from --set: naming configs/default.yaml sent the user to a file without the mistake."""
    with pytest.raises(ConfigError) as err:
        load_config(None, ["training.epochs=2", override])
    assert str(err.value).startswith(message) and "default.yaml" not in str(err.value)


@pytest.mark.parametrize("yaml_text, overrides, message", [
    ("window:\n  sizee: 3\n", ["window.size=64"], "unknown config key 'window.sizee'"),
    ("window:\n  size: 30\n", ["window.stride=2", "model.kernel_size=3"], "window.size=30 must be divisible"),
    ("evaluate:\n  episodes: 3\n", ["evaluate.score_steps=4"], "config key 'evaluate.episodes': not read by task"),
])
def test_a_mistake_in_the_yaml_file_still_names_the_file(tmp_path, yaml_text, overrides, message):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert str(err.value).startswith(f"{path}: {message}")
