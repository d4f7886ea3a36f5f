"""Downloads: a catalogued file's originals, and its array as TIFF, PNG or HDF5 (EMD).

- ``/-/scisearch/download/<database>/<file id>``: the original file; a zip of it and its partners when it was read
  with others (a TIA ``.ser`` and its ``.emi``, a Direct Electron movie and its ``_info.txt``).
- ``/-/scisearch/export/<database>/<file id>.<tiff|png|emd>``: the dataset's array in that format.

Both stream (a file is read 1 MiB at a time off the event loop; a zip is written as it is sent, entries stored
as they are, since instrument data hardly compresses and the point is speed), carry a ``Content-Disposition``
name, and ask ``readable_item`` first — the same rule as the item page.  Only files inside the catalog's data
roots are ever served (``downloads/originals.py``): the URL names a catalog id, never a path.

Datasette's own ``AsgiFileDownload`` reads 4 KiB at a time through aiofiles (a thread hop for every 4 KiB) and
writes the file name into the header unquoted; this module streams with larger reads and a quoted name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import sqlite_utils
from datasette.utils.asgi import Forbidden, Response

from ..catalog import MAX_SQLITE_INTEGER
from ..downloads.exports import FORMATS, ExportError, export_name, formats_for, parse_shape, write_export
from ..downloads.originals import Originals, originals_of
from ..errors import CONFLICT, FORBIDDEN, NOT_FOUND
from ..ingest.files import file_loaders
from ..ingest.reading import loaders_for
from ..ingest.sandbox import shared_pool
from .base import (
    WebError,
    download_url,
    ensure_may_read,
    export_url,
    facility_settings,
    find_catalog,
    readable_item,
)
from .errors import answers_errors

CHUNK_BYTES = 1 << 20
# One reader worker serves every export of this process, one file at a time.
_sandbox_lock = threading.Lock()


def content_disposition(name: str) -> str:
    """``attachment`` with the file's name twice (RFC 6266): plain ASCII for old clients, UTF-8 for the rest."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


class _Streamed(Response):
    """A Datasette Response whose body is sent in pieces (``send_body``); headers and cookies as Response's."""

    def __init__(self, name: str, content_type: str, size: int | None = None):
        headers = {"content-disposition": content_disposition(name), "cache-control": "private, no-store"}
        if size is not None:
            headers["content-length"] = str(size)
        super().__init__(None, headers=headers, content_type=content_type)
        self.receive = None  # the request's ASGI receive, to hear the client go away
        self.gone = False
        self.head_only = False

    def for_request(self, request) -> _Streamed:
        """Stop reading when this request's client goes away (an ASGI server drops what is sent after that, so a
        download abandoned at 1 % of a terabyte would otherwise read the rest for nobody)."""
        self.receive = request.receive
        self.head_only = request.method == "HEAD"  # the headers alone: nothing is read
        return self

    async def asgi_send(self, send) -> None:
        headers = [(key.encode("latin-1"), str(value).encode("latin-1")) for key, value in self.headers.items()]
        headers.append((b"content-type", self.content_type.encode("latin-1")))
        headers.extend((b"set-cookie", cookie.encode("latin-1")) for cookie in self._set_cookie_headers)
        listening = asyncio.ensure_future(self._listen()) if self.receive is not None else None
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            if self.head_only:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await self.send_body(send)
        finally:
            if listening is not None:
                listening.cancel()
            self.close()

    async def _listen(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True

    async def send_body(self, send) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class StreamedFile(_Streamed):
    """One open file, sent a megabyte at a time; closed (and its folder removed, for a temporary export) when done
    or when the client goes away."""

    def __init__(self, handle, size: int, name: str, content_type: str, remove: Path | None = None):
        super().__init__(name, content_type, size)
        self.handle, self.size, self.remove = handle, size, remove

    async def send_body(self, send) -> None:
        left = unread = self.size

        def read():
            nonlocal unread  # the next read is under way while the last chunk is sent: it counts its own bytes
            chunk = self.handle.read(min(CHUNK_BYTES, unread)) if unread > 0 else b""
            unread -= len(chunk)
            return chunk

        async with contextlib.aclosing(_pipelined(read)) as chunks:
            async for chunk in chunks:
                if self.gone:
                    return
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        if left > 0 or self.size == 0:  # the file shrank while it was sent: end early, the client sees a short body
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def close(self) -> None:
        self.handle.close()
        if self.remove is not None:
            shutil.rmtree(self.remove, ignore_errors=True)


class _Sink:
    """What zipfile writes into: it collects the bytes for the response to send (zipfile needs ``tell``; with no
    ``seek`` it writes each entry's sizes after its data, as streaming requires)."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class StreamedZip(_Streamed):
    """A zip of several files, written as it is sent (no Content-Length: its size is known only at the end)."""

    def __init__(self, originals: Originals, name: str, zone: dt.tzinfo | None = None):
        super().__init__(name, "application/zip")
        self.originals = originals
        self.zone = zone
        self.handles = []
        try:
            for original in originals.files:
                self.handles.append(originals.open(original))
        except BaseException:
            self.close()
            raise

    async def send_body(self, send) -> None:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for original, handle in zip(self.originals.files, self.handles, strict=True):
                info = zipfile.ZipInfo(original.name, _zip_time(original.path, self.zone))
                with archive.open(info, "w", force_zip64=original.size_bytes >= 2**31) as entry:

                    def read_and_add(handle=handle, entry=entry):
                        # In a thread: the read and the zip's CRC-32 (zlib lets go of the GIL for both).
                        chunk = handle.read(CHUNK_BYTES)
                        entry.write(chunk)
                        return sink.take() if chunk else b""

                    async with contextlib.aclosing(_pipelined(read_and_add)) as pieces:
                        async for data in pieces:
                            if self.gone:
                                return
                            await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": sink.take(), "more_body": True})
        await send({"type": "http.response.body", "body": sink.take(), "more_body": False})

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


async def _pipelined(step):
    """Each result of ``step()`` (run in a thread) until it gives nothing, the next one computed while the caller
    sends the last: reading (and a zip's checksum) overlaps with the socket's writes, on a second core."""
    pending = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        while result := await pending:
            pending = asyncio.ensure_future(asyncio.to_thread(step))
            yield result
    finally:
        if not pending.done():  # the client went away: let the thread finish before the file is closed
            await asyncio.wait([pending])


def _zip_time(path: Path, zone: dt.tzinfo | None) -> tuple:
    """A zip entry's time: the file's modification time on the facility's wall clock (zip keeps no zone; the
    server's own may be UTC or wherever it is hosted)."""
    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, zone or dt.UTC).replace(tzinfo=None)
    return max(stamp, dt.datetime(1980, 1, 1)).timetuple()[:6]  # zip's clock starts in 1980


def _file_id(request) -> int:
    text = request.url_vars["file_id"]
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_SQLITE_INTEGER):
        raise WebError(f"'{text[:100]}' is not a file id: downloads name a file by its number in the catalog.", 404)
    return int(text)


async def _readable_originals(request, datasette) -> tuple:
    """The catalog and the originals of the file a download names, once the actor may read that file."""
    file_id = _file_id(request)
    db = find_catalog(datasette, request.url_vars["database"])
    try:  # the catalog's and the files table's rules (metadata.yml): the same for every file, so a 403 says no more
        await ensure_may_read(datasette, request.actor, db, "files")
    except Forbidden:
        raise WebError(f"You may not download the files of '{db.name}'.", kind=FORBIDDEN) from None
    if not await readable_item(datasette, request.actor, db, "file", file_id):
        # Under its proposal's period and not the reader's: as absent as a file the catalog never held.
        raise WebError(f"there is no file {file_id} in this catalog", kind=NOT_FOUND)
    originals = await db.execute_fn(lambda conn: originals_of(sqlite_utils.Database(conn), file_id))
    return db, originals


@answers_errors
async def download_original(request, datasette):
    db, originals = await _readable_originals(request, datasette)
    try:
        if len(originals.files) > 1:
            zone = facility_settings(datasette).zone
            return StreamedZip(originals, f"{Path(originals.main.name).stem}.zip", zone).for_request(request)
        handle = originals.open(originals.main)
    except OSError as error:
        raise WebError(f"'{originals.main.name}' cannot be read now ({error.strerror}).", kind=NOT_FOUND) from None
    response = _file_or_range(handle, originals.main.name, request.headers.get("range"))
    return response.for_request(request) if isinstance(response, _Streamed) else response


def _file_or_range(handle, name: str, range_header: str | None) -> Response:
    """The whole file, or the part a Range header asks for (a 206; a 416 for a range outside the file)."""
    size = _size_now(handle)
    wanted = byte_range(range_header, size)
    if wanted == UNSATISFIABLE:
        handle.close()
        message = f"The range asked for is outside the file ({size} bytes)."
        return Response.text(message, status=416, headers={"content-range": f"bytes */{size}"})
    if wanted is None:
        response = StreamedFile(handle, size, name, "application/octet-stream")
    else:
        start, end = wanted
        handle.seek(start)
        response = StreamedFile(handle, end - start + 1, name, "application/octet-stream")
        response.status = 206
        response.headers["content-range"] = f"bytes {start}-{end}/{size}"
    response.headers["accept-ranges"] = "bytes"  # a broken download of a large file resumes
    return response


UNSATISFIABLE = "unsatisfiable"
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def byte_range(header: str | None, size: int):
    """The (first, last) byte a ``Range`` header asks for (RFC 9110 14.2), UNSATISFIABLE when none of the file is
    in it, None for the whole file: no header, or one this server answers in full (several ranges, bad syntax)."""
    match = _RANGE.fullmatch(header or "")
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # "bytes=-500": the last 500 bytes
        length = int(match[2])
        return (max(0, size - length), size - 1) if length and size else UNSATISFIABLE
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or (match[2] and int(match[2]) < start):
        return UNSATISFIABLE if start >= size else None
    return start, end


def _size_now(handle) -> int:
    return os.fstat(handle.fileno()).st_size


@answers_errors
async def download_export(request, datasette):
    export = FORMATS.get(request.url_vars["format"])
    if export is None:
        raise WebError(f"'{request.url_vars['format'][:20]}' is not an export format: use tiff, png or emd.", 404)
    db, originals = await _readable_originals(request, datasette)
    shape, dataset_count = await db.execute_fn(lambda conn: _shape_and_count(conn, originals.file_id))
    if export not in formats_for(shape):
        possible = ", ".join(f.name for f in formats_for(shape)) or "none (the catalog knows no shape for it)"
        raise ExportError(f"this dataset cannot be exported as {export.label}", fix=f"formats that fit it: {possible}")
    folder = Path(tempfile.mkdtemp(prefix="scisearch-export-"))
    try:
        target = await asyncio.to_thread(_export, originals, export, folder)
        handle = open(target, "rb")  # noqa: SIM115  StreamedFile closes it
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    name = export_name(originals.name, originals.dataset, dataset_count, export)
    return StreamedFile(handle, _size_now(handle), name, export.content_type, remove=folder).for_request(request)


def _shape_and_count(conn, file_id: int) -> tuple:
    shape, count = conn.execute(
        "select shape, (select count(*) from files other where other.path = files.path) from files where id = ?",
        [file_id],
    ).fetchone()
    return parse_shape(shape), count


def _export(originals: Originals, export, folder: Path) -> Path:
    """Read the dataset's array in the reader sandbox (the reader that loaded it first) and write the export."""
    path = originals.main.path
    chain = loaders_for(path, file_loaders())
    served_by = (originals.loader or "").split(":")[0]
    chain.sort(key=lambda loader: loader.name != served_by)  # stable: the rest keep the load's order
    if not chain:
        raise WebError(
            f"No installed reader reads '{originals.name}' any more, so it cannot be exported.", kind=CONFLICT
        )
    with _sandbox_lock:
        read = shared_pool().read_dataset(path, chain, originals.dataset)
    if read.dataset is None:
        raise WebError(f"'{originals.name}' could not be read again for an export: {read.error}", kind=CONFLICT)
    return write_export(read.dataset, export, folder / f"export{export.suffix}")


def downloads_view(datasette, database: str, row: dict) -> list[dict]:
    """The item page's download links for one file's row: the original, then each export its shape allows (none
    for a file gone from its folder)."""
    if not row.get("path") or row.get("id") is None or row.get("missing_since"):
        return []
    links = [{"label": "Original file", "url": download_url(datasette, database, row["id"]), "format": "original"}]
    for export in formats_for(parse_shape(row.get("shape"))):
        url = export_url(datasette, database, row["id"], export.name)
        links.append({"label": export.label, "url": url, "format": export.name})
    return links


_FILE = r"(?P<database>[^/]+)/(?P<file_id>[^/]*)"
ROUTES = [
    (rf"^/-/scisearch/download/{_FILE}$", download_original),
    (rf"^/-/scisearch/export/{_FILE}\.(?P<format>[A-Za-z0-9]+)$", download_export),
]
