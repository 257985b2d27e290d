"""Docker daemon access with the Docker SDK (``docker`` 7.x): connect, load, tag, run.

Every daemon failure becomes a one-line :class:`~envgraph.errors.DockerError`. The daemon
reports some failures as HTTP 200 with an ``error``/``errorDetail`` object inside the JSON
stream (docker-py #3161, #3277), so streamed answers are checked dict by dict.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import docker
import docker.errors
import requests

from envgraph.errors import DockerError

__all__ = [
    "DEFAULT_DOCKER_HOST",
    "docker_host",
    "daemon_is_local",
    "connect",
    "load_archive",
    "has_image",
    "pull",
    "remove_reference",
    "tag",
    "run",
]

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_LOADED_RE = re.compile(r"^Loaded image(?: ID)?: (.+)$")


def docker_host() -> str:
    """The daemon address we talk to: ``DOCKER_HOST`` or Docker's default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def daemon_is_local() -> bool:
    """Whether the daemon runs on this host (a unix socket), so it can pull from our 127.0.0.1."""
    return docker_host().startswith("unix://")


def _explain(err: Exception) -> str:
    if isinstance(err, docker.errors.APIError):
        return str(err.explanation or err)
    return str(err) or type(err).__name__


def connect(timeout: int = 300) -> docker.DockerClient:
    """A client for the daemon at ``DOCKER_HOST`` (TLS settings from the environment too), checked with a ping.

    ``timeout`` bounds each request; it is generous because loading a large archive is one request.
    """
    host = docker_host()
    no_daemon = f"no Docker daemon answers at {host}: start dockerd or set DOCKER_HOST"
    try:
        # from_env negotiates the API version, which already talks to the daemon.
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(no_daemon) from err
    return client


def _check_stream(chunks: Iterable[Mapping[str, Any]], what: str) -> list[str]:
    """Collect the ``stream`` lines of a JSON progress stream; raise on any error object in it."""
    lines: list[str] = []
    for chunk in chunks:
        detail = chunk.get("errorDetail")
        error = chunk.get("error") or (detail.get("message") if isinstance(detail, Mapping) else None)
        # A non-chunked answer is a plain error body {"message": ...} (docker-py's _stream_helper).
        if error is None and "message" in chunk and "stream" not in chunk and "status" not in chunk:
            error = chunk["message"]
        if error:
            raise DockerError(f"{what}: {error}")
        if isinstance(chunk.get("stream"), str):
            lines.extend(chunk["stream"].splitlines())
    return lines


def load_archive(client: docker.DockerClient, path: Path) -> list[str]:
    """``docker load`` a docker-archive tar, streamed from disk; returns what was loaded (tags, or IDs if untagged)."""
    path = Path(path)
    what = f"docker load of {path} failed"
    try:
        # The low-level call behind images.load(): it yields the raw dicts, so we can check every
        # one, and we get the names the daemon printed without an extra request per image.
        with open(path, "rb") as archive:
            lines = _check_stream(client.api.load_image(archive), what)
    except OSError as err:
        raise DockerError(f"{what}: {err.strerror or err}") from err
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"{what}: {_explain(err)}") from err
    loaded = [m.group(1).strip() for line in lines if (m := _LOADED_RE.match(line.strip()))]
    if not loaded:
        raise DockerError(f"{what}: the daemon reported no loaded image")
    return loaded


def has_image(client: docker.DockerClient, image_id: str) -> bool:
    """Whether the daemon has the image with this ID (the sha256 of its config)."""
    try:
        client.api.inspect_image(image_id)
    except docker.errors.ImageNotFound:
        return False
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"cannot inspect image {image_id}: {_explain(err)}") from err
    return True


def pull(client: docker.DockerClient, repository: str, tag: str) -> str:
    """``docker pull repository:tag``, every progress dict checked; returns the image ID."""
    what = f"docker pull {repository}:{tag} failed"
    try:
        _check_stream(client.api.pull(repository, tag=tag, stream=True, decode=True), what)
        return str(client.images.get(f"{repository}:{tag}").id)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"{what}: {_explain(err)}") from err


def remove_reference(client: docker.DockerClient, ref: str) -> None:
    """Drop one name (``repo:tag`` or ``repo@digest``) of an image; the image stays while other names remain."""
    try:
        client.api.remove_image(ref, noprune=True)
    except docker.errors.ImageNotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"cannot remove the name {ref}: {_explain(err)}") from err


def tag(client: docker.DockerClient, image_id_or_ref: str, repo: str, tag: str) -> str:
    """Tag an image the daemon has; returns ``repo:tag``."""
    ref = f"{repo}:{tag}"
    try:
        client.images.get(image_id_or_ref).tag(repo, tag)
    except docker.errors.ImageNotFound as err:
        raise DockerError(f"cannot tag {ref}: the daemon has no image {image_id_or_ref}") from err
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"cannot tag {image_id_or_ref} as {ref}: {_explain(err)}") from err
    return ref


def run(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    *,
    environment: Mapping[str, str] | None = None,
    stream_to: TextIO | None = None,
    entrypoint: list[str] | None = None,
    network: str | None = None,
) -> int:
    """Run ``command`` in a new container of ``image``, stream its output live, remove it; returns the exit code.

    Output (stdout and stderr, interleaved as they come) goes to ``stream_to``, by default the
    ``sys.stdout`` of the moment of the call (so pytest's capture and redirections apply).
    ``network`` is a Docker network mode ("none", "host", a network name); None keeps the daemon's default.
    """
    out = stream_to if stream_to is not None else sys.stdout
    try:
        container = client.containers.create(
            image, command, environment=dict(environment or {}), entrypoint=entrypoint, network_mode=network
        )
    except docker.errors.ImageNotFound as err:
        raise DockerError(f"cannot run {image}: the daemon has no such image") from err
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"cannot create a container of {image}: {_explain(err)}") from err
    try:
        container.start()
        # One decoder for the whole stream: a UTF-8 character may be split across chunks.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in container.logs(stream=True, follow=True):
            out.write(decoder.decode(chunk))
            out.flush()
        out.write(decoder.decode(b"", final=True))
        result = container.wait()
        if result.get("Error"):
            raise DockerError(
                f"{image} {' '.join([*(entrypoint or []), *command])}: {result['Error'].get('Message', result['Error'])}"
            )
        return int(result["StatusCode"])
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(
            f"running {' '.join([*(entrypoint or []), *command])} in {image} failed: {_explain(err)}"
        ) from err
    finally:
        # Already gone (or the daemon went away): nothing the caller could do about it.
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            container.remove(force=True)


def save_image(client: docker.DockerClient, name: str, out: Path) -> None:
    """Write a daemon image as a docker-archive file, streamed (used by ``docker-daemon:`` bases)."""
    try:
        image = client.images.get(name)
        with open(out, "wb") as f:
            for chunk in image.save(named=True):
                f.write(chunk)
    except docker.errors.ImageNotFound:
        raise DockerError(f"the Docker daemon has no image {name}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"cannot save {name} from the Docker daemon: {_explain(err)}") from err
