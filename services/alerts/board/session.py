"""Signing in to the board with an alerts API key: the session cookie, CSRF, security headers.

The cookie holds the key's SHA-256 (never the key), when it was issued, and a CSRF token,
signed with HMAC-SHA-256; every request looks the digest up in the key file again, so a
key removed from the file signs its sessions out. Forms carry the CSRF token of the
session (or, before signing in, of a short-lived cookie of its own) and a POST without
the matching token is refused.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request, Response

from services.alerts.auth import AlertKeys, Viewer

SESSION_COOKIE = "caresignal_board"
PRESESSION_COOKIE = "caresignal_board_csrf"
SESSION_MAX_AGE_S = 8 * 3600


class SignInRequired(Exception):
    """Raised by a page that needs a session; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    pass


@dataclass(frozen=True)
class Session:
    viewer: Viewer
    csrf: str
    issued_at: float


class SessionCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def encode(self, digest: str, csrf: str, issued_at: float) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"d": digest, "c": csrf, "t": issued_at}).encode())
        return payload.decode() + "." + self._sign(payload)

    def decode(self, value: str, now: float) -> tuple[str, str, float] | None:
        payload, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(payload.encode()), signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
            digest, csrf, issued = str(data["d"]), str(data["c"]), float(data["t"])
        except (ValueError, KeyError, TypeError):
            return None
        if now - issued > SESSION_MAX_AGE_S:
            return None
        return digest, csrf, issued


class Sessions:
    def __init__(self, keys: AlertKeys, secret: bytes) -> None:
        self.keys = keys
        self.codec = SessionCodec(secret)
        self.throttle = SignInThrottle()

    def current(self, request: Request) -> Session | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        decoded = self.codec.decode(raw, time.time())
        if decoded is None:
            return None
        digest, csrf, issued = decoded
        viewer = self.keys.by_digest(digest)
        return None if viewer is None else Session(viewer, csrf, issued)

    def require(self, request: Request) -> Session:
        session = self.current(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        return session

    def sign_in(self, response: Response, request: Request, key: str) -> Viewer | None:
        viewer = self.keys.authenticate(key)
        if viewer is None:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        value = self.codec.encode(digest, secrets.token_urlsafe(24), time.time())
        _set_cookie(response, request, SESSION_COOKIE, value, SESSION_MAX_AGE_S)
        response.delete_cookie(PRESESSION_COOKIE, path="/board")
        return viewer

    @staticmethod
    def sign_out(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/board")

    @staticmethod
    def presession_token(request: Request) -> str:
        """The CSRF token of the sign-in form (a cookie of its own: there is no session yet)."""
        return request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)

    @staticmethod
    def keep_presession(request: Request, response: Response, token: str) -> None:
        _set_cookie(response, request, PRESESSION_COOKIE, token, 3600)


class SignInThrottle:
    """At most `limit` failed sign-ins per client address in `window_s`: guessing keys is slow.

    In memory, per process: a restart forgets, and several instances count separately."""

    def __init__(self, limit: int = 10, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}

    def _recent(self, client: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def wait_s(self, client: str, now: float) -> float:
        """Seconds until this client may try again (0: now)."""
        recent = self._recent(client, now)
        if len(recent) < self.limit:
            return 0.0
        return max(0.0, recent[-self.limit] + self.window_s - now)

    def failed(self, client: str, now: float) -> None:
        self._failures.setdefault(client, []).append(now)


def check_csrf(expected: str | None, given: str | None) -> None:
    if not expected or not given or not hmac.compare_digest(expected, given):
        raise CsrfRefused()


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/board",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a board path on this site, never elsewhere."""
    if value and value.startswith("/board") and not value.startswith("//") and "\\" not in value:
        return value
    return "/board"


def sign_in_url(next_path: str) -> str:
    return "/board/sign-in?next=" + quote(next_path, safe="/")


# The one inline script of the GOV.UK template (it marks the body as js-enabled before the
# page paints); allowed in the CSP by its hash, so no other inline script can run.
JS_ENABLED_SCRIPT = (
    "document.body.className += ' js-enabled' + "
    "('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');"
)
JS_ENABLED_HASH = base64.b64encode(hashlib.sha256(JS_ENABLED_SCRIPT.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    f"script-src 'self' 'sha256-{JS_ENABLED_HASH}'; "
    "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
