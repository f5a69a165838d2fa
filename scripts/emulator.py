"""Runs the AWS emulator (moto) single-threaded on loopback.

moto's own threaded server is not linearizable for DynamoDB conditional writes: two
concurrent conditional updates can both succeed. Serving one request at a time makes every
conditional write atomic, which the race tests rely on.

Usage: emulator.py [--port N] [--port-file PATH]
With --port 0 a free port is chosen; --port-file receives the port once the server listens.
"""

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005)
    parser.add_argument("--port-file")
    args = parser.parse_args()

    app = DomainDispatcherApplication(create_backend_app)
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
