"""MotiveClient over TLS against the real daemon started with a self-signed certificate."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from motive_hooks import MotiveClient
from test_interop import Daemon


def test_tls_stream_and_rest(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (Debian: openssl)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    daemon = Daemon(str(tmp_path / "data"), {"tls": {"certFile": str(cert), "keyFile": str(key)}})
    try:
        client = MotiveClient(f"localhost:{daemon.grpc_port}", "tls-run", dim=4, dtype="float32",
                              tls_root_certificates=cert.read_bytes(), raise_on_error=True)
        client.send(0, 0.5, ["a", "b"], np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
        assert client.flush(timeout_s=20)
        client.close()
        ctx = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://localhost:{daemon.http_port}/v1/runs/tls-run", context=ctx, timeout=10) as r:
            run = json.loads(r.read())
        assert run["batches"] == 1 and run["samples"] == 2
        # Plaintext is refused: the client never attaches.
        plain = MotiveClient(f"127.0.0.1:{daemon.grpc_port}", "tls-run", dim=4, dtype="float32", connect_timeout_s=1.0)
        plain.send(1, 0.5, ["c"], np.zeros((1, 4), dtype=np.float32))
        time.sleep(1.5)
        plain.close(timeout_s=2)
        with urllib.request.urlopen(f"https://localhost:{daemon.http_port}/v1/runs/tls-run", context=ctx, timeout=10) as r:
            after = json.loads(r.read())
        assert after["batches"] == 1 and after["samples"] == 2
    finally:
        daemon.stop()
