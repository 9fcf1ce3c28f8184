"""SQS event source mappings, delivered as Lambda delivers them: a poller per enabled mapping
receives up to ``BatchSize`` messages (10 by default) with the queue's visibility timeout,
invokes the function synchronously with one ``Records`` event, and deletes the batch when the
function succeeds. A failed batch (an error, a timeout, a throttle) is left alone: its messages
come back when their visibility timeout ends, and the queue's redrive policy sends them to its
dead-letter queue once received ``maxReceiveCount`` times (moto's ``ReceiveMessage`` does the
move, as SQS does). With ``FunctionResponseTypes = ["ReportBatchItemFailures"]`` only the
messages the function lists in ``batchItemFailures`` stay.

The mappings themselves are moto's (Create/Get/List/Update/DeleteEventSourceMapping); moto's
own delivery, which runs the function in Docker from inside ``SendMessage``, is switched off for
SQS by taking the mapping off the queue right after it is created."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ._events import Events
from ._lambda import Function, LambdaRuntime, NotRunnable, Throttled

DEFAULT_BATCH = 10
POLL_WAIT = 1  # seconds of long polling: how late a poller notices that it is to stop
SCAN_EVERY = 0.1  # seconds between looks for new, changed and deleted mappings

Resolve = Callable[[str, str, str], Function | None]  # (account, region, function ARN)


def install_hook() -> None:
    """After moto creates a mapping from an SQS queue, take it off the queue: moto would
    otherwise invoke the function itself (through Docker) from inside SendMessage."""
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    create = LambdaBackend.create_event_source_mapping
    if getattr(create, "shakedown_hook", False):
        return

    def create_hooked(backend: Any, spec: dict[str, Any]) -> Any:
        esm = create(backend, spec)
        if ":sqs:" in str(esm.event_source_arn):
            for queue in sqs_backends[backend.account_id][backend.region_name].queues.values():
                queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    create_hooked.shakedown_hook = True  # type: ignore[attr-defined]
    setattr(LambdaBackend, "create_event_source_mapping", create_hooked)  # noqa: B010 - a hook


def records(messages: list[Any], queue_arn: str, region: str, fifo: bool) -> dict[str, Any]:
    """The event of one batch, as Lambda builds it from received messages."""
    listed = []
    for message in messages:
        attributes = {
            "ApproximateReceiveCount": str(message.approximate_receive_count),
            "SentTimestamp": str(message.sent_timestamp),
            "SenderId": str(message.sender_id),
            "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        }
        if fifo:
            attributes.update(MessageGroupId=str(message.group_id),
                              MessageDeduplicationId=str(message.deduplication_id),
                              SequenceNumber=str(message.sequence_number))
        listed.append({
            "messageId": message.id, "receiptHandle": message.receipt_handle,
            "body": message.body, "attributes": attributes,
            "messageAttributes": {name: _attribute(value)
                                  for name, value in message.message_attributes.items()},
            "md5OfBody": message.body_md5, "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn, "awsRegion": region})
    return {"Records": listed}


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {"stringListValues": [], "binaryListValues": [],
                              "dataType": value.get("DataType", "String")}
    if value.get("StringValue") is not None:
        shaped["stringValue"] = value["StringValue"]
    if value.get("BinaryValue") is not None:
        shaped["binaryValue"] = value["BinaryValue"]
    return shaped


def failed_items(payload: bytes) -> set[str] | None:
    """The message ids of a ``batchItemFailures`` answer; None when the answer is not one
    (then the whole batch succeeded)."""
    try:
        answer = json.loads(payload or b"null")
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("batchItemFailures"), list):
        return None
    return {str(item.get("itemIdentifier")) for item in answer["batchItemFailures"]
            if isinstance(item, dict)}


class Poller:
    """Polls one mapping's queue until told to stop."""

    def __init__(self, esm: Any, runtime: LambdaRuntime, resolve: Resolve,
                 events: Events) -> None:
        self.esm = esm
        self.runtime = runtime
        self.resolve = resolve
        self.events = events
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"esm-{esm.uuid[:8]}")

    def _queue(self) -> tuple[Any, Any] | None:
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[self.esm.account_id][self.esm.region]
        for queue in list(backend.queues.values()):
            if queue.queue_arn == self.esm.event_source_arn:
                return backend, queue
        return None

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self._once():
                    self.stopping.wait(0.05)
            except Exception as exc:  # the queue deleted under us, moto mid-reset: retry
                print(f"shakedown: event source {self.esm.uuid}: {exc!r}", flush=True)
                self.stopping.wait(0.5)

    def _once(self) -> bool:
        """One receive and, when it got messages, one invocation; False when idle."""
        found = self._queue()
        if found is None:
            return False
        backend, queue = found
        messages = backend.receive_message(queue.name, int(self.esm.batch_size or DEFAULT_BATCH),
                                           POLL_WAIT, int(queue.visibility_timeout or 30))
        if not messages:
            return False
        if self.stopping.is_set():
            return True  # received but not delivered: back after their visibility timeout
        event = records(messages, queue.queue_arn, self.esm.region, bool(queue.fifo_queue))
        keep = self._deliver(event)
        deleted = 0
        for message in messages:
            if message.id not in keep:
                backend.delete_message(queue.name, message.receipt_handle)
                deleted += 1
        self.events.emit("lambda.sqs_batch", mapping=self.esm.uuid, queue=queue.name,
                         function=self.esm.function_arn.rsplit(":", 1)[-1],
                         messages=len(messages), deleted=deleted,
                         outcome="ok" if not keep else "failed" if not deleted else "partial")
        return True

    def _deliver(self, event: dict[str, Any]) -> set[str]:
        """Invoke the function; the ids of the messages to leave on the queue."""
        every = {str(r["messageId"]) for r in event["Records"]}
        try:
            function = self.resolve(self.esm.account_id, self.esm.region,
                                    self.esm.function_arn)
        except NotRunnable:
            return every
        if function is None:
            return every
        try:
            outcome = self.runtime.invoke(function, json.dumps(event).encode(),
                                          invocation_type="SQS")
        except Throttled:
            return every
        if outcome.error is not None:
            return every
        if "ReportBatchItemFailures" in (self.esm.function_response_types or []):
            return (failed_items(outcome.payload) or set()) & every
        return set()


class SqsEventSources:
    """Starts a poller for each enabled SQS mapping moto has, stops those deleted/disabled."""

    def __init__(self, runtime: LambdaRuntime, resolve: Resolve, events: Events) -> None:
        self.runtime = runtime
        self.resolve = resolve
        self.events = events
        self._pollers: dict[str, Poller] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True, name="esm-scan")

    def start(self) -> None:
        install_hook()
        self._thread.start()

    def _mappings(self) -> dict[str, Any]:
        from moto.awslambda.models import lambda_backends

        found: dict[str, Any] = {}
        for by_region in list(lambda_backends.values()):
            for backend in list(by_region.values()):
                for esm in list(backend._event_source_mappings.values()):
                    if ":sqs:" in str(esm.event_source_arn) and esm.enabled:
                        found[esm.uuid] = esm
        return found

    def _scan(self) -> None:
        while not self._stopping.wait(SCAN_EVERY):
            try:
                mappings = self._mappings()
            except RuntimeError:  # a dict changed while listed (a request created one)
                continue
            for uuid, poller in list(self._pollers.items()):
                if mappings.get(uuid) is not poller.esm:
                    poller.stopping.set()
                    del self._pollers[uuid]
            for uuid, esm in mappings.items():
                if uuid not in self._pollers:
                    poller = Poller(esm, self.runtime, self.resolve, self.events)
                    self._pollers[uuid] = poller
                    poller.thread.start()

    def describe(self) -> list[dict[str, Any]]:
        return [{"uuid": uuid, "queue": p.esm.event_source_arn, "function": p.esm.function_arn,
                 "batch_size": int(p.esm.batch_size or DEFAULT_BATCH)}
                for uuid, p in list(self._pollers.items())]

    def shutdown(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        pollers = list(self._pollers.values())
        self._pollers.clear()
        for poller in pollers:
            poller.stopping.set()
        deadline = time.monotonic() + POLL_WAIT + 1
        for poller in pollers:
            poller.thread.join(max(0.0, deadline - time.monotonic()))
