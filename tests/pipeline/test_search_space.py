"""search.space choices are checked when the config loads (exit 2, one line naming search.space.<dimension> and the
bad value), not per trial: a non-number where a number is needed used to reach int() inside an Optuna trial (a
traceback, exit 1), and an unknown quantization variant failed every trial and ended as exit 4."""
import pytest

from edgepipe.pipeline import cli
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError


@pytest.mark.parametrize("space,shown", [
    ("{window: [abc]}", "search.space.window: 'abc' is not a whole number >= 1"),
    ("{depth: [x]}", "search.space.depth: 'x' is not a whole number >= 1"),
    ("{depth: [0, 2]}", "search.space.depth: 0 is not"),
    ("{width: [-1, 0, 0.5]}", "search.space.width: -1, 0 are not a number > 0"),
    ("{sparsity: [1.5]}", "search.space.sparsity: 1.5 is not"),
    ("{quantization: [bogus, pqat]}", "search.space.quantization: 'bogus' is not an int8 variant"),
    ("{quantization: [float16]}", "search.space.quantization: 'float16' is not an int8 variant"),
])
def test_a_bad_choice_is_a_config_error_naming_the_dimension_and_value(space, shown):
    with pytest.raises(ConfigError, match="search.space") as err:
        load_config(None, ["search.trials=2", f"search.space={space}"])
    assert shown in str(err.value)


def test_valid_choices_load():
    config = load_config(None, ["search.space={depth: [1, 2.0], width: [0.25, 1], window: [16], sparsity: [0.5], "
                                "quantization: [int8_ptq, cqat]}"])
    assert config.search.space["quantization"] == ["int8_ptq", "cqat"]


def test_the_cli_exits_2_with_one_line(tmp_path, capsys):
    code = cli.main(["run", "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out"),
                     "--set", "search.trials=2", "--set", "search.space={window: [abc]}"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "search.space.window: 'abc'" in err and "Traceback" not in out + err
