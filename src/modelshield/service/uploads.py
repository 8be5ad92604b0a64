"""Streaming multipart uploads: each ``file`` part goes straight to a temp file in the data dir, hashed.

Nothing is kept in memory beyond one chunk, and nothing is stored until the whole request has been
received and checked: a body over the limit (413), a file name that could escape (400), a malformed
body (400) or a client that goes away leave no file behind. File names are the model-relative paths
(``tokenizer/vocab.json``); :func:`modelshield.service.storage.clean_relpath` decides what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from modelshield.service.errors import ServiceError, bad_request, too_large
from modelshield.service.storage import PendingFile, Storage, clean_relpath

FILE_FIELDS = frozenset({"file", "files"})
MAX_FIELDS = 32
MAX_FIELD_BYTES = 8192
MAX_FILES = 10_000
#: Multipart framing (boundaries, part headers, small fields) allowed on top of the file bytes.
SLACK = 1 << 20
#: After an error, read (and drop) at most this much more, so the client gets the answer, not a reset.
DRAIN = 64 << 20


@dataclass
class Upload:
    """A received upload: its text fields and its files (temp files, not stored yet)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[PendingFile] = field(default_factory=list)

    def discard(self) -> None:
        """Delete every temp file."""
        for pending in self.files:
            pending.discard()
        self.files.clear()


class _Parts:
    """The parser's callbacks: headers, then data, of one part at a time."""

    def __init__(self, storage: Storage, limit: int) -> None:
        self.storage = storage
        self.limit = limit
        self.upload = Upload()
        self.error: ServiceError | None = None
        self.file_bytes = 0
        self.ended = False
        self._headers: dict[str, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._field: str | None = None
        self._value = bytearray()
        self._pending: PendingFile | None = None
        self._skip = False

    def fail(self, error: ServiceError) -> None:
        if self.error is None:
            self.error = error
        if self._pending is not None:
            self._pending.discard()
            self._pending = None

    def _guard(self, callback: Callable[..., None]) -> Callable[..., None]:
        def run(*args: object) -> None:
            if self.error is not None:
                return
            try:
                callback(*args)
            except ServiceError as exc:
                self.fail(exc)

        return run

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._guard(self.part_begin),
            "on_header_field": self._guard(self.header_field),
            "on_header_value": self._guard(self.header_value),
            "on_header_end": self._guard(self.header_end),
            "on_headers_finished": self._guard(self.headers_finished),
            "on_part_data": self._guard(self.part_data),
            "on_part_end": self._guard(self.part_end),
            "on_end": self._guard(self.end),
        }

    def part_begin(self) -> None:
        self._headers, self._field, self._value, self._pending, self._skip = {}, None, bytearray(), None, False

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_FIELD_BYTES:
            raise bad_request("a part header is too long", code="malformed_upload")

    def header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def headers_finished(self) -> None:
        kind, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise bad_request("every part needs Content-Disposition: form-data; name=...", code="malformed_upload")
        field_name = _text(name, "field name")
        filename = params.get(b"filename")
        if filename is None:
            if len(self.upload.fields) >= MAX_FIELDS:
                raise bad_request(f"more than {MAX_FIELDS} form fields", code="malformed_upload")
            if field_name in self.upload.fields or field_name in FILE_FIELDS:
                raise bad_request(f"field {field_name!r} given twice or without a file", code="malformed_upload")
            self._field = field_name
            return
        if field_name not in FILE_FIELDS:
            raise bad_request(f"file parts are named 'file', not {field_name!r}", code="malformed_upload")
        relpath = _text(filename, "file name")
        if not relpath:  # a browser's empty file input: no file chosen
            self._skip = True
            return
        if len(self.upload.files) >= MAX_FILES:
            raise bad_request(f"more than {MAX_FILES} files", code="too_many_files")
        self._pending = self.storage.pending(clean_relpath(relpath))

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._skip:
            return
        if self._pending is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.limit:
                raise too_large(self.limit)
            self._pending.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise bad_request(f"field {self._field!r} is longer than {MAX_FIELD_BYTES} bytes", code="malformed_upload")

    def part_end(self) -> None:
        if self._pending is not None:
            self.upload.files.append(self._pending)
            self._pending = None
        elif self._field is not None:
            self.upload.fields[self._field] = _text(bytes(self._value), f"field {self._field!r}")
        self._field = None

    def end(self) -> None:
        self.ended = True

    def discard(self) -> None:
        if self._pending is not None:
            self._pending.discard()
            self._pending = None
        self.upload.discard()


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"the {what} is not UTF-8", code="malformed_upload") from None


def is_multipart(request: Request) -> bool:
    """True when the request body is multipart/form-data."""
    kind, _ = parse_options_header(request.headers.get("content-type", ""))
    return kind == b"multipart/form-data"


async def receive(request: Request, storage: Storage, limit: int) -> Upload:
    """Read a multipart body into temp files; every temp file is gone again if this raises."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise bad_request("expected multipart/form-data with a boundary", code="bad_content_type")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + SLACK:
        raise too_large(limit)
    parts = _Parts(storage, limit)
    parser = MultipartParser(boundary, callbacks=parts.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if parts.error is None and received > limit + SLACK:
                parts.fail(too_large(limit))
            if parts.error is None:
                parser.write(chunk)
            elif received > limit + SLACK + DRAIN:
                break
        if parts.error is not None:
            raise parts.error
        parser.finalize()
        if not parts.ended:
            raise bad_request("the multipart body ends early", code="malformed_upload")
    except MultipartParseError:
        parts.discard()
        raise bad_request("malformed multipart body", code="malformed_upload") from None
    except BaseException:
        parts.discard()
        raise
    return parts.upload
