"""The worker: what an instance launched from the worker AMI runs, once per job. It reads its
instance id, region and job from the instance metadata service (IMDSv2), copies the source
database into the target with ``pg_dump --format=custom`` and ``pg_restore --clean
--single-transaction``, keeps the job's status and progress in DynamoDB, records the outcome
(``succeeded``, or ``failed`` with a reason without secrets) and terminates its own instance.
Credentials come from the instance's role (IMDS), never from the user data.

    python -m jobapp.worker      # on an instance (AWS_EC2_METADATA_SERVICE_ENDPOINT set)
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from .common import TABLE, client, mask, setup_logging

log = setup_logging("jobapp.worker")
COPY_TIMEOUT = float(os.environ.get("JOBS_COPY_TIMEOUT", "600"))
AWS_ERRORS = (ClientError, BotoCoreError)
IMDS = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/")


class CopyError(Exception):
    """The job cannot be done; the message is the reason shown to users (no secrets)."""


# -- the instance's metadata -----------------------------------------------------------------
def metadata() -> dict[str, Any]:
    """Instance id, region and the job (user data), through the IMDSv2 token flow."""
    base = IMDS.rstrip("/") + "/"

    def fetch(path: str, method: str = "GET", **headers: str) -> str:
        request = urllib.request.Request(base + path, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as answer:
            return str(answer.read().decode())

    token = fetch("latest/api/token", "PUT", **{"X-aws-ec2-metadata-token-ttl-seconds": "300"})
    get = lambda path: fetch(path, **{"X-aws-ec2-metadata-token": token})  # noqa: E731
    return {"instance_id": get("latest/meta-data/instance-id"),
            "region": get("latest/meta-data/placement/region"),
            "job": json.loads(get("latest/user-data"))}


# -- the copy --------------------------------------------------------------------------------
def _split_password(url: str) -> tuple[str, str]:
    """(URL without its password, password): the password goes to libpq through PGPASSWORD,
    never on a command line that ps could show."""
    parts = urlsplit(url)
    password = parts.password or ""
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, "")), password


def _pg_env(password: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "5",
           "LANG": "C.UTF-8"}
    if password:
        env["PGPASSWORD"] = password
    return env


def _reason(side: str, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "?")
    detail = detail.split("error:", 1)[-1].strip()
    return mask(f"cannot {'read the source' if side == 'source' else 'write the target'} "
                f"database: {detail}")[:500]


def copy_database(source_url: str, target_url: str, progress: Callable[[int], None]) -> int:
    """Copy every table of the source into the target; returns the number of tables."""
    source, source_password = _split_password(source_url)
    target, target_password = _split_password(target_url)
    with tempfile.TemporaryDirectory(prefix="jobapp-") as tmp:
        dump = Path(tmp) / "source.dump"
        try:
            result = subprocess.run(
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                 "--file", str(dump), "--dbname", source],
                env=_pg_env(source_password), capture_output=True, text=True,
                timeout=COPY_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise CopyError(f"reading the source took more than {COPY_TIMEOUT:.0f}s") from None
        if result.returncode != 0:
            raise CopyError(_reason("source", result.stderr))
        progress(40)
        listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True,
                                 text=True, timeout=60, check=False).stdout
        tables = sum(1 for line in listing.splitlines() if " TABLE DATA " in line)
        process = subprocess.Popen(
            ["pg_restore", "--verbose", "--no-owner", "--no-privileges", "--clean",
             "--if-exists", "--exit-on-error", "--single-transaction", "--dbname", target,
             str(dump)],
            env=_pg_env(target_password), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        timer = threading.Timer(COPY_TIMEOUT, process.kill)
        timer.start()
        errors: list[str] = []
        done = 0
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if "processing data for table" in line:
                    done += 1
                    progress(40 + (55 * done) // max(tables, 1))
                elif "error" in line.lower() or "could not" in line.lower():
                    errors.append(line)
            code = process.wait()
        finally:
            timer.cancel()
        if code != 0:
            raise CopyError(_reason("target", "".join(errors) or f"pg_restore exit {code}"))
    return tables


# -- one job ------------------------------------------------------------------------------
class Worker:
    def __init__(self, instance_id: str, region: str) -> None:
        self.instance_id = instance_id
        self.dynamodb = client("dynamodb", region)
        self.ec2 = client("ec2", region)

    def set_job(self, job_id: str, **fields: Any) -> None:
        names, values, sets = {}, {}, []
        fields["updated_at"] = int(time.time() * 1000)
        for i, (key, value) in enumerate(fields.items()):
            names[f"#k{i}"] = key
            values[f":v{i}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
            sets.append(f"#k{i} = :v{i}")
        self.dynamodb.update_item(
            TableName=TABLE, Key={"id": {"S": job_id}}, UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ConditionExpression="attribute_exists(id)")

    def run(self, job: dict[str, Any]) -> None:
        job_id, source, target = job["id"], job["source_url"], job["target_url"]
        try:
            self.set_job(job_id, status="running", progress=1, instance=self.instance_id)
            log.info("job %s: copying %s -> %s", job_id, mask(source), mask(target))
            try:
                tables = copy_database(source, target, lambda p: self._progress(job_id, p))
            except CopyError as exc:
                log.warning("job %s failed: %s", job_id, exc)
                self.set_job(job_id, status="failed", error=str(exc))
            else:
                self.set_job(job_id, status="succeeded", progress=100, tables=tables)
                log.info("job %s succeeded: %d tables", job_id, tables)
        except AWS_ERRORS as exc:
            # The outcome cannot be recorded even after boto3's retries: the instance ends
            # anyway, and the API reports the job failed once it sees the worker gone.
            log.warning("job %s: cannot record its state (%s)", job_id, mask(str(exc)))

    def _progress(self, job_id: str, percent: int) -> None:
        try:
            self.set_job(job_id, progress=percent)
        except AWS_ERRORS as exc:  # progress is best effort; the outcome is not
            log.warning("job %s: progress %d%% not recorded (%s)", job_id, percent,
                        mask(str(exc)))

    def terminate(self) -> None:
        """The job is done: the instance ends (and with it this process)."""
        for attempt in range(5):
            try:
                self.ec2.terminate_instances(InstanceIds=[self.instance_id])
                return
            except AWS_ERRORS as exc:
                log.warning("cannot terminate %s yet (%s)", self.instance_id, exc)
                time.sleep(0.2 * (attempt + 1))


def main() -> None:
    meta = metadata()
    worker = Worker(meta["instance_id"], meta["region"])
    log.info("worker on %s (%s), job %s", meta["instance_id"], meta["region"],
             meta["job"].get("id"))
    try:
        worker.run(meta["job"])
    finally:
        worker.terminate()
    time.sleep(30)  # TerminateInstances stops this process; it does not exit by itself first


if __name__ == "__main__":
    main()
