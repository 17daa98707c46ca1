"""The ``siscore`` command.  Each command group lives in its own module here and is added below."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from siscore_assets.cli import export as export_commands
from siscore_assets.cli import imported as import_commands
from siscore_assets.cli import kit as kit_command
from siscore_assets.cli import pog as pog_commands
from siscore_assets.cli import warehouse as warehouse_commands
from siscore_assets.cli.instance import dagster_instance, max_concurrent_runs


class _Siscore(typer.Typer):
    """The command; a countries file that cannot be used ends it with its one-line
    ``FILE:LINE: problem`` on stderr and exit status 2, not a traceback."""

    def __call__(self, *args, **kwargs):
        from siscore_assets.core.countries import CountryConfigError

        try:
            return super().__call__(*args, **kwargs)
        except CountryConfigError as exc:
            print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, file=sys.stderr)
            sys.exit(2)


app = _Siscore(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="siScore: development scores from satellite imagery, as Dagster assets over DuckDB.",
)


@app.command()
def countries() -> None:
    """List the configured countries and their years."""
    from siscore_assets.core.countries import load_countries

    reg = load_countries()
    for code in reg.codes:
        c = reg.get(code)
        mark = " (default)" if code == reg.default else ""
        typer.echo(
            f"{code}{mark}: {c.name}; source {c.source_kind}; years {', '.join(map(str, c.years))}"
        )


@app.command()
def run(
    country: str = typer.Option(None, help="Country code (default: the countries file's default)."),
    years: str = typer.Option(None, help="Comma-separated years (default: all configured)."),
    executor: str = typer.Option(
        "in_process",
        help="Executor of each partition run's steps: in_process (default: the partition "
        "runs already go side by side in worker processes, and on a few cores a process per "
        "step costs more than it gives), multiprocess, celery or k8s.",
    ),
) -> None:
    """Materialise every asset of a country, in dependency order, and print a summary."""
    from siscore_assets.cli.summary import summarize
    from siscore_assets.core.countries import UnknownPartitionError, load_countries
    from siscore_assets.definitions import build_definitions, executor_for
    from siscore_assets.defs.orchestration.runner import RunFailed, materialize_country, run_target

    reg = load_countries()
    code = country or reg.default
    try:
        cfg = reg.get(code)
        chosen = [int(y) for y in years.split(",")] if years else list(cfg.years)
        for y in chosen:
            cfg.check_year(y)
        executor_for(executor)  # an unknown executor is an error before anything runs
    except (UnknownPartitionError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    defs = build_definitions(reg)
    instance = dagster_instance()
    parallel = max_concurrent_runs(instance)
    typer.echo(
        f"== materialising {code} for {', '.join(map(str, chosen))} "
        f"(up to {parallel} partition runs at once, steps: {executor} executor)"
    )
    t0 = time.perf_counter()
    try:
        report = materialize_country(
            defs,
            code,
            chosen,
            instance=instance,
            log=typer.echo,
            target=run_target(defs, executor),
            parallel=parallel,
        )
    except RunFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    wall = time.perf_counter() - t0
    settings = defs.resources["settings"]
    typer.echo(
        summarize(
            defs.resources["warehouse"].database,
            Path(settings.data_root),
            code,
            wall,
            report.seconds,
        )
    )


@app.command()
def summary(country: str = typer.Option(None, help="Country code.")) -> None:
    """Print the summary of what the warehouse holds for a country."""
    from siscore_assets.cli.summary import summarize
    from siscore_assets.core.countries import load_countries
    from siscore_assets.definitions import build_definitions

    reg = load_countries()
    defs = build_definitions(reg)
    settings = defs.resources["settings"]
    typer.echo(
        summarize(
            defs.resources["warehouse"].database, Path(settings.data_root), country or reg.default
        )
    )


app.command("kit")(kit_command.kit)
export_commands.register(app)
import_commands.register(app)
app.add_typer(pog_commands.app, name="pog")
warehouse_commands.register(app)
