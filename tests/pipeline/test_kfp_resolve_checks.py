"""The resolve task re-applies the compile-time checks to the run's parameter values: a relative or file:// path
and bad pipeline.beam_args are one line there, not a failure inside a node task later. An absolute path that
exists is fine in a task container (a mounted volume)."""
import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.remote import encode_spec, pipeline_shape, resolve_node_specs
from tests.pipeline import kfp_fixtures

FACTORY = "tests.pipeline.kfp_fixtures:chain"


@pytest.fixture
def compiled(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text("pipeline: {name: chain}\ntraining: {epochs: 3}\nwindow: {stride: 2, size: 16}\n")
    config = load_config(path)
    return encode_spec(config.model_dump(mode="json")), encode_spec(pipeline_shape(kfp_fixtures.chain(config)))


@pytest.mark.parametrize("override, message", [
    ({"data.source": "data/x.csv"}, "node 'source': parameter 'path' is a relative path 'data/x.csv', which a cloud "
                                    "worker cannot read; copy it to a bucket and pass gs://BUCKET/... (the run "
                                    "parameter data_source)"),
    ({"data.source": "file:///mnt/x.csv"}, "parameter 'path' is the local file URL"),
    ({"pipeline.beam_args": ["--runner=NoSuch"]}, "config key 'pipeline.beam_args': unknown Beam runner 'NoSuch'")])
def test_run_time_values_get_the_compile_time_checks(compiled, tmp_path, override, message):
    with pytest.raises(ConfigError) as raised:
        resolve_node_specs(FACTORY, *compiled[:1], override, compiled[1], {"source": str(tmp_path / "spec")})
    assert message in str(raised.value)
    assert not (tmp_path / "spec").exists()


def test_an_absolute_path_that_exists_in_the_task_container_is_accepted(compiled, tmp_path):
    mounted = tmp_path / "mnt.csv"
    mounted.write_text("a\n1\n")
    specs = resolve_node_specs(FACTORY, compiled[0], {"data.source": str(mounted)}, compiled[1], {})
    assert str(mounted) in specs["source"]
