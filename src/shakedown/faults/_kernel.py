"""Network faults in the kernel, between any two services, with no link declared: every
service's processes are in a cgroup2 group of their own (``process._cgroups``), and nftables
rules on loopback drop what one sends to another (docs/kernel-faults.md has the measurements
behind this design).

An environment's *marking* table (``shakedown-ENV``) marks each packet with its sender's
service (output hook, matching the sending socket's cgroup); each fault is a table of its own
(``shakedown-ENV-fID``) whose input-hook rules drop packets by mark and receiving socket's
cgroup — all of them, or a random fraction (``numgen``) for loss. Open connections stall (TCP
retransmits) rather than reset, new ones cannot open, and healing deletes the fault's table.
The marking table goes with the last fault of the environment. Nothing here knows which
process made a table: ``shakedown fault`` from a terminal and the test's own faults meet in the
kernel, and ``heal`` removes them all."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import FaultError
from ..process import cgroups, nft

_MARK_BASE = 0x5D000000
_MARK_MASK = 0xFF000000
_PRIORITY = -150  # before filters of other software, after conntrack


@dataclass(frozen=True)
class Cut:
    """Packets ``sender`` sends to ``receiver`` dropped (a ``percent`` of them, or all)."""

    sender: str
    receiver: str
    percent: float | None = None


def offered() -> tuple[bool, str, str]:
    """(usable, why not, how to fix it) for kernel network faults on this machine."""
    unified = cgroups.controllers()[cgroups.UNIFIED]
    if unified.base is None:
        return False, f"cgroup2: {unified.reason}", unified.fix
    found = nft.availability()
    if not found.ok:
        return False, f"nftables: {found.reason}", found.fix
    return True, "", ""


class KernelNet:
    """The kernel faults of one environment, whose services are ``services`` (sorted: a
    service's mark is its index, the same in every process that attaches)."""

    def __init__(self, env_id: str, services: Iterable[str]) -> None:
        self.env_id = env_id
        self.services = sorted(services)

    @property
    def marking_table(self) -> str:
        return f"{nft.PREFIX}{self.env_id}"

    def available(self) -> bool:
        return offered()[0]

    def require(self, what: str) -> None:
        usable, reason, fix = offered()
        if not usable:
            raise FaultError(f"{what} needs kernel network faults, which this machine does "
                             f"not offer: {reason}",
                             checked=["root", "a cgroup2 mount", "libnftables (nftables)"],
                             fix=[fix, "or declare [links.NAME] and fault the link"])

    def apply(self, cuts: Sequence[Cut]) -> str:
        """Install ``cuts`` as one fault; return its table's name (for ``remove``)."""
        table = f"{self.marking_table}-f{secrets.token_hex(3)}"
        commands = self._marking_commands()
        commands += [f"add table {nft.FAMILY} {table}",
                     f"add chain {nft.FAMILY} {table} in {{ type filter hook input priority "
                     f"{_PRIORITY}; policy accept; }}"]
        # Unmarked packets (the test's own, other environments') leave before any socket
        # lookup: the healthy path pays one compare.
        commands.append(f"add rule {nft.FAMILY} {table} in meta mark and {hex(_MARK_MASK)} != "
                        f"{hex(_MARK_BASE)} accept")
        commands += [f"add rule {nft.FAMILY} {table} in {self._drop_rule(cut)}" for cut in cuts]
        try:
            nft.run("\n".join(commands))
        except OSError as exc:
            raise FaultError(f"the kernel refused the fault's rules: {exc}",
                             checked=[f"nft batch for {len(cuts)} cut(s) in {table}"],
                             fix=["check that every service named is running (its cgroup2 "
                                  "group exists)"]) from None
        return table

    def remove(self, table: str) -> None:
        """Heal one fault; the marking table too when it was the environment's last."""
        # Already gone when healed from another process or reaped with its environment.
        with contextlib.suppress(OSError):
            nft.run(f"delete table {nft.FAMILY} {table}")
        self._drop_marking_if_unused()

    def remove_all(self) -> list[str]:
        """Heal every kernel fault of the environment, whoever made it."""
        return nft.remove_env_tables(self.env_id) if self.available() else []

    # -- rules -------------------------------------------------------------------------------
    def _group(self, service: str) -> tuple[str, int]:
        """(the cgroup2 path nft resolves, its level below the cgroup2 root)."""
        path = cgroups.group_path(cgroups.UNIFIED, self.env_id, service)
        if path is None or not path.is_dir():
            raise FaultError(f"service {service!r} has no cgroup2 group (not running?)",
                             checked=[f"{path}"], fix=[f"start it: faults.start({service!r})"])
        mount = cgroups.mount_of(cgroups.UNIFIED)
        return str(path.relative_to(cgroups.CGROUP_ROOT)), len(path.relative_to(mount).parts)

    def _mark(self, service: str) -> str:
        return hex(_MARK_BASE | (self.services.index(service) + 1))

    def _marking_commands(self) -> list[str]:
        table = self.marking_table
        commands = [f"add table {nft.FAMILY} {table}", f"flush table {nft.FAMILY} {table}",
                    f"add chain {nft.FAMILY} {table} out {{ type filter hook output priority "
                    f"{_PRIORITY}; policy accept; }}"]
        for service in self.services:
            path = cgroups.group_path(cgroups.UNIFIED, self.env_id, service)
            if path is not None and path.is_dir():
                group, level = self._group(service)
                commands.append(f'add rule {nft.FAMILY} {table} out socket cgroupv2 level '
                                f'{level} "{group}" meta mark set {self._mark(service)}')
        return commands

    def _drop_rule(self, cut: Cut) -> str:
        group, level = self._group(cut.receiver)
        self._group(cut.sender)  # the sender must be running too: its packets get marked
        chance = "" if cut.percent is None else \
            f"numgen random mod 10000 < {round(cut.percent * 100)} "
        return (f'meta mark {self._mark(cut.sender)} socket cgroupv2 level {level} "{group}" '
                f"{chance}drop")

    def _drop_marking_if_unused(self) -> None:
        with contextlib.suppress(OSError):
            if not nft.tables(f"{self.marking_table}-f"):
                nft.run(f"delete table {nft.FAMILY} {self.marking_table}")
