"""The ``siscore`` command.  Each command group lives in its own module here and is added below."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer

from siscore_assets.cli import country as country_commands
from siscore_assets.cli import errors
from siscore_assets.cli import export as export_commands
from siscore_assets.cli import imported as import_commands
from siscore_assets.cli import kit as kit_command
from siscore_assets.cli import label as label_commands
from siscore_assets.cli import map as map_command
from siscore_assets.cli import pog as pog_commands
from siscore_assets.cli import sample as sample_commands
from siscore_assets.cli import sql as sql_command
from siscore_assets.cli import warehouse as warehouse_commands
from siscore_assets.cli.errors import SiscoreGroup
from siscore_assets.cli.instance import dagster_instance, max_concurrent_runs, where_runs_go

app = typer.Typer(
    cls=SiscoreGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="siScore: development scores from satellite imagery, as Dagster assets over DuckDB.",
)


@app.callback()
def main(
    verbose: bool = typer.Option(
        False, "--verbose", help="On an error, print the full trace as well as its one line."
    ),
) -> None:
    """siScore: development scores from satellite imagery, as Dagster assets over DuckDB."""
    errors.set_verbose(verbose)


@app.command()
def countries() -> None:
    """List the configured countries, after checking every file, folder and layer they name."""
    from siscore_assets.core.countries import CountryConfigError, load_countries
    from siscore_assets.core.countries_check import check_countries

    reg = load_countries()
    problems = []
    for code in reg.codes:
        c = reg.get(code)
        mark = " (default)" if code == reg.default else ""
        listed = ", ".join(str(y) for y in c.years)
        try:
            check_countries(reg, [code])
            state = ""
        except CountryConfigError as exc:  # every country is still listed; problems after
            problems.append(str(exc).splitlines()[0])
            state = " [not ready: see below]"
        typer.echo(f"{code}{mark}: {c.name}; source {c.source_kind}; years {listed}{state}")
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(2)


@app.command()
def run(
    country: str = typer.Option(None, help="Country code (default: the countries file's default)."),
    years: str = typer.Option(
        None,
        help="Years, e.g. 2016,2017 or 2016-2018 (default: all configured). With --years: "
        "those years' yearly assets, the scores and what reads them for every year that has "
        "scores, and the country-level assets that are not learned models; the models are "
        "kept (re-fitted with --refit).",
    ),
    refit: bool = typer.Option(
        False,
        "--refit",
        help="With --years: re-fit the country's models too (pretraining, habitation network, "
        "clusters, POGs, ensemble, scorer, baseline rankers). Re-clustering renumbers the "
        "clusters the annotators ranked.",
    ),
    executor: str = typer.Option(
        "in_process",
        help="Executor of each partition run's steps: in_process (default: the partition "
        "runs already go side by side in worker processes, and on a few cores a process per "
        "step costs more than it gives), multiprocess, celery or k8s.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show Dagster's INFO log and print each failed step's trace."
    ),
) -> None:
    """Materialise every asset of a country, in dependency order, and print a summary.

    Runs are recorded in $DAGSTER_HOME's instance when it is set, else in the data root's own
    (<data root>/dagster); a failure prints one line per failed step and a log file's path."""
    from siscore_assets.cli.run_log import expected_annotators, write_failure_log
    from siscore_assets.cli.summary import summarize
    from siscore_assets.core.countries import load_countries
    from siscore_assets.core.countries_check import check_countries
    from siscore_assets.definitions import build_definitions, executor_for
    from siscore_assets.defs.orchestration.runner import RunFailed, materialize_country, run_target
    from siscore_assets.defs.orchestration.scope import Scope

    verbose = verbose or errors.verbose()
    reg = load_countries()
    cfg = errors.country(reg, country)
    chosen = errors.years(cfg, years)
    try:
        executor_for(executor)  # an unknown executor is an error before anything runs
    except ValueError as exc:  # it names $SISCORE_EXECUTOR: the value came from --executor
        errors.fail(f"--executor {executor!r}: {str(exc).rpartition(': ')[2]}")
    check_countries(reg, [cfg.code])
    defs = build_definitions(reg)
    instance = dagster_instance()
    parallel = max_concurrent_runs(instance)
    settings = defs.resources["settings"]
    # `kill` stops the run as Ctrl-C does: its running partitions are stopped, not orphaned
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if refit and years is None:
        typer.echo("--refit: without --years every asset runs anyway")
    typer.echo(
        f"== materialising {cfg.code} for {', '.join(str(y) for y in chosen)} "
        f"(up to {parallel} partition runs at once, steps: {executor} executor; "
        f"{where_runs_go()})"
    )
    t0 = time.perf_counter()
    try:
        report = materialize_country(
            defs,
            cfg.code,
            chosen,
            instance=instance,
            log=typer.echo,
            target=run_target(defs, executor),
            parallel=parallel,
            annotators=expected_annotators(cfg, Path(settings.data_root)),
            verbose=verbose,
            scope=Scope(partial=years is not None, refit=refit),
        )
    except RunFailed as exc:
        for line in exc.lines:
            typer.echo(f"error: {line}", err=True)
        log_file = write_failure_log(Path(settings.data_root), cfg.code, exc.traces)
        if verbose:
            typer.echo("\n".join(exc.traces), err=True)
        typer.echo(f"full traces: {log_file}", err=True)
        raise typer.Exit(1) from None
    wall = time.perf_counter() - t0
    typer.echo(
        summarize(
            defs.resources["warehouse"].database,
            Path(settings.data_root),
            cfg,
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
    cfg = errors.country(reg, country)
    defs = build_definitions(reg)
    settings = defs.resources["settings"]
    typer.echo(summarize(defs.resources["warehouse"].database, Path(settings.data_root), cfg))


app.command("kit")(kit_command.kit)
export_commands.register(app)
import_commands.register(app)
app.add_typer(pog_commands.app, name="pog")
app.add_typer(label_commands.app, name="label")
warehouse_commands.register(app)
sql_command.register(app)
country_commands.register(app)
sample_commands.register(app)
map_command.register(app)
