"""Registry credentials and the Bearer/Basic challenge flow.

Where credentials come from, first match wins (:func:`find_credentials`):

1. ``ENVGRAPH_REGISTRY_USERNAME`` / ``ENVGRAPH_REGISTRY_PASSWORD`` (both set);
2. the Docker config, read by the Docker SDK's own ``docker.auth`` (``$DOCKER_CONFIG/config.json``,
   ``~/.docker/config.json``): ``credHelpers[host]``, then ``credsStore`` (both run
   ``docker-credential-<helper> get`` with the server on stdin), then ``auths`` (matched by host name, as the
   docker CLI does); an identity token is used as an OAuth2 refresh token against the token realm.
   envgraph reads no Docker config itself: what ``docker login`` and ``docker pull`` use is what it uses.

:class:`Authenticator` answers a registry's ``WWW-Authenticate`` challenge: Basic sends the credentials
on every request, Bearer fetches a token per scope set from the realm (anonymously when there are no
credentials) and caches it until shortly before it expires. It is shared by the threads of one client;
a lock guards the cache and token fetches.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable

import attrs
import docker.auth
import docker.errors
import docker.utils.config
import requests

from envgraph.errors import RegistryError, redact

__all__ = [
    "ENV_USERNAME",
    "ENV_PASSWORD",
    "Credentials",
    "Challenge",
    "Authenticator",
    "find_credentials",
    "docker_config_file",
    "parse_challenge",
    "repository_scope",
]

ENV_USERNAME = "ENVGRAPH_REGISTRY_USERNAME"
ENV_PASSWORD = "ENVGRAPH_REGISTRY_PASSWORD"

# Docker Hub is spelled many ways; the Docker SDK finds its entry when asked for no registry.
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")

# Docker stores identity tokens with this placeholder user name.
IDENTITY_TOKEN_USER = "<token>"


@attrs.frozen
class Credentials:
    """A user name and a secret, and where they came from (named in authentication errors)."""

    username: str
    password: str = attrs.field(repr=False)
    source: str = "explicit credentials"

    @property
    def identity_token(self) -> str | None:
        return self.password if self.username == IDENTITY_TOKEN_USER else None

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@attrs.frozen
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str] = attrs.field(factory=dict)


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="https://auth",service="reg",scope="repository:x:pull"`` -> Challenge."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return Challenge(scheme.lower(), params)


def repository_scope(repo: str, actions: Iterable[str]) -> str:
    return f"repository:{repo}:{','.join(actions)}"


# --- finding credentials -------------------------------------------------------------------------


def docker_config_file() -> str | None:
    """The Docker config: ``$DOCKER_CONFIG/config.json`` when ``DOCKER_CONFIG`` is set (only that, as the docker
    CLI does), else what the SDK finds (``~/.docker/config.json``, ``~/.dockercfg``); None when there is none."""
    if os.environ.get("DOCKER_CONFIG"):
        path = docker.utils.config.config_path_from_environment()
        return str(path) if path and os.path.exists(path) else None
    return docker.utils.config.find_config_file()  # type: ignore[no-any-return]


def _from_docker_config(host: str) -> Credentials | None:
    """The Docker SDK's answer for ``host``: ``credHelpers``, ``credsStore`` (running
    ``docker-credential-<name> get``), then ``auths``, matched as the docker CLI matches them."""
    path = docker_config_file()
    if path is None:
        return None
    # The SDK keys Docker Hub by its index URL, and any other registry by its host name.
    registry = None if host in DOCKER_HUB_ALIASES else host
    try:
        with warnings.catch_warnings():  # "helper not installed" is a UserWarning first, then our error below
            warnings.simplefilter("ignore", UserWarning)
            config = docker.auth.load_config(path)
            entry = config.resolve_authconfig(registry)
    except (docker.errors.DockerException, ValueError, TypeError, AttributeError) as e:
        raise RegistryError(redact(f"cannot use the Docker config {path} for {host}: {e}")) from None
    if not entry:
        return None
    helper = config.get_credential_store(registry) if (config.creds_store or config.cred_helpers) else None
    source = f"credential helper docker-credential-{helper}" if helper else f"Docker config {path}"
    token = entry.get("IdentityToken")
    if token:
        return Credentials(IDENTITY_TOKEN_USER, str(token), source=source)
    user = entry.get("Username") or entry.get("username")
    password = entry.get("Password") or entry.get("password")
    if user and password is not None:
        return Credentials(str(user), str(password), source=source)
    return None


def find_credentials(host: str) -> Credentials | None:
    """Credentials for ``host`` from the environment, then the Docker config; None when there are none."""
    user, password = os.environ.get(ENV_USERNAME), os.environ.get(ENV_PASSWORD)
    if user and password is not None:
        return Credentials(user, password, source=f"{ENV_USERNAME}/{ENV_PASSWORD}")
    return _from_docker_config(host)


# --- answering challenges ------------------------------------------------------------------------

TOKEN_MARGIN = 10.0  # seconds before expiry at which a cached token is refreshed
DEFAULT_TOKEN_LIFETIME = 60.0  # the distribution spec's default for a missing expires_in


class AuthFailed(RegistryError):
    """The registry or its token service refused the credentials."""


class Authenticator:
    """Answers one registry's challenges; shared by all threads of a :class:`RegistryClient`."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        lookup: Callable[[str], Credentials | None] = find_credentials,
    ) -> None:
        self.host = host
        self._explicit = credentials
        self._lookup = lookup
        self._looked_up = credentials is not None
        self._credentials = credentials
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.RLock()

    @property
    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._looked_up:
                self._credentials = self._lookup(self.host)
                self._looked_up = True
            return self._credentials

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    def describe_credentials(self) -> str:
        creds = self.credentials
        if creds is None:
            return (
                f"no credentials found: set {ENV_USERNAME}/{ENV_PASSWORD} or run `docker login {self.host}`"
            )
        return f"check credentials from {creds.source}"

    def header(self, scopes: tuple[str, ...], session: requests.Session, timeout: float) -> str | None:
        """The Authorization header for a request needing ``scopes``, or None when none is known to be needed."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials
            return creds.basic_header() if creds else None
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(scopes, session, timeout)
        return None

    def on_unauthorized(self, header: str, scopes: tuple[str, ...]) -> bool:
        """Record a 401's challenge and forget tokens for ``scopes``; True when one retry is worth making."""
        challenge = parse_challenge(header)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return False
        with self._lock:
            if self._challenge is not None:
                self._tokens.pop(self._key(scopes, self._challenge), None)
            self._challenge = challenge
            self._tokens.pop(self._key(scopes, challenge), None)
        return challenge.scheme == "bearer" or self.credentials is not None

    @staticmethod
    def _key(scopes: tuple[str, ...], challenge: Challenge) -> tuple[str, ...]:
        """The scopes to ask the token service for: ours; the challenge's only when we have none (``/v2/``).

        A challenge's scope describes the request that was refused, so it is not carried over to others.
        """
        if scopes:
            return tuple(sorted(set(scopes)))
        extra = challenge.params.get("scope")
        return tuple(sorted(set(extra.split(" ")))) if extra else ()

    def _token(self, scopes: tuple[str, ...], session: requests.Session, timeout: float) -> str:
        with self._lock:
            challenge = self._challenge
            assert challenge is not None
            key = self._key(scopes, challenge)
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            token, lifetime = self._fetch_token(challenge, key, session, timeout)
            self._tokens[key] = (token, time.monotonic() + max(lifetime - TOKEN_MARGIN, 1.0))
            return token

    def _fetch_token(
        self, challenge: Challenge, scopes: tuple[str, ...], session: requests.Session, timeout: float
    ) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} asked for a Bearer token but named no realm")
        service = challenge.params.get("service")
        creds = self.credentials
        what = ", ".join(scopes) or "registry access"
        try:
            if creds is not None and creds.identity_token is not None:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "envgraph",
                    "scope": " ".join(scopes),
                }
                if service:
                    form["service"] = service
                resp = session.post(realm, data=form, timeout=timeout)
            else:
                params: list[tuple[str, str]] = [("scope", s) for s in scopes]
                if service:
                    params.insert(0, ("service", service))
                headers = {"Authorization": creds.basic_header()} if creds else {}
                resp = session.get(realm, params=params, headers=headers, timeout=timeout)
        except requests.RequestException as e:
            raise RegistryError(f"token service {realm} for {self.host} is not reachable: {e}") from None
        if resp.status_code in (401, 403):
            raise AuthFailed(
                f"authentication to {self.host} failed for {what}: token service refused ({resp.status_code}); "
                + self.describe_credentials()
            )
        if resp.status_code != 200:
            raise RegistryError(f"token service {realm} for {self.host} answered {resp.status_code}")
        try:
            data = resp.json()
            token = data.get("token") or data.get("access_token")
            lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token = None
            lifetime = 0.0
        if not token:
            raise RegistryError(f"token service {realm} for {self.host} sent no token")
        return str(token), lifetime
