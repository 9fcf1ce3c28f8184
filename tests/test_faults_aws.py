"""AWS faults through ``env.faults``: an injected error seen by boto3 as the AWS error code,
injected latency measured, heal, the fault log, and bad targets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shakedown import Environment
from shakedown.errors import FaultError

TOPOLOGY = """
[services.aws]
kind = "aws"
services = ["dynamodb"]

[[services.aws.resources.tables]]
name = "jobs"
hash_key = "id"

[services.cache]
kind = "redis"
"""


def dynamodb(env: Environment, retries: int) -> object:
    aws = env["aws"]
    return boto3.client(
        "dynamodb", endpoint_url=aws.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": retries, "mode": "standard"}))


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def test_aws_error_latency_heal_and_fault_log(write_topology: Callable[..., Path]) -> None:
    with Environment.from_file(write_topology(TOPOLOGY)) as env:
        client = dynamodb(env, retries=1)
        item = {"id": {"S": "1"}}
        with env.faults.aws_error("aws", "dynamodb", "PutItem",
                                  "ProvisionedThroughputExceededException"):
            with pytest.raises(ClientError) as info:
                client.put_item(TableName="jobs", Item=item)  # type: ignore[attr-defined]
            error = info.value.response["Error"]
            assert error["Code"] == "ProvisionedThroughputExceededException"
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert "aws aws:" in "\n".join(env.faults.current())
        client.put_item(TableName="jobs", Item=item)  # type: ignore[attr-defined]

        env.faults.aws_latency("aws", "dynamodb", "GetItem", ms=300)
        began = time.perf_counter()
        client.get_item(TableName="jobs", Key=item)  # type: ignore[attr-defined]
        assert time.perf_counter() - began >= 0.3
        env.faults.heal()
        # Healed: a call shorter than the 300 ms the rule added (best of 3) is not delayed.
        assert min(timed(lambda: client.get_item(TableName="jobs", Key=item))  # type: ignore[attr-defined]
                   for _ in range(3)) < 0.3

        ops = [json.loads(line) for line in
               (env.state_dir / "history.jsonl").read_text().splitlines()]
        kinds = [o["value"].get("kind") for o in ops if o["f"] == "fault-start"]
        assert kinds == ["aws_error", "aws_latency"]

        with pytest.raises(FaultError, match="not an AWS emulator"):
            env.faults.aws_error("cache", "dynamodb", "PutItem", "ThrottlingException")
        with pytest.raises(FaultError, match="PutItm"):
            env.faults.aws_error("aws", "dynamodb", "PutItm", "ThrottlingException")
        assert env.faults.current() == []
