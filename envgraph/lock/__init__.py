"""Resolution and lockfiles: pip-compile under the target interpreter, wheel choice, lockfile models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.lock._diff import PackageDiff as PackageDiff
    from envgraph.lock._diff import VersionChange as VersionChange
    from envgraph.lock._diff import diff_packages as diff_packages
    from envgraph.lock._files import FilesRef as FilesRef
    from envgraph.lock._files import chain_files as chain_files
    from envgraph.lock._files import chain_ident as chain_ident
    from envgraph.lock._files import chain_idents as chain_idents
    from envgraph.lock._files import hash_files as hash_files
    from envgraph.lock._locker import Locker as Locker
    from envgraph.lock._locker import LockOutcome as LockOutcome
    from envgraph.lock._locker import LockResult as LockResult
    from envgraph.lock._lockfile import LOCKDIR as LOCKDIR
    from envgraph.lock._lockfile import base_identity as base_identity
    from envgraph.lock._lockfile import base_lock_path as base_lock_path
    from envgraph.lock._lockfile import lock_path as lock_path
    from envgraph.lock._lockfile import read_base_lock as read_base_lock
    from envgraph.lock._lockfile import read_lock as read_lock
    from envgraph.lock._lockfile import requirements_path as requirements_path
    from envgraph.lock._model import AptLock as AptLock
    from envgraph.lock._model import BaseLock as BaseLock
    from envgraph.lock._model import BaseRef as BaseRef
    from envgraph.lock._model import BuildDep as BuildDep
    from envgraph.lock._model import BuildPin as BuildPin
    from envgraph.lock._model import DebianPin as DebianPin
    from envgraph.lock._model import DebPin as DebPin
    from envgraph.lock._model import FilePin as FilePin
    from envgraph.lock._model import ImagePin as ImagePin
    from envgraph.lock._model import LockedPackage as LockedPackage
    from envgraph.lock._model import Lockfile as Lockfile
    from envgraph.lock._model import ParentRef as ParentRef
    from envgraph.lock._model import Resolver as Resolver
    from envgraph.lock._model import Source as Source
    from envgraph.lock._model import Wheel as Wheel
    from envgraph.lock._model import image_ident as image_ident

_EXPORTS = {
    "PackageDiff": "envgraph.lock._diff",
    "VersionChange": "envgraph.lock._diff",
    "diff_packages": "envgraph.lock._diff",
    "FilesRef": "envgraph.lock._files",
    "chain_files": "envgraph.lock._files",
    "chain_ident": "envgraph.lock._files",
    "chain_idents": "envgraph.lock._files",
    "hash_files": "envgraph.lock._files",
    "image_ident": "envgraph.lock._model",
    "Source": "envgraph.lock._model",
    "DebPin": "envgraph.lock._model",
    "BuildPin": "envgraph.lock._model",
    "BuildDep": "envgraph.lock._model",
    "AptLock": "envgraph.lock._model",
    "BaseLock": "envgraph.lock._model",
    "BaseRef": "envgraph.lock._model",
    "DebianPin": "envgraph.lock._model",
    "FilePin": "envgraph.lock._model",
    "ImagePin": "envgraph.lock._model",
    "LOCKDIR": "envgraph.lock._lockfile",
    "LockOutcome": "envgraph.lock._locker",
    "LockResult": "envgraph.lock._locker",
    "LockedPackage": "envgraph.lock._model",
    "Locker": "envgraph.lock._locker",
    "Lockfile": "envgraph.lock._model",
    "ParentRef": "envgraph.lock._model",
    "Resolver": "envgraph.lock._model",
    "Wheel": "envgraph.lock._model",
    "base_identity": "envgraph.lock._lockfile",
    "base_lock_path": "envgraph.lock._lockfile",
    "lock_path": "envgraph.lock._lockfile",
    "read_base_lock": "envgraph.lock._lockfile",
    "read_lock": "envgraph.lock._lockfile",
    "requirements_path": "envgraph.lock._lockfile",
}
__all__ = [
    "PackageDiff",
    "VersionChange",
    "diff_packages",
    "FilesRef",
    "chain_files",
    "chain_ident",
    "chain_idents",
    "hash_files",
    "image_ident",
    "Source",
    "DebPin",
    "BuildPin",
    "BuildDep",
    "AptLock",
    "BaseLock",
    "BaseRef",
    "DebianPin",
    "FilePin",
    "ImagePin",
    "LOCKDIR",
    "LockOutcome",
    "LockResult",
    "LockedPackage",
    "Locker",
    "Lockfile",
    "ParentRef",
    "Resolver",
    "Wheel",
    "base_identity",
    "base_lock_path",
    "lock_path",
    "read_base_lock",
    "read_lock",
    "requirements_path",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
