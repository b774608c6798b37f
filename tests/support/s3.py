"""A real S3 endpoint on loopback (moto in server mode) holding the objects a test asks for."""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}


@contextlib.contextmanager
def moto_s3(objects: dict[str, dict[str, bytes]]) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (endpoint URL, credentials) with ``{bucket: {key: body}}`` stored; this process's
    environment carries the fake credentials meanwhile (pass them on to subprocesses)."""
    import boto3
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for key, value in CREDENTIALS.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client("s3", endpoint_url=endpoint)
            for bucket, items in objects.items():
                client.create_bucket(Bucket=bucket)
                for key, body in items.items():
                    client.put_object(Bucket=bucket, Key=key, Body=body)
            yield endpoint, dict(CREDENTIALS)
        finally:
            server.stop()
