"""The job API, as two Lambda handlers behind an HTTP API (payload format 2.0):

- ``create_job`` (``POST /jobs {source_url, target_url}``): validates the payload, stores the
  job in DynamoDB and starts a worker instance for it with ``RunInstances`` (the job, URLs
  included, in the instance's user data); answers 201 with the job's id.
- ``get_job`` (``GET /jobs/{id}``): the job's status and progress. A job whose worker instance
  ended before it did is marked ``failed`` here (the worker was lost: killed, or its machine
  stopped), so no job stays ``running`` forever.

URLs are stored and shown with their passwords masked. AWS throttling is retried by boto3; past
its retries the API answers 503 with ``Retry-After``."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .common import TABLE, client, is_postgres_url, mask, setup_logging

log = setup_logging("jobapp.api")
MAX_BODY = 64 * 1024
WORKER_AMI = os.environ.get("WORKER_AMI", "ami-0a1b2c3d4e5f60789")
ENDED = ("shutting-down", "terminated", "stopping", "stopped")
_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    if service not in _clients:  # once per execution environment: warm calls reuse them
        _clients[service] = client(service)
    return _clients[service]


def _answer(status: int, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(body),
            "headers": {"Content-Type": "application/json", **headers}}


def _unavailable(exc: Exception, what: str) -> dict[str, Any]:
    code = exc.response["Error"].get("Code", "?") if isinstance(exc, ClientError) \
        else type(exc).__name__
    log.warning("%s unavailable: %s", what, code)
    return _answer(503, {"error": f"{what} unavailable ({code}), retry later"},
                   **{"Retry-After": "1"})


def _payload(event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return {}, "send the job as JSON (Content-Type: application/json)"
    if not body or len(body) > MAX_BODY:
        return {}, f"send a JSON body of at most {MAX_BODY} bytes"
    try:
        payload = json.loads(body)
    except ValueError:
        return {}, "the body is not JSON"
    if not isinstance(payload, dict):
        return {}, "the body must be a JSON object"
    missing = [k for k in ("source_url", "target_url") if k not in payload]
    if missing:
        return {}, f"missing {', '.join(missing)}"
    unknown = sorted(set(payload) - {"source_url", "target_url"})
    if unknown:
        return {}, f"unknown field(s): {', '.join(unknown)}"
    for key in ("source_url", "target_url"):
        if not is_postgres_url(payload[key]):
            return {}, f"{key} must be a postgresql:// URL"
    if payload["source_url"] == payload["target_url"]:
        return {}, "source_url and target_url are the same database"
    return payload, ""


def create_job(event: dict[str, Any], context: Any) -> dict[str, Any]:
    payload, problem = _payload(event)
    if problem:
        return _answer(400, {"error": problem})
    job_id = str(uuid.uuid4())
    now = int(time.time() * 1000)
    dynamodb = _client("dynamodb")
    try:
        dynamodb.put_item(TableName=TABLE, Item={
            "id": {"S": job_id}, "status": {"S": "pending"}, "progress": {"N": "0"},
            "source": {"S": mask(payload["source_url"])},
            "target": {"S": mask(payload["target_url"])},
            "created_at": {"N": str(now)}, "updated_at": {"N": str(now)},
        }, ConditionExpression="attribute_not_exists(id)")
    except (ClientError, BotoCoreError) as exc:
        return _unavailable(exc, "job store")
    job = {"id": job_id, "source_url": payload["source_url"],
           "target_url": payload["target_url"]}
    try:
        launched = _client("ec2").run_instances(
            ImageId=WORKER_AMI, MinCount=1, MaxCount=1, InstanceType="t3.small",
            UserData=json.dumps(job), TagSpecifications=[{
                "ResourceType": "instance", "Tags": [{"Key": "job", "Value": job_id}]}])
    except (ClientError, BotoCoreError) as exc:
        _set(job_id, status="failed", error="could not start a worker, retry the job")
        return _unavailable(exc, "worker capacity")
    instance_id = launched["Instances"][0]["InstanceId"]
    _set(job_id, instance=instance_id)
    log.info("job %s: worker %s for %s -> %s", job_id, instance_id,
             mask(payload["source_url"]), mask(payload["target_url"]))
    return _answer(201, {"id": job_id, "status": "pending"}, Location=f"/jobs/{job_id}")


def _set(job_id: str, **fields: str) -> None:
    """Best effort: the state the API records beside the worker's (a failure is logged)."""
    names = {f"#k{i}": k for i, k in enumerate(fields)}
    values = {f":v{i}": {"S": v} for i, v in enumerate(fields.values())}
    try:
        _client("dynamodb").update_item(
            TableName=TABLE, Key={"id": {"S": job_id}},
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    except (ClientError, BotoCoreError) as exc:
        log.warning("job %s: could not record %s: %s", job_id, sorted(fields), exc)


def get_job(event: dict[str, Any], context: Any) -> dict[str, Any]:
    job_id = (event.get("pathParameters") or {}).get("id", "")
    try:
        item = _client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": job_id}},
                                            ConsistentRead=True).get("Item")
    except (ClientError, BotoCoreError) as exc:
        return _unavailable(exc, "job store")
    if item is None:
        return _answer(404, {"error": f"no job {job_id}"})
    job: dict[str, Any] = {"id": item["id"]["S"], "status": item["status"]["S"],
                           "progress": int(item["progress"]["N"]),
                           "source": item["source"]["S"], "target": item["target"]["S"]}
    for key in ("error", "instance"):
        if key in item:
            job[key] = item[key]["S"]
    for key in ("tables", "created_at", "updated_at"):
        if key in item:
            job[key] = int(item[key]["N"])
    if job["status"] in ("pending", "running") and "instance" in job:
        _notice_lost_worker(job)
    return _answer(200, job)


def _notice_lost_worker(job: dict[str, Any]) -> None:
    """A worker that ended without recording an outcome was lost: the job failed."""
    try:
        reservations = _client("ec2").describe_instances(
            InstanceIds=[job["instance"]])["Reservations"]
    except (ClientError, BotoCoreError) as exc:
        log.warning("job %s: cannot see its worker: %s", job["id"], exc)
        return
    state = reservations[0]["Instances"][0]["State"]["Name"] if reservations else "terminated"
    if state not in ENDED:
        return
    error = f"the worker {job['instance']} ended ({state}) before the job finished"
    try:
        _client("dynamodb").update_item(
            TableName=TABLE, Key={"id": {"S": job["id"]}},
            UpdateExpression="SET #s = :failed, #e = :e",
            ConditionExpression="#s IN (:pending, :running)",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues={":failed": {"S": "failed"}, ":e": {"S": error},
                                       ":pending": {"S": "pending"},
                                       ":running": {"S": "running"}})
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return  # the worker recorded its outcome meanwhile: that is the job's state
        log.warning("job %s: cannot mark it failed: %s", job["id"], exc)
        return
    log.warning("job %s: %s", job["id"], error)
    job.update(status="failed", error=error)
