"""The functions the topology declares, created in moto the way an SDK would: an IAM role for
them, then ``CreateFunction`` with the code directory zipped, then
``PutFunctionConcurrency`` for a reserved concurrency. The zip's digest is kept so that the
runtime runs a declared function from its code directory (tracebacks name the user's files)
as long as nobody has replaced its code."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ._wsgi import ResourceError

Call = Callable[[str, str, str, bytes, dict[str, str]], tuple[int, bytes]]
ROLE = "shakedown-lambda"
_SKIP = {"__pycache__", ".git", ".venv", "venv", ".shakedown", "node_modules", ".mypy_cache",
         ".pytest_cache", ".ruff_cache"}
MAX_UNZIPPED = 250 * 1024 * 1024  # Lambda's limit on a function's unzipped code


def zip_directory(directory: Path) -> bytes:
    """The directory's files in a zip, paths relative to it (caches and VCS left out)."""
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP)
            for name in sorted(files):
                path = Path(root) / name
                total += path.stat().st_size
                if total > MAX_UNZIPPED:
                    raise ResourceError(f"{directory}: more than {MAX_UNZIPPED >> 20} MB of "
                                        "code (Lambda's limit on unzipped code)")
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def create_functions(call: Call, functions: dict[str, dict[str, Any]], account: str,
                     region: str = "us-east-1") -> list[str]:
    if not functions:
        return []
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    code, data = call("iam", "POST", "/", urlencode({
        "Action": "CreateRole", "Version": "2010-05-08", "RoleName": ROLE,
        "AssumeRolePolicyDocument": policy}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"})
    if code >= 300 and b"EntityAlreadyExists" not in data:
        raise ResourceError(f"CreateRole {ROLE} -> {code}: {data.decode(errors='replace')[:300]}")
    created = []
    for name, spec in functions.items():
        archive = zip_directory(Path(spec["code_dir"]))
        spec["code_sha"] = base64.b64encode(hashlib.sha256(archive).digest()).decode()
        request: dict[str, Any] = {
            "FunctionName": name, "Runtime": spec["runtime"], "Handler": spec["handler"],
            "Role": f"arn:aws:iam::{account}:role/{ROLE}",
            "Code": {"ZipFile": base64.b64encode(archive).decode()},
            "Timeout": spec["timeout"], "MemorySize": spec["memory"],
            "Environment": {"Variables": spec.get("env") or {}}}
        code, data = call("lambda", "POST", "/2015-03-31/functions",
                          json.dumps(request).encode(), {"Content-Type": "application/json"})
        if code >= 300:
            raise ResourceError(f"CreateFunction {name} -> {code}: "
                                f"{data.decode(errors='replace')[:300]}")
        if spec.get("reserved_concurrency") is not None:
            code, data = call("lambda", "PUT", f"/2017-10-31/functions/{name}/concurrency",
                              json.dumps({"ReservedConcurrentExecutions":
                                          spec["reserved_concurrency"]}).encode(),
                              {"Content-Type": "application/json"})
            if code >= 300:
                raise ResourceError(f"PutFunctionConcurrency {name} -> {code}: "
                                    f"{data.decode(errors='replace')[:300]}")
        created.append(f"lambda function {name}")
        created += _create_sqs_sources(call, name, spec.get("sqs") or [], account, region)
    return created


def _create_sqs_sources(call: Call, function: str, sources: list[dict[str, Any]],
                        account: str, region: str) -> list[str]:
    """``CreateEventSourceMapping`` for each declared SQS source of a function."""
    created = []
    for source in sources:
        request: dict[str, Any] = {
            "EventSourceArn": f"arn:aws:sqs:{region}:{account}:{source['queue']}",
            "FunctionName": function, "BatchSize": source["batch_size"],
            "Enabled": source["enabled"]}
        if source.get("report_batch_item_failures"):
            request["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        code, data = call("lambda", "POST", "/2015-03-31/event-source-mappings/",
                          json.dumps(request).encode(), {"Content-Type": "application/json"})
        if code >= 300:
            raise ResourceError(f"CreateEventSourceMapping {source['queue']} -> {function}: "
                                f"{code}: {data.decode(errors='replace')[:300]}")
        created.append(f"event source sqs {source['queue']} -> {function}")
    return created
