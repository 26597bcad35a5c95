"""Rendering the console's pages: Jinja2 templates (`templates/`), with what every page
needs (who is logged in, their CSRF token for the forms) added to each context.

Autoescaping is on for every template: a dead letter's headers and body are data from
outside and must never become markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bus.console.guard import session_of

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"


def _when(value: datetime | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Pages:
    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = _when

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        session = session_of(request)
        base = {
            "request": request,
            "account": request.state.account,
            "csrf": session.csrf if session else "",
        }
        html = self.env.get_template(template).render({**base, **context})
        return HTMLResponse(html, status, headers=_HEADERS)


# The pages load nothing from elsewhere and are never framed: a strict policy costs nothing.
_HEADERS: Final = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
