"""GET /console and its assets from the docs function itself (as Lambda answers them): public, only the packaged
files, with the console's security headers. tests/browser drives the same files in Chromium."""
from __future__ import annotations

import re

from functions.docs.app import lambda_handler as docs
from support import invoke

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def test_the_page_and_every_file_it_references_are_served_without_credentials_and_with_a_strict_csp():
    # Given no credential
    # When the console page is requested
    status, page, headers = invoke(docs, "GET", "/console")

    # Then it is served as HTML with the security headers
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    # and it has no inline script or style: everything it loads comes from /console/<file>, which is served too
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\bstyle=|\bon[a-z]+=", page)
    referenced = re.findall(r'(?:src|href)="(/console/[^"]+)"', page)
    assert sorted(referenced) == ["/console/app.css", "/console/app.js"]
    for path in referenced:
        status, body, headers = invoke(docs, "GET", path, route="/console/{asset}")
        assert status == 200 and body and headers["Content-Security-Policy"] == CSP, path


def test_nothing_but_the_packaged_files_is_served(headers):
    for path in ("/console/index.py", "/console/..%2f..%2fsettings.py", "/console/__init__.py"):
        # When a name that is not a console file is asked for without a credential
        status, body, _ = invoke(docs, "GET", path, route="/console/{asset}")
        # Then it is refused like any other unauthenticated request
        assert status == 401, (path, body)
        # and with a valid credential it is a 404: only the listed files are ever read
        status, body, _ = invoke(docs, "GET", path, route="/console/{asset}", headers=headers)
        assert status == 404 and body["error"]["code"] == "not_found", (path, body)
