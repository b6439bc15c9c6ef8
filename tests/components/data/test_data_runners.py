"""Runner parity: the same components on DirectRunner, DirectRunner multi_processing and a Dask cluster give the
same examples (decoded and compared as sets) and the same counts."""
import numpy as np
import pytest

from edgepipe.components.data import ingest_csv, ingest_timeseries, make_windows
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.beam.options import pipeline_options

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_args():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit=0) as cluster:
        yield ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]


def _decoded(examples):
    return sorted(tuple(sorted((k, v if isinstance(v, str) else np.asarray(v).tobytes()) for k, v in ex.items()))
                  + (split,) for split in examples.splits for ex in iter_examples(examples, split))


def _table(path):
    rng = np.random.default_rng(2)
    lines = [f"{i},{rng.normal():.4f},{'ab'[i % 2]},{i % 3}" for i in range(400)]
    lines[17] = "17,zz,a,1"
    path.write_text("id,v,cat,y\n" + "\n".join(lines) + "\n")


def _series(path):
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(300) * np.timedelta64(1, "m")
    path.write_text("timestamp,u,v\n" + "".join(f"{t},{i}.5,{i % 7}\n" for i, t in enumerate(stamps)))


def test_dask_runner_matches_direct_runner(tmp_path, run, dask_args):
    _table(tmp_path / "t.csv")
    _series(tmp_path / "s.csv")
    got = {}
    for name, args in (("direct", None), ("dask", dask_args)):
        m1, table = run(ingest_csv, tmp_path / name / "csv", source=str(tmp_path / "t.csv"), label_column="y",
                        max_reject_fraction=0.01, beam_args=args)
        m2, ing = run(ingest_timeseries, tmp_path / name / "ts", source=str(tmp_path / "s.csv"), chunk_size=16,
                      bucket_rows=60, beam_args=args)  # 5 time buckets: the bounded-memory path on both runners
        m3, win = run(make_windows, tmp_path / name / "w", examples=ing["examples"], size=8, stride=3,
                      chunk_steps=50, beam_args=args)
        got[name] = (m1, m2, m3, _decoded(table["examples"]), _decoded(win["windows"]),
                     table["rejects"].file("rejects.jsonl").read_text())
    assert got["direct"] == got["dask"]
    assert got["direct"][0]["rows_rejected"] == 1 and len(got["direct"][4]) > 0


def test_multiprocessing_direct_runner_matches(tmp_path, run):
    _table(tmp_path / "t.csv")
    _series(tmp_path / "s.csv")
    out = {}
    for name, args in (("inproc", None),
                       ("multi", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])):
        metrics, table = run(ingest_csv, tmp_path / name, source=str(tmp_path / "t.csv"), beam_args=args)
        m2, ing = run(ingest_timeseries, tmp_path / name / "ts", source=str(tmp_path / "s.csv"), chunk_size=16,
                      bucket_rows=60, beam_args=args)
        m3, win = run(make_windows, tmp_path / name / "w", examples=ing["examples"], size=8, stride=3,
                      beam_args=args)
        out[name] = (metrics, _decoded(table["examples"]), m2, m3, _decoded(win["windows"]))
    assert out["inproc"] == out["multi"] and out["inproc"][3]["windows_train"] > 0


def test_dask_runner_short_name_is_resolved():
    from apache_beam.options.pipeline_options import StandardOptions

    options = pipeline_options(["--runner=DaskRunner"])
    assert options.view_as(StandardOptions).runner == "apache_beam.runners.dask.dask_runner.DaskRunner"
    assert pipeline_options(None).view_as(StandardOptions).runner == "DirectRunner"


def test_dask_partitions_follow_the_cluster_unless_given(dask_args):
    """Beam's Dask Create packs 128 elements a partition: our few coarse elements would all run on one worker."""
    from apache_beam.runners.dask.dask_runner import DaskOptions

    from edgepipe.components.data.beam.options import beam_pipeline

    def partitioning(args):
        opts = beam_pipeline(args).options.view_as(DaskOptions).get_all_options(drop_default=True,
                                                                                current_only=True)
        return DaskOptions._extract_bag_kwargs(opts)  # what the runner hands to dask.bag.from_sequence

    assert partitioning(dask_args) == {"npartitions": 4}  # 2 workers x 1 thread, 2 partitions a thread
    assert partitioning([*dask_args, "--dask_partition_size=3"]) == {"partition_size": 3}
    assert partitioning(["--runner=DirectRunner"]) == {}
