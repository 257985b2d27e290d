"""SPDX 2.3 JSON of an env, written by hand from the same data as the CycloneDX document.

No maintained Python library writes SPDX 2.3 without pulling in a large dependency tree (spdx-tools), and the
format is small. SPDX requires ``creationInfo.created``: it is fixed at the epoch (as with SOURCE_DATE_EPOCH=0),
so the document is identical on every machine.
"""

from __future__ import annotations

import json
import re
from typing import Any

from envgraph.sbom._cyclonedx import deb_purl, oci_purl, python_purl
from envgraph.sbom._model import SbomInput, serial_uuid

__all__ = ["to_spdx"]

_NOASSERTION = "NOASSERTION"
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


def _spdx_id(kind: str, name: str, version: str, seen: set[str]) -> str:
    base = "SPDXRef-" + _ID_CHARS.sub("-", f"{kind}-{name}-{version}")
    out, n = base, 1
    while out in seen:
        n += 1
        out = f"{base}-{n}"
    seen.add(out)
    return out


def _package(spdx_id: str, name: str, version: str, purl: str, **extra: Any) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": _NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": _NOASSERTION,
        "licenseDeclared": _NOASSERTION,
        "copyrightText": _NOASSERTION,
        "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
        ],
    }
    pkg.update(extra)
    return pkg


def to_spdx(data: SbomInput) -> str:
    seen: set[str] = set()
    image_id = _spdx_id("image", data.env, data.image_digest or data.drv, seen)
    image: dict[str, Any] = _package(
        image_id,
        data.env,
        data.image_digest or data.drv,
        oci_purl(data.env, data.image_digest) if data.image_digest else f"pkg:generic/{data.env}@{data.drv}",
        primaryPackagePurpose="CONTAINER",
    )
    if data.image_digest:
        image["checksums"] = [{"algorithm": "SHA256", "checksumValue": data.image_digest.split(":", 1)[1]}]
    packages = [image]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    for p in sorted(data.python, key=lambda p: p.package.name):
        pkg = p.package
        extra: dict[str, Any] = {"primaryPackagePurpose": "LIBRARY"}
        if pkg.wheel is not None:
            extra["checksums"] = [{"algorithm": "SHA256", "checksumValue": pkg.wheel.sha256}]
            extra["packageFileName"] = pkg.wheel.filename
            if pkg.wheel.url.startswith("https://"):
                extra["downloadLocation"] = pkg.wheel.url
        if p.metadata is not None and p.metadata.license_expression:
            extra["licenseDeclared"] = p.metadata.license_expression
        sid = _spdx_id("pypi", pkg.name, pkg.version, seen)
        packages.append(_package(sid, pkg.name, pkg.version, python_purl(pkg.name, pkg.version), **extra))
        relationships.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": sid}
        )
    for d in sorted(data.debian, key=lambda d: d.name):
        extra = {"primaryPackagePurpose": "OPERATING-SYSTEM" if d.env is None else "LIBRARY"}
        if d.sha256:
            extra["checksums"] = [{"algorithm": "SHA256", "checksumValue": d.sha256}]
        sid = _spdx_id("deb", d.name, d.version, seen)
        packages.append(_package(sid, d.name, d.version, deb_purl(d, data.suite), **extra))
        relationships.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": sid}
        )
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"envgraph-{data.env}",
        "documentNamespace": f"https://spdx.org/spdxdocs/envgraph-{data.env}-{serial_uuid(data)}",
        "creationInfo": {
            "created": "1970-01-01T00:00:00Z",
            "creators": [f"Tool: envgraph-{data.tool_version}"],
        },
        "documentDescribes": [image_id],
        "packages": packages,
        "relationships": relationships,
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
