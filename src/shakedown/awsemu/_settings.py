"""What the compute bridge is told by the ``aws`` kind (part of the emulator's JSON config):
where logs and code go, the emulator's own address and keys, the declared functions, APIs and
AMIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ACCOUNT = "123456789012"  # moto's default account, for the keys shakedown hands out


@dataclass(frozen=True)
class ComputeSettings:
    service: str  # the aws service's name in the topology: prefix of log file names
    region: str
    host: str
    port: int
    access_key_id: str
    secret_access_key: str
    log_dir: Path
    data_dir: Path
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    amis: dict[str, dict[str, Any]] = field(default_factory=dict)
    account_concurrency: int = 1000
    history: Path | None = None  # the environment's history file: compute events go there too
    origin: float | None = None  # its wall-clock time zero

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ComputeSettings:
        compute = config.get("compute") or {}
        log_dir = compute.get("log_dir")
        data_dir = compute.get("data_dir") or f"/tmp/shakedown-awsemu-{config['port']}"
        return cls(
            service=str(compute.get("service") or "aws"), region=config["region"],
            host=str(config.get("host") or "127.0.0.1"), port=int(config["port"]),
            access_key_id=config["access_key_id"],
            secret_access_key=str(config.get("secret_access_key") or "shakedown-not-a-secret"),
            log_dir=Path(log_dir or Path(data_dir) / "logs"), data_dir=Path(data_dir),
            functions=dict(compute.get("functions") or {}), apis=dict(compute.get("apis") or {}),
            amis=dict(compute.get("amis") or {}),
            account_concurrency=int(compute.get("account_concurrency") or 1000),
            history=Path(compute["history"]) if compute.get("history") else None,
            origin=float(compute["origin"]) if compute.get("origin") is not None else None)

    def log_path(self, *parts: str) -> Path:
        """``LOG_DIR/SERVICE.PART1.PART2.log``."""
        return self.log_dir / ".".join([self.service, *parts, "log"])
