"""Resolution, lockfiles and hashing."""

from envgraph.lock._locker import Locker, LockOutcome, LockResult
from envgraph.lock._lockfile import (
    LOCKDIR,
    base_lock_path,
    lock_path,
    read_base_lock,
    read_lock,
    requirements_path,
)
from envgraph.lock._model import (
    BaseLock,
    DebianPin,
    FilePin,
    ImagePin,
    LayerPin,
    LockedPackage,
    Lockfile,
    ParentRef,
    Wheel,
)

__all__ = [
    "LOCKDIR",
    "BaseLock",
    "DebianPin",
    "FilePin",
    "ImagePin",
    "LayerPin",
    "LockedPackage",
    "Lockfile",
    "Locker",
    "LockOutcome",
    "LockResult",
    "ParentRef",
    "Wheel",
    "base_lock_path",
    "lock_path",
    "read_base_lock",
    "read_lock",
    "requirements_path",
]
