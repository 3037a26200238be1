"""A small TFRecord reader: no TensorFlow, no protobuf, every CRC32C checked.

Record framing: uint64 length, uint32 masked CRC32C(length), data, uint32 masked CRC32C(data).
The data of BAIR's records is a serialized tf.train.Example, decoded here from the protobuf wire
format directly (Example -> Features -> map<string, Feature> -> bytes/float/int64 list).

Own reader rather than the `tfrecord` package: that package reads the CRC bytes without checking
them (a corrupt download converts silently) and ships protobuf code generated for one protobuf
major version. CRC32C comes from google-crc32c (Apache-2.0, hardware accelerated: BAIR is ~30 GB).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from svg_core.errors import SVGError

_MASK_DELTA = 0xA282EAD8


def _crc32c(data: bytes) -> int:
    try:
        import google_crc32c
    except ImportError as e:
        raise RuntimeError("reading TFRecords needs google-crc32c: pip install 'svg-video[train]'") from e
    return google_crc32c.value(data)


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of data."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The records of an uncompressed TFRecord file; SVGError on a bad CRC or a truncated file."""
    path = Path(path)
    with open(path, "rb") as f:
        number = 0
        while True:
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise SVGError(f"{path} is truncated inside the header of record {number}: download it again")
            (length,), (crc,) = struct.unpack("<Q", head[:8]), struct.unpack("<I", head[8:])
            if masked_crc(head[:8]) != crc:
                raise SVGError(f"{path}: bad CRC on the length of record {number} (corrupt file or not a "
                               f"TFRecord, e.g. gzip-compressed): download it again")
            data, tail = f.read(length), f.read(4)
            if len(data) < length or len(tail) < 4:
                raise SVGError(f"{path} is truncated inside record {number}: download it again")
            if masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise SVGError(f"{path}: bad CRC on the data of record {number} (corrupt file): download it again")
            yield data
            number += 1


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message; LEN values as bytes."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("field runs past the end of its message")
        yield number, wire, value


def _feature(buf: bytes) -> bytes | list[bytes] | np.ndarray:
    """A tf.train.Feature: list of bytes, float32 array or int64 array."""
    for kind, _, payload in _fields(buf):
        if kind == 1:  # BytesList
            return [v for n, _, v in _fields(payload) if n == 1]
        if kind == 2:  # FloatList: packed (wire 2) or one fixed32 per value (wire 5)
            parts = [v for n, _, v in _fields(payload) if n == 1]
            return np.frombuffer(b"".join(parts), dtype="<f4").astype(np.float32)
        if kind == 3:  # Int64List: packed varints or one varint per value
            values: list[int] = []
            for n, wire, v in _fields(payload):
                if n == 1 and wire == 0:
                    values.append(v)
                elif n == 1:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(x)
            return np.array([x - (1 << 64) if x >= 1 << 63 else x for x in values], dtype=np.int64)
    return []


def parse_example(data: bytes, wanted: Callable[[str], bool] | None = None) -> dict[str, list[bytes] | np.ndarray]:
    """The features of a serialized tf.train.Example whose names `wanted` accepts (default: all)."""
    features: dict[str, list[bytes] | np.ndarray] = {}
    for number, _, message in _fields(data):
        if number != 1:
            continue
        for entry_no, _, entry in _fields(message):  # Features.feature: map<string, Feature>
            if entry_no != 1:
                continue
            key, value = "", b""
            for n, _, v in _fields(entry):
                if n == 1:
                    key = v.decode("utf-8")
                elif n == 2:
                    value = v
            if wanted is None or wanted(key):
                features[key] = _feature(value)
    return features
