"""How every ``siscore`` command fails: one line on stderr, a non-zero exit, never a traceback.

The command group (:class:`SiscoreGroup`) turns any exception a command lets through into
``error: <message>`` (the message's first line, without Python's ``module.Class:`` prefixes);
a wrong argument is exit 2, anything unexpected exit 1.  ``siscore --verbose ...`` (or
``SISCORE_VERBOSE=1``) prints the trace as well.  The small checks every command shares live
here too: a known country, years as written, an output file that can be written.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, NoReturn

import typer
import typer._click.exceptions as click  # typer's vendored click: the exceptions it raises
from typer.core import TyperGroup

ENV_VERBOSE = "SISCORE_VERBOSE"
_STATE = {"verbose": False}
#: ``siscore_assets.core.countries.CountryConfigError: `` at the start of a message (Dagster and
#: ``traceback`` write the class before the text).
_CLASS_PREFIX = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Z][\w]*(?:Error|Exception|Failed): ")


class CommandError(click.ClickException):
    """One line for the person at the terminal, and the exit status."""

    def __init__(self, message: str, exit_code: int = 2, bare: bool = False) -> None:
        super().__init__(message)
        self.exit_code, self.bare = exit_code, bare

    def show(self, file: Any = None) -> None:
        """``error: <message>``; a countries-file problem as its bare ``FILE:LINE: problem``."""
        typer.echo(self.message if self.bare else f"error: {self.message}", err=True)


def fail(message: str, exit_code: int = 2) -> NoReturn:
    """End the command with ``error: <message>`` and ``exit_code``."""
    raise CommandError(message, exit_code)


def set_verbose(on: bool) -> None:
    _STATE["verbose"] = bool(on)


def verbose() -> bool:
    return _STATE["verbose"] or os.environ.get(ENV_VERBOSE, "") not in ("", "0")


def one_line(text: str) -> str:
    """The first non-empty line of ``text`` without leading ``pkg.module.SomeError: `` parts."""
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    while _CLASS_PREFIX.match(line):
        line = _CLASS_PREFIX.sub("", line, count=1)
    return line


def describe(exc: BaseException) -> str:
    """An exception as one readable line (its class name when it has no message)."""
    return one_line(str(exc)) or type(exc).__name__


def _expected(exc: BaseException) -> bool:
    """A wrong input (exit 2) rather than a failure of the program (exit 1)."""
    from siscore_assets.core.countries import CountryConfigError, UnknownPartitionError

    return isinstance(exc, (CountryConfigError, UnknownPartitionError, FileNotFoundError))


class SiscoreGroup(TyperGroup):
    """The ``siscore`` group: every way out of a command is one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place a command's failure is printed
            if verbose():
                traceback.print_exc()
            from siscore_assets.core.countries import CountriesFileError

            code = 2 if _expected(exc) else 1
            hint = "" if code == 2 or verbose() else " (siscore --verbose ... prints the trace)"
            bare = isinstance(exc, CountriesFileError)
            raise CommandError(describe(exc) + hint, code, bare=bare) from exc

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _STATE["verbose"] = False
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name or "siscore",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except CommandError as exc:
            exc.show()
            code = exc.exit_code
        except click.NoArgsIsHelpError as exc:  # `siscore` alone: the help, not an error
            typer.echo(exc.format_message())
            code = 0
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            typer.echo(f"error: {one_line(exc.format_message())}{where}", err=True)
            code = exc.exit_code
        except click.ClickException as exc:
            typer.echo(f"error: {one_line(exc.format_message())}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


# ---- checks every command shares ---------------------------------------------------------------


def country(registry, code: str | None):
    """The configured country ``code`` (default: the file's default), else exit 2."""
    from siscore_assets.core.countries import UnknownPartitionError

    try:
        return registry.get(code or registry.default)
    except UnknownPartitionError as exc:
        fail(str(exc))


def years(cfg, text: str | None) -> list[int]:
    """``2016,2017`` (or ``2016-2018``) as configured years of ``cfg``; all of them when empty."""
    if not text:
        return list(cfg.years)
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(\d{4})(?:-(\d{4}))?", part)
        if m is None:
            fail(f"--years: {part!r} is not a year (write e.g. 2016,2017 or 2016-2019)")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if last < first:
            fail(f"--years: empty range {part!r}")
        out.extend(range(first, last + 1))
    for y in out:
        if y not in cfg.years:
            fail(
                f"country {cfg.code} has no year {y} configured "
                f"(configured years: {', '.join(map(str, cfg.years))})"
            )
    return sorted(set(out))


def year(cfg, value: int | None) -> int | None:
    if value is not None and value not in cfg.years:
        fail(
            f"country {cfg.code} has no year {value} configured "
            f"(configured years: {', '.join(map(str, cfg.years))})"
        )
    return value


def output_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """``--out``: not a folder, its folder exists and is writable, its extension one of
    ``suffixes`` (the format's; empty: any); exit 2 naming the problem otherwise."""
    path = Path(path).expanduser()
    if path.is_dir():
        fail(f"--out {path} is a folder; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        fail(f"--out {path}: {what} files end in {' or '.join(suffixes)}, not {path.suffix!r}")
    folder = path.parent
    if not folder.is_dir():
        fail(f"--out {path}: folder {folder} does not exist")
    try:  # os.access says yes to root everywhere (/proc too): make and remove a file there
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".siscore-probe-"):
            pass
    except OSError as exc:
        fail(f"--out {path}: folder {folder} is not writable ({exc.strerror})")
    if path.exists() and not os.access(path, os.W_OK):
        fail(f"--out {path}: file exists and is not writable")
    return path


def output_folder(path: Path) -> Path:
    """``--out-dir`` / ``--dest``: a folder that exists or can be made, and is writable."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        fail(f"{path} is a file, not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        fail(f"{probe} is not writable")
    return path


__all__ = [
    "CommandError",
    "SiscoreGroup",
    "country",
    "describe",
    "fail",
    "one_line",
    "output_file",
    "output_folder",
    "set_verbose",
    "verbose",
    "year",
    "years",
]
