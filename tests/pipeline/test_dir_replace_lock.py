"""The copy lock deletes its ``.<name>.lock`` on release and still excludes: a process that waited on a lock file
its holder deleted must not proceed beside a newcomer that locked a fresh file of the same name."""
import multiprocessing
import time

from edgepipe.pipeline.dir_replace import _exclusive_lock


def _increment(lock: str, counter: str, times: int) -> None:
    from pathlib import Path

    for _ in range(times):
        with _exclusive_lock(Path(lock)):
            value = int(Path(counter).read_text())
            time.sleep(0.001)  # widen the window a second holder would need to lose an update
            Path(counter).write_text(str(value + 1))


def test_the_lock_excludes_though_its_file_is_deleted_on_release(tmp_path):
    counter, lock = tmp_path / "counter", tmp_path / ".out.lock"
    counter.write_text("0")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_increment, args=(str(lock), str(counter), 60)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * 4
    assert counter.read_text() == "240"  # no two holders at once: no update lost
    assert not lock.exists()
