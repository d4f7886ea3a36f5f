"""Loading and tagging on a Dask cluster: the heavy work runs as tasks, the catalog keeps one writer.

The process that runs ``scisearch load files`` or ``scisearch tag`` stays the
catalog's only writer: it walks, decides what needs doing and commits, exactly
as an in-process run does.  Only the expensive part — hashing and reading
files, previews, models — is sent to the cluster, a bounded number of tasks at
a time so memory stays flat however many files there are.

Three ways to get a cluster (``open_cluster``): ``--workers N`` starts a
``LocalCluster`` of N single-threaded worker processes here; ``--dask ADDRESS``
connects to a running scheduler; ``--dask FILE.yml`` builds a dask-jobqueue
``SLURMCluster`` from a small YAML file (see examples/slurm-cluster.yml).

A worker that dies mid-task (out of memory, a crash in a reader library) has
its task retried elsewhere; after the scheduler's ``allowed-failures`` deaths
the task runs once more with nothing else beside it (the scheduler blames every
task a dead worker held), and if it kills its workers then too it comes back as
a ``TaskFailure`` naming the last worker, which the writer records as that
file's or item's error — a poison file is never retried forever.  A cluster
with no workers for ``patience_s`` seconds (all lost, or none ever came) stops
the run with a ``ClusterError``; everything committed so far stays, and running
the same command again resumes.

On a local cluster (``--workers N``) the writer also replaces lost workers
itself.  A nanny restarts its worker when the process dies, but Dask gives up
on it in two ways, both common on a loaded machine: a worker that fails to
start is never retried (the nanny closes), and ``LocalCluster`` closes for good
any nanny whose worker has not come back within
``distributed.deploy.lost-worker-timeout`` (15 s) — a restart that merely takes
longer than that ends the nanny, killing the new worker and the task it had just
been given.  Either way the cluster shrinks for the rest of the run; asking it
for its N workers again starts new nannies in their place.  While a local
cluster is open that timeout is a minute (``LOCAL_LOST_WORKER_S``), so a slow
restart is waited for rather than cut short.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import yaml

from .errors import ScisearchError

TASK_RETRIES = 2  # a task that raises (a flaky network file system, say) runs again before it counts as failed
CONNECT_TIMEOUT_S = 5
POLL_S = 2.0  # how often the writer checks the cluster still has (all its) workers while it waits for results
DEFAULT_PATIENCE_S = 60.0
# Local workers that die are restarted here, and on two busy cores a worker process takes tens of seconds to start.
LOCAL_PATIENCE_S = 180.0
LOCAL_LOST_WORKER_S = 60.0  # how long LocalCluster lets a nanny restart its worker before it closes the nanny
LOST_WORKER = "distributed.deploy.lost-worker-timeout"
BATCH_QUEUE_PATIENCE_S = 3600.0  # SLURM jobs may sit in the queue a while before any worker appears
# Dask's nannies set MALLOC_TRIM_THRESHOLD_ in their workers, which switches off glibc's adaptive mmap threshold:
# every large numpy array is then a fresh mmap and page faults, and image analysis runs ~2.7x slower (measured).
KEEP_GLIBC_HEAP = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


class ClusterError(ScisearchError):
    """The cluster cannot be reached, built or kept; the message says what to do."""


@dataclass
class TaskFailure:
    """A task that did not come back with a result: what to record as the file's or item's error."""

    message: str
    worker_died: bool = False


@dataclass
class Cluster:
    """A connected Dask client, and how long the run waits without workers before it stops."""

    client: Any
    description: str
    patience_s: float = DEFAULT_PATIENCE_S
    local: Any = None  # the LocalCluster started for this run, whose lost workers are replaced

    def workers(self) -> int:
        return len(self.client.nthreads())

    def replace_lost_workers(self, present: int) -> None:
        """Ask a local cluster for all its workers again when fewer than that are ``present``: it starts new
        nannies in place of those Dask has closed (a no-op while a nanny is still restarting its worker)."""
        if self.local is not None and present < len(self.local.worker_spec):
            self.local.scale(len(self.local.worker_spec))

    def stream(
        self, function: Callable, jobs: Iterable[tuple[Any, tuple]], window: int | None = None, ordered: bool = False
    ) -> TaskStream:
        """Run ``function(*arguments)`` for each (context, arguments) of ``jobs`` and yield (context, result or
        TaskFailure); ``ordered`` yields in the jobs' order, otherwise as tasks finish."""
        return TaskStream(self, function, jobs, window or self.default_window(), ordered)

    def default_window(self) -> int:
        # Enough queued work that no worker waits for the writer, few enough that results in memory stay small.
        return max(8, 4 * sum(self.client.nthreads().values()))


class TaskStream:
    """Tasks submitted a window at a time; results handed back to the single writer as they arrive.

    When a worker dies, the scheduler blames every task it held, not only the one that killed it, so a task
    that comes back "worker died" runs once more *alone* — nothing else on the cluster meanwhile — and only a
    task that kills its workers on its own is reported as a ``TaskFailure``.
    """

    def __init__(self, cluster: Cluster, function: Callable, jobs, window: int, ordered: bool):
        self.cluster, self.function, self.window, self.ordered = cluster, function, window, ordered
        self.jobs = iter(jobs)
        self.alone: deque = deque()  # (sequence number, context, arguments) to run with nothing else
        self.pending: dict = {}  # future -> (sequence number, context, arguments, ran alone)
        self.finished: dict[int, tuple] = {}  # results that came back before an earlier one (ordered only)
        self.next_sequence = self.next_to_yield = 0
        self.no_workers_since: float | None = None
        self.checked_at = float("-inf")  # check the workers once the first results are in

    def push(self, context: Any, arguments: tuple) -> None:
        """Another task, run alone (a batch split up to find the item that kills workers)."""
        self.alone.append((self.next_sequence, context, arguments))
        self.next_sequence += 1

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        try:
            while True:
                self._fill()
                while self.next_to_yield in self.finished:
                    self.next_to_yield += 1
                    yield self.finished.pop(self.next_to_yield - 1)
                if not self.pending:
                    if self.alone:
                        continue
                    return
                for future in self._wait_for_some():
                    sequence, context, arguments, alone = self.pending.pop(future)
                    outcome = self._outcome(future)
                    future.release()
                    if isinstance(outcome, TaskFailure) and outcome.worker_died and not alone:
                        self.alone.append((sequence, context, arguments))  # perhaps a neighbour killed it
                    elif self.ordered:
                        self.finished[sequence] = (context, outcome)
                    else:
                        yield context, outcome
        finally:
            if self.pending:  # stopped early (an error, Ctrl-C): leave no orphaned work on the cluster
                with contextlib.suppress(Exception):
                    self.cluster.client.cancel(list(self.pending))

    def _fill(self) -> None:
        if any(alone for *_, alone in self.pending.values()):
            return
        if self.alone:
            if not self.pending:
                self._submit(*self.alone.popleft(), alone=True)
            return
        while len(self.pending) + len(self.finished) < self.window:
            job = next(self.jobs, None)
            if job is None:
                return
            self._submit(self.next_sequence, *job, alone=False)
            self.next_sequence += 1

    def _submit(self, sequence: int, context: Any, arguments: tuple, alone: bool) -> None:
        future = self.cluster.client.submit(self.function, *arguments, pure=False, retries=TASK_RETRIES)
        self.pending[future] = (sequence, context, arguments, alone)

    def _outcome(self, future) -> Any:
        """The task's result, or a TaskFailure saying why there is none."""
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:  # the result was lost with the worker that held it, and is being made again
                self._check_workers()
            except KilledWorker as error:
                worker = getattr(error.last_worker, "address", error.last_worker)
                return TaskFailure(
                    f"the Dask worker {worker} died while working on it, as had every worker that tried it before "
                    f"({error.allowed_failures + 1} in all): out of memory, or a crash in a reader library? "
                    "See the workers' logs",
                    worker_died=True,
                )
            except FutureCancelledError:
                raise _cancelled() from None
            except Exception as error:  # the task raised (after its retries): a bug or a broken worker environment
                return TaskFailure(f"failed on the Dask cluster: {type(error).__name__}: {error}")

    def _wait_for_some(self) -> list:
        from distributed import wait

        while True:
            try:
                with self.cluster.client.as_current():
                    done, _ = wait(list(self.pending), timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                self._check_workers()
                continue
            except CancelledError:  # the client cancels every future when it loses the scheduler
                raise _cancelled() from None
            if time.monotonic() - self.checked_at > POLL_S:  # results keep coming, but perhaps from fewer workers
                self._check_workers()
            return list(done)

    def _check_workers(self) -> None:
        self.checked_at = time.monotonic()
        try:
            workers = self.cluster.workers()
        except Exception as error:
            raise ClusterError(
                f"lost the connection to the Dask scheduler ({self.cluster.description}): {error}. "
                "What was finished is kept; run the same command again to go on"
            ) from None
        self.cluster.replace_lost_workers(workers)
        if workers:
            self.no_workers_since = None
            return
        self.no_workers_since = self.no_workers_since or time.monotonic()
        if time.monotonic() - self.no_workers_since > self.cluster.patience_s:
            raise ClusterError(
                f"the Dask cluster ({self.cluster.description}) has had no workers for "
                f"{self.cluster.patience_s:.0f} s. What was finished is kept; start workers (or use --workers N) "
                "and run the same command again to go on"
            )


def _cancelled() -> ClusterError:
    return ClusterError(
        "the Dask scheduler was lost or cancelled the run's tasks (did it stop or restart?). What was finished is "
        "kept; run the same command again to go on"
    )


def worker_address() -> str:
    """The address of the worker running the current task ('this process' outside a worker)."""
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:
        return "this process"


_kept: dict = {}


def kept(key: tuple, make: Callable, *arguments) -> Any:
    """``make(*arguments)``, once per worker process, kept for the next tasks (a loaded model, say)."""
    if key not in _kept:
        _kept[key] = make(*arguments)
    return _kept[key]


# ---------------------------------------------------------------- getting a cluster


@contextlib.contextmanager
def open_cluster(dask: str | None = None, workers: int | None = None, allowed_failures: int | None = None):
    """The cluster the options ask for (None: run in-process), closed again afterwards."""
    if dask and workers:
        raise ClusterError("give either --dask or --workers, not both")
    if not dask and not workers:
        yield None
        return
    started = None
    if workers:
        started = start_local_cluster(workers, allowed_failures)
        cluster = Cluster(_client(started), f"{workers} local worker processes", LOCAL_PATIENCE_S, local=started)
    elif Path(dask).suffix.lower() in (".yml", ".yaml"):
        started, scale, patience = cluster_from_file(Path(dask))
        cluster = Cluster(_client(started), f"{dask}: {started.scheduler_address}", patience)
        started.scale(**scale)
    else:
        cluster = Cluster(connect(dask), dask)
    try:
        # Read by LocalCluster each time a worker is lost, so it holds for as long as the cluster is open.
        with _settings({LOST_WORKER: f"{LOCAL_LOST_WORKER_S}s"} if workers else {}):
            yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.client.close()
        if started is not None:
            with contextlib.suppress(Exception):
                started.close()


def _settings(settings: dict):
    return dask.config.set(settings)  # (open_cluster's own ``dask`` is the --dask option)


def start_local_cluster(workers: int, allowed_failures: int | None = None):
    """N worker processes of one thread each: Python's GIL makes threads useless for this work."""
    from distributed import LocalCluster

    scheduler = {} if allowed_failures is None else {"allowed_failures": allowed_failures}
    with dask.config.set({KEEP_GLIBC_HEAP: None}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs=scheduler,
        )


def _client(cluster):
    from distributed import Client

    return Client(cluster, set_as_default=False)


def connect(address: str):
    """A client of the scheduler at ``address``, or a ClusterError within seconds when none answers."""
    import asyncio

    from distributed import Client

    try:
        # A handshake of our own first: a failed Client leaves a half-made object that hangs on its way out.
        asyncio.run(_handshake(address))
    except Exception as error:  # refused, timed out, a bad address, or something that does not speak Dask
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, MemoryError):  # it read a reply's length from a service that is not Dask
            reason = "something answered there, but not a Dask scheduler"
        raise ClusterError(
            f"cannot reach a Dask scheduler at {address!r} ({reason[:200]}). Is `dask scheduler` running there and "
            "the port open from here? For a cluster on this machine use --workers N instead"
        ) from None
    return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)


async def _handshake(address: str) -> None:
    from distributed.comm import connect as comm_connect

    comm = await comm_connect(address, timeout=CONNECT_TIMEOUT_S)
    await comm.close()


def cluster_options(path: Path) -> tuple[dict, dict, float]:
    """SLURMCluster keyword arguments, scale() arguments and patience from a cluster file (see the example)."""
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ClusterError(f"no cluster file at '{path}' (see examples/slurm-cluster.yml)") from None
    except (OSError, yaml.YAMLError) as error:
        raise ClusterError(f"cannot read the cluster file '{path}': {error}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("slurm"), dict):
        raise ClusterError(f"'{path}' needs a 'slurm:' block of SLURMCluster settings (see examples/slurm-cluster.yml)")
    unknown = set(spec) - {"slurm", "jobs", "workers", "patience_s"}
    if unknown:
        raise ClusterError(f"'{path}': unknown setting {sorted(unknown)[0]!r}; use slurm, jobs, workers, patience_s")
    if "jobs" in spec and "workers" in spec:
        raise ClusterError(f"'{path}': give 'jobs' (SLURM jobs) or 'workers' (Dask workers), not both")
    scale = {"workers": int(spec["workers"])} if "workers" in spec else {"jobs": int(spec.get("jobs", 1))}
    return dict(spec["slurm"]), scale, float(spec.get("patience_s", BATCH_QUEUE_PATIENCE_S))


def cluster_from_file(path: Path):
    """A dask-jobqueue SLURMCluster as the file describes it (its scheduler runs here; workers are SLURM jobs)."""
    options, scale, patience = cluster_options(path)
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ClusterError("a cluster file needs dask-jobqueue: pip install 'datasette-scisearch[hpc]'") from None
    # Without sbatch every job submission fails in the background and the run would only wait for workers that
    # cannot come (an hour by default) under a traceback in the log.
    if shutil.which(SLURMCluster.job_cls.submit_command) is None:
        raise ClusterError(
            f"'{path}' describes SLURM jobs, but there is no '{SLURMCluster.job_cls.submit_command}' on this "
            "machine's PATH: run the command on a SLURM login node (or in a job), or use --workers N here"
        )
    try:
        cluster = SLURMCluster(**options)
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: its scheduler could not start here
        raise ClusterError(f"'{path}': cannot build a SLURMCluster from these settings: {error}") from None
    return cluster, scale, patience
