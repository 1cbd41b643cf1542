"""Per-case work (feature extraction) on this machine's processes or on a Dask cluster.

The fit hands every per-case job to :func:`map_cases`; with a Dask client it runs as one Dask
task per case, otherwise in local processes (:func:`automed.workers.process_pool`). A task gets
the case's description (file paths), never its pixels, so the workers read the cases and the
client holds only the results.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any, Callable, Iterable

from automed.errors import AutomedError

__all__ = ["DaskError", "dask_client", "map_cases"]

log = logging.getLogger("automed")
IN_FLIGHT_PER_THREAD = 2
"""Tasks a Dask worker thread may have queued or finished ahead of the fit taking their results."""
LOCAL = "local"
"""``--dask local``: a Dask ``LocalCluster`` of one single-threaded process per job, started for the fit."""


class DaskError(AutomedError):
    """The Dask scheduler cannot be reached, or is not a Dask scheduler."""


@contextmanager
def dask_client(address: str | None, n_workers: int) -> Iterator[Any]:
    """A Dask client for the block: on a ``LocalCluster`` of ``n_workers`` processes (``address``
    ``"local"``), on the scheduler at ``address``, or None (no Dask: local processes)."""
    if address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if address == LOCAL:
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
            log.info("Dask: a local cluster of %d worker process(es)", n_workers)
            yield client
        return
    try:
        client = Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskError(f"{address}: cannot reach a Dask scheduler there ({str(exc).splitlines()[0]}); start one "
                        "with `dask scheduler` and workers with `dask worker ADDRESS`, or use --dask local.") from None
    with client:
        log.info("Dask: scheduler %s with %d worker(s)", address, len(client.scheduler_info()["workers"]))
        yield client


def map_cases(function: Callable[..., Any], arguments: Iterable[tuple[Any, ...]], total: int, n_jobs: int,
              client: Any, desc: str, progress: bool) -> Iterator[Any]:
    """``function(*args)`` for each of the ``total`` tuples ``arguments``, yielded in their order: as Dask
    tasks when ``client`` is given, else in ``n_jobs`` local processes (``arguments`` drawn as they go)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="case", disable=not progress)
    try:
        if client is None:
            from joblib import Parallel, delayed

            from automed.workers import process_pool

            with process_pool():
                parallel = Parallel(n_jobs=n_jobs, return_as="generator", batch_size="auto")
                for result in parallel(delayed(function)(*args) for args in arguments):
                    bar.update()
                    yield result
            return
        # A window of tasks in flight, refilled as results are taken in order: the workers never hold more than
        # a few results the fit has not taken (all tasks at once let them pile up: 3.3 GB per worker seen).
        pending = iter(arguments)
        window: deque[Any] = deque(client.submit(function, *args, pure=False)
                                   for args in islice(pending, IN_FLIGHT_PER_THREAD * _threads(client)))
        while window:
            result = window.popleft().result()  # the cluster forgets the result once its future is gone
            window.extend(client.submit(function, *args, pure=False) for args in islice(pending, 1))
            bar.update()
            yield result
    finally:
        bar.close()


def _threads(client: Any) -> int:
    """The worker threads of the cluster behind ``client`` (at least one)."""
    return max(1, sum(client.nthreads().values()))
