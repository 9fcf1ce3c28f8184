"""The recorder: performs one operation through a client and writes it into a ``History`` as
an ``invoke`` followed by its completion (``ok``, ``fail`` or ``info``), with the error text
when the client raised."""

from __future__ import annotations

from shakedown.history import History, Op
from shakedown.workloads._client import COMPLETIONS, Classifier, Client, default_classifier
from shakedown.workloads._generators import Operation


def record(
    history: History,
    process: int,
    client: Client,
    operation: Operation,
    classifier: Classifier = default_classifier,
) -> Op:
    """Invoke ``operation`` on ``client`` as worker ``process`` and return the completion."""
    history.append(process, "invoke", operation.f, operation.value)
    try:
        completion, value = client.invoke(operation.f, operation.value)
    except Exception as exc:
        return record_failure(history, process, operation, exc, classifier)
    if completion not in COMPLETIONS:
        error = f"client returned completion {completion!r}, expected one of {COMPLETIONS}"
        return history.append(process, "info", operation.f, operation.value, error=error)
    return history.append(process, completion, operation.f, value)


def record_failure(
    history: History,
    process: int,
    operation: Operation,
    error: BaseException,
    classifier: Classifier = default_classifier,
) -> Op:
    """Complete an invoked operation that raised, as classified (the invoke's value is kept)."""
    completion = classifier(operation.f, error)
    text = f"{type(error).__name__}: {error}".strip()
    return history.append(process, completion, operation.f, operation.value, error=text)
