"""pipeline.beam_args is checked before anything runs: an unknown runner or a flag no Beam options class registers
is a config error (exit 2, one line naming the key and the flag), while every real runner's flags pass."""
import pytest

from edgepipe.components.data.beam.options import beam_args_problem, beam_pipeline
from edgepipe.pipeline.cli import main
from edgepipe.pipeline.errors import ConfigError


@pytest.mark.parametrize("args", [
    [], ["--runner=direct"], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    ["--runner=DaskRunner", "--dask_client_address=tcp://h:8786", "--dask_npartitions=4"],
    ["--runner=FlinkRunner", "--flink_master=h:8081"], ["--runner=SparkRunner", "--spark_master_url=spark://h"],
    ["--runner=PrismRunner"], ["--runner", "DirectRunner", "--experiments=a", "--experiments=b"],
    ["--runner=DataflowRunner", "--project", "p", "--region=r", "--temp_location=gs://b/t", "--setup_file=/s.py",
     "--max_num_workers=3", "--sdk_container_image=img"],
    ["--runner=apache_beam.runners.direct.direct_runner.DirectRunner"]])
def test_real_runners_and_their_flags_pass(args):
    assert beam_args_problem(args) is None


@pytest.mark.parametrize("args, message", [
    (["--runner=NoSuchRunner"], "unknown Beam runner 'NoSuchRunner'"),
    (["--runner=DirectRuner"], "did you mean DirectRunner?"),
    (["--runner=nowhere.Runner"], "unknown Beam runner 'nowhere.Runner'"),
    (["--runner=DirectRunner", "--direct_num_wrokers=2"],
     "unknown Beam flag --direct_num_wrokers (did you mean --direct_num_workers?)"),
    (["--runner=DaskRunner", "--dask_client_adress=tcp://h:8786"], "did you mean --dask_client_address?")])
def test_unknown_runner_or_flag_is_named(args, message):
    assert message in beam_args_problem(args)
    with pytest.raises(ConfigError, match="beam_args"):
        beam_pipeline(args)  # a component handed them (a compiled pipeline's task) refuses them too


@pytest.mark.parametrize("value, flag", [("[--runner=NoSuchRunner]", "NoSuchRunner"),
                                         ("[--runner=DirectRunner, --direct_num_wrokers=2]", "--direct_num_wrokers")])
def test_run_refuses_bad_beam_args_with_exit_2_before_anything_runs(tmp_path, capsys, value, flag):
    code = main(["run", "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out"),
                 "--set", f"pipeline.beam_args={value}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "config key 'pipeline.beam_args'" in err[0] and flag in err[0]
    assert not list((tmp_path / "root").rglob("*.sqlite")) and not (tmp_path / "out").exists()
