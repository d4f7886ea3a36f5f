"""Readers that fail the way vendor libraries do on bad files: crash, hang, or ask for all the memory there is.

Registered for one test at a time (by passing ``loaders=`` to ``load_files``); importable by the sandbox's worker
process, which unpickles them by name.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from datasette_scisearch.ingest.loader import Dataset, FileLoader


class CrashingLoader(FileLoader):
    """Like a C reader with a buffer overrun on a truncated file: the process dies of SIGSEGV."""

    name = "crashing"
    suffixes = frozenset({".crash"})

    def read(self, path):
        os.kill(os.getpid(), signal.SIGSEGV)
        yield Dataset(data=np.zeros(2))


class HangingLoader(FileLoader):
    """Like a parser looping on a header whose length field points back at itself."""

    name = "hanging"
    suffixes = frozenset({".hang"})

    def read(self, path):
        time.sleep(3600)
        yield Dataset(data=np.zeros(2))


class GreedyLoader(FileLoader):
    """Like a reader that believes a header declaring a 16 GB array."""

    name = "greedy"
    suffixes = frozenset({".greedy"})

    def read(self, path):
        yield Dataset(data=np.ones(2 * 2**30, dtype=np.float64))
