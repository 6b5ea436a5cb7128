"""The event console: a single-page app shipped as plain files in this package (no build step, no CDN), served
without authentication by the docs function at GET /console and /console/<asset>. The page itself holds no
data: it calls the API with the credential the user types in, kept in sessionStorage only."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

ROOT = "/console"
# name -> media type; only these files are served (nothing is looked up from the request path).
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
PATHS = frozenset({ROOT, *(f"{ROOT}/{name}" for name in ASSETS)})
# The page runs only its own script and style and talks only to its own origin; it cannot be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=None)
def asset(name: str) -> tuple[str, str] | None:
    """(text, media type) of a console file, or None when `name` is not one of ASSETS."""
    if name not in ASSETS:
        return None
    text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
    return text, ASSETS[name]
