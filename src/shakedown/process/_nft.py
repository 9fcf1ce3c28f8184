"""nftables, in process: commands go to libnftables (the library the ``nft`` tool is made of,
from Debian's ``nftables`` package) through ctypes, so a rule change costs a netlink batch and
not a program start. No maintained binding is on PyPI and Debian's ``python3-nftables`` is for
the system interpreter only, hence these few calls of its C API.

Every table shakedown makes is named ``shakedown-ENV_ID...`` in the ``inet`` family, so that
``remove_env_tables`` (down, the reaper, the watchdog) finds all of an environment's rules."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import threading
from dataclasses import dataclass

FAMILY = "inet"
PREFIX = "shakedown-"
_LIBRARY = "nftables"
_lock = threading.Lock()
_context: ctypes.c_void_p | None = None
_lib: ctypes.CDLL | None = None


@dataclass(frozen=True)
class Availability:
    """Whether shakedown can add nftables rules here, and if not why and how to fix it."""

    ok: bool
    reason: str = ""
    fix: str = ""


def availability() -> Availability:
    if os.geteuid() != 0:
        return Availability(False, "shakedown does not run as root",
                            "run shakedown as root for kernel network faults")
    if ctypes.util.find_library(_LIBRARY) is None:
        return Availability(False, "libnftables is not installed",
                            "apt-get install -y nftables")
    try:
        run("list tables")
    except OSError as exc:
        return Availability(False, f"nftables refused a listing: {exc}",
                            "run where netfilter may be configured (root in the host's "
                            "network namespace, CAP_NET_ADMIN)")
    return Availability(True)


def _library() -> tuple[ctypes.CDLL, ctypes.c_void_p]:
    global _context, _lib
    if _lib is None or _context is None:
        path = ctypes.util.find_library(_LIBRARY)
        if path is None:
            raise OSError("libnftables not found (apt-get install -y nftables)")
        lib = ctypes.CDLL(path, use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        context = ctypes.c_void_p(lib.nft_ctx_new(0))
        lib.nft_ctx_buffer_output(context)
        lib.nft_ctx_buffer_error(context)
        _lib, _context = lib, context
    return _lib, _context


def run(commands: str) -> str:
    """Run one batch of nft commands (atomic: all or none); return what nft printed."""
    with _lock:
        lib, context = _library()
        status = lib.nft_run_cmd_from_buffer(context, commands.encode())
        output = (lib.nft_ctx_get_output_buffer(context) or b"").decode(errors="replace")
        error = (lib.nft_ctx_get_error_buffer(context) or b"").decode(errors="replace")
    if status != 0:
        raise OSError(f"nft: {error.strip() or f'status {status}'}")
    return output


def tables(prefix: str = PREFIX) -> list[str]:
    """Names of the ``inet`` tables whose name starts with ``prefix``."""
    names = []
    for line in run("list tables").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and parts[1] == FAMILY \
                and parts[2].startswith(prefix):
            names.append(parts[2])
    return names


def remove_env_tables(env_id: str) -> list[str]:
    """Delete every table of environment ``env_id``; a no-op where nftables is unusable."""
    if os.geteuid() != 0 or ctypes.util.find_library(_LIBRARY) is None:
        return []
    try:
        found = tables(f"{PREFIX}{env_id}")
        if found:
            run("\n".join(f"delete table {FAMILY} {name}" for name in found))
    except OSError:
        return []
    return found


def nft_binary() -> str | None:
    """The ``nft`` tool, for people who want to look (``nft list ruleset``)."""
    return shutil.which("nft")
