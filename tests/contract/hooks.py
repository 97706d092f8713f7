"""Schemathesis hooks for the contract run (tests/contract/run.sh).

The principal under test signs in with its own credentials (an owner or an
admin, by password) or presents its API key. Schemathesis fetches the token
again whenever the API answers 401 (its default `retry_on`), so operations
that end sessions on purpose (logging out everywhere) do not end the run.
"""

import json
from datetime import datetime, timedelta, timezone
import os
import re
import urllib.request
import uuid

import schemathesis

BASE = os.environ["CONTRACT_BASE_URL"]


def login(email: str, password: str) -> str:
    request = urllib.request.Request(
        f"{BASE}/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


@schemathesis.auth(refresh_interval=600)
class Principal:
    def get(self, case, context):
        key = os.environ.get("CONTRACT_API_KEY")
        if key:
            return key
        return login(os.environ["CONTRACT_EMAIL"], os.environ["CONTRACT_PASSWORD"])

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# The server's rule for the header (domain::programs::idempotency::KEY_PATTERN).
KEY_PATTERN = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
# The plan id rule (domain::billing::plans::PLAN_ID_PATTERN).
PLAN_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_plans = []


def plans():
    """The ids of the configured catalogue's purchasable plans (GET /v1/billing/plans)."""
    if not _plans:
        with urllib.request.urlopen(f"{BASE}/v1/billing/plans", timeout=30) as response:
            _plans.extend(p["id"] for p in json.load(response) if p["purchasable"])
    return _plans


def fresh_idempotency_key(case):
    """A client sends a new Idempotency-Key with every new request: a key
    reused with another body is refused with 422 by design (the Rust suite
    tests that), and generated values repeat across requests."""
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            value = headers[name]
            if isinstance(value, str) and len(value) <= 255 and KEY_PATTERN.match(value):
                headers[name] = uuid.uuid4().hex


def configured_plan(body):
    """A plan id the schema allows names a purchasable plan of the
    configured catalogue: configuration, not the document, says which ids
    exist (`trial` is refused with 422 `plan_not_purchasable`)."""
    plan = body.get("plan")
    if isinstance(plan, str) and PLAN_PATTERN.match(plan):
        ids = plans()
        body["plan"] = ids[sum(map(ord, plan)) % len(ids)]


def future_expiry(body):
    """An API key's expiry must be in the future (422 otherwise, tested by
    the Rust suite): a time the schema allows but that has passed becomes
    a day from now."""
    expires = body.get("expires_at")
    if not isinstance(expires, str):
        return
    try:
        when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return
    if when.tzinfo is not None and when <= datetime.now(timezone.utc):
        body["expires_at"] = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()


def another_address(body):
    """An email change to the address the account already has is refused
    (422, tested by the Rust suite): that address becomes another one."""
    own = os.environ.get("CONTRACT_EMAIL", "")
    email = body.get("email")
    if isinstance(email, str) and own and email.lower() == own.lower():
        body["email"] = "other-" + own


@schemathesis.hook
def before_call(context, case, kwargs):
    """Runs before every request of every phase. Each adjustment keeps a
    value the schema allows within what the server can accept whatever the
    state (rules of time, configuration or the caller's own data, which no
    schema can state); a value the schema refuses is left as it is, so
    negative cases still reach the server."""
    fresh_idempotency_key(case)
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    route = (case.method.upper(), case.path)
    if route in (("POST", "/v1/billing/checkout-session"), ("POST", "/v1/billing/change-plan")):
        configured_plan(body)
    elif route == ("POST", "/v1/api-keys"):
        future_expiry(body)
    elif route == ("POST", "/v1/me/email"):
        another_address(body)
