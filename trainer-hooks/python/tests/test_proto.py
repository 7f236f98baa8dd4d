"""The committed protobuf module is what protoc generates from schemas/motive.proto."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_generated_stub_is_current() -> None:
    if shutil.which("protoc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("protoc not installed (Debian: protobuf-compiler)")
        pytest.skip("protoc not installed (Debian: protobuf-compiler)")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([os.path.join(HERE, "gen_proto.sh"), out], check=True)
        with open(os.path.join(out, "motive_pb2.py"), "rb") as f:
            fresh = f.read()
    with open(os.path.join(HERE, "motive_hooks", "_proto", "motive_pb2.py"), "rb") as f:
        committed = f.read()
    assert fresh == committed, "motive_pb2.py is stale: run trainer-hooks/python/gen_proto.sh"


def test_messages_round_trip() -> None:
    from motive_hooks._proto import motive_pb2 as pb

    m = pb.TrainerMessage(batch=pb.SketchBatch(seq=3, step=9, lr=0.5, sample_ids=["a"], sketches=b"\x00\x3c"))
    back = pb.TrainerMessage.FromString(m.SerializeToString())
    assert back.WhichOneof("body") == "batch" and back.batch.seq == 3 and back.batch.sketches == b"\x00\x3c"
    assert pb.FLOAT16 == 2 and pb.FLOAT32 == 1
