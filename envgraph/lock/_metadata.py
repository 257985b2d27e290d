"""What a verified wheel says about itself: its license and its ``Requires-Dist``, from ``*.dist-info/METADATA``.

Only wheels whose bytes the lockfile pins (sha256) are read, so what comes out is the same on every machine.
The wheel is untrusted input all the same: a missing, oversized or unreadable METADATA is an error naming it.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import zipfile
from pathlib import Path

from attrs import frozen

from envgraph.errors import EnvgraphError

__all__ = ["WheelMetadata", "read_wheel_metadata"]

MAX_METADATA_BYTES = 4 << 20
_LICENSE_CLASSIFIER = "License :: "
# One line of moderate length: a license name (many projects put the whole license text in the field).
_SHORT = re.compile(r"^[^\n]{1,100}$")


@frozen
class WheelMetadata:
    name: str
    version: str
    requires_dist: tuple[str, ...]
    # An SPDX expression (License-Expression, metadata 2.4) when the wheel declares one.
    license_expression: str | None
    # Otherwise license names: the License field when it is a short name, else the license classifiers.
    license_names: tuple[str, ...]


def _metadata_member(zf: zipfile.ZipFile, what: str) -> zipfile.ZipInfo:
    found = [
        i for i in zf.infolist() if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")
    ]
    if len(found) != 1:
        raise EnvgraphError(f"{what}: expected one .dist-info/METADATA, found {len(found)}")
    if found[0].file_size > MAX_METADATA_BYTES:
        raise EnvgraphError(f"{what}: METADATA is larger than 4 MiB")
    return found[0]


def read_wheel_metadata(path: Path, what: str) -> WheelMetadata:
    """The METADATA of the wheel at ``path`` (``what`` names it in errors)."""
    try:
        with zipfile.ZipFile(path) as zf:
            data = zf.read(_metadata_member(zf, what))
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        raise EnvgraphError(f"{what}: unreadable wheel ({e})") from None
    text = data.decode("utf-8", errors="replace")
    msg = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    expression = (msg.get("License-Expression") or "").strip() or None
    names: tuple[str, ...] = ()
    if expression is None:
        lic = (msg.get("License") or "").strip()
        if _SHORT.match(lic) and lic.upper() not in ("UNKNOWN", "NONE"):
            names = (lic,)
        else:
            names = tuple(
                sorted(
                    {
                        c.rsplit(" :: ", 1)[-1].strip()
                        for c in msg.get_all("Classifier") or []
                        if c.startswith(_LICENSE_CLASSIFIER) and c.count(" :: ") >= 1
                    }
                    - {"OSI Approved"}
                )
            )
    return WheelMetadata(
        name=str(msg.get("Name") or "").strip(),
        version=str(msg.get("Version") or "").strip(),
        requires_dist=tuple(str(r).strip() for r in msg.get_all("Requires-Dist") or []),
        license_expression=expression,
        license_names=names,
    )
