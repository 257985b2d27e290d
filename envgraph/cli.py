"""The command line: a thin layer over :mod:`envgraph`'s library API."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from envgraph._convert import quote
from envgraph._fs import atomic_write, os_error_text, path_problem
from envgraph.errors import EnvgraphError
from envgraph.identity import MEDIA_TYPE_CYCLONEDX
from envgraph.workspace import Workspace, load

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from envgraph.oci._store import Store
    from envgraph.server import BackgroundServer

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, file: str | None, store: str | None, debug: bool, db: str | None = None) -> None:
        self.file = file
        self.store = Path(store) if store else None
        self.debug = debug
        self.db = db
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = load(self.file, store=self.store, db=self.db)
        return self._ws


class _EchoHandler(logging.Handler):
    """envgraph's log lines on stderr as ``envgraph: <level>: <message>`` (stderr looked up at each line)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"envgraph: {record.levelname.lower()}: {record.getMessage()}", err=True)


def _setup_logging(debug: bool) -> None:
    logger = logging.getLogger("envgraph")
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
        logger.propagate = False


def handle_errors(fn: F) -> F:
    """User errors become one line on stderr and a non-zero exit; ``--debug`` keeps the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = ctx.obj.debug if isinstance(ctx.obj, Context) else False
        try:
            return fn(*args, **kwargs)
        except EnvgraphError as e:
            if debug:
                raise
            click.echo(f"envgraph: error: {e}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            # The last resort for a file the code above did not anticipate (a full disk, a read-only or
            # vanished directory): still one line naming the path. Messages are better where the input is read.
            if debug:
                raise
            click.echo(f"envgraph: error: {EnvgraphError(os_error_text(e))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("envgraph: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


if TYPE_CHECKING:
    _StrParam = click.ParamType[str]
else:  # click < 8.3 has no generic ParamType
    _StrParam = click.ParamType


class FilePath(_StrParam):
    """A path option checked up front: no NUL byte, no component over 255 bytes, at most 4095 bytes."""

    name = "path"

    def __init__(self, *, dir_okay: bool = True) -> None:
        self.dir_okay = dir_okay

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        problem = path_problem(text) or ("must not be empty" if not text else None)
        if problem:
            self.fail(f"the path {quote(text)} {problem}", param, ctx)
        if not self.dir_okay and os.path.isdir(text):
            self.fail(f"{quote(text)} is a directory", param, ctx)
        return text


class ProjectName(_StrParam):
    """A package name (PEP 508), as ``lock -P`` takes: a typo is an error, not a silent no-op."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not _PROJECT_NAME.fullmatch(text):
            self.fail(f"{quote(text)} is not a package name", param, ctx)
        return text


# PEP 508 names: letters and digits, with '.', '_' and '-' inside.
_PROJECT_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class MainGroup(click.Group):
    """Usage errors (a bad option value, an unknown command) are one line too, like every other error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        kwargs.setdefault("prog_name", "envgraph")  # also under `python -m envgraph.cli`
        try:
            rv = super().main(*args, **kwargs)
        except click.ClickException as e:
            hint = ""
            if isinstance(e, click.UsageError) and e.ctx is not None:
                hint = f" (see `{e.ctx.command_path} --help`)"
            click.echo(f"envgraph: error: {EnvgraphError(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("envgraph: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE",
    type=FilePath(),
    help="Declaration file (default: envgraph.toml found upward).",
)
@click.option(
    "--store",
    metavar="DIR",
    envvar="ENVGRAPH_STORE",
    type=FilePath(),
    help="Store directory (default: .envgraph/ beside the file).",
)
@click.option(
    "--db",
    metavar="URL",
    envvar="ENVGRAPH_DB",
    help="Build-history database: sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
    "(default: [project] db, else history.sqlite in the store).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug log lines.")
@click.version_option(package_name="envgraph")
@click.pass_context
def main(ctx: click.Context, file: str | None, store: str | None, db: str | None, debug: bool) -> None:
    """Declare, lock and build layered container images for ML pipeline environments."""
    _setup_logging(debug)
    ctx.obj = Context(file, store, debug, db)


pass_ctx = click.make_pass_decorator(Context)


def _complete_names(ctx: click.Context, kind: str, incomplete: str) -> list[CompletionItem]:
    """Names from the declaration (``-f`` if given, else found upward); nothing when it cannot be read."""
    from click.shell_completion import CompletionItem

    root = ctx.find_root()
    try:
        spec = load(root.params.get("file")).spec
    except Exception:  # completion must never fail loudly  # noqa: BLE001
        return []
    names = spec.env if kind == "env" else spec.pipeline
    return [CompletionItem(n, help=kind) for n in sorted(names) if n.startswith(incomplete)]


def _complete_envs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _complete_names(ctx, "env", incomplete)


def _complete_pipelines(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _complete_names(ctx, "pipeline", incomplete)


def _say(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))


@main.command()
@click.argument("envs", nargs=-1, shell_complete=_complete_envs)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="P",
    help="Lock what pipeline P needs.",
    shell_complete=_complete_pipelines,
)
@click.option("--upgrade", "-U", is_flag=True, help="Resolve afresh, ignoring current pins.")
@click.option(
    "--upgrade-package",
    "-P",
    "upgrade_packages",
    multiple=True,
    metavar="NAME",
    type=ProjectName(),
    help="Upgrade one package.",
)
@click.option("--check", is_flag=True, help="Change nothing; exit non-zero when any lockfile is stale.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Envs resolved at once (default: the CPU count).",
)
@click.option(
    "--allow-old", "allow_old", multiple=True, metavar="NAME",
    help="Accept a release far older than the newest for this package (like allow-old in an env).",
)  # fmt: skip
@click.option("-q", "--quiet", is_flag=True)
@pass_ctx
@handle_errors
def lock(
    c: Context,
    envs: tuple[str, ...],
    pipelines: tuple[str, ...],
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
    check: bool,
    jobs: int | None,
    allow_old: tuple[str, ...],
    quiet: bool,
) -> None:
    """Resolve envs into lockfiles/ (only those whose inputs changed)."""
    result = c.ws.lock(
        envs,
        pipelines,
        upgrade=upgrade,
        upgrade_packages=upgrade_packages,
        check=check,
        jobs=jobs,
        log=_say(quiet),
        allow_old=allow_old,
    )
    if check:
        stale = result.stale
        if stale:
            names = ", ".join(f"{o.kind} {o.name} ({o.reason})" for o in stale)
            click.echo(f"envgraph: error: stale lockfiles: {names}: run `envgraph lock`", err=True)
            sys.exit(1)
        if not quiet:
            click.echo(f"all {len(result.outcomes)} lockfiles are up to date")
        return
    if not quiet:
        for o in result.outcomes:
            extra = f" ({o.reason})" if o.reason else ""
            click.echo(f"{o.kind} {o.name}: {o.status}{extra}")


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(["tree", "dot", "mermaid", "json", "png", "svg"]), default="tree"
)
@click.option(
    "--pipeline",
    default=None,
    metavar="P",
    help="Only what pipeline P needs.",
    shell_complete=_complete_pipelines,
)
@click.option(
    "-o", "--output", default=None, type=click.Path(dir_okay=False), help="Write to FILE (png: required)."
)
@pass_ctx
@handle_errors
def graph(c: Context, fmt: str, pipeline: str | None, output: str | None) -> None:
    """Print the graph of bases, envs and pipelines (png and svg are drawn by Graphviz's dot)."""
    from envgraph._fs import atomic_write

    if fmt in ("png", "svg"):
        from envgraph._graphviz import render_dot

        data = render_dot(c.ws.graph.render("dot", pipeline), fmt)
        if output is None:
            if fmt == "png":
                raise EnvgraphError("graph --format png writes binary data: give -o FILE")
            click.echo(data.decode("utf-8"), nl=False)
            return
        atomic_write(Path(output), data)
        click.echo(f"wrote {output}", err=True)
        return
    text = c.ws.graph.render(fmt, pipeline)
    if output is None:
        click.echo(text)
    else:
        atomic_write(Path(output), text + "\n")


@main.command()
@click.argument("envs", nargs=-1, shell_complete=_complete_envs)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="P",
    help="Build what pipeline P needs.",
    shell_complete=_complete_pipelines,
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel layer builds (default: number of CPUs).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the total line.")
@click.option("--dry-run", is_flag=True, help="Print the plan: what would be built, what is reused, and why.")
@click.option(
    "--report",
    "report_path",
    type=FilePath(dir_okay=False),
    default=None,
    help="Write a JSON build report.",
)
@click.option(
    "--cache",
    "cache_ref",
    default=None,
    metavar="REGISTRY/REPO",
    help="Registry used as a shared layer cache.",
)
@click.option("--cache-mode", type=click.Choice(["read", "readwrite"]), default="readwrite")
@click.option("--insecure", is_flag=True, help="Plain HTTP to the cache registry.")
@click.option(
    "--executor",
    default=None,
    metavar="local|dask://HOST:PORT",
    help="Where layers are built: this machine (default) or a Dask cluster (needs --cache).",
)
@pass_ctx
@handle_errors
def build(
    c: Context,
    envs: tuple[str, ...],
    pipelines: tuple[str, ...],
    jobs: int | None,
    quiet: bool,
    dry_run: bool,
    report_path: str | None,
    cache_ref: str | None,
    cache_mode: str,
    insecure: bool,
    executor: str | None,
) -> None:
    """Build images from the lockfiles into the store (default: every env)."""
    from envgraph._ui import make_reporter
    from envgraph.builder._dryrun import describe_plan

    ws = c.ws
    if dry_run:
        plans = ws.plans(envs, pipelines)
        for plat, plan in zip(ws.platforms, plans, strict=True):
            if len(plans) > 1:
                click.echo(f"platform {plat}:")
            click.echo(describe_plan(ws.open_store(), plan))
        return
    cache = None
    cache_ref = cache_ref or ws.spec.project.cache
    if cache_ref:
        from envgraph.registry._cache import RegistryCache

        cache = RegistryCache.from_reference(cache_ref, mode=cache_mode, insecure=insecure)
    result = ws.build(
        envs, pipelines, jobs=jobs, reporter=make_reporter(quiet), cache=cache, executor=executor
    )
    if cache is not None and any(r.worker for r in result.layers.values()):
        workers = {r.worker for r in result.layers.values() if r.worker}
        built = sum(1 for r in result.layers.values() if r.worker and r.status != "failed")
        click.echo(
            f"dask: {built} layers built on {len(workers)} workers, {cache.stats.hits} found in the cache {cache.reference}",
            err=True,
        )
    elif cache is not None:
        click.echo(f"cache: {cache.stats.hits} layers pulled, {cache.stats.published} published", err=True)
    report = ws.build_report(result)
    if report_path:
        atomic_write(Path(report_path), json.dumps(report, indent=2, sort_keys=True) + "\n")
    _summary(report, quiet=quiet)
    for w in result.warnings:
        click.echo(f"envgraph: warning: {w}", err=True)
    if not result.ok:
        for f in result.failures:
            click.echo(f"envgraph: error: {f}", err=True)
        sys.exit(1)


def _summary(report: dict[str, Any], *, quiet: bool = False) -> None:
    """One line per env (unless ``quiet``) and the total line."""
    if not quiet:
        names = [f"{e['env']} {e['platform']}" if "platform" in e else e["env"] for e in report["envs"]]
        width = max([16, *(len(n) for n in names)])
        for name, e in zip(names, report["envs"], strict=True):
            digest = e["digest"] or "FAILED"
            extra = f", {e['layers_pulled']} pulled" if e["layers_pulled"] else ""
            extra += f", {e['layers_failed']} failed" if e["layers_failed"] else ""
            click.echo(
                f"{name:<{width}} {digest}  layers: {e['layers_built']} built, {e['layers_reused']} reused, "
                f"{e['layers_shared']} shared{extra}  {e['seconds']:.2f}s"
            )
    t = report["totals"]
    envs = report["envs"]
    built_envs = sum(1 for e in envs if e["status"] == "built")
    failed_envs = sum(1 for e in envs if e["status"] == "failed")
    failed = f", {failed_envs} failed" if failed_envs else ""
    click.echo(
        f"total: {t['layers_built']} layers built, {t['layers_reused']} reused, {t['layers_pulled']} pulled; "
        f"{t['bytes_written'] / 1e6:.1f} MB written; dedup {t['dedup_ratio']:.2f}x; "
        f"{len(envs)} envs, {built_envs} new images{failed}; {t['seconds']:.2f}s"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for other tools.")
@pass_ctx
@handle_errors
def images(c: Context, as_json: bool) -> None:
    """What the store holds: env, drv, digest, size, layer count."""
    if as_json:
        click.echo(json.dumps(c.ws.images_json(), indent=2, sort_keys=True))
        return
    rows = c.ws.images()
    if not rows:
        click.echo("no images in the store: run `envgraph build`")
        return
    click.echo(f"{'ENV':<16} {'PLATFORM':<12} {'DRV':<14} {'DIGEST':<20} {'SIZE':>10} {'LAYERS':>6}  TAGS")
    for r in rows:
        click.echo(
            f"{r.env:<16} {r.platform:<12} {r.drv[7:19]:<14} {r.digest[:19]:<20} {r.size / 1e6:>8.1f}MB "
            f"{r.layers:>6}  {', '.join(r.tags)}"
        )


@main.command()
@click.argument("env", shell_complete=_complete_envs)
@click.option("-o", "--output", required=True, type=FilePath(dir_okay=False), help="Archive to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["docker-archive", "oci-archive"]),
    default="docker-archive",
    show_default=True,
    help="docker-archive: `docker load` of every Docker version; oci-archive: skopeo, podman, crane, "
    "and `docker load` of Docker 25 and later.",
)
@click.option("--sbom", is_flag=True, help="Include the image's SBOM as an OCI referrer (oci-archive only).")
@pass_ctx
@handle_errors
def export(c: Context, env: str, output: str, fmt: str, sbom: bool) -> None:
    """Write an env's image as a docker or OCI archive."""
    ref = c.ws.export(env, Path(output), fmt, sbom=sbom)  # type: ignore[arg-type]  # click.Choice checked it
    click.echo(f"wrote {output} ({fmt}, {ref})")


@main.command()
@click.argument("env")
@click.option(
    "--format", "fmt", type=click.Choice(["cyclonedx", "spdx"]), default="cyclonedx", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="File to write (default: stdout)."
)
@click.option("--validate", is_flag=True, help="Check the CycloneDX document against its JSON schema.")
@pass_ctx
@handle_errors
def sbom(c: Context, env: str, fmt: str, output: str | None, validate: bool) -> None:
    """The env's SBOM (CycloneDX 1.6 or SPDX 2.3 JSON): every Python and Debian package of its image."""
    text = c.ws.sbom(env, fmt, validate=validate)  # type: ignore[arg-type]  # click.Choice checked it
    _write_output(text, output)


def _write_output(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    from envgraph._fs import atomic_write

    atomic_write(Path(output), text)
    click.echo(f"wrote {output}", err=True)


@main.command(name="export-lock")
@click.argument("env")
@click.option(
    "-o",
    "--output",
    default="pylock.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="File to write.",
)
@pass_ctx
@handle_errors
def export_lock(c: Context, env: str, output: str) -> None:
    """Write the env's full closure as a PEP 751 pylock.toml (uv pip install -r pylock.toml)."""
    c.ws.export_lock(env, Path(output))
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument("package")
@click.option("--env", default=None, metavar="ENV", help="Only this env (default: every env that has it).")
@click.option("--all", "all_paths", is_flag=True, help="Every chain, not only the shortest per requirement.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
@handle_errors
def why(c: Context, package: str, env: str | None, all_paths: bool, as_json: bool) -> None:
    """Why PACKAGE is in an env: the chains of requirements that bring it in (like nix why-depends)."""
    import attrs

    results = c.ws.why(package, env, all_paths=all_paths)
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in results], indent=2, sort_keys=True))
        return
    for r in results:
        versions = c.ws.versions(r.env)
        pinned = "" if r.pinned_by == r.env else f" (pinned by parent env {r.pinned_by})"
        click.echo(f"{r.package} {r.version} is in {r.env}{pinned}")
        for ch in r.chains:
            path = " -> ".join(f"{p} {versions.get(p, '?')}" for p in ch.packages)
            click.echo(f"  {ch.declared_in} declares {ch.requirement}: {path}")
        if not r.chains:
            click.echo("  no declared requirement leads to it (required by a package built from source?)")


@main.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
@handle_errors
def diff(c: Context, old: str, new: str, as_json: bool) -> None:
    """What changed from OLD to NEW, each ENV or ENV@GITREV (its lockfiles at that revision): Python and
    Debian packages added, removed and changed; layers shared and different when both images are built."""
    import attrs

    from envgraph._ui import human

    d = c.ws.diff(old, new)
    if as_json:
        click.echo(json.dumps(attrs.asdict(d), indent=2, sort_keys=True))
        return
    click.echo(f"{d.old.spec} ({d.old.drv[7:19]}) -> {d.new.spec} ({d.new.drv[7:19]})")
    for title, pd in (("python", d.python), ("debian", d.debian)):
        if pd.empty:
            click.echo(f"{title}: no changes")
            continue
        click.echo(f"{title}:")
        for name, version in pd.added:
            click.echo(f"  + {name} {version}")
        for name, version in pd.removed:
            click.echo(f"  - {name} {version}")
        for ch in pd.changed:
            click.echo(f"  ~ {ch.name} {ch.old} -> {ch.new}")
    im = d.images
    if im is None:
        missing = [s.spec for s in (d.old, d.new) if s.image is None]
        # At a git revision an env with files has no known image (their content then is not recorded).
        click.echo(f"images: not compared (no image in the store for {', '.join(missing)})")
        return
    click.echo(f"image {im.old[:19]} -> {im.new[:19]}")
    click.echo(
        f"  {len(im.shared)} layers shared ({human(im.size(im.shared))}); "
        f"{len(im.removed)} removed ({human(im.size(im.removed))}); {len(im.added)} added ({human(im.size(im.added))})"
    )
    for sign, layers in (("-", im.removed), ("+", im.added)):
        for layer in layers:
            click.echo(f"  {sign} {layer.digest[:19]} {human(layer.size):>10}  {layer.what}")


_via_option = click.option(
    "--via",
    type=click.Choice(["auto", "serve", "archive"]),
    default="auto",
    show_default=True,
    envvar="ENVGRAPH_LOAD_VIA",
    help="How the image reaches the daemon. serve: it pulls from the store over 127.0.0.1, only the layers "
    "it lacks; archive: the whole image is sent; auto: serve when the daemon is on this host, else archive.",
)


@main.command(name="load")
@click.argument("envs", nargs=-1, required=True, shell_complete=_complete_envs)
@_via_option
@pass_ctx
@handle_errors
def load_cmd(c: Context, envs: tuple[str, ...], via: str) -> None:
    """Load env images into the local Docker daemon as envgraph/<env>:<id12> and :latest."""
    for env in envs:
        result = c.ws.load_into_docker(env, via=via)  # type: ignore[arg-type]  # click.Choice checked it
        for tag in result.tags:
            click.echo(f"loaded {tag}")
        click.echo(result.describe(), err=True)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. There is no authentication: anything else exposes the store.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=5050, show_default=True, help="0: any free port."
)
@pass_ctx
@handle_errors
def serve(c: Context, host: str, port: int) -> None:
    """Serve the store as a read-only OCI registry (docker pull HOST:PORT/<env>:latest) and the dashboard."""
    from envgraph.workspace import serve_store

    def ready(server: BackgroundServer, store: Store) -> None:
        envs = sorted({ref.partition(":")[0] for ref in store.tags()})
        click.echo(f"serving {store.root} read-only at {server.url} (Ctrl-C stops)")
        click.echo(f"  dashboard: {server.url}/ui/    API: {server.url}/api/openapi.json")
        example = envs[0] if envs else "<env>"
        click.echo(
            f"  docker pull {server.address}/{example}:latest    ({len(envs)} envs: {', '.join(envs)})"
        )
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(
                f"envgraph: warning: listening on {host}: anyone who can reach it can read the store",
                err=True,
            )

    # With --store (or ENVGRAPH_STORE) no declaration file is needed: a copied or mounted store serves too
    # (the dashboard then shows the history but not the graph).
    ws = None
    try:
        ws = c.ws
    except EnvgraphError:
        if c.store is None:
            raise
    root = c.store if c.store is not None else ws.store_path if ws is not None else Path(".")
    serve_store(root, host, port, ready, workspace=ws, db=c.db)
    click.echo("envgraph: stopped", err=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("env", shell_complete=_complete_envs)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-e", "--env", "environment", multiple=True, metavar="KEY[=VALUE]", help="Set a variable.")
@click.option(
    "-v", "--volume", "volumes", multiple=True, metavar="SRC:DEST[:ro]", help="Bind a path or volume."
)
@click.option("-p", "--publish", "ports", multiple=True, metavar="[IP:][HOST:]PORT", help="Publish a port.")
@click.option(
    "-i", "--interactive", is_flag=True, help="Forward stdin (automatic when stdin is a pipe or file)."
)
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal.")
@click.option("-u", "--user", default=None, metavar="USER[:GROUP]", help="Run as this user.")
@click.option("--gpus", default=None, metavar="all|N|device=ID,..", help="GPUs for the container.")
@click.option(
    "--network", default=None, metavar="NAME", help="Docker network for the container (none: no network)."
)
@_via_option
@pass_ctx
@handle_errors
def run(
    c: Context,
    env: str,
    command: tuple[str, ...],
    environment: tuple[str, ...],
    volumes: tuple[str, ...],
    ports: tuple[str, ...],
    interactive: bool,
    tty: bool,
    user: str | None,
    gpus: str | None,
    network: str | None,
    via: str,
) -> None:
    """Run a command in an env's image (loaded into Docker first), like docker run: envgraph run [OPTIONS] ENV -- CMD ...

    Options come before ENV. Ctrl-C and SIGTERM stop and remove the container; the exit code is the command's."""
    from envgraph._docker import RunOptions, forwardable_stdin

    args = list(command)
    if args[:1] == ["--"]:
        args = args[1:]
    stdin = sys.stdin.buffer if interactive else forwardable_stdin()
    options = RunOptions(
        environment=environment, volumes=volumes, ports=ports, user=user, gpus=gpus, tty=tty, network=network
    )
    sys.exit(c.ws.run(env, args, via=via, options=options, stdin=stdin))  # type: ignore[arg-type]  # click.Choice checked it


@main.command()
@click.option(
    "--kind", type=click.Choice(["build", "push", "lock"]), default=None, help="Only runs of this kind."
)
@click.option("--env", "env", default=None, metavar="ENV", help="Only runs that touched ENV.")
@click.option("-n", "--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (as GET /api/runs does).")
@pass_ctx
@handle_errors
def history(c: Context, kind: str | None, env: str | None, limit: int, as_json: bool) -> None:
    """The recorded builds, pushes and locks, newest last (the dashboard shows them: envgraph serve)."""
    from envgraph.history import open_history
    from envgraph.history._url import database_url
    from envgraph.server._model import run_model

    ws = None
    try:
        ws = c.ws
    except EnvgraphError:
        if c.store is None:
            raise
    url = ws.history_url if ws is not None else database_url(c.db, None, Path(c.store or ".").resolve())
    h = open_history(url, readonly=True)
    runs = [run_model(r) for r in h.runs(kind=kind, env=env, limit=limit)] if h is not None else []
    if as_json:
        click.echo(json.dumps(runs, indent=2))
        return
    if not runs:
        click.echo("no runs recorded yet")
        return
    click.echo(
        f"{'RUN':>5} {'KIND':<6} {'STARTED (UTC)':<20} {'BUILT':>5} {'REUSED':>6} {'PULLED':>6} {'SECONDS':>8}  RESULT"
    )
    for r in runs:
        result = "ok" if r["ok"] else f"failed: {r['error'] or ''}"
        click.echo(
            f"{r['id']:>5} {r['kind']:<6} {r['started'][:19].replace('T', ' '):<20} {r['layers_built']:>5} "
            f"{r['layers_reused']:>6} {r['layers_pulled']:>6} {r['seconds']:>8.2f}  {result}"
        )


@main.command()
@click.option("--repair", is_flag=True, help="Move damaged parts aside, then build again what they were.")
@pass_ctx
@handle_errors
def verify(c: Context, repair: bool) -> None:
    """Rehash every blob the store refers to and check every layer record; report problems."""
    report = c.ws.verify(repair=repair)
    for p in report.problems:
        click.echo(f"problem: {p}")
    for a in report.repaired:
        click.echo(f"repaired: {a}")
    if repair:
        from envgraph._ui import make_reporter

        result = c.ws.build(reporter=make_reporter(True))
        built = sum(1 for r in result.layers.values() if r.status in ("built", "pulled"))
        if not result.ok:
            for f in result.failures:
                click.echo(f"envgraph: error: {f}", err=True)
            sys.exit(1)
        after = c.ws.verify()
        if not after.ok:
            for p in after.problems:
                click.echo(f"problem: {p}")
            click.echo(
                f"envgraph: error: {len(after.problems)} problems remain in {c.ws.store_path}", err=True
            )
            sys.exit(1)
        click.echo(
            f"store {c.ws.store_path} is consistent ({len(report.problems)} problems repaired, {built} layers rebuilt)"
        )
        return
    if report.problems:
        click.echo(
            f"envgraph: error: {len(report.problems)} problems in {c.ws.store_path}: "
            "run `envgraph verify --repair` (or `envgraph build`) to repair",
            err=True,
        )
        sys.exit(1)
    click.echo(f"store {c.ws.store_path} is consistent")


@main.command()
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Images kept per env besides the current ones.",
)
@click.option("--dry-run", is_flag=True)
@pass_ctx
@handle_errors
def gc(c: Context, keep_last: int, dry_run: bool) -> None:
    """Remove blobs no current lockfile or kept image refers to."""
    result = c.ws.gc(keep_last=keep_last, dry_run=dry_run)
    for line in result.kept:
        click.echo(line)
    verb = ("would free", "would untag") if dry_run else ("freed", "untagged")
    click.echo(f"{verb[0]} {result.freed / 1e6:.1f} MB; {verb[1]} {len(result.dropped)} old images")


@main.command()
@handle_errors
def schema() -> None:
    """Print the JSON Schema of envgraph.toml."""
    from envgraph._spec_schema import spec_schema

    click.echo(json.dumps(spec_schema(), indent=2, sort_keys=True))


@main.command()
@click.argument("envs", nargs=-1, shell_complete=_complete_envs)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="P",
    help="Push the envs of a pipeline.",
    shell_complete=_complete_pipelines,
)
@click.option("--registry", "registry_ref", required=True, metavar="HOST[:PORT]/REPO", help="Where to push.")
@click.option("--insecure", is_flag=True, help="Plain HTTP to the registry (localhost registries).")
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel uploads."
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the pushed references.")
@click.option("--no-sbom", is_flag=True, help="Do not attach each image's SBOM (an OCI referrer).")
@pass_ctx
@handle_errors
def push(
    c: Context,
    envs: tuple[str, ...],
    pipelines: tuple[str, ...],
    registry_ref: str,
    insecure: bool,
    jobs: int,
    quiet: bool,
    no_sbom: bool,
) -> None:
    """Push built images, tagged <env>-<id12> and <env>, uploading only blobs the registry lacks."""
    from envgraph._ui import human, push_progress

    progress = None if quiet else push_progress(sys.stderr)
    try:
        results = c.ws.push(
            envs, pipelines, registry_ref, insecure=insecure, jobs=jobs, progress=progress, sbom=not no_sbom
        )
    finally:
        if progress is not None:
            progress.close()
    for r in results:
        click.echo(f"pushed {r.reference} {r.digest}")
        if r.sbom is not None and not quiet:
            click.echo(f"  sbom {r.sbom} ({MEDIA_TYPE_CYCLONEDX}, referrer of {r.digest})")
    if not quiet:
        total = sum(r.bytes_uploaded for r in results)
        up = sum(r.blobs_uploaded for r in results)
        mounted = sum(r.blobs_mounted for r in results)
        skipped = sum(r.blobs_skipped for r in results)
        click.echo(
            f"uploaded {human(total)} ({total} bytes) in {up} blobs; {mounted} mounted, {skipped} already there"
        )


@main.command(name="export-settings")
@click.option(
    "--registry",
    "registry_ref",
    required=True,
    metavar="HOST[:PORT]/REPO",
    help="Where the images were pushed.",
)
@click.option("--format", "fmt", type=click.Choice(["json", "zenml"]), default="json", show_default=True)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="P",
    help="Only pipeline P (repeatable).",
    shell_complete=_complete_pipelines,
)
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(),
    help="File to write (zenml with several pipelines: a directory, one P.yaml each). Default: stdout.",
)
@pass_ctx
@handle_errors
def export_settings(
    c: Context, registry_ref: str, fmt: str, pipelines: tuple[str, ...], output: str | None
) -> None:
    """Per pipeline and step, the pushed image by digest (from the push records), as JSON or ZenML settings."""
    from envgraph._fs import atomic_write

    doc = c.ws.export_settings(registry_ref, fmt, pipelines)  # type: ignore[arg-type]  # click.Choice checked it

    def dump(value: Any) -> str:
        return json.dumps(value, indent=2, sort_keys=True) + "\n"

    if fmt == "json" or len(doc) == 1:
        text = dump(doc if fmt == "json" else next(iter(doc.values())))
        if output is None:
            click.echo(text, nl=False)
        else:
            atomic_write(Path(output), text)
            click.echo(f"wrote {output}", err=True)
        return
    if output is None:
        raise EnvgraphError(
            f"--format zenml writes one configuration per pipeline ({', '.join(doc)}): "
            "choose one with --pipeline P or give -o DIR"
        )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    for name, config in doc.items():
        atomic_write(out / f"{name}.yaml", dump(config))
        click.echo(f"wrote {out / f'{name}.yaml'}", err=True)


@main.command()
@click.option("--name", default=None, help="Project name (default: the directory's name).")
@click.option("--force", is_flag=True, help="Overwrite an existing envgraph.toml.")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@handle_errors
def init(name: str | None, force: bool, directory: str) -> None:
    """Write a starter envgraph.toml and keep the store out of git (.gitignore)."""
    from envgraph._init import init_project

    for line in init_project(Path(directory), name=name, force=force):
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    main()
