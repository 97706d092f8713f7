"""The development server's console mailbox, as the contract run's scripts
read it: the server prints each email to its log (`---- email to …`)."""

import re
import time


def code_for(log, email, seconds=30):
    """The newest six-digit code printed for `email` in the server log at
    `log`, waiting up to `seconds` for the outbox to deliver it."""
    pattern = re.compile(r"---- email to " + re.escape(email) + r": .*?code is (\d{6})", re.S)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(log, encoding="utf-8", errors="replace") as f:
            found = pattern.findall(f.read())
        if found:
            return found[-1]
        time.sleep(0.05)
    raise SystemExit(f"no code printed for {email}")
