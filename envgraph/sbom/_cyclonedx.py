"""CycloneDX 1.6 JSON of an env, written and validated with cyclonedx-python-lib; no timestamp."""

from __future__ import annotations

import functools
import json
from typing import Any

from envgraph.errors import EnvgraphError
from envgraph.sbom._model import DebEntry, PythonEntry, SbomInput, serial_uuid

__all__ = ["to_cyclonedx", "validate_cyclonedx", "python_purl", "deb_purl", "oci_purl"]


def python_purl(name: str, version: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL(type="pypi", name=_normalise(name), version=version))


def deb_purl(entry: DebEntry, suite: str | None) -> str:
    from packageurl import PackageURL

    qualifiers = {}
    if entry.architecture:
        qualifiers["arch"] = entry.architecture
    if suite:
        qualifiers["distro"] = suite
    return str(
        PackageURL(
            type="deb", namespace="debian", name=entry.name, version=entry.version, qualifiers=qualifiers
        )
    )


def oci_purl(env: str, digest: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL(type="oci", name=env, version=digest))


def _normalise(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def to_cyclonedx(data: SbomInput) -> str:
    """The document as canonical-ish JSON text (the library's field order, two-space indent, newline)."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    subject = Component(
        name=data.env,
        type=ComponentType.CONTAINER,
        bom_ref=f"envgraph-image:{data.env}",
        version=data.image_digest or data.drv,
        properties=[Property(name="envgraph:drv", value=data.drv)],
    )
    if data.image_digest is not None:
        subject.purl = PackageURL.from_string(oci_purl(data.env, data.image_digest))
        subject.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=data.image_digest.split(":", 1)[1]))
        subject.properties.add(Property(name="envgraph:image-digest", value=data.image_digest))
    tools = ToolRepository(
        components=[Component(name="envgraph", type=ComponentType.APPLICATION, version=data.tool_version)]
    )
    bom = Bom(serial_number=serial_uuid(data))
    bom.metadata.timestamp = None  # type: ignore[assignment]  # identical on every machine
    bom.metadata.component = subject
    bom.metadata.tools = tools
    for p in data.python:
        bom.components.add(_python_component(p))
    for d in data.debian:
        bom.components.add(_deb_component(d, data.suite))
    _dependencies(bom, subject, data)
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    # Key order as written by the library is stable; sort keys anyway so the bytes never depend on it.
    return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _dependencies(bom: Any, subject: Any, data: SbomInput) -> None:
    """The image depends on what the envs declare and on every Debian package; each Python package on what its
    wheel's Requires-Dist names (for the target)."""
    from cyclonedx.model.dependency import Dependency

    refs = {_normalise(p.package.name): p for p in data.python}
    by_ref = {str(c.bom_ref): c for c in bom.components}

    def ref(name: str) -> Any:
        p = refs[name].package
        return by_ref[python_purl(p.name, p.version)].bom_ref

    top = [ref(n) for n in data.roots if n in refs]
    top += [by_ref[deb_purl(d, data.suite)].bom_ref for d in data.debian]
    bom.dependencies.add(Dependency(ref=subject.bom_ref, dependencies=[Dependency(ref=r) for r in top]))
    for name in sorted(refs):
        deps = [Dependency(ref=ref(n)) for n in data.requires.get(name, ()) if n in refs]
        bom.dependencies.add(Dependency(ref=ref(name), dependencies=deps))


def _python_component(p: PythonEntry) -> object:
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.component import Component
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from packageurl import PackageURL

    pkg = p.package
    purl = python_purl(pkg.name, pkg.version)
    c = Component(
        name=pkg.name,
        version=pkg.version,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        properties=[Property(name="envgraph:env", value=p.env)],
    )
    if pkg.wheel is not None:
        c.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=pkg.wheel.sha256))
        c.properties.add(Property(name="envgraph:wheel", value=pkg.wheel.filename))
        if pkg.wheel.url.startswith("https://"):
            c.external_references.add(
                ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(pkg.wheel.url))
            )
    if pkg.source is not None:
        c.properties.add(Property(name="envgraph:built-from", value=pkg.source.kind))
        c.properties.add(Property(name="envgraph:source-sha256", value=pkg.source.sha256))
    m = p.metadata
    if m is not None and m.license_expression:
        c.licenses.add(LicenseExpression(m.license_expression))
    elif m is not None:
        for name in m.license_names:
            c.licenses.add(DisjunctiveLicense(name=name))
    return c


def _deb_component(d: DebEntry, suite: str | None) -> object:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component
    from packageurl import PackageURL

    purl = deb_purl(d, suite)
    c = Component(
        name=d.name,
        version=d.version,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        properties=[Property(name="envgraph:env", value=d.env or "base")],
    )
    if d.sha256:
        c.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=d.sha256))
    return c


@functools.cache
def _validator() -> Any:
    """Compiling the schema takes seconds: once per process."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6)


def validate_cyclonedx(text: str) -> None:
    """Check the document against the CycloneDX 1.6 JSON schema (the library's strict validator)."""
    error = _validator().validate_str(text)
    if error is not None:
        raise EnvgraphError(f"the CycloneDX document does not validate: {error}")
