"""The `lgi` command: a click group whose subcommands are discovered from entry points.

Every LGI package registers its own subcommands in the entry-point group ``lgi.commands`` (after
rasterio's ``rio``), so installing a package adds its command. Discovery reads entry-point *names*
only; a command's module is imported when that command runs or when ``--help`` needs its summary.
A command whose module fails to import is listed as broken, explains itself when invoked, and never
takes the rest of the CLI down.

Command modules import only click at top level: torch and the kernels load inside command bodies,
so ``lgi --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from importlib.metadata import EntryPoint, entry_points

import click

from lgi import __version__

COMMANDS_GROUP = "lgi.commands"
KERNELS_GROUP = "lgi.kernels"


class BrokenCommand(click.Command):
    """Stands in for a command whose entry point could not be loaded."""

    def __init__(self, name: str, source: str, error: BaseException):
        self.source = source
        self.error = error
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        summary = f"{type(error).__name__}: {first_line}"
        super().__init__(
            name,
            help=f"BROKEN: this command could not be loaded from {source}.\n\n{summary}",
            short_help=f"[broken] {summary}"[:120],
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
            add_help_option=False,
        )

    def invoke(self, ctx: click.Context) -> None:
        click.echo(
            f"lgi {self.name}: this command is broken: loading {self.source} failed with "
            f"{type(self.error).__name__}: {self.error}",
            err=True,
        )
        if _verbosity(ctx) > 0:
            traceback.print_exception(type(self.error), self.error, self.error.__traceback__)
        else:
            click.echo("Reinstall the package that provides it; run `lgi -v ...` for the traceback.", err=True)
        ctx.exit(1)


class PluginGroup(click.Group):
    """A click group that adds the commands registered under ``lgi.commands``, loaded lazily."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, click.Command] = {}

    @staticmethod
    def _entry_points() -> dict[str, list[EntryPoint]]:
        found: dict[str, list[EntryPoint]] = {}
        for ep in entry_points(group=COMMANDS_GROUP):
            found.setdefault(ep.name, []).append(ep)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._entry_points()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name in self._loaded:
            return self._loaded[name]
        eps = self._entry_points().get(name)
        if not eps:
            return None
        # Two distributions claiming one name is a packaging error a user must see, not a silent pick.
        sources = sorted({ep.value for ep in eps})
        if len(sources) > 1:
            err = RuntimeError(f"registered more than once: {', '.join(sources)}")
            cmd: click.Command = BrokenCommand(name, sources[0], err)
        else:
            try:
                obj = eps[0].load()
                if not isinstance(obj, click.Command):
                    raise TypeError(f"{eps[0].value} is a {type(obj).__name__}, not a click command")
                cmd = obj
            except Exception as exc:  # noqa: BLE001 - any failure of a plugin must stay contained
                cmd = BrokenCommand(name, eps[0].value, exc)
        self._loaded[name] = cmd
        return cmd


def _verbosity(ctx: click.Context | None) -> int:
    root = ctx.find_root() if ctx is not None else None
    obj = root.obj if root is not None and isinstance(root.obj, dict) else {}
    return int(obj.get("verbose", 0))


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="lgi", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """LGI: a Gaussian image codec and research toolkit.

    Commands come from the installed LGI packages; `lgi versions` lists them.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    ctx.obj["quiet"] = quiet


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only the report (this command shows no progress).")
def versions(as_json: bool, quiet: bool) -> None:
    """Installed LGI packages, Python, torch, CUDA and native kernels."""
    from lgi._versions import collect, format_report

    report = collect()
    if as_json:
        import json

        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_report(report))


class Terminated(BaseException):
    """SIGTERM, raised as an exception so that every ``finally`` runs (temporary files are removed)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: run the group, turning unexpected errors into one line (``-v``: traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    except Terminated:
        click.echo("Terminated.", err=True)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str]) -> int:
    try:
        # standalone_mode=False: click returns ctx.exit()'s code (or a command's return value) here.
        rv = cli.main(args=args, prog_name="lgi", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:  # `lgi dictco` alone: the help, as click shows it
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(usage_line(exc, args), err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        verbose = any(a in ("-v", "-vv", "--verbose") for a in args)
        if verbose:
            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        hint = "" if verbose else " (run `lgi -v ...` for the traceback)"
        click.echo(f"lgi: error: {type(exc).__name__}: {first}{hint}", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


def usage_line(exc: click.UsageError, args: list[str] = ()) -> str:
    """A usage error as one line: click's message and where the help is (not three lines of usage)."""
    command = exc.ctx.command_path if exc.ctx is not None else _command_path(list(args))
    message = " ".join(exc.format_message().split())
    end = "" if message.endswith((".", "?", "!")) else "."
    return f"Error: {message}{end} See `{command} --help`."



def _command_path(args: list[str]) -> str:
    """``lgi dictco compress`` from the arguments (click's parser errors carry no context to ask)."""
    path, command = ["lgi"], cli
    ctx = click.Context(cli, info_name="lgi")
    for arg in args:
        if not isinstance(command, click.Group):
            break
        if arg.startswith("-"):  # the groups' own options are flags (-v, -q): no values to skip
            continue
        sub = command.get_command(ctx, arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return " ".join(path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
