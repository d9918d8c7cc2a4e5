"""Read an offline W&B run (`run-*.wandb`) back: W&B's own record format, which wandb's Python
package no longer reads since its core moved to Go. The file is a header (':W&B', magic 0xBEE1,
version 0) then 32 KiB blocks of chunks (crc32, length, type: full, first, middle, last), each record
a `wandb_internal_pb2.Record` protobuf, as wandb writes it."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, CHUNK_HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    out, pos, pending = [], 7, b""
    while pos + CHUNK_HEADER <= len(data):
        if BLOCK - pos % BLOCK < CHUNK_HEADER:  # too little room for a chunk header: the block is padded
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        body = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        if kind == 0 and length == 0:
            break  # zero padding at the end
        assert zlib.crc32(bytes([kind]) + body) & 0xFFFFFFFF == crc, f"bad checksum at byte {pos}"
        pos += CHUNK_HEADER + length
        pending = body if kind in (FULL, FIRST) else pending + body
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(path: Path) -> dict:
    """{"run": the run record, "config": {key: value}, "history": [rows], "summary": {key: value},
    "metrics": [define_metric records]} of one offline run file."""
    out: dict = {"run": None, "config": {}, "history": [], "summary": {}, "metrics": []}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
            out["config"].update({_key(i): json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in r.config.update})
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in r.summary.update})
            for i in r.summary.remove:
                out["summary"].pop(_key(i), None)
        elif kind == "metric":
            out["metrics"].append(r.metric)
    return out
