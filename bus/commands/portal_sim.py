"""`bus portal-sim`: the national portal simulator, for development, tests, demos and
benchmarks."""

from __future__ import annotations

from pathlib import Path

import click

from bus.portal_sim.simulator import DEFAULT_PASSWORD, DEFAULT_SESSION_TTL


@click.command("portal-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--db",
    "db",
    default="portal-sim.sqlite3",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file of the portal's state; restarting on the same file keeps it.",
)
@click.option(
    "--password",
    default=DEFAULT_PASSWORD,
    show_default=True,
    help="The password /auth accepts, for any username.",
)
@click.option(
    "--session-ttl",
    default=DEFAULT_SESSION_TTL,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a session lives; PUT /_sim/faults changes it at run time.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="debug logs one line per call.",
)
def portal_sim(
    host: str,
    port: int,
    db: Path,
    password: str,
    session_ttl: float,
    log_level: str,
) -> None:
    """Serve a simulated national portal (DVCQG): /auth, /integration (DongBoHoSoMC,
    CapNhatTienDoHoSoMC) and /share (TraCuuHoSo), as docs/portal-api.md describes them.

    Operators and tests read its state and set faults under /_sim/: dossiers/{code},
    dossiers?unit=H29, units, stats, faults (GET, PUT), reset (POST); and /healthz.
    """
    import structlog

    from bus.logging import configure_logging
    from bus.portal_sim.server import serve
    from bus.portal_sim.simulator import Options
    from bus.settings import Settings

    configure_logging(Settings(log_level=log_level))
    options = Options(db=db, password=password, session_ttl=session_ttl)
    structlog.get_logger("bus.portal_sim").info(
        "portal_sim_starting", url=f"http://{host}:{port}", db=str(db.resolve())
    )
    serve(options, host, port, log_level)
