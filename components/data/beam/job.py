"""The job/report protocol of the data components: DoFns emit report records, one sink applied last gathers them.

Why not Beam's metrics and multi-output ParDo: Beam's Dask runner (2.77) supports neither metrics nor
``with_outputs``/``Partition`` (it mixes their outputs), and it computes only the *last* transform of the graph.
So a DoFn yields *report records* (:func:`count`, :func:`reject`, :func:`value`) beside its data
(:func:`data`, separated by :func:`split_outputs`), and a :class:`Job` funnels every report into one final sink
that depends on all the work: counts arrive by data, the same on every runner.
"""
from __future__ import annotations

import os
import pickle
import shutil
import weakref
from typing import Any

import apache_beam as beam

from edgepipe.components.data.beam.files import (atomic_write, join_uri, list_files, read_file_bytes, remove_tree,
                                                 shard_items, worker_uri)
from edgepipe.components.data.beam.options import beam_pipeline


def count(name: str, value: int = 1) -> tuple:
    """A report record adding ``value`` to counter ``name`` (yield it from a DoFn; see :func:`split_outputs`)."""
    return ("report", ("count", name, int(value)))


def reject(path: str, line: int, reason: str, **extra: Any) -> tuple:
    """A report record for one unusable input row/record/file: ``{"file", "line", "reason"}`` (``line`` 0: the
    whole file, as an undecodable image; messages then name the file alone)."""
    return ("report", ("reject", {"file": str(path), "line": int(line), "reason": reason, **extra}))


def value(key: str, obj: Any) -> tuple:
    """A report record carrying a small result (statistics of a split, line counts of a range ...)."""
    return ("report", ("value", key, obj))


def data(payload: Any) -> tuple:
    return ("data", payload)


def _pick(item, tag: str):
    if item[0] == tag:
        yield item[1]


def split_outputs(pcoll: beam.PCollection, label: str) -> tuple[beam.PCollection, beam.PCollection]:
    """A DoFn's mixed output -> (data, report records), with two FlatMaps (portable, unlike ``with_outputs``)."""
    return (pcoll | f"{label}.data" >> beam.FlatMap(_pick, "data"),
            pcoll | f"{label}.report" >> beam.FlatMap(_pick, "report"))


class _WriteReport(beam.DoFn):
    def __init__(self, directory: str):
        self.directory = directory

    def process(self, item):
        key, records = item
        payload = pickle.dumps(list(records), protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write(join_uri(self.directory, f"report-{key}.pkl"), payload)
        yield key


def _report_item(item):
    """Report records keyed for the sink: ``("report", record)`` unwrapped, bare records kept, data dropped."""
    if item[0] == "report":
        yield 0, item[1]
    elif item[0] in ("count", "reject", "value"):
        yield 0, item


class Job:
    """A Beam pipeline whose outputs all end in one report sink (see the module docstring).

    ``job.report(pcoll)`` adds report records; ``job.run()`` applies the sink last, runs, and returns a
    :class:`JobResult` with counters summed, rejects listed and values gathered. ``job.uri(path)`` is a path as
    the workers open it (:func:`worker_uri`), ``job.shards(examples, splits)`` the (split, shard URI) of an input.
    """

    def __init__(self, beam_args: list[str] | None, report_dir: str | os.PathLike):
        self.beam_args = list(beam_args or [])
        self.pipeline = beam_pipeline(beam_args)
        # Beam makes a local temp folder per pipeline and removes it only in ``run()``: a job abandoned before it
        # runs (bad input found while building it) would leave it in the temp directory.
        weakref.finalize(self, shutil.rmtree, self.pipeline.local_tempdir, ignore_errors=True)
        self.report_dir = self.uri(report_dir)
        self.reports: list[beam.PCollection] = []

    def uri(self, path: str | os.PathLike) -> str:
        return worker_uri(path, self.beam_args)

    def shards(self, examples, splits: list[str]) -> list[tuple[str, str]]:
        return shard_items(examples, splits, self.beam_args)

    def report(self, pcoll: beam.PCollection) -> None:
        self.reports.append(pcoll)

    def run(self) -> "JobResult":
        remove_tree(self.report_dir)
        (tuple(self.reports) | "Report.all" >> beam.Flatten()
         | "Report.key" >> beam.FlatMap(_report_item)
         | "Report.group" >> beam.GroupByKey()
         | "Report.write" >> beam.ParDo(_WriteReport(self.report_dir)))
        result = self.pipeline.run()
        try:
            result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)  # the Dask runner leaves its distributed.Client open
            if client is not None:
                client.close()
        records = []
        for path in list_files(join_uri(self.report_dir, "report-*.pkl")):
            records.extend(pickle.loads(read_file_bytes(path)))
        remove_tree(self.report_dir)
        return JobResult(records)


class JobResult:
    def __init__(self, records: list[tuple]):
        self.counters: dict[str, int] = {}
        self.rejects: list[dict] = []
        self.values: dict[str, list] = {}
        for record in records:
            if record[0] == "count":
                self.counters[record[1]] = self.counters.get(record[1], 0) + record[2]
            elif record[0] == "reject":
                self.rejects.append(record[1])
            else:
                self.values.setdefault(record[1], []).append(record[2])

    def get(self, name: str, default: int = 0) -> int:
        return self.counters.get(name, default)


