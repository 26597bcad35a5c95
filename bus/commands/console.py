"""`bus console`: the operator web console, and `bus console hash-password` for its accounts."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: BUS_CONSOLE_PORT, 8780).",
)
@click.option(
    "--accounts",
    "accounts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Operator accounts (TOML; default: BUS_CONSOLE_ACCOUNTS_FILE).",
)
@click.pass_context
def console(ctx: click.Context, host: str, port: int | None, accounts_file: Path | None) -> None:
    """Serve the operator console: the flow per unit, queues, connectors, the dead letters
    (replay, discard) and the audit log, each operator limited to their own units.

    Over plain http, serve it on 127.0.0.1 behind a TLS proxy: session cookies are marked
    Secure when the proxy says the request came over https.
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from bus.console.accounts import Accounts, AccountsError
    from bus.console.app import Console
    from bus.logging import configure_logging
    from bus.settings import Settings

    settings = Settings()
    configure_logging(settings)
    path = accounts_file or settings.console_accounts_file
    if path is None:
        raise click.UsageError("give the operator accounts: --accounts FILE")
    try:
        accounts = Accounts.load(path)
    except AccountsError as error:
        raise click.ClickException(str(error)) from None
    app = Console(settings, accounts).app()
    chosen = settings.console_port if port is None else port
    click.echo(f"console on http://{host}:{chosen}/ ({len(accounts)} accounts from {path})")
    uvicorn.run(app, host=host, port=chosen, log_config=None, access_log=False)


@console.command("hash-password")
@click.password_option(help="The password (asked twice when not given).")
def hash_password(password: str) -> None:
    """Print the hash of a password, to paste as an account's `password` in the accounts
    file: the file never holds the password itself."""
    from bus.console.accounts import hash_password as make_hash

    click.echo(make_hash(password))
