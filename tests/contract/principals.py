"""Makes the principals of the contract run through the public API, as a
person would: an owner registers with the code the development server
prints (its console mailbox), then creates an API key with every scope for
a second owner's business. Prints shell assignments for run.sh.

    python3 principals.py BASE_URL SERVER_LOG
"""

import json
import sys
import urllib.error
import urllib.request
import uuid

from console_mailbox import code_for

BASE, LOG = sys.argv[1], sys.argv[2]
PASSWORD = "contract run password 1"
SCOPES = [
    "business:read", "companies:read", "companies:write", "channels:read",
    "channels:write", "secrets:read", "secrets:write", "events:read",
    "webhooks:read", "webhooks:write", "audit:read",
]


def call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}")


def register(email, business):
    call("POST", "/v1/auth/register/start", {"email": email})
    _, verified = call("POST", "/v1/auth/register/verify", {"email": email, "code": code_for(LOG, email)})
    _, pair = call("POST", "/v1/auth/register/complete", {
        "registration_token": verified["registration_token"],
        "password": PASSWORD,
        "full_name": "Contract Owner",
        "business_name": business,
    })
    return pair["access_token"]


run = uuid.uuid4().hex[:8]
owner = f"owner-{run}@example.com"
register(owner, "Contract Owner Co")
programs = f"programs-{run}@example.com"
token = register(programs, "Contract Programs Co")
_, key = call("POST", "/v1/api-keys", {"name": "contract run", "scopes": SCOPES}, token)
print(f"OWNER_EMAIL={owner}")
print(f"OWNER_PASSWORD='{PASSWORD}'")
print(f"API_KEY={key['key']}")
