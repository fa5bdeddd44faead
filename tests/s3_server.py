"""A real S3-compatible server (moto) on loopback, as pytest fixtures.

Register it as a plugin (tests/conftest.py: ``pytest_plugins = ["tests.s3_server"]``) or import the
fixtures (``from tests.s3_server import s3_bucket, s3_server``).

* ``s3_server`` (session): one ``moto_server`` subprocess on 127.0.0.1:<free port>. A subprocess, not
  an in-process thread, so that it keeps answering while the test process is busy and so that other
  processes (Ray workers, a ``python -m data.prepare`` subprocess) reach it like a real endpoint.
* ``s3_bucket`` (function): points the standard AWS environment at that server (AWS_ENDPOINT_URL,
  fake credentials, region) for one test via monkeypatch, and creates a fresh, empty bucket for it.
  Child processes started during the test inherit the environment; Ray workers started *before* the
  test do not (pass the variables through ``runtime_env={"env_vars": s3_bucket.env}`` then).
* ``s3_auth`` (function, on top of ``s3_bucket``): makes the server check request signatures like real
  S3 for one test; only the access key it yields (also put in the environment) is accepted. By default
  moto accepts any credentials, so a wrong-credentials test needs this.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
# Any non-empty values work: moto accepts every credential unless told otherwise.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str  # e.g. http://127.0.0.1:43121
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def env(self) -> dict[str, str]:
        """The environment that sends any AWS SDK (boto3, pyarrow, ...) to this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # No EC2 instance-metadata lookups: they stall for seconds off EC2.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str = "s3", key: AccessKey | None = None) -> Any:
        """A boto3 client for this server, independent of the process environment."""
        import boto3

        key = key or AccessKey(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key.id,
            aws_secret_access_key=key.secret,
            region_name=REGION,
        )

    def create_access_key(self) -> AccessKey:
        """A new IAM user allowed every S3 action, and an access key for it (while auth is off)."""
        iam = self.client("iam")
        user = f"user-{uuid.uuid4().hex[:12]}"
        iam.create_user(UserName=user)
        allow_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow_s3]}
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return AccessKey(key["AccessKeyId"], key["SecretAccessKey"])

    def enforce_auth(self, enabled: bool) -> None:
        """Switch moto's signature and IAM checks on or off (moto's /moto-api/reset-auth: the number of
        requests still let through unchecked)."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=b"0" if enabled else b"inf",
            method="POST",
            # Not form-encoded, or the server sees an empty body.
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()


@dataclass(frozen=True)
class S3Bucket:
    name: str
    server: S3Server

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def uri(self, key: str = "") -> str:
        """``s3://<bucket>/<key>``."""
        return f"s3://{self.name}/{key.lstrip('/')}"

    def client(self, key: AccessKey | None = None) -> Any:
        return self.server.client("s3", key)

    def keys(self, prefix: str = "", key: AccessKey | None = None) -> list[str]:
        pages = self.client(key).get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_server_command(port: int) -> list[str]:
    # The venv's console script when present; otherwise the same entry point through this interpreter.
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _answers(port: int) -> bool:
    """True once the server answers HTTP (moto's own API endpoint)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_s3_server(log_path: Path, attempts: int = 3) -> S3Server:
    """Start ``moto_server`` on a free loopback port and wait until it answers.

    The port is free when picked but could be taken before moto binds it; then moto exits and another
    port is tried.
    """
    for _ in range(attempts):
        port = _free_port()
        with open(log_path, "wb") as log:  # the child keeps its own copy of the handle
            process = subprocess.Popen(
                _moto_server_command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own environment: the server must not pick up a developer's real AWS settings.
                env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return S3Server(endpoint_url=f"http://127.0.0.1:{port}", process=process)
            time.sleep(0.1)
        stop_s3_server(process)
        if time.monotonic() >= deadline:
            break  # hung, not a lost port race: retrying would only wait again
    raise RuntimeError(
        f"moto_server did not come up on 127.0.0.1 (last exit code {process.returncode}); "
        f"log:\n{log_path.read_text(errors='replace')}"
    )


def stop_s3_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto") / "moto_server.log")
    try:
        yield server
    finally:
        stop_s3_server(server.process)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    # Drop whatever would override the variables below (profiles, config files, session tokens).
    overriding = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3")
    for name in overriding:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    # Empty config files: a developer's ~/.aws (profiles, regions, endpoints) must not leak in.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)

    name = f"test-{uuid.uuid4().hex[:12]}"  # a fresh bucket per test: no state shared between tests
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(name=name, server=s3_server)


@pytest.fixture
def s3_auth(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[AccessKey]:
    server = s3_bucket.server
    key = server.create_access_key()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key.id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key.secret)
    server.enforce_auth(True)
    try:
        yield key
    finally:
        server.enforce_auth(False)  # the next test gets the permissive server back
