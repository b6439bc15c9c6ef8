"""Shared Beam plumbing for the data components: runner-portable jobs, TFRecord shards, bulk Example coding.

One module a concern: :mod:`.options` (runner options), :mod:`.job` (the job/report protocol), :mod:`.files`
(Beam filesystem helpers, shards), :mod:`.tfrecord` (framing), :mod:`.example_encode` / :mod:`.example_decode`
(the Example codec). This package imports nothing of ``edgepipe`` above the pipeline kernel.

Why not Beam's own sinks and metrics: the same pipeline must give the same result on DirectRunner (in-process or
``multi_processing``), on a Dask cluster and on Dataflow/Flink/Spark, and Beam's Dask runner (2.77) supports only
Create, ParDo, GroupByKey and Flatten: no file sinks (``WriteToTFRecord`` writes empty files there), no metrics,
no multi-output ParDo (``with_outputs``/``Partition`` mix their outputs), no side inputs worth using, and it
computes only the *last* transform of the graph. So every data component is written against that common subset:

* data stays in NumPy batches inside DoFns (one element = a file, a byte range, a chunk, never a row);
* DoFns write their own GZIP TFRecord shards (:func:`.files.write_shard`: deterministic names, written to a hidden
  temporary file and renamed, so a retried bundle overwrites instead of duplicating), through Beam's
  ``FileSystems`` so any Beam filesystem works (local, gs://, s3:// ...; paths from :func:`.files.worker_uri`),
  and emit *report records* (counts, rejects, small values) instead of updating metrics;
* a :class:`.job.Job` funnels every report record into one final sink, applied last, so that the last transform
  depends on all the work (what the Dask runner needs) and counts arrive by data on every runner.

Examples are encoded by :func:`.example_encode.encode_batch` (whole NumPy batches -> framed TFRecord bytes,
vectorized; ~1 us a window) and decoded by :func:`.example_decode.decode_example` (packed lists straight to NumPy),
so workers never import TensorFlow.
"""
