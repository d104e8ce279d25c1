"""Threads for the native library: a persistent pool, per-thread scratch, and a way to give
torch's cores to the native kernels during a loop of small steps.

The C functions run without the GIL (ctypes releases it), so calls on disjoint parts of a
batch run in parallel on the pool's threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, List, Optional

import torch
from torch import Tensor

__all__ = ["kernel_threads", "parallel_items", "parallel_ranges", "thread_scratch"]

_pool_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of at least ``workers`` threads, kept between calls (starting threads
    for every batch would cost more than a small batch's work)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="stdp-plugins"), workers
        return _pool


_kernel_workers: ContextVar[Optional[int]] = ContextVar("stdp_plugins_kernel_workers", default=None)


@contextmanager
def kernel_threads() -> Iterator[int]:
    """Give torch's threads to the native kernels for a loop of small steps.

    Inside the block torch runs its own operations in the calling thread
    (``torch.set_num_threads(1)``) and the native kernels split each call over the
    threads torch had, which the block yields. Small batches otherwise gain nothing from a
    second core: after every small torch operation its OpenMP threads keep spinning for a
    while and occupy the core the kernel's second worker needs.
    """
    threads = torch.get_num_threads()
    token = _kernel_workers.set(threads)
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)
        _kernel_workers.reset(token)


def _workers(total: int) -> int:
    """Worker threads for ``total`` items: torch's thread count, or what
    :func:`kernel_threads` yields, at most ``total``."""
    return max(1, min(_kernel_workers.get() or torch.get_num_threads(), total))


def parallel_items(total: int, run: Callable[[int], int]) -> List[int]:
    """Call ``run(i)`` for every ``i`` in ``[0, total)`` on the worker threads (the calling
    thread is one of them), each taking the next item as it finishes one, so that items of
    uneven cost balance; returns the results in item order."""
    workers = _workers(total)
    results = [0] * total
    items = iter(range(total))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            results[item] = run(item)

    others = [_worker_pool(workers - 1).submit(work) for _ in range(workers - 1)] if workers > 1 else []
    work()
    for future in others:
        future.result()
    return results


def parallel_ranges(total: int, run: Callable[[int, int], int]) -> List[int]:
    """Call ``run(lo, hi)`` on contiguous ranges covering ``[0, total)``, one per worker
    thread (torch's thread count, or what :func:`kernel_threads` yields; the calling thread
    is one of them); returns the results in range order."""
    workers = _workers(total)
    if workers == 1:
        return [run(0, total)]
    bounds = [round(i * total / workers) for i in range(workers + 1)]
    # the calling thread runs the first range itself: one hand-off fewer per call, and it
    # does not sit idle while the pool works
    others = [_worker_pool(workers - 1).submit(run, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    first = run(bounds[0], bounds[1])
    return [first] + [future.result() for future in others]


_thread_state = threading.local()


def thread_scratch(nbytes: int) -> Tensor:
    """This thread's working memory for the C kernels, at least ``nbytes``, kept between
    calls so that small batches do not pay for fresh pages."""
    buffer = getattr(_thread_state, "scratch", None)
    if buffer is None or buffer.numel() < nbytes:
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        _thread_state.scratch = buffer
    return buffer
