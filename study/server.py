"""``study server``: a real ``mlflow server`` on 127.0.0.1, SQLite by default, any SQLAlchemy URI.

Workers on other nodes log to it over HTTP (``study sweep --tracking-uri
http://HOST:PORT``); artifacts are proxied through it (``--serve-artifacts``),
so workers need no shared filesystem for them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .spec import _absolute_uri


def server_command(backend_store_uri: str, artifacts: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        _absolute_uri(backend_store_uri),
        "--artifacts-destination",
        str(Path(artifacts).resolve()) if "://" not in artifacts else artifacts,
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
    ]


def serve(backend_store_uri: str, artifacts: str, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Become the MLflow server (``exec``) so signals reach it directly; returns only on failure."""
    command = server_command(backend_store_uri, artifacts, host, port)
    print(f"MLflow server on http://{host}:{port}  (store {command[5]}, artifacts {command[7]})")
    print(
        f"log sweeps to it with: study sweep SPEC --tracking-uri http://{host}:{port}", flush=True
    )
    os.execv(command[0], command)
    return 1
