"""Settings, AWS clients and secret hygiene shared by the API handlers and the worker."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

TABLE = os.environ.get("JOBS_TABLE", "jobs")
_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def mask(text: str) -> str:
    """Hide passwords in URLs and ``password=...`` pairs: nothing secret leaves the service."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1***\3", text))


def is_postgres_url(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.scheme in ("postgresql", "postgres") and bool(parts.hostname)


def aws_config() -> Config:
    """Standard retries: throttling is retried with backoff, a bounded number of times; short
    timeouts so that nothing waits forever."""
    attempts = int(os.environ.get("JOBS_AWS_MAX_ATTEMPTS", "5"))
    return Config(retries={"mode": "standard", "total_max_attempts": attempts},
                  connect_timeout=2, read_timeout=10)


def client(service: str, region: str | None = None) -> Any:
    """A client; endpoint and keys come from the environment (or the instance's metadata)."""
    make: Any = boto3.session.Session().client
    return make(service, region_name=region, config=aws_config())


def setup_logging(name: str) -> logging.Logger:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.INFO)  # Lambda's runtime installed its handler first
    logging.getLogger("botocore").setLevel(logging.WARNING)
    return logging.getLogger(name)
