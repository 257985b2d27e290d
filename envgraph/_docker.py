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
import signal
import socket
import stat
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import attrs
import docker
import docker.errors
import docker.types
import docker.utils.socket
import requests
import urllib3.exceptions

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
    "RunOptions",
    "parse_ports",
    "parse_gpus",
    "forwardable_stdin",
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
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
    ) as err:
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
    # A daemon that goes away mid-stream surfaces as urllib3's error, not requests'.
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
    ) as err:
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


@attrs.frozen
class RunOptions:
    """What ``docker run`` options ``envgraph run`` passes on (all default to docker's defaults)."""

    environment: tuple[str, ...] = ()  # KEY=VALUE, or KEY to pass this process's value
    volumes: tuple[str, ...] = ()  # HOST:CONTAINER[:ro|rw] or VOLUME:CONTAINER[:mode]
    ports: tuple[str, ...] = ()  # [IP:][HOST:]CONTAINER[/PROTO]
    user: str | None = None
    gpus: str | None = None  # all, a count, or device=0,1
    tty: bool = False
    network: str | None = None


def parse_ports(specs: Iterable[str]) -> dict[str, Any]:
    """``-p`` values as the SDK's ``ports``: ``8000:80`` -> {"80/tcp": 8000}, ``127.0.0.1:8000:80/udp``,
    ``80`` (any free host port)."""
    out: dict[str, Any] = {}
    for spec in specs:
        port, _, proto = spec.partition("/")
        parts = port.rsplit(":", 2) if port.count(":") <= 2 else []
        ok = bool(parts) and all(p.isdigit() for p in parts[-2:] if p) and parts[-1].isdigit()
        if not ok or proto not in ("", "tcp", "udp", "sctp"):
            raise DockerError(f"-p {spec}: expected [IP:][HOST:]CONTAINER[/tcp|udp|sctp]")
        key = f"{parts[-1]}/{proto or 'tcp'}"
        if len(parts) == 1:
            out[key] = None
        elif len(parts) == 2:
            out[key] = int(parts[0]) if parts[0] else None
        else:
            out[key] = (parts[0], int(parts[1])) if parts[1] else (parts[0],)
    return out


def parse_gpus(spec: str) -> list[docker.types.DeviceRequest]:
    """``--gpus all``, ``--gpus 2``, ``--gpus device=0,1`` (docker run's forms) as a device request."""
    if spec == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if spec.isdigit():
        return [docker.types.DeviceRequest(count=int(spec), capabilities=[["gpu"]])]
    key, sep, ids = spec.strip("\"'").partition("=")
    if key == "device" and sep and ids:
        return [docker.types.DeviceRequest(device_ids=ids.split(","), capabilities=[["gpu"]])]
    raise DockerError(f"--gpus {spec}: expected all, a number, or device=ID[,ID...]")


def _environment(items: Iterable[str]) -> list[str]:
    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise DockerError(f"-e {item}: expected KEY=VALUE or KEY")
        if sep:
            out.append(item)
        elif key in os.environ:  # docker run -e KEY: this process's value, nothing when unset
            out.append(f"{key}={os.environ[key]}")
    return out


def _volumes(items: Iterable[str]) -> list[str]:
    out = []
    for item in items:
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            raise DockerError(
                f"-v {item}: expected HOST-PATH:/CONTAINER-PATH[:ro|rw] or VOLUME:/PATH[:ro|rw]"
            )
        if parts[0].startswith((".", "/", "~")):  # a host path (relative to here); else a named volume
            parts[0] = str(Path(parts[0]).expanduser().resolve())
        out.append(":".join(parts))
    return out


def forwardable_stdin() -> BinaryIO | None:
    """This process's stdin when it is a pipe or a file (``echo ... | envgraph run``), else None."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    return sys.stdin.buffer if stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode) else None


class _Terminated(SystemExit):
    """SIGTERM while a container runs: unwinds like Ctrl-C, so the container is stopped and removed."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated(128 + signal.SIGTERM)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _raw_terminal(stdin: BinaryIO | None) -> Iterator[None]:
    """With ``-it`` on a terminal, keys go to the container as typed (Ctrl-C included), as docker does."""
    try:
        fd = stdin.fileno() if stdin is not None else -1
        raw = fd >= 0 and os.isatty(fd)
    except (OSError, ValueError):
        raw = False
    if not raw:
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _pump_stdin(source: BinaryIO, sock: socket.socket) -> None:
    """Copy ``source`` into the container's stdin; end of input closes it (``stdin_once``)."""
    try:
        fd = source.fileno()
        while chunk := os.read(fd, 65536):
            sock.sendall(chunk)
    except OSError:
        pass  # the container went away: nothing more to send
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def run(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    *,
    environment: Mapping[str, str] | None = None,
    stream_to: TextIO | None = None,
    err_to: TextIO | None = None,
    entrypoint: list[str] | None = None,
    network: str | None = None,
    stdin: BinaryIO | None = None,
    options: RunOptions | None = None,
) -> int:
    """Run ``command`` in a new container of ``image``, stream its output live, remove it; returns the exit code.

    The container's stdout goes to ``stream_to`` and its stderr to ``err_to``: by default this process's
    ``sys.stdout``/``sys.stderr`` of the moment (so pytest's capture and redirections apply); with only
    ``stream_to`` given, both go there. ``stdin`` (bytes) is copied into the container's stdin until it ends.
    ``network`` is a Docker network mode ("none", "host", a network name); None keeps the daemon's default.
    ``options`` carries docker run's ``-e -v -p --user --gpus -t``. Ctrl-C and SIGTERM stop and remove
    the container.
    """
    opts = options or RunOptions(network=network)
    out = stream_to if stream_to is not None else sys.stdout
    err = err_to if err_to is not None else (stream_to if stream_to is not None else sys.stderr)
    env = [f"{k}={v}" for k, v in (environment or {}).items()] + _environment(opts.environment)
    what = " ".join([*(entrypoint or []), *command])
    try:
        container = client.containers.create(
            image,
            command,
            environment=env,
            entrypoint=entrypoint,
            network_mode=opts.network or network,
            volumes=_volumes(opts.volumes) or None,
            ports=parse_ports(opts.ports) or None,
            user=opts.user,
            device_requests=parse_gpus(opts.gpus) if opts.gpus else None,
            tty=opts.tty,
            stdin_open=stdin is not None,  # with detach=False the SDK sets StdinOnce: EOF closes it
        )
    except docker.errors.ImageNotFound as e:
        raise DockerError(f"cannot run {image}: the daemon has no such image") from e
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise DockerError(f"cannot create a container of {image}: {_explain(e)}") from e
    try:
        with _sigterm_unwinds():
            params = {"stdout": 1, "stderr": 1, "stream": 1, "stdin": 1 if stdin is not None else 0}
            # Attached before it starts, so nothing it prints is missed; one connection carries stdin too.
            attached = client.api.attach_socket(container.id, params=params)
            raw: socket.socket = getattr(attached, "_sock", attached)
            try:
                container.start()
                if opts.tty:
                    with contextlib.suppress(OSError, docker.errors.DockerException):
                        size = os.get_terminal_size(sys.stdout.fileno())
                        client.api.resize(container.id, size.lines, size.columns)
                if stdin is not None:
                    threading.Thread(target=_pump_stdin, args=(stdin, raw), daemon=True).start()
                # One decoder per stream: a UTF-8 character may be split across frames.
                decoders = {n: codecs.getincrementaldecoder("utf-8")(errors="replace") for n in (1, 2)}
                with _raw_terminal(stdin if opts.tty else None):
                    for stream, data in docker.utils.socket.frames_iter(attached, opts.tty):
                        target = err if stream == 2 else out
                        target.write(decoders[2 if stream == 2 else 1].decode(data))
                        target.flush()
                out.write(decoders[1].decode(b"", final=True))
                err.write(decoders[2].decode(b"", final=True))
            finally:
                with contextlib.suppress(OSError):
                    attached.close()
            result = container.wait()
        if result.get("Error"):
            raise DockerError(f"{image} {what}: {result['Error'].get('Message', result['Error'])}")
        return int(result["StatusCode"])
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise DockerError(f"running {what} in {image} failed: {_explain(e)}") from e
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
