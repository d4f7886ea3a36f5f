"""Readers in a sandbox: a reused worker process reads each file, with a memory limit and a timeout.

Vendor reader libraries are C extensions and hand-written binary parsers: half a
Bruker .bcf makes one segfault, a small HDF5 file declaring a 30000² array makes
another allocate gigabytes, a malformed header can loop.  In the loading
process any of these ends the whole load (and every load after it).  Here the
chain of readers (``reading.read_file``) runs in a worker process,
``python -m datasette_scisearch.ingest.sandbox``, started once and reused by every load
of the process, so speed holds; a crash, a timeout or exhausted memory costs
that worker, which is replaced, and becomes the file's error row; the load goes
on.  Requests and results travel as pickles over two pipes of their own (what a
reader prints goes nowhere), so nothing a reader writes can confuse them.

The worker is a fresh interpreter rather than a fork of the loading process: a
fork copies the locks of whatever threads the loader runs (numba's, HDF5's, a
progress bar's) held, and a worker could hang for ever on one.

The memory limit is on the worker's data segment (``RLIMIT_DATA``: heap and
anonymous mappings, which is where arrays live; shared libraries and
memory-mapped files stay outside it), so a reader that asks for too much gets a
MemoryError, or dies, instead of the machine swapping.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .loader import FileLoader
from .reading import DatasetRead, FileResult, loader_id, read_dataset, read_file

_TIMED_OUT = (
    "reading it took longer than {:g} s, so the reader was stopped: a damaged file (a reader looping on a bad "
    "header) or a very large one"
)
DEFAULT_MEMORY_LIMIT_BYTES = 2 * 2**30
DEFAULT_TIMEOUT_S = 300.0
_HEADER = struct.Struct("!Q")


@dataclass
class _Request:
    """A file for the worker, and whether it went down the pipe."""

    tag: object
    path: Path
    chain: list[FileLoader]
    settings: Settings
    sha256: str | None
    sent: bool = False


class ReaderPool:
    """A reused worker process that reads files; ``read`` never raises for what a file does to a reader."""

    def __init__(self, memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.memory_limit_bytes = memory_limit_bytes
        self.timeout_s = timeout_s
        self._process: subprocess.Popen | None = None
        self._requests = self._results = None
        self._inbox = bytearray()
        self.unavailable: str | None = None  # why no worker could be started: files are then read in-process
        self._pid = os.getpid()

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> bool:
        """Start the worker and wait for it to say it is ready; False (and ``unavailable`` set) when it cannot
        be started here (an interpreter this user may not run, a broken install)."""
        try:
            self._launch()
            ready = self._receive_message(60.0)
        except OSError as error:
            ready = error
        if ready == "ready":
            return True
        self._stop()
        self.unavailable = f"the reader sandbox could not be started ({ready}); files are read in the loading process"
        return False

    def _launch(self) -> None:
        to_worker_read, to_worker_write = os.pipe()
        from_worker_read, from_worker_write = os.pipe()
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datasette_scisearch.ingest.sandbox",
                str(to_worker_read),
                str(from_worker_write),
                str(self.memory_limit_bytes),
            ],
            pass_fds=(to_worker_read, from_worker_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
        )
        os.close(to_worker_read)
        os.close(from_worker_write)
        self._requests = os.fdopen(to_worker_write, "wb")
        self._results = from_worker_read

    def read(self, path: Path, chain: list[FileLoader], settings: Settings, sha256: str | None) -> FileResult:
        return next(self.read_ahead([(None, path, chain, settings, sha256)], depth=1))[1]

    def read_dataset(self, path: Path, chain: list[FileLoader], index: int) -> DatasetRead:
        """One dataset of ``path`` with its array (for an export), read in the worker like a load's files."""
        answer = self._ask(("dataset", path, chain, index))
        if answer is None:
            return read_dataset(path, chain, index)
        if isinstance(answer, DatasetRead):
            return answer
        return DatasetRead(None, error=answer)

    def _ask(self, request: tuple):
        """The worker's answer to ``request``; None when it must run in this process instead (no worker here, or
        a reader no other process can import), or a sentence saying what stopped the worker."""
        if not self._worker_ready():
            return None
        try:
            data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            # A reader defined where no other process can import it (inside a function): it runs here.
            return None
        try:
            _send_bytes(self._requests, data)
            answer = self._receive_message(self.timeout_s)
        except BrokenPipeError:  # it died before it could read the request
            answer = None
        if isinstance(answer, (FileResult, DatasetRead)):
            return answer
        if answer == "timeout":
            self._stop()
            return _TIMED_OUT.format(self.timeout_s)
        return self._death()

    def read_ahead(self, requests: Iterable[tuple], depth: int = 2) -> Iterator[tuple[object, FileResult]]:
        """(tag, FileResult) for each (tag, path, chain, settings, sha256) of ``requests``, in order, with up to
        ``depth`` files sent to the worker ahead: it reads the next file while this process writes the last one,
        so neither waits for the other (nor, on a busy machine, for the scheduler to switch between them).  A
        crash, timeout or exhausted memory is that file's error, as in ``read``; files sent after it go to the new
        worker."""
        queue: deque[_Request] = deque()
        requests = iter(requests)
        more = True
        while True:
            while more and len(queue) < depth:
                try:
                    tag, path, chain, settings, sha256 = next(requests)
                except StopIteration:
                    more = False
                    break
                queue.append(self._send_request(_Request(tag, path, chain, settings, sha256)))
            if not queue:
                return
            request = queue.popleft()
            result = self._answer(request)
            if self._process is None:  # the worker was stopped or died: what it had queued was lost with it
                for waiting in queue:
                    waiting.sent = False
            yield request.tag, result

    def _worker_ready(self) -> bool:
        """Whether a worker is there to send to, started (again) when needed; False: read in this process."""
        if os.getpid() != self._pid:  # a forked child must not share its parent's worker
            self._process = self._requests = self._results = None
            self._pid = os.getpid()
        if self.unavailable is None and (self._process is None or self._process.poll() is not None):
            self._start()
        return self.unavailable is None

    def _send_request(self, request: _Request) -> _Request:
        if not self._worker_ready():
            return request
        try:
            payload = pickle.dumps(
                ("file", request.path, request.chain, request.settings, request.sha256),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except (pickle.PicklingError, AttributeError, TypeError):
            return request  # a reader no other process can import: read here
        try:
            _send_bytes(self._requests, payload)
            request.sent = True
        except BrokenPipeError:  # it died on an earlier file: this one is sent again once that one is answered
            pass
        return request

    def _answer(self, request: _Request) -> FileResult:
        if not request.sent:
            self._send_request(request)
        if not request.sent:
            if self._process is not None and self._process.poll() is not None:  # it died as the file was sent
                return self._failure(request.path, request.chain, request.sha256, self._death())
            # No worker here, or a reader no other process can import: read in this process.
            return read_file(request.path, request.chain, request.settings, sha256=request.sha256)
        answer = self._receive_message(self.timeout_s)
        if isinstance(answer, FileResult):
            return answer
        path, chain, sha256 = request.path, request.chain, request.sha256
        if answer == "timeout":
            self._stop()
            return self._failure(path, chain, sha256, _TIMED_OUT.format(self.timeout_s))
        return self._failure(path, chain, sha256, self._death())

    def _receive_message(self, timeout_s: float):
        """The next message from the worker; 'timeout' when none came in time, None when the worker is gone."""
        deadline = time.monotonic() + timeout_s
        # Bytes read past the last message are the next one's (with files sent ahead, answers queue in the pipe).
        # A bytearray grows in place: an array of a hundred megabytes arrives in many chunks.
        buffer, self._inbox = self._inbox, bytearray()
        length = None
        while True:
            if length is None and len(buffer) >= _HEADER.size:
                (length,) = _HEADER.unpack(buffer[: _HEADER.size])
                buffer = buffer[_HEADER.size :]
            if length is not None and len(buffer) >= length:
                self._inbox = buffer[length:]
                return pickle.loads(memoryview(buffer)[:length])
            # poll, not select: a process with many files open (a server, a long test run) gets descriptors above
            # select's limit of 1024, and select then refuses them.
            waiting = select.poll()
            waiting.register(self._results, select.POLLIN | select.POLLHUP | select.POLLERR)
            ready = waiting.poll(max(0.0, deadline - time.monotonic()) * 1000)
            if not ready:
                return "timeout"
            chunk = os.read(self._results, 1 << 20)
            if not chunk:
                return None
            buffer += chunk

    def _death(self) -> str:
        """What ended the worker, in words: a crash (its signal), the kernel's OOM killer, an exit."""
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._stop()
            code = None
        self._forget()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            if name == "SIGKILL":
                return "the reader was killed while reading it (SIGKILL: most often the machine running out of memory)"
            return f"the reader crashed on this file ({name}): a damaged or unusual file its library cannot parse"
        return "the reader process ended while reading it: a damaged or unusual file its library cannot parse"

    def _failure(self, path: Path, chain: list[FileLoader], sha256: str | None, what: str) -> FileResult:
        readers = ", ".join(loader.name for loader in chain)
        try:
            stat = path.stat()
            size, modified = stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
        except OSError:
            size, modified = 0, dt.datetime.fromtimestamp(0, dt.UTC)
        message = f"{what} (readers tried: {readers}; not read again until the file changes)"
        return FileResult(path, loader_id(chain[0]), size, modified, sha256 or "", error=message)

    def _stop(self) -> None:
        if self._process is not None and self._process.poll() is None and os.getpid() == self._pid:
            self._process.kill()
            self._process.wait()
        self._forget()

    def _forget(self) -> None:
        if self._requests is not None:
            try:
                self._requests.close()
            except OSError:
                pass
        if self._results is not None:
            os.close(self._results)
        self._process = self._requests = self._results = None
        self._inbox = bytearray()

    def close(self) -> None:
        self._stop()


def _send(stream, message) -> None:
    _send_bytes(stream, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _send_bytes(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


_shared: ReaderPool | None = None


def shared_pool() -> ReaderPool:
    """The process's reader pool, started on first use and kept for every later load (ended at exit)."""
    global _shared
    if _shared is None:
        _shared = ReaderPool()
        atexit.register(_shared.close)
    return _shared


def _limit_memory(limit_bytes: int) -> None:
    """Cap the data segment at what the worker uses now (its imports) plus ``limit_bytes``."""
    import resource

    with open("/proc/self/statm") as statm:  # pages: size resident shared text lib data dt
        data_pages = int(statm.read().split()[5])
    cap = data_pages * os.sysconf("SC_PAGE_SIZE") + limit_bytes
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))


def _serve(requests_fd: int, results_fd: int, memory_limit_bytes: int) -> None:
    """The worker: read each requested file and send back its FileResult (or one dataset with its array, a
    DatasetRead), until the loader closes the pipe."""
    import scisearch_loaders.instrument_files  # noqa: F401  the built-in readers, imported before the cap

    _limit_memory(memory_limit_bytes)
    results = os.fdopen(results_fd, "wb")
    _send(results, "ready")
    while True:
        header = _read_exactly(requests_fd, _HEADER.size)
        if header is None:
            return
        (length,) = _HEADER.unpack(header)
        verb, *arguments = pickle.loads(_read_exactly(requests_fd, length))
        if verb == "dataset":  # an export: one dataset with its array
            path, chain, index = arguments
            _send(results, read_dataset(path, chain, index))
        else:
            path, chain, settings, sha256 = arguments
            _send(results, read_file(path, chain, settings, sha256=sha256))


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
