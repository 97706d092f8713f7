"""Drives the Python client that openapi-python-client generated from the
committed document (tests/contract/run.sh): the journey a program's author
writes first. Every call goes through the generated functions and models;
an answer the document does not describe fails the run
(`raise_on_unexpected_status`).

    PYTHONPATH=<dir holding switchboard_client> python3 drive.py BASE_URL SERVER_LOG
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from console_mailbox import code_for  # noqa: E402  (tests/contract/console_mailbox.py)
from switchboard_client import AuthenticatedClient, Client  # noqa: E402
from switchboard_client.api.api_keys import create_api_key
from switchboard_client.api.auth import (
    logout,
    refresh,
    register_complete,
    register_start,
    register_verify,
)
from switchboard_client.api.channels import create_channel, list_channels
from switchboard_client.api.companies import create_company, list_companies
from switchboard_client.models import (
    ChannelView,
    CompanyKind,
    CompanyView,
    CreateApiKey,
    CreateChannel,
    CreateCompany,
    CreatedApiKey,
    PageChannelView,
    PageCompanyView,
    Platform,
    Problem,
    RefreshRequest,
    RegisterComplete,
    RegisterStart,
    RegisterVerify,
    RegistrationToken,
    Scope,
    TokenPair,
)

BASE, LOG = sys.argv[1], sys.argv[2]


def expect(response, status, model):
    """The parsed body of `response`, which must have `status` and parse as `model`."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), (type(response.parsed), response.content)
    return response.parsed


anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)
email = f"python-{uuid.uuid4().hex[:10]}@example.com"

# Register: start, the code from the mailbox, complete.
started = register_start.sync_detailed(client=anonymous, body=RegisterStart(email=email))
assert started.status_code == 202, started.content
verified = expect(
    register_verify.sync_detailed(client=anonymous, body=RegisterVerify(email=email, code=code_for(LOG, email))),
    200,
    RegistrationToken,
)
pair = expect(
    register_complete.sync_detailed(
        client=anonymous,
        body=RegisterComplete(
            registration_token=verified.registration_token,
            password="python client password 1",
            full_name="Py Owner",
            business_name="Python Client Co",
        ),
    ),
    201,
    TokenPair,
)
owner = AuthenticatedClient(base_url=BASE, token=pair.access_token, raise_on_unexpected_status=True)

# A company, created with an Idempotency-Key and retried: one company.
key = uuid.uuid4().hex
body = CreateCompany(name="Harbour Café", kind=CompanyKind.SERVICE)
company = expect(create_company.sync_detailed(client=owner, body=body, idempotency_key=key), 201, CompanyView)
again = expect(create_company.sync_detailed(client=owner, body=body, idempotency_key=key), 201, CompanyView)
assert again.id == company.id, "the retry replays the first answer"

# A channel, then a second one the trial plan refuses with a 402 problem.
channel = expect(
    create_channel.sync_detailed(
        client=owner,
        body=CreateChannel(company_id=company.id, platform=Platform.TELEGRAM, account_name="@harbour_bot"),
    ),
    201,
    ChannelView,
)
refused = expect(
    create_channel.sync_detailed(
        client=owner, body=CreateChannel(company_id=company.id, platform=Platform.WHATSAPP)
    ),
    402,
    Problem,
)
assert refused.code == "plan_limit_reached", refused
assert refused.status == 402 and refused.type_ == "urn:switchboard:problem:plan_limit_reached", refused
channels = expect(list_channels.sync_detailed(client=owner), 200, PageChannelView)
assert [c.id for c in channels.items] == [channel.id]

# Refresh: a new pair; the old refresh token is spent.
fresh = expect(refresh.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=pair.refresh_token)), 200, TokenPair)
assert fresh.refresh_token != pair.refresh_token
owner = AuthenticatedClient(base_url=BASE, token=fresh.access_token, raise_on_unexpected_status=True)

# An API key, and a call made with it.
created = expect(
    create_api_key.sync_detailed(
        client=owner, body=CreateApiKey(name="python program", scopes=[Scope.COMPANIESREAD])
    ),
    201,
    CreatedApiKey,
)
assert created.key.startswith("sb_live_")
program = AuthenticatedClient(base_url=BASE, token=created.key, raise_on_unexpected_status=True)
page = expect(list_companies.sync_detailed(client=program), 200, PageCompanyView)
assert [c.name for c in page.items] == ["Harbour Café"], page
denied = expect(
    create_company.sync_detailed(client=program, body=CreateCompany(name="Not allowed", kind=CompanyKind.SERVICE)),
    403,
    Problem,
)
assert denied.code == "forbidden", denied

# Log out: the refresh token no longer works.
out = logout.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=fresh.refresh_token))
assert out.status_code == 204, out.content
gone = expect(refresh.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=fresh.refresh_token)), 401, Problem)
print(f"python client: {email} registered, company {company.id}, channel {channel.id}, "
      f"402 {refused.code}, refreshed, key {created.masked}, logged out ({gone.code})")
