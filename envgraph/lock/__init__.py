"""Resolution, lockfiles and hashing."""

from .locker import Locker, LockOutcome, LockResult
from .lockfile import LOCKDIR, base_lock_path, lock_path, read_base_lock, read_lock, requirements_path
from .model import BaseLock, DebianPin, FilePin, ImagePin, LayerPin, LockedPackage, Lockfile, ParentRef, Wheel

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
