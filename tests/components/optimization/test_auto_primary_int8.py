"""convert.primary auto knows every int8 variant (clustered and cqat are int8 too: a list of only those ships
one), a list left without int8 variant because a stage is off says which and why, and a listed variant dropped
because its stage is off gets one warning line naming what to enable (it was dropped silently)."""
import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.tasks.variants import active_variants, gated_primary, primary_variant


@pytest.mark.parametrize("variant", ["cqat", "clustered"])
def test_auto_ships_a_clustered_int8_variant(variant):
    config = load_config(None, [f"convert.variants=[float32, {variant}]"])
    active = active_variants(list(config.convert.variants), config.enabled())
    assert primary_variant("auto", active) == variant
    rows = [{"variant": "keras", "exported": None}, {"variant": "float32", "exported": True},
            {"variant": variant, "exported": True}]
    assert gated_primary("auto", rows)[0] == variant


def test_no_int8_left_names_the_stage_that_is_off():
    with pytest.raises(ConfigError, match=r"pqat is not built: prune.enabled is off"):
        load_config(None, ["prune.enabled=false", "convert.variants=[float32, pqat]"])


def test_a_listed_variant_whose_stage_is_off_gets_one_warning_line(capsys):
    from edgepipe.pipeline.templates import build_pipeline

    config = load_config(None, ["cluster.enabled=false", "convert.variants=[float32, clustered, int8_ptq]"])
    build_pipeline(config)
    err = capsys.readouterr().err
    assert err.count("warning: convert.variants lists 'clustered', not built: enable cluster.enabled") == 1
    build_pipeline(load_config(None, []))  # the default list: pruned_uniform_int8 is dropped without a word
    assert "warning" not in capsys.readouterr().err


def test_the_default_list_with_a_stage_off_warns_nothing(capsys):
    from edgepipe.pipeline.templates import build_pipeline

    build_pipeline(load_config(None, ["prune.enabled=false"]))  # the default list: what the enabled stages make
    assert "warning" not in capsys.readouterr().err
