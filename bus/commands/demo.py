"""`bus demo`: the whole pipeline on this machine, bounded, ending with a summary.

The README's first command (`make demo` runs it): a newcomer sees every part working
together before reading about any of them. The work itself is in `bus.demo`.
"""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--dossiers",
    type=click.IntRange(1, 100_000),
    default=60,
    show_default=True,
    help="Dossiers in each of the three sample local systems.",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="After the summary, keep everything up (and the work directory) until Ctrl-C.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=180.0,
    show_default=True,
    metavar="SECONDS",
    help="Fail (exit code 1, saying what is missing) unless all is synced by then.",
)
def demo(dossiers: int, keep_running: bool, timeout: float) -> None:
    """Run the whole pipeline here, in one process: three sample local systems (H29 over a
    REST API, G01 from a SQL table, H31 from file drops), their connectors, RabbitMQ, the
    sync service and the portal simulator, until the portal holds every dossier.

    The broker is BUS_AMQP_URL's, else the local one, else one in Docker; the demo works in
    a scratch virtual host and a temporary directory, both deleted at the end.
    """
    import os

    from bus.demo import DemoError, DemoOptions, run
    from bus.logging import configure_logging
    from bus.settings import Settings

    settings = Settings()
    # Warnings and errors only, unless BUS_LOG_LEVEL says otherwise: the progress is the show.
    level = settings.log_level if "log_level" in settings.model_fields_set else "warning"
    configure_logging(settings.model_copy(update={"log_level": level}))
    options = DemoOptions(
        dossiers=dossiers,
        keep_running=keep_running,
        timeout=timeout,
        # Only a URL the environment gives counts: the default one is tried anyway.
        amqp_url=(
            settings.amqp_url.get_secret_value()
            if "amqp_url" in settings.model_fields_set
            else None
        ),
        # Not a bus setting: the tests' variable, for a management API on another port.
        management_url=os.environ.get("BUS_MANAGEMENT_URL") or None,
    )
    try:
        code = run(options)
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    if code:
        raise SystemExit(code)
