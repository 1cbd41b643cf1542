"""Measure what a rung costs: wall time and peak memory of the process tree."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

__all__ = ["CostMeter"]


class CostMeter:
    """Context manager sampling the RSS of this process and its children (joblib workers).

    ``ru_maxrss`` alone misses worker processes, so a background thread sums the
    resident memory of the whole process tree every ``interval_s`` seconds.

    Attributes
    ----------
    seconds_ : float
        Wall time inside the block.
    peak_rss_bytes_ : int
        Largest sampled RSS of the process tree.
    peak_vram_bytes_ : int or None
        ``torch.cuda.max_memory_allocated`` when CUDA was used inside the block, else None.
    """

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s

    def __enter__(self) -> CostMeter:
        import psutil

        self._process = psutil.Process()
        self.peak_rss_bytes_ = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.seconds_ = time.monotonic() - self._start
        self._stop.set()
        self._thread.join()
        self.peak_rss_bytes_ = max(self.peak_rss_bytes_, self._rss())
        torch = sys.modules.get("torch")
        used_cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
        self.peak_vram_bytes_ = int(torch.cuda.max_memory_allocated()) if used_cuda else None

    def _rss(self) -> int:
        import psutil

        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_rss_bytes_ = max(self.peak_rss_bytes_, self._rss())
