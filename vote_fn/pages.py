"""vote_fn's pages: ``GET /`` the vote page (it follows the open poll by itself), ``POST /`` a
vote from its form without JavaScript, and ``GET /admin`` the presenter's page, which drives
the admin API (vote_fn/admin.py) from the browser with the token the presenter pastes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from common.refusals import Refused
from vote_fn.admin import admin_off
from vote_fn.ballot import FORM, form_vote
from vote_fn.casting import Voting
from vote_fn.settings import VoteSettings

# The admin page asks nothing of another origin and posts no form; it is never stored.
ADMIN_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def page_policy(results_url: str) -> dict[str, str]:
    """The vote page's Content-Security-Policy (the edge adds the other security headers)."""
    connect = "'self'"
    if results_url:  # the page polls receipts from result_fn
        parts = urlsplit(results_url)
        connect += f" {parts.scheme}://{parts.netloc}"
    return {
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                                   f"img-src 'self' data:; connect-src {connect}; "
                                   "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    }


def page(request: Request, refused: Refused | None = None) -> Response:
    """The vote page; with ``refused``, its status and sentence."""
    settings: VoteSettings = request.state.settings
    voting: Voting = request.state.voting
    templates: Jinja2Templates = request.state.templates
    choice, cookies = voting.chosen(request)
    response = templates.TemplateResponse(request, "vote.html", {
        "poll": voting.polls.open, "choice": choice, "instance_id": settings.instance_id,
        "error": refused and refused.reason, "results_url": settings.results_url,
        "base": request.scope.get("root_path", ""),
    }, status_code=refused.status if refused else 200, headers=request.state.page_policy)
    response.raw_headers += cookies + (refused.headers() if refused else [])
    return response


async def show(request: Request) -> Response:
    return page(request)


async def vote_form(request: Request) -> Response:
    """A vote from the page's form (no JavaScript): back to the page, scrolled to the
    confirmation (on a phone it is below the options)."""
    voting: Voting = request.state.voting
    try:
        cast = await voting.cast(request.scope, request.receive, FORM, form_vote)
    except Refused as refused:
        return page(request, refused)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/#status",
                                status_code=303)
    response.raw_headers += cast.cookies
    return response


async def admin_page(request: Request) -> Response:
    """The presenter's page: served only when the admin API is on."""
    settings: VoteSettings = request.state.settings
    if settings.admin_token is None:
        return admin_off().as_json()
    templates: Jinja2Templates = request.state.templates
    return templates.TemplateResponse(request, "admin.html", {
        "first": settings.first_poll, "results_url": settings.results_url,
        "base": request.scope.get("root_path", ""),
    }, headers=ADMIN_HEADERS)
