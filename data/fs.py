"""Local paths and remote URIs (``s3://bucket/prefix``, ...) behind one pyarrow FileSystem interface.

S3 settings come from the standard AWS environment: endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
(MinIO, moto, ...), region from AWS_REGION or AWS_DEFAULT_REGION, credentials from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or ~/.aws (AWS_PROFILE), as the AWS SDK resolves them.
"""

import os
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from data.errors import DataError

_DENIED = (
    "ACCESS_DENIED",
    "AccessDenied",
    "INVALID_ACCESS_KEY_ID",
    "InvalidAccessKeyId",
    "SIGNATURE_DOES_NOT_MATCH",
    "SignatureDoesNotMatch",
    "Forbidden",
    "HTTP response code: 403",
)


def is_uri(location: str) -> bool:
    return "://" in location


def resolve(uri_or_path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it for a local path or a URI."""
    location = os.fspath(uri_or_path)
    if not is_uri(location):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))
    parts = urlsplit(location)
    if parts.scheme == "s3" and not parts.query:  # with ?options, pyarrow's own parser below applies them
        return s3_filesystem(), f"{parts.netloc}{parts.path}".rstrip("/")
    try:
        return pafs.FileSystem.from_uri(location)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{location}: {describe(e)}") from None


def s3_filesystem() -> pafs.S3FileSystem:
    options: dict = {"connect_timeout": 5, "request_timeout": 30}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=url.netloc, scheme=url.scheme)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def join(location: str, name: str) -> str:
    """``name`` inside the folder or prefix ``location`` (a URI stays a URI), for paths and messages."""
    return f"{location.rstrip('/')}/{name}" if is_uri(location) else os.path.join(location, name)


def describe(error: BaseException) -> str:
    """One line for a filesystem error, saying plainly when credentials were refused."""
    text = " ".join(str(error).split())
    if isinstance(error, FileNotFoundError):
        return "not found"
    if any(marker in text for marker in _DENIED):
        return f"access denied; check the AWS credentials and endpoint ({text})"
    return text or type(error).__name__


def read_bytes(fs: pafs.FileSystem, path: str, where: str, max_bytes: int | None = None) -> pa.Buffer:
    """The whole file as one Arrow buffer; DataError ``where: not found``, the storage's error, or (before
    anything is read) a size over ``max_bytes``."""
    try:
        with fs.open_input_file(path) as f:
            if max_bytes is not None and f.size() > max_bytes:
                raise DataError(f"{where}: {f.size():,} bytes, more than the {max_bytes:,} it may hold")
            return f.read_buffer()
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{where}: {describe(e)}") from None
