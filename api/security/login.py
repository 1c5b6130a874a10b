"""The web UI's login: ``/login`` exchanges an API token for a cookie the browser sends with same-origin requests.

* ``GET /login`` — a small page: paste a token, or open ``/login#token=<token>``
  (what ``pio cluster up`` prints; the part after ``#`` never reaches a server or its
  logs) and the page logs in by itself;
* ``POST /login`` — ``{"token": …}`` (JSON) or the page's form (``token=…``): a valid
  token is answered with ``Set-Cookie: reactorkit_token=…; HttpOnly; SameSite=Strict;
  Path=/`` (``Secure`` over HTTPS), kept until the token expires (at most 30 days);
  an invalid one is 401. Like every state-changing request, a foreign ``Origin`` is refused;
* ``POST /logout`` — clears the cookie.

The cookie holds the token itself: the API checks it as it checks a bearer token
(:mod:`.auth`), so revoking the token ends the session. ``SameSite=Strict`` keeps
the browser from sending it with requests that another site starts.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.openapi.schemas.common import STR, Content, obj
from reactorkit.api.security.auth import COOKIE, presented_token
from reactorkit.core.auth.tokens import TokenStore, parse_time

MAX_AGE_S = 30 * 24 * 3600

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reactorkit: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:sans-serif;max-width:34em;margin:4em auto;line-height:1.5}}
input[type=password]{{width:100%;padding:.4em;font-family:monospace}}button{{margin-top:.8em;padding:.4em 1.2em}}
.error{{color:#a00}}code{{background:#eee;padding:0 .3em}}</style></head>
<body><h1>Log in to this cluster</h1>
<p>Paste an API token. Create one on the leader with
<code>pio tokens create --name you --scope control</code>; <code>pio cluster up</code> prints a link that logs in.</p>
<p class="error" id="error">{error}</p>
<form method="post" action="/login" id="form">
<input type="hidden" name="next" value="{next}">
<label>Token <input type="password" name="token" id="token" autocomplete="off" autofocus></label>
<button type="submit">Log in</button></form>
<script>
(function () {{
  var m = /[#&]token=([^&]+)/.exec(window.location.hash);
  if (!m) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  fetch("/login", {{method: "POST", headers: {{"Content-Type": "application/json"}}, credentials: "same-origin",
                    body: JSON.stringify({{token: decodeURIComponent(m[1])}})}})
    .then(function (r) {{
      if (r.ok) {{ window.location.replace({next_js}); }}
      else {{ document.getElementById("error").textContent = "That token is unknown, revoked or expired."; }}
    }});
}})();
</script></body></html>
"""


def _safe_next(value: Any) -> str:
    """A local path to go to after logging in (never another site)."""
    text = str(value or "/")
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/"


def _js_string(text: str) -> str:
    """``text`` as a JavaScript string literal safe inside ``<script>``."""
    import json

    return json.dumps(text).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Login:
    """``GET|POST /login``."""

    openapi = {
        "GET": {"summary": "The login page of the web UI.", "scope": "public",
                "responses": {"200": Content("text/html", {"type": "string"})}},
        "POST": {"summary": "Exchange an API token for the web UI's cookie (HttpOnly, SameSite=Strict).",
                 "scope": "public", "body": obj(("token",), token=STR, next=STR), "body_required": True,
                 "accept": ["application/json", "application/x-www-form-urlencoded"],
                 "responses": {"200": obj(name=STR, scope=STR), "303": {}}},
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        target = _safe_next(req.get_param("next"))
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-store"]
        resp.text = PAGE.format(error="", next=html.escape(target), next_js=_js_string(target))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = (req.content_type or "").startswith("application/x-www-form-urlencoded")
        if form:
            fields = {k: v for k, v in (req.get_media() or {}).items()}
        else:
            fields = req.get_media(default_when_empty={}) or {}
        token = str(fields.get("token") or "").strip()
        record = TokenStore().verify(token) if token else None
        if record is None:
            if form:
                resp.status = falcon.HTTP_401
                resp.content_type = falcon.MEDIA_HTML
                target = _safe_next(fields.get("next"))
                resp.text = PAGE.format(error="That token is unknown, revoked or expired.",
                                        next=html.escape(target), next_js=_js_string(target))
                return
            raise ApiError(falcon.HTTP_401, "Authentication required.",
                           cause="The token is unknown, revoked or expired on this unit.",
                           remediation="Create a token on the leader with `pio tokens create`.")
        max_age = MAX_AGE_S
        if record.expires_at:
            left = (parse_time(record.expires_at) - datetime.now(timezone.utc)).total_seconds()
            max_age = max(1, min(max_age, int(left)))
        resp.set_cookie(COOKIE, token, max_age=max_age, path="/", secure=req.scheme == "https", http_only=True,
                        same_site="Strict")
        if form:
            resp.status = falcon.HTTP_303
            resp.location = quote(_safe_next(fields.get("next")), safe="/?=&#")
        else:
            resp.media = {"name": record.name, "scope": record.scope}


class Logout:
    """``POST /logout``: the cookie is cleared."""

    openapi = {"POST": {"summary": "Clear the web UI's cookie.", "scope": "public", "responses": {"204": {}}}}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.unset_cookie(COOKIE, path="/", same_site="Strict")
        resp.status = falcon.HTTP_204


def has_session(req: falcon.Request) -> bool:
    """True when the request carries a token (header or cookie) this unit accepts."""
    token = presented_token(req)
    return bool(token) and TokenStore().verify(token) is not None


def mount(app: Any) -> None:
    """Add ``/login`` and ``/logout`` (the leader's, beside the web UI)."""
    app.add_route("/login", Login())
    app.add_route("/logout", Logout())
