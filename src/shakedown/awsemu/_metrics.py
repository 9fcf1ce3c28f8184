"""CloudWatch metrics the system puts, for the test and the report: moto's
``put_metric_data`` is wrapped so that each datum (namespace, name, dimensions, value or
statistics, unit) is also kept in order and written as a ``cloudwatch.metric`` compute event
(so the history, and the report's timeline, show it beside the faults)."""

from __future__ import annotations

import threading
from typing import Any

from ._events import Events


class Metrics:
    """The metric data put so far, in order."""

    def __init__(self, events: Events) -> None:
        self.events = events
        self._data: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        from moto.cloudwatch.models import CloudWatchBackend

        put = CloudWatchBackend.put_metric_data
        metrics = self

        def put_hooked(backend: Any, namespace: str, metric_data: list[dict[str, Any]]
                       ) -> None:
            put(backend, namespace, metric_data)  # validates: a refused call keeps nothing
            for datum in metric_data:
                metrics.record(namespace, datum)

        setattr(CloudWatchBackend, "put_metric_data", put_hooked)  # noqa: B010 - a hook

    def record(self, namespace: str, datum: dict[str, Any]) -> None:
        values = [float(v) for v in datum.get("Values") or []]
        if datum.get("Value") is not None:
            values.append(float(datum["Value"]))
        entry = {"namespace": namespace, "name": str(datum.get("MetricName")),
                 "dimensions": {str(d.get("Name")): str(d.get("Value"))
                                for d in datum.get("Dimensions") or []},
                 "values": values, "unit": datum.get("Unit"),
                 "statistics": datum.get("StatisticValues")}
        with self._lock:
            self._data.append(entry)
        self.events.emit("cloudwatch.metric", **entry)

    def data(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._data)

    def reset(self) -> None:
        with self._lock:
            self._data.clear()
