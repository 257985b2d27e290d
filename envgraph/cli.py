"""The command line: a thin layer over :mod:`envgraph`'s library API."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from envgraph.errors import EnvgraphError
from envgraph.workspace import Workspace, load

if TYPE_CHECKING:
    from envgraph.oci._store import Store
    from envgraph.server import BackgroundServer

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, file: str | None, store: str | None, debug: bool) -> None:
        self.file = file
        self.store = Path(store) if store else None
        self.debug = debug
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = load(self.file, store=self.store)
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
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("envgraph: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-f", "--file", "file", metavar="FILE", help="Declaration file (default: envgraph.toml found upward)."
)
@click.option(
    "--store",
    metavar="DIR",
    envvar="ENVGRAPH_STORE",
    help="Store directory (default: .envgraph/ beside the file).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug log lines.")
@click.version_option(package_name="envgraph")
@click.pass_context
def main(ctx: click.Context, file: str | None, store: str | None, debug: bool) -> None:
    """Declare, lock and build layered container images for ML pipeline environments."""
    _setup_logging(debug)
    ctx.obj = Context(file, store, debug)


pass_ctx = click.make_pass_decorator(Context)


def _say(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))


@main.command()
@click.argument("envs", nargs=-1)
@click.option("--pipeline", "pipelines", multiple=True, metavar="P", help="Lock what pipeline P needs.")
@click.option("--upgrade", "-U", is_flag=True, help="Resolve afresh, ignoring current pins.")
@click.option(
    "--upgrade-package", "-P", "upgrade_packages", multiple=True, metavar="NAME", help="Upgrade one package."
)
@click.option("--check", is_flag=True, help="Change nothing; exit non-zero when any lockfile is stale.")
@click.option("-j", "--jobs", type=int, default=None, help="Envs resolved at once (default: the CPU count).")
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
@click.option("--format", "fmt", type=click.Choice(["tree", "dot", "mermaid", "json"]), default="tree")
@click.option("--pipeline", default=None, metavar="P", help="Only what pipeline P needs.")
@pass_ctx
@handle_errors
def graph(c: Context, fmt: str, pipeline: str | None) -> None:
    """Print the graph of bases, envs and pipelines."""
    click.echo(c.ws.graph.render(fmt, pipeline))


@main.command()
@click.argument("envs", nargs=-1)
@click.option("--pipeline", "pipelines", multiple=True, metavar="P", help="Build what pipeline P needs.")
@click.option("-j", "--jobs", type=int, default=None, help="Parallel layer builds (default: number of CPUs).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
@click.option("--dry-run", is_flag=True, help="Print the plan: what would be built, what is reused, and why.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
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
) -> None:
    """Build images from the lockfiles into the store (default: every env)."""
    from envgraph._ui import make_reporter
    from envgraph.builder._dryrun import describe_plan
    from envgraph.builder._report import build_report

    ws = c.ws
    if dry_run:
        click.echo(describe_plan(ws.open_store(), ws.plan(envs, pipelines)))
        return
    cache = None
    cache_ref = cache_ref or ws.spec.project.cache
    if cache_ref:
        from envgraph.registry._cache import RegistryCache

        cache = RegistryCache.from_reference(cache_ref, mode=cache_mode, insecure=insecure)
    result = ws.build(envs, pipelines, jobs=jobs, reporter=make_reporter(quiet), cache=cache)
    if cache is not None:
        click.echo(f"cache: {cache.stats.hits} layers pulled, {cache.stats.published} published", err=True)
    report = build_report(result, ws.open_store())
    if report_path:
        Path(report_path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _summary(report)
    for w in result.warnings:
        click.echo(f"envgraph: warning: {w}", err=True)
    if not result.ok:
        for f in result.failures:
            click.echo(f"envgraph: error: {f}", err=True)
        sys.exit(1)


def _summary(report: dict[str, Any]) -> None:
    for e in report["envs"]:
        built = sum(1 for layer in e["layers"] if layer["status"] == "built")
        pulled = sum(1 for layer in e["layers"] if layer["status"] == "pulled")
        failed = sum(1 for layer in e["layers"] if layer["status"] == "failed")
        reused = len(e["layers"]) - built - pulled - failed
        digest = e["digest"] or "FAILED"
        extra = f", {pulled} pulled" if pulled else ""
        extra += f", {failed} failed" if failed else ""
        click.echo(
            f"{e['env']:<16} {digest}  layers: {built} built, {reused} reused{extra}  {e['seconds']:.2f}s"
        )
    t = report["totals"]
    click.echo(
        f"total: {t['layers_built']} layers built, {t['layers_reused']} reused, {t['layers_pulled']} pulled; "
        f"{t['bytes_written'] / 1e6:.1f} MB written; dedup {t['dedup_ratio']:.2f}x; {t['seconds']:.2f}s"
    )


@main.command()
@pass_ctx
@handle_errors
def images(c: Context) -> None:
    """What the store holds: env, drv, digest, size, layer count."""
    rows = c.ws.images()
    if not rows:
        click.echo("no images in the store: run `envgraph build`")
        return
    click.echo(f"{'ENV':<16} {'DRV':<14} {'DIGEST':<20} {'SIZE':>10} {'LAYERS':>6}  TAGS")
    for r in rows:
        click.echo(
            f"{r.env:<16} {r.drv[7:19]:<14} {r.digest[:19]:<20} {r.size / 1e6:>8.1f}MB {r.layers:>6}  {', '.join(r.tags)}"
        )


@main.command()
@click.argument("env")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Archive to write.")
@click.option("--format", "fmt", type=click.Choice(["oci-archive", "docker-archive"]), default="oci-archive")
@pass_ctx
@handle_errors
def export(c: Context, env: str, output: str, fmt: str) -> None:
    """Write an env's image as an OCI or docker archive."""
    ref = c.ws.export(env, Path(output), fmt)  # type: ignore[arg-type]  # click.Choice checked it
    click.echo(f"wrote {output} ({fmt}, {ref})")


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
@click.argument("envs", nargs=-1, required=True)
@_via_option
@pass_ctx
@handle_errors
def load_cmd(c: Context, envs: tuple[str, ...], via: str) -> None:
    """Load env images into the local Docker daemon as envgraph/<env>:<drv12> and :latest."""
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
    """Serve the store as a read-only OCI registry: docker pull HOST:PORT/<env>:latest."""
    from envgraph.workspace import serve_store

    def ready(server: BackgroundServer, store: Store) -> None:
        envs = sorted({ref.partition(":")[0] for ref in store.tags()})
        click.echo(f"serving {store.root} read-only at {server.url} (Ctrl-C stops)")
        example = envs[0] if envs else "<env>"
        click.echo(
            f"  docker pull {server.address}/{example}:latest    ({len(envs)} envs: {', '.join(envs)})"
        )
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(
                f"envgraph: warning: listening on {host}: anyone who can reach it can read the store",
                err=True,
            )

    # With --store (or ENVGRAPH_STORE) no declaration file is needed: a copied or mounted store serves too.
    serve_store(c.store if c.store is not None else c.ws.store_path, host, port, ready)
    click.echo("envgraph: stopped", err=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("env")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--network", default=None, metavar="NAME", help="Docker network for the container (none: no network)."
)
@_via_option
@pass_ctx
@handle_errors
def run(c: Context, env: str, command: tuple[str, ...], network: str | None, via: str) -> None:
    """Run a command in an env's image (loaded into Docker first): envgraph run ENV -- CMD ..."""
    args = list(command)
    if args[:1] == ["--"]:
        args = args[1:]
    sys.exit(c.ws.run(env, args, network=network, via=via))  # type: ignore[arg-type]  # click.Choice checked it


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
    type=int,
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
@click.argument("envs", nargs=-1)
@click.option("--pipeline", "pipelines", multiple=True, metavar="P", help="Push the envs of a pipeline.")
@click.option("--registry", "registry_ref", required=True, metavar="HOST[:PORT]/REPO", help="Where to push.")
@click.option("--insecure", is_flag=True, help="Plain HTTP to the registry (localhost registries).")
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel uploads."
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the pushed references.")
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
) -> None:
    """Push built images, tagged <env>-<drv12> and <env>, uploading only blobs the registry lacks."""
    from envgraph._ui import human, push_progress

    progress = None if quiet else push_progress(sys.stderr)
    try:
        results = c.ws.push(envs, pipelines, registry_ref, insecure=insecure, jobs=jobs, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    for r in results:
        click.echo(f"pushed {r.reference} {r.digest}")
    if not quiet:
        total = sum(r.bytes_uploaded for r in results)
        up = sum(r.blobs_uploaded for r in results)
        mounted = sum(r.blobs_mounted for r in results)
        skipped = sum(r.blobs_skipped for r in results)
        click.echo(
            f"uploaded {human(total)} ({total} bytes) in {up} blobs; {mounted} mounted, {skipped} already there"
        )


if __name__ == "__main__":  # pragma: no cover
    main()
