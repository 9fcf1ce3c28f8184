"""Processes on this machine: spawning as the service user in tagged process groups, log
capture, readiness waits, port allocation safe across concurrent runs, environment records,
the reaper and the owner watchdog; services' cgroups (``cgroups``), size-limited data
directories (``datamount``) and faked clocks (``faketime``)."""

from . import _cgroup2 as cgroup2
from . import _cgroups as cgroups
from . import _datamount as datamount
from . import _faketime as faketime
from . import _nft as nft
from ._cgroups import service_scope
from ._copy import copy_tree
from ._descendants import adopted, become_subreaper, kill_adopted, mechanism
from ._paths import TAG_VARIABLE, cache_root, disk_data_root, runtime_root, tmpfs_has_room
from ._ports import PortAllocator, port_is_free
from ._ready import (
    NotReady,
    Probe,
    command_probe,
    http_probe,
    log_probe,
    tcp_probe,
    wait_ready,
)
from ._reaper import (
    ReapReport,
    kill_tagged,
    reap,
    reap_env,
    reap_stray,
    strays,
    tag_of,
    tagged_processes,
)
from ._records import EnvRecord, all_records, current_owner, remove_tree, write_private
from ._spawn import (
    Spawned,
    descendants,
    family,
    group_members,
    kill_group,
    kill_tree,
    log_tail,
    pid_alive,
    process_state,
    signal_family,
    signal_group,
    spawn,
    stop_family,
    stop_group,
    wait_group_gone,
)
from ._supervise import SupervisorState, read_status
from ._users import RunAs, check_reachable, service_user
from ._watchdog import Watchdog, start_watchdog

__all__ = [
    "TAG_VARIABLE",
    "EnvRecord",
    "NotReady",
    "PortAllocator",
    "Probe",
    "ReapReport",
    "RunAs",
    "Spawned",
    "SupervisorState",
    "Watchdog",
    "adopted",
    "all_records",
    "become_subreaper",
    "cache_root",
    "cgroup2",
    "cgroups",
    "check_reachable",
    "command_probe",
    "copy_tree",
    "current_owner",
    "datamount",
    "descendants",
    "disk_data_root",
    "faketime",
    "family",
    "group_members",
    "http_probe",
    "kill_adopted",
    "kill_group",
    "kill_tagged",
    "kill_tree",
    "log_probe",
    "log_tail",
    "mechanism",
    "nft",
    "pid_alive",
    "port_is_free",
    "process_state",
    "read_status",
    "reap",
    "reap_env",
    "reap_stray",
    "remove_tree",
    "runtime_root",
    "service_scope",
    "service_user",
    "signal_family",
    "signal_group",
    "spawn",
    "start_watchdog",
    "stop_family",
    "stop_group",
    "strays",
    "tag_of",
    "tagged_processes",
    "tcp_probe",
    "tmpfs_has_room",
    "wait_group_gone",
    "wait_ready",
    "write_private",
]
