"""A real SMTP server for the tests: aiosmtpd, writing each message it accepts as JSON.

Usage: smtp_sink.py PORT DIR [--fail-first N] [--refuse-domain DOMAIN] [--auth USER:PASSWORD]

Each accepted message becomes DIR/<n>.json with its envelope, headers and decoded text and
HTML parts (Python's email package does the MIME decoding). --fail-first answers the first N
messages with a transient 451; --refuse-domain answers recipients at DOMAIN with a permanent
550; --auth requires SMTP AUTH (PLAIN or LOGIN) with that user and password (over plain TCP: the
tests' server is local). Prints "ready" once it listens; runs until killed or its stdin closes.
"""

import argparse
import email
import email.policy
import json
import os
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, directory, fail_first, refuse_domain):
        self.directory = directory
        self.fail_first = fail_first
        self.refuse_domain = refuse_domain
        self.seen = 0
        self.accepted = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_domain and address.lower().endswith("@" + self.refuse_domain):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.seen += 1
            if self.seen <= self.fail_first:
                return "451 4.3.0 try again later"
            self.accepted += 1
            n = self.accepted
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.setdefault(part.get_content_subtype(), part.get_content())
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "text": parts.get("plain"),
            "html": parts.get("html"),
        }
        tmp = os.path.join(self.directory, f".{n:06d}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{n:06d}.json"))
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("directory")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--refuse-domain", default=None)
    p.add_argument("--auth", default=None)
    a = p.parse_args()
    sink = Sink(a.directory, a.fail_first, a.refuse_domain)
    auth = {}
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        auth = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(
        sink, hostname="127.0.0.1", port=a.port, data_size_limit=10_000_000, **auth
    )
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
