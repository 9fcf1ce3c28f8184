"""The compute event log: one JSON line per Lambda invocation and per EC2 instance state change,
with its wall-clock time, appended by the emulator and read by the ``aws`` kind; and the same
events as ``nemesis`` ``info`` operations in the environment's history file when the kind
names it (as the process supervisor records restarts), so that the report's timeline shows
every invocation and instance state change without the test doing anything."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..history import NEMESIS, History


class Events:
    """Appends events to ``path`` (nowhere when None), one whole line per write."""

    def __init__(self, path: Path | None, history: Path | None = None,
                 origin: float | None = None, target: str = "aws") -> None:
        self.path = path
        self.target = target
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._history = (History(history, origin=origin)
                         if history is not None and origin is not None else None)

    def emit(self, event_type: str, **fields: Any) -> None:
        now = time.time()
        record = {"time": now, "type": event_type, **fields}
        if self._history is not None:
            self._history.append(NEMESIS, "info", event_type, {"target": self.target, **fields},
                                 at=now - self._history.wall_origin)
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            if self._file is None and self.path is not None:  # opened at the first event
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
        with self._lock:
            self.path = None
            if self._file is not None:
                self._file.close()
                self._file = None
