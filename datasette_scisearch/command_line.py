"""What every ``scisearch`` command shares: one rule for naming the catalog, one way to fail.

The catalog rule, for every command (and for plugins' commands that use ``catalog_argument``):

- the catalog is the first argument: ``scisearch tag catalog.db``, ``scisearch load files catalog.db data/``,
  ``scisearch search catalog.db "gold HAADF"``;
- left out, it is ``$SCISEARCH_CATALOG``: ``export SCISEARCH_CATALOG=catalog.db; scisearch load files data/``;
- ``--catalog FILE`` is accepted everywhere, and given again names several where a command takes several
  (``search``, ``serve``).

When ``$SCISEARCH_CATALOG`` is set and a command takes one or more paths after the catalog, a first argument is
taken for the catalog only when it looks like one (an SQLite file, or a name ending in .db, .sqlite or
.sqlite3), so ``scisearch load files data/ more-data/`` loads both folders into the catalog the variable names.

Failing: a command raises a ``ScisearchError``; ``ScisearchCommandLine`` (the ``scisearch`` group) prints
``error: <message>`` and ``hint: <fix>`` on stderr and exits 1, for every command.  ``scisearch --debug …``
(or ``$SCISEARCH_DEBUG``) prints the traceback as well.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import traceback
from pathlib import Path

import click

from .errors import ScisearchError

CATALOG_VARIABLE = "SCISEARCH_CATALOG"
CATALOG_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def looks_like_catalog(argument: str) -> bool:
    """True for an existing SQLite file or a name with a catalog's suffix (so a folder or a CSV is not one)."""
    path = Path(argument)
    if path.suffix.lower() in CATALOG_SUFFIXES:
        return True
    if path.is_file():
        with open(path, "rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    return False


def resolve_catalogs(
    positionals: list[str], named: list[str], rest: int, several: bool, usage: str
) -> tuple[list[str], list[str]]:
    """Split a command's positional arguments into (catalogs, the rest) by the rule in this module's docstring.

    ``rest`` is how many arguments follow the catalog: 0 (none), 1 (exactly one) or -1 (one or more).
    """
    from_variable = os.environ.get(CATALOG_VARIABLE) or None
    fewest_after = 0 if rest == 0 else 1
    if named:
        catalogs = list(named)
    elif rest == 0:
        catalogs, positionals = (positionals, []) if several else (positionals[:1], positionals[1:])
    elif len(positionals) > fewest_after and (rest == 1 or from_variable is None or looks_like_catalog(positionals[0])):
        catalogs, positionals = positionals[:1], positionals[1:]
    else:
        catalogs = []
    if not catalogs and from_variable:
        catalogs = from_variable.split(":") if several else [from_variable]
    if not catalogs:
        raise ScisearchError("no catalog named", fix=f"name it first ({usage}), or set ${CATALOG_VARIABLE}")
    if rest == 0 and positionals:
        raise ScisearchError(f"unexpected argument {positionals[0]!r}", fix=f"the command takes: {usage}")
    if rest == 1 and len(positionals) != 1:
        what = "missing" if not positionals else f"one too many: {positionals[1]!r}"
        raise ScisearchError(f"an argument is {what}", fix=f"the command takes: {usage}")
    if rest == -1 and not positionals:
        raise ScisearchError("nothing to work on was named", fix=f"the command takes: {usage}")
    return catalogs, positionals


def catalog_argument(rest: str | None = None, *, count: int = 0, several: bool = False, metavar: str = ""):
    """Give a click command the catalog rule: its function receives ``catalog`` (a list of them when ``several``)
    and, when ``rest`` is named, that parameter (one value when ``count`` is 1, a tuple when it is -1).

    Put it directly under ``@click.command``; ``metavar`` is what follows the catalog in the usage line."""

    def decorate(function):
        usage = f"[CATALOG{'...' if several else ''}] {metavar}".strip()

        @functools.wraps(function)
        def run(*args, arguments: tuple[str, ...], catalog_option: tuple[str, ...], **kwargs):
            command_path = click.get_current_context().command_path
            catalogs, after = resolve_catalogs(
                list(arguments), list(catalog_option), count, several, f"{command_path} {usage}"
            )
            kwargs["catalog"] = catalogs if several else catalogs[0]
            if rest is not None:
                kwargs[rest] = after[0] if count == 1 else tuple(after)
            return function(*args, **kwargs)

        run = click.option(
            "--catalog",
            "catalog_option",
            multiple=True,
            metavar="FILE",
            help=f"the catalog{' (again for several)' if several else ''}; instead of the first argument "
            f"(default: ${CATALOG_VARIABLE})",
        )(run)
        return click.argument("arguments", nargs=-1, metavar=usage)(run)

    return decorate


def report_failure(error: BaseException, debug: bool) -> None:
    """Print a failure in the one format every command uses: ``error:`` and, where there is one, ``hint:``."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, ScisearchError):
        message, fix = error.message, error.fix
    elif isinstance(error, click.UsageError):
        message = error.format_message()
        fix = f"'{error.ctx.command_path} --help' shows how to call it" if error.ctx else None
    elif isinstance(error, click.ClickException):
        message, fix = error.format_message(), None
    elif isinstance(error, click.Abort | KeyboardInterrupt):
        message, fix = "interrupted", "what was finished is kept; run the same command again to go on"
    else:  # a bug, not bad input: say so, and how to see where
        message = f"unexpected {type(error).__name__}: {error}"
        fix = None if debug else "run 'scisearch --debug …' to see the traceback, and report it"
    click.echo(f"error: {message}", err=True)
    if fix:
        click.echo(f"hint: {fix}", err=True)


class _ReportsFailures:
    """``main`` for a command run on its own (as ``scisearch``, or a test calls it): one format for failures."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # a caller that handles errors itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        arguments = sys.argv[1:] if args is None else list(args)
        debug = "--debug" in arguments or bool(os.environ.get("SCISEARCH_DEBUG"))
        try:
            result = super().main(arguments, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            report_failure(error, debug)
            sys.exit(2)  # the shell's convention for a command called the wrong way
        except (Exception, KeyboardInterrupt, click.Abort) as error:
            report_failure(error, debug)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


class ScisearchCommandLine(_ReportsFailures, click.Group):
    """The ``scisearch`` group: runs a command and turns whatever it raises into one message format.

    Commands named in ``lazy`` (name: "module:attribute") are imported when they are run or listed, and
    ``more_commands`` (the plugins' own) is called once, only when a name is not found or all are listed: a
    ``scisearch search`` does not import the learning commands, the reader sandbox or every plugin's modules."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.more_commands = None

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        found = super().get_command(ctx, name)
        if found is None and self._add_more_commands():
            found = super().get_command(ctx, name)
        return found

    def list_commands(self, ctx):
        self._add_more_commands()
        return sorted({*super().list_commands(ctx), *self.lazy})

    def _add_more_commands(self) -> bool:
        more, self.more_commands = self.more_commands, None
        if more is None:
            return False
        more()
        return True


class ScisearchCommand(_ReportsFailures, click.Command):
    """A command defined outside cli.py (``search``, ``train``, ``learn``): the same format when run alone."""


dask_option = click.option(
    "--dask",
    metavar="ADDRESS|FILE.yml",
    help="run the work on a Dask cluster: a scheduler address (tcp://host:8786) or a cluster file that "
    "describes a SLURM cluster (see examples/slurm-cluster.yml)",
)
device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="where models run: auto takes the GPU when torch sees one",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    help="run the work on N worker processes on this machine (a Dask LocalCluster)",
)


@contextlib.contextmanager
def cluster_of(dask: str | None, workers: int | None):
    """The cluster --dask or --workers asks for (None: in-process), closed again afterwards."""
    from .cluster import open_cluster

    with open_cluster(dask, workers) as cluster:
        yield cluster
