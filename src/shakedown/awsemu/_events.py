"""The compute event log: one JSON line per Lambda invocation and per EC2 instance state change,
with its wall-clock time, appended by the emulator and read by the ``aws`` kind (for the
environment's history and the report's timeline)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any


class Events:
    """Appends events to ``path`` (nowhere when None), one whole line per write."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def emit(self, event_type: str, **fields: Any) -> None:
        record = {"time": time.time(), "type": event_type, **fields}
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            if self._file is None and self.path is not None:  # opened at the first event
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self.path = None
            if self._file is not None:
                self._file.close()
                self._file = None
