"""Every format's content test in one place, and the catalog of which module reads what.

Identifying a blob used to import every reader module (tarfile, tempfile, lzma, the pickle VM,
the ONNX decoder ...) only to ask each one "is this yours?". The tests live here instead, as
plain functions of the head bytes, the name and the size (a few read the blob's tail), and
:data:`CATALOG` says which reader each one stands for. :func:`~modelshield.formats.interface.detect`
walks the catalog by priority and imports a reader module only when its test accepts the bytes.

Each reader's ``sniff`` calls its function here, so the catalog and the reader cannot disagree
(``tests/formats/test_registry.py`` checks it over real and generated inputs). This module imports
only what start-up already loaded; heavier helpers are imported inside the rare branch that needs them.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from modelshield.formats.blob import Blob

#: A content test: ``(head, blob) -> accepted``.
Test = Callable[[bytes, "Blob"], bool]

# ------------------------------------------------------------------ EICAR, executables, scripts

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

_MACHO = {
    b"\xfe\xed\xfa\xce": "Mach-O 32-bit",
    b"\xfe\xed\xfa\xcf": "Mach-O 64-bit",
    b"\xce\xfa\xed\xfe": "Mach-O 32-bit",
    b"\xcf\xfa\xed\xfe": "Mach-O 64-bit",
}


def sniff_eicar(head: bytes, blob: Blob) -> bool:
    """The EICAR string in the first bytes (the whole blob when it is small)."""
    return EICAR in head


def executable_kind(head: bytes) -> str | None:
    """Name of the executable format ``head`` starts with (ELF, PE, Mach-O), or None."""
    if head.startswith(b"\x7fELF") and len(head) >= 5 and head[4] in (1, 2):
        return "ELF " + ("64-bit" if head[4] == 2 else "32-bit")
    if head.startswith(b"MZ") and len(head) >= 0x40:
        pe_offset = int.from_bytes(head[0x3C:0x40], "little")
        if pe_offset + 4 <= len(head) and head[pe_offset : pe_offset + 4] == b"PE\0\0":
            return "PE (Windows executable)"
        return None
    if head[:4] in _MACHO:
        return _MACHO[head[:4]]
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        count = int.from_bytes(head[4:8], "big")
        if 0 < count <= 32:
            return "Mach-O universal binary"
    return None


def shebang_line(head: bytes) -> str | None:
    """The interpreter line of a ``#!`` script (``#!/...`` or ``#! /...``), or None."""
    if not head.startswith(b"#!"):
        return None
    line = head.split(b"\n", 1)[0][2:].strip()
    if not line.startswith(b"/") or len(line) > 256:
        return None
    return line.decode("utf-8", "replace")


def sniff_executable(head: bytes, blob: Blob) -> bool:
    """A native executable header or a shebang line that is not a Python script."""
    if executable_kind(head):
        return True
    line = shebang_line(head)
    return line is not None and "python" not in line


# ------------------------------------------------------------------ archives and compression

LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
#: Zip record signatures and the end-of-central-directory size (as in :mod:`.zipfmt.parser`).
ZIP_LOCAL_SIG = b"PK\x03\x04"
ZIP_EOCD_SIG = b"PK\x05\x06"
ZIP_DESCRIPTOR_SIG = b"PK\x07\x08"
ZIP_EOCD_SIZE = 22
ZIP_MAX_COMMENT = 0xFFFF


def sniff_lfs_pointer(head: bytes, blob: Blob) -> bool:
    """The Git LFS spec line first."""
    return head.startswith(LFS_MAGIC)


def sniff_7z(head: bytes, blob: Blob) -> bool:
    """The 7z signature."""
    return head.startswith(SEVENZIP_MAGIC)


def sniff_zip(head: bytes, blob: Blob) -> bool:
    """A local header or empty-archive record at the start, or a zip at the end (polyglot)."""
    if head[:4] in (ZIP_LOCAL_SIG, ZIP_EOCD_SIG) or head[:8] == ZIP_DESCRIPTOR_SIG + ZIP_LOCAL_SIG:
        return True
    return blob.size > ZIP_EOCD_SIZE and _zip_at_tail(blob)


def _zip_at_tail(blob: Blob) -> bool:
    """A complete zip ends the blob exactly (data was prepended to it).

    The tail is searched for the end record's signature first; only when it is there is the zip
    parser imported to locate and check the record (it reads the same tail again).
    """
    tail_start = max(0, blob.size - (ZIP_EOCD_SIZE + ZIP_MAX_COMMENT))
    try:
        with blob.open() as stream:
            stream.seek(tail_start)
            if ZIP_EOCD_SIG not in stream.read(blob.size - tail_start):
                return False
            from modelshield.formats.zipfmt.parser import central_start, find_eocd

            eocd = find_eocd(stream, blob.size)
            if eocd is None or eocd.end != blob.size or eocd.entries == 0:
                return False
            return central_start(stream, eocd) is not None
    except OSError:
        return False


#: joblib < 0.10 "ZF" files: b"ZF", the hex length padded to 19 characters, then a zlib stream.
ZF_HEADER = 21
_ZF = re.compile(rb"ZF0x[0-9a-fA-F]{1,17}L? *")
GZIP_MAGIC = b"\x1f\x8b\x08"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
JOBLIB_ZF_MAGIC = b"ZF"


def compression_kind(head: bytes) -> str | None:
    """The compression wrapper ``head`` starts with, by name (see :mod:`.compressed`), or None.

    Strong magics decide alone; weak ones (joblib ZF, lzma-alone, raw zlib) are confirmed by
    decoding the first bytes.
    """
    if head.startswith(GZIP_MAGIC) or head.startswith(XZ_MAGIC) or head.startswith(LZ4_MAGIC):
        return "gzip" if head[0] == 0x1F else "xz" if head[0] == 0xFD else "lz4"
    if head[:3] == BZIP2_MAGIC and head[3:4] in b"123456789" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2"
    if _ZF.fullmatch(head[:ZF_HEADER]) and _decodes("zlib", head[ZF_HEADER:]):
        return "joblib-zf"
    if _plausible_lzma_alone(head) and _decodes("lzma-alone", head):
        return "lzma"
    if _plausible_zlib(head) and _decodes("zlib", head):
        return "zlib"
    return None


def sniff_compressed(head: bytes, blob: Blob) -> bool:
    """Magic bytes of a supported compressor (weak ones confirmed by trial decoding)."""
    return compression_kind(head) is not None


def _plausible_zlib(head: bytes) -> bool:
    return (
        len(head) >= 3
        and head[0] & 0x0F == 8
        and head[0] >> 4 <= 7
        and (head[0] << 8 | head[1]) % 31 == 0
        and not head[1] & 0x20
    )


def _plausible_lzma_alone(head: bytes) -> bool:
    if len(head) < 14 or head[0] >= 225:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    declared = int.from_bytes(head[5:13], "little")
    power = dict_size & (dict_size - 1) == 0 or (dict_size // 3) & (dict_size // 3 - 1) == 0 and dict_size % 3 == 0
    return dict_size >= 4096 and power and (declared == 2**64 - 1 or declared < 2**48)


def _decodes(decoder: str, data: bytes) -> bool:
    from modelshield.formats._containers import DECODE_ERRORS, DECODERS  # only after a weak magic matched

    try:
        DECODERS[decoder]().decompress(data, 256)
    except DECODE_ERRORS:
        return False
    return True


TAR_BLOCK = 512


def tar_header_ok(block: bytes) -> bool:
    """True when ``block`` is a tar header whose checksum field matches its bytes."""
    if len(block) < TAR_BLOCK or block[:TAR_BLOCK].count(0) == TAR_BLOCK:
        return False
    field = block[148:156].split(b"\0", 1)[0].strip()
    try:
        recorded = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:TAR_BLOCK])
    signed = unsigned - sum(256 for b in (*block[:148], *block[156:TAR_BLOCK]) if b > 127)
    return recorded in (unsigned, signed)


def sniff_tar(head: bytes, blob: Blob) -> bool:
    """A first block that is a tar header with a valid checksum."""
    return tar_header_ok(head)


# ------------------------------------------------------------------ tensor and model files

GGUF_MAGIC = b"GGUF"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF5_SUPERBLOCK_OFFSETS = (0, 512, 1024, 2048)
TFLITE_IDENTIFIER = b"TFL3"
NPY_MAGIC = b"\x93NUMPY"
#: ``torch.save`` legacy format: a pickled magic number opens the file.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_MAGIC_BYTES = TORCH_LEGACY_MAGIC.to_bytes(10, "little")


def sniff_gguf(head: bytes, blob: Blob) -> bool:
    """The ``GGUF`` magic."""
    return head[:4] == GGUF_MAGIC


def hdf5_offset(head: bytes) -> int | None:
    """Offset of the HDF5 superblock signature (0 or a user-block size), or None."""
    for offset in _HDF5_SUPERBLOCK_OFFSETS:
        if head[offset : offset + 8] == HDF5_MAGIC:
            return offset
    return None


def sniff_hdf5(head: bytes, blob: Blob) -> bool:
    """HDF5 signature at 0 or at a user-block boundary."""
    return hdf5_offset(head) is not None


SAFETENSORS_SUFFIX = ".safetensors"


def looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian length followed by a JSON object.

    The length is not bounded (an absurd one is an attack the reader reports), but eight printable
    ASCII characters are text that happens to be followed by a brace (``flavors: {}``), not a length.
    """
    if len(head) < 9 or head[8:].lstrip(b" \t\r\n")[:1] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length < 1 << 48 or not all(0x20 <= b < 0x7F for b in head[:8])


def sniff_safetensors(head: bytes, blob: Blob) -> bool:
    """An 8-byte length followed by a JSON object, or anything named ``*.safetensors``.

    The length is not judged here: an absurd one (beyond the file, gigabytes) is a header attack the
    reader reports. A file that only claims to be safetensors by its name is claimed too, so that
    content which is not valid safetensors is reported as such (a high finding) instead of as unknown
    content; a tar archive (the other reader of this priority) keeps its own.
    """
    if looks_like_safetensors(head):
        return True
    return blob.name.lower().endswith(SAFETENSORS_SUFFIX) and not tar_header_ok(head)


def sniff_safetensors_index(head: bytes, blob: Blob) -> bool:
    """A JSON object with a ``weight_map`` (or the conventional file name and a JSON object)."""
    text = head.lstrip()
    if not text.startswith(b"{"):
        return False
    return b'"weight_map"' in head or blob.name.endswith(".safetensors.index.json")


def looks_like_tflite(head: bytes) -> bool:
    """The ``TFL3`` flatbuffer identifier after a plausible root offset."""
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        return False
    return int.from_bytes(head[:4], "little") >= 8


def sniff_tflite(head: bytes, blob: Blob) -> bool:
    """``TFL3`` at offset 4."""
    return looks_like_tflite(head)


def sniff_numpy(head: bytes, blob: Blob) -> bool:
    """The ``\\x93NUMPY`` magic."""
    return head.startswith(NPY_MAGIC)


def sniff_torch_legacy(head: bytes, blob: Blob) -> bool:
    """A protocol-2+ pickle of the legacy magic number opens the file."""
    return len(head) >= 15 and head[0] == 0x80 and head[2:4] == b"\x8a\x0a" and head[4:14] == _TORCH_LEGACY_MAGIC_BYTES


# ------------------------------------------------------------------ protobuf models (no magic)

#: Core ML: ``Model`` fields that hold a model type, and the highest specificationVersion accepted.
COREML_TYPE_FIELDS = frozenset(range(200, 3001))
COREML_MAX_SPEC_VERSION = 64


def looks_like_coreml(head: bytes, size: int, name: str) -> bool:
    """``specificationVersion`` (field 1) first, then description/type fields; ``.mlmodel`` breaks ties."""
    if head[:1] not in (b"\x08", b"\x88") and not name.lower().endswith(".mlmodel"):
        return False  # field 1 as a varint is tag 8: 0x08, or 0x88 when padded; decided without the walker
    from modelshield.errors import FormatError
    from modelshield.formats import _protobuf as pb  # the protobuf walker: needed only when no magic matched
    from modelshield.formats._cursor import Cursor

    cur = Cursor(io.BytesIO(head), len(head), "coreml sniff")
    seen_type = False
    try:
        for count, (number, wire) in enumerate(pb.fields(cur, len(head))):
            if count == 0 and (number != 1 or wire != pb.VARINT or not 1 <= cur.varint() <= COREML_MAX_SPEC_VERSION):
                return False
            if count == 0:
                continue
            if number == 2 and wire == pb.LEN or number == 10 and wire == pb.VARINT:
                pb.skip(cur, wire, size)
            elif number in COREML_TYPE_FIELDS and wire == pb.LEN:
                seen_type = True
                break
            else:
                return False
    except FormatError:  # the head ends mid-field: judge what was seen
        return seen_type or (cur.pos >= len(head) and name.lower().endswith(".mlmodel"))
    return seen_type or name.lower().endswith(".mlmodel")


def sniff_coreml(head: bytes, blob: Blob) -> bool:
    """A Core ML ModelProto prefix."""
    return looks_like_coreml(head, max(blob.size, len(head)), blob.name)


_VARINT, _LEN = 0, 2  # protobuf wire types
_ONNX_MODEL_FIELDS = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN}
_ONNX_MODEL_FIELDS_LATE = {14: _LEN, 20: _LEN, 25: _LEN, 26: _LEN}


def looks_like_onnx(head: bytes, size: int, name: str = "") -> bool:
    """True when ``head`` starts like a serialized ModelProto (the ``.onnx`` extension only breaks ties)."""
    seen: list[int] = []
    i = 0
    while i < len(head) and len(seen) < 16:
        key, i = _head_varint(head, i)
        if key is None:
            break
        number, wire = key >> 3, key & 7
        if _ONNX_MODEL_FIELDS.get(number, _ONNX_MODEL_FIELDS_LATE.get(number)) != wire:
            return False
        value, i = _head_varint(head, i)
        if value is None:
            break
        seen.append(number)
        if wire == _VARINT:
            if number == 1 and not 1 <= value <= 64:
                return False
            continue
        if value > size - i:  # truncated: only a .onnx file is then claimed (to report it as broken)
            return bool(seen) and seen[0] == 1 and name.lower().endswith(".onnx")
        if number in (2, 3, 4) and (i + value > len(head) or not _printable_utf8(head[i : i + value])):
            return False
        i += value
    if not seen:
        return False
    if name.lower().endswith(".onnx"):
        return True
    return seen[0] == 1 and len(seen) >= 2 and any(n in (7, 8) for n in seen)


def sniff_onnx(head: bytes, blob: Blob) -> bool:
    """Leading fields decode as a ModelProto."""
    return looks_like_onnx(head, blob.size, blob.name)


def _head_varint(data: bytes, i: int) -> tuple[int | None, int]:
    result = shift = 0
    for j in range(i, min(len(data), i + 10)):
        result |= (data[j] & 0x7F) << shift
        if data[j] < 0x80:
            return result, j + 1
        shift += 7
    return None, i


def _printable_utf8(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A varint at ``pos`` and the position after it; ``-1`` when the head ends inside it."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def sniff_keras_metadata(head: bytes, blob: Blob) -> bool:
    """Repeated SavedObject messages with tf.keras identifiers."""
    return head.startswith(b"\x0a") and b"_tf_keras_" in head


def looks_like_saved_model(head: bytes) -> bool:
    """``saved_model_schema_version = 1`` then a MetaGraphDef starting with its MetaInfoDef."""
    if not head.startswith(b"\x08\x01\x12"):
        return False
    size, pos = _varint(head, 3)
    return size > 0 and head[pos : pos + 1] == b"\x0a"


def sniff_saved_model(head: bytes, blob: Blob) -> bool:
    """SavedModel wire layout."""
    return looks_like_saved_model(head)


_TF_OP_NAME = re.compile(rb"^[A-Za-z_][A-Za-z0-9_>.\-]*$")


def looks_like_graph_def(head: bytes) -> bool:
    """A first NodeDef with a printable name and an identifier-like op."""
    if not head.startswith(b"\x0a"):
        return False
    _size, pos = _varint(head, 1)
    if head[pos : pos + 1] != b"\x0a":
        return False
    name_len, pos = _varint(head, pos + 1)
    if not 0 < name_len <= 1024 or pos + name_len + 2 > len(head):
        return False
    name = head[pos : pos + name_len]
    pos += name_len
    if head[pos : pos + 1] != b"\x12" or not name.isascii():
        return False
    op_len, pos = _varint(head, pos + 1)
    return 0 < op_len <= 256 and bool(_TF_OP_NAME.match(head[pos : pos + op_len]))


def sniff_graph_def(head: bytes, blob: Blob) -> bool:
    """GraphDef wire layout (a NodeDef first)."""
    return looks_like_graph_def(head)


def sniff_tf_fingerprint(head: bytes, blob: Blob) -> bool:
    """A small message of varint fields 1-5, a VersionDef (6) and a UUID (7), parsed whole.

    That shape has no magic and fits other tiny protobufs (an ONNX model without a producer),
    so the SavedModel's fixed file name is required too; a renamed one is unknown content.
    """
    if blob.name != "fingerprint.pb":
        return False
    if not 8 <= blob.size <= 512 or len(head) != blob.size or head[:1] != b"\x08":
        return False
    pos = 0
    seen = set()
    while pos < len(head):
        key, pos = _varint(head, pos)
        number, wire = key >> 3, key & 7
        if number in {1, 2, 3, 4, 5} and wire == 0:
            _value, pos = _varint(head, pos)
        elif number in {6, 7} and wire == 2:
            size, pos = _varint(head, pos)
            pos += max(size, 0)
        else:
            return False
        seen.add(number)
    return pos == len(head) and 1 in seen


LEVELDB_MAGIC = bytes.fromhex("57fb808b247547db")
_TF_DATA_SHARD = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")


def _tail(blob: Blob, size: int) -> bytes:
    if blob.size < size:
        return b""
    with blob.open() as stream:
        stream.seek(blob.size - size)
        return stream.read(size)


def sniff_tf_checkpoint_index(head: bytes, blob: Blob) -> bool:
    """The LevelDB table magic in the last 8 bytes."""
    return blob.size >= 48 and _tail(blob, 8) == LEVELDB_MAGIC


def sniff_tf_checkpoint_data(head: bytes, blob: Blob) -> bool:
    """The shard name and a valid index file beside it on disk."""
    match = _TF_DATA_SHARD.match(blob.name)
    if not match or blob.members:
        return False
    index = os.path.join(os.path.dirname(blob.path), match["prefix"] + ".index")
    try:
        with open(index, "rb") as stream:
            stream.seek(-8, os.SEEK_END)
            return stream.read(8) == LEVELDB_MAGIC
    except OSError:
        return False


# ------------------------------------------------------------------ text: configs, code, plain text

_YAML_NAMES = re.compile(r"(^MLmodel$|\.ya?ml$)")
_PYTHON_SUFFIXES = (".py", ".pyw", ".pyi")
#: Share of printable characters (or whitespace) a text head must have.
PRINTABLE_SHARE = 0.95


def sniff_python_source(head: bytes, blob: Blob) -> bool:
    """A Python file name or a python shebang, and text (no NUL)."""
    if b"\0" in head:
        return False
    first = head.split(b"\n", 1)[0]
    return blob.name.endswith(_PYTHON_SUFFIXES) or (first.startswith(b"#!") and b"python" in first)


def sniff_yaml(head: bytes, blob: Blob) -> bool:
    """A YAML-named text file (the content is validated by parsing it)."""
    return bool(_YAML_NAMES.search(blob.name)) and b"\0" not in head and not head.startswith(b"{")


def sniff_json(head: bytes, blob: Blob) -> bool:
    """Text starting with '{' or '['."""
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"\0" in head or body[:1] not in (b"{", b"["):
        return False
    after = body[1:].lstrip(b" \t\r\n")[:1]
    allowed = b'"}' if body[:1] == b"{" else b'{["]-0123456789tfn'
    return not after or after in allowed


def looks_like_text(head: bytes) -> bool:
    """UTF-8 (a multi-byte character may be cut at the end), no NUL, mostly printable."""
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    if not text:
        return False
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\t\n\r\f\v")
    return printable >= PRINTABLE_SHARE * len(text)


def sniff_text(head: bytes, blob: Blob) -> bool:
    """Printable UTF-8 text."""
    return looks_like_text(head)


# ------------------------------------------------------------------ the catalog


class Entry(NamedTuple):  # not a dataclass: a NamedTuple class costs a quarter as much at start-up
    """One built-in reader: where it lives, its priority, and the test that decides to import it.

    ``test`` None means the test is too costly to keep here (the pickle trial parse): the module is
    imported when detection reaches the entry, and its reader's own ``sniff`` decides.
    """

    module: str
    reader: str
    priority: int
    test: Test | None


_F = "modelshield.formats."

#: Every built-in reader, highest priority first. Equal priorities are tried in the order listed
#: here (not in import order). A reader module that is not listed fails tests/formats/test_registry.py.
CATALOG: tuple[Entry, ...] = (
    Entry(_F + "executables", "EicarReader", 1000, sniff_eicar),
    Entry(_F + "executables", "ExecutableReader", 95, sniff_executable),
    Entry(_F + "hf_repo", "LfsPointerReader", 92, sniff_lfs_pointer),
    Entry(_F + "sevenzip", "SevenZipReader", 90, sniff_7z),
    Entry(_F + "zipfmt.reader", "ZipReader", 90, sniff_zip),
    Entry(_F + "compressed", "CompressedReader", 85, sniff_compressed),
    Entry(_F + "gguf", "GGUFReader", 80, sniff_gguf),
    Entry(_F + "keras_h5", "Hdf5Reader", 80, sniff_hdf5),
    Entry(_F + "safetensors", "SafetensorsReader", 80, sniff_safetensors),
    Entry(_F + "tar", "TarReader", 80, sniff_tar),
    Entry(_F + "tflite", "TfliteReader", 75, sniff_tflite),
    Entry(_F + "safetensors", "SafetensorsIndexReader", 70, sniff_safetensors_index),
    Entry(_F + "numpy_npy", "NpyReader", 60, sniff_numpy),
    Entry(_F + "python_source", "PythonSourceReader", 60, sniff_python_source),
    Entry(_F + "coreml", "CoreMLReader", 33, sniff_coreml),
    Entry(_F + "onnx_proto", "OnnxReader", 32, sniff_onnx),
    Entry(_F + "tensorflow", "KerasMetadataReader", 31, sniff_keras_metadata),
    Entry(_F + "tensorflow", "SavedModelReader", 30, sniff_saved_model),
    Entry(_F + "torch_legacy", "TorchLegacyReader", 30, sniff_torch_legacy),
    Entry(_F + "tensorflow", "GraphDefReader", 29, sniff_graph_def),
    Entry(_F + "tensorflow", "FingerprintReader", 28, sniff_tf_fingerprint),
    Entry(_F + "tensorflow", "CheckpointIndexReader", 27, sniff_tf_checkpoint_index),
    Entry(_F + "hf_repo", "YamlConfigReader", 21, sniff_yaml),
    Entry(_F + "hf_repo", "JsonConfigReader", 20, sniff_json),
    Entry(_F + "pickle.reader", "PickleReader", 10, None),
    Entry(_F + "text", "TextReader", 10, sniff_text),
    Entry(_F + "tensorflow", "CheckpointDataReader", 4, sniff_tf_checkpoint_data),
)
