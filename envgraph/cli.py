"""The command line: a thin layer over :mod:`envgraph`'s library API."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import EnvgraphError
from .workspace import Workspace, load

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
@click.option("-f", "--file", "file", metavar="FILE", help="Declaration file (default: envgraph.toml found upward).")
@click.option("--store", metavar="DIR", envvar="ENVGRAPH_STORE", help="Store directory (default: .envgraph/ beside the file).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="envgraph")
@click.pass_context
def main(ctx: click.Context, file: str | None, store: str | None, debug: bool) -> None:
    """Declare, lock and build layered container images for ML pipeline environments."""
    ctx.obj = Context(file, store, debug)


pass_ctx = click.make_pass_decorator(Context)


def _say(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))


@main.command()
@click.argument("envs", nargs=-1)
@click.option("--pipeline", "pipelines", multiple=True, metavar="P", help="Lock what pipeline P needs.")
@click.option("--upgrade", "-U", is_flag=True, help="Resolve afresh, ignoring current pins.")
@click.option("--upgrade-package", "-P", "upgrade_packages", multiple=True, metavar="NAME", help="Upgrade one package.")
@click.option("--check", is_flag=True, help="Change nothing; exit non-zero when any lockfile is stale.")
@click.option("-j", "--jobs", type=int, default=None, help="Envs resolved at once.")
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
    quiet: bool,
) -> None:
    """Resolve envs into lockfiles/ (only those whose inputs changed)."""
    result = c.ws.lock(
        envs, pipelines, upgrade=upgrade, upgrade_packages=upgrade_packages, check=check, jobs=jobs, log=_say(quiet)
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
@handle_errors
def schema() -> None:
    """Print the JSON Schema of envgraph.toml."""
    from .schema import spec_schema

    click.echo(json.dumps(spec_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":  # pragma: no cover
    main()
