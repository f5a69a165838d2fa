"""Runs the AWS emulator (moto) single-threaded on loopback.

moto's own threaded server is not linearizable for DynamoDB conditional writes: two
concurrent conditional updates can both succeed. Serving one request at a time makes every
conditional write atomic, which the race tests rely on.

Usage: emulator.py [--port N] [--port-file PATH]
With --port 0 a free port is chosen; --port-file receives the port once the server listens.
"""

import argparse
import json
import os
import sys

# AWS managed policies exist in the emulator only when loaded; they cost about 0.1 to 0.25 s
# on the first IAM call of each account (measured), which the tests' many accounts can bear.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

# The sent mail, as JSON, without the rest of the emulator's state. moto's own view of its
# state (/moto-api/data.json) serialises every model of every account, the AWS managed
# policies loaded into each included, which made each read of the mailbox take seconds.
MAILBOX_PATH = "/pim-emulator/mail.json"
MAIL_FIELDS = ("id", "source", "destinations", "subject", "body")


def sent_mail() -> list:
    """Every message SES accepted, oldest first, with the fields the tests read."""
    from moto.core.model_instances import model_data

    model = model_data.get("ses", {}).get("Message")
    tracked = getattr(model, "instances_tracked", []) if model else []
    return [{field: getattr(message, field, None) for field in MAIL_FIELDS} for message in tracked]


class MailboxApp:
    """Serves MAILBOX_PATH itself and hands every other request to the emulator."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != MAILBOX_PATH:
            return self.app(environ, start_response)
        body = json.dumps({"messages": sent_mail()}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005)
    parser.add_argument("--port-file")
    args = parser.parse_args()

    app = MailboxApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        args.host, args.port, app, threaded=False, request_handler=MotoRequestHandler
    )
    port = server.server_port
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"emulator listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
