"""Performance figures of pim's release Lambda packages, measured on this machine.

Run through `bench/run`, which chooses the interpreter (the emulator's virtualenv, which has
boto3) and passes its arguments here. See bench/README.md for what each figure means.

The functions are the real release `bootstrap` binaries of target/lambda, started the way
Lambda starts a provided.al2023 function: the template's environment variables, Lambda's own
variables, and AWS_LAMBDA_RUNTIME_API pointing at a Runtime API served here on loopback.
Their AWS endpoint is the emulator (moto, single-threaded, with the change bench/emulator.py
describes), provisioned by `pim-local provision`. Nothing here asserts a timing: the figures
are printed and compared with the budgets, and the exit status only says whether the
measurements could be made.
"""

import argparse
import datetime
import http.server
import json
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT = "123456789012"
REGION = "us-east-1"
PUBLIC_URL = "https://pim.example.com"
FUNCTIONS = ["pim-request", "pim-approval", "pim-revocation", "pim-audit-shipper"]
# The clients the functions build at start (shared/src/adapters/mod.rs, AwsClients).
CLIENTS = ["dynamodb", "iam", "scheduler", "sesv2", "kms", "logs"]
RUNTIME_PREFIX = "/2018-06-01/runtime"

BUDGETS = {
    "init_ms": 15.0,
    "zip_bytes": 3 * 1000 * 1000,
    "peak_rss_mb": 48.0,
    "calls_per_elevation": 12,
    "sweep_seconds": 30.0,  # the revocation function's Timeout in infra/template.yaml
}


def now_ns():
    return time.perf_counter_ns()


# --- the Lambda Runtime API ---------------------------------------------------------------


class RuntimeApi:
    """The few endpoints of the Lambda Runtime API a function uses, for one process.

    `next` blocks until an event is queued; responses and errors are kept by request id
    with the time they arrived. The times of every `next` call are kept too.
    """

    def __init__(self):
        self.events = queue.Queue()
        self.lock = threading.Condition()
        self.next_calls = []
        self.results = {}
        self.init_error = None
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != RUNTIME_PREFIX + "/invocation/next":
                    return self.reply(404, b'{"errorType":"NotFound"}')
                with api.lock:
                    api.next_calls.append(now_ns())
                    api.lock.notify_all()
                item = api.events.get()
                if item is None:  # the process is about to be stopped
                    self.close_connection = True
                    return None
                request_id, event = item
                deadline = int(time.time() * 1000) + 30_000
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench",
                )
                self.send_header(
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                arrived = now_ns()
                match = re.fullmatch(
                    RUNTIME_PREFIX + r"/invocation/([^/]+)/(response|error)", self.path
                )
                with api.lock:
                    if match:
                        api.results[match.group(1)] = (match.group(2), body, arrived)
                    elif self.path == RUNTIME_PREFIX + "/init/error":
                        api.init_error = body
                    else:
                        api.lock.notify_all()
                        return self.reply(404, b'{"errorType":"NotFound"}')
                    api.lock.notify_all()
                return self.reply(202, b'{"status":"OK"}')

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def queue(self, event):
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        return request_id

    def wait_result(self, request_id, process, timeout=120.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while request_id not in self.results:
                if self.init_error is not None:
                    raise RuntimeError(f"init error: {self.init_error.decode(errors='replace')}")
                if process.poll() is not None:
                    raise RuntimeError(f"the function exited with {process.returncode}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no response within the timeout")
                self.lock.wait(min(left, 0.5))
            return self.results[request_id]

    def close(self):
        for _ in range(4):
            self.events.put(None)
        self.server.shutdown()
        self.server.server_close()


# --- processes ----------------------------------------------------------------------------


def cpu_ns(pid):
    """CPU time of every live thread of `pid` (scheduler statistics, nanoseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


class Function:
    """One running bootstrap process with its own Runtime API."""

    def __init__(self, bench, name, endpoint):
        self.name = name
        self.api = RuntimeApi()
        env = bench.lambda_env(name, self.api.address, endpoint)
        self.started = now_ns()
        self.process = subprocess.Popen(
            [bench.bootstrap(name)],
            env=env,
            cwd=bench.task_root(name),
            stdin=subprocess.DEVNULL,
            stdout=bench.log,
            stderr=bench.log,
        )

    def invoke(self, event):
        """(status, parsed body, latency ns, cpu ns) of one invocation."""
        before_cpu = cpu_ns(self.process.pid)
        started = now_ns()
        request_id = self.api.queue(event)
        kind, body, arrived = self.api.wait_result(request_id, self.process)
        latency = arrived - started
        # The response is sent before the runtime asks for the next event; wait for that
        # `next` so the CPU time read includes the invocation's tail.
        self.wait_next_calls(len(self.api.results) + 1)
        spent = cpu_ns(self.process.pid) - before_cpu
        return kind, json.loads(body or b"null"), latency, spent

    def wait_next_calls(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.api.lock:
            while len(self.api.next_calls) < count and time.monotonic() < deadline:
                self.api.lock.wait(0.2)

    def peak_rss_kib(self):
        return status_kib(self.process.pid, "VmHWM")

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.api.close()


# --- the emulator, the counting proxy and provisioning -----------------------------------


class CountingProxy:
    """Forwards HTTP to the emulator and counts AWS calls by (service, operation)."""

    def __init__(self, target):
        self.counts = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.count(self.command, self.path, self.headers, body)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(
                    target + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request) as answer:
                        status, reply_headers, data = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as err:
                    status, reply_headers, data = err.code, err.headers, err.read()
                self.send_response(status)
                for key, value in reply_headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, method, path, headers, body):
        authorization = headers.get("Authorization", "")
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", authorization)
        service = scope.group(1) if scope else "unsigned"
        target = headers.get("X-Amz-Target")
        if target:
            operation = target.split(".")[-1]
        elif body and b"Action=" in body:
            operation = urllib.parse.parse_qs(body.decode())["Action"][0]
        else:
            operation = rest_operation(service, method, urllib.parse.urlparse(path).path)
        with self.lock:
            key = (service, operation)
            self.counts[key] = self.counts.get(key, 0) + 1

    def take(self):
        with self.lock:
            counts, self.counts = self.counts, {}
        return counts

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# The REST operations the functions use, by service, method and path pattern.
REST_OPERATIONS = [
    ("scheduler", "POST", r"/schedules/[^/]+", "CreateSchedule"),
    ("scheduler", "PUT", r"/schedules/[^/]+", "UpdateSchedule"),
    ("scheduler", "DELETE", r"/schedules/[^/]+", "DeleteSchedule"),
    ("scheduler", "GET", r"/schedules/[^/]+", "GetSchedule"),
    ("scheduler", "GET", r"/schedules", "ListSchedules"),
    ("ses", "POST", r"/v2/email/outbound-emails", "SendEmail"),
]


def rest_operation(service, method, path):
    for known_service, known_method, pattern, name in REST_OPERATIONS:
        if (service, method) == (known_service, known_method) and re.fullmatch(pattern, path):
            return name
    return f"{method} {path}"


def start_emulator(python, workdir):
    port_file = os.path.join(workdir, "emulator.port")
    log = open(os.path.join(workdir, "emulator.log"), "w")
    process = subprocess.Popen(
        [python, os.path.join(ROOT, "bench/emulator.py"), "--port", "0", "--port-file", port_file],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    for _ in range(600):
        if os.path.exists(port_file):
            with open(port_file) as handle:
                return process, f"http://127.0.0.1:{handle.read().strip()}"
        if process.poll() is not None:
            raise RuntimeError("the emulator exited at start; see its log")
        time.sleep(0.1)
    raise RuntimeError("the emulator did not start")


# --- events -------------------------------------------------------------------------------


def caller_arn(person):
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/engineer/{person}"


# An expiry schedule's input for a grant the table does not hold: one read, then done.
UNKNOWN_EXPIRY = {"kind": "grant_expiry", "request_id": "req-unknown", "grant_id": "grant-unknown"}


def requesters(count):
    return [f"user{k:02}" for k in range(count)]


def bench_policy(count):
    """The policy document of the run: `count` requesters (each with the role grants land
    on), two approvers, a role needing one approval of either (the example policy's
    prod-readonly) and a role granted without approval, so that a thousand grants can be
    made quickly through the request function."""
    # Each requester makes about ten grants in the run's hour; the hourly limit of
    # requests is raised so that a run with more grants is not refused as a flood.
    lines = ["version: 1", "settings:", "  pending_lifetime: PT24H",
             "  time_zone: Europe/Berlin", "  requests_per_hour: 1000", "people:"]
    for person in requesters(count) + ["approver", "approver2"]:
        lines += [f"  - id: {person}", f"    email: {person}@example.com", "    principals:",
                  f"      - {caller_arn(person)}",
                  f"    role_arn: arn:aws:iam::{ACCOUNT}:role/pim/{person}-workload"]
    lines += ["groups:", f"  requesters: [{', '.join(requesters(count))}]", "roles:"]
    for name, actions, resource, approval in (
        ("bench-approved", "[logs:GetLogEvents, logs:FilterLogEvents]",
         f"arn:aws:logs:*:{ACCOUNT}:log-group:/app/*", ["    approvers: [approver, approver2]"]),
        ("bench-auto", "[cloudwatch:GetMetricData, cloudwatch:ListMetrics]", "*",
         ["    approval:", "      - name: always", "        auto_approve: true"]),
    ):
        lines += [f"  - name: {name}", f"    description: The benchmark's {name} role.",
                  "    statements:", f"      - actions: {actions}",
                  f'        resources: ["{resource}"]', "    default_duration: PT1H",
                  "    max_duration: PT4H", "    requesters: [group:requesters]"] + approval
    return "\n".join(lines) + "\n"


def http_event(method, path, body="", caller=None, headers=None, cookies=None):
    """An API Gateway HTTP API (payload 2.0) event as API Gateway sends it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    context = {
        "accountId": ACCOUNT,
        "apiId": "bench",
        "domainName": "pim.example.com",
        "domainPrefix": "pim",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "Mozilla/5.0 (bench)",
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if caller:
        context["authorizer"] = {"iam": {
            "accessKey": "ASIABENCHBENCHBENCH0",
            "accountId": ACCOUNT,
            "callerId": f"AROABENCHBENCHBENCH0:{caller}",
            "principalOrgId": None,
            "userArn": caller_arn(caller),
            "userId": f"AROABENCHBENCHBENCH0:{caller}",
        }}
    all_headers = {"host": "pim.example.com", "user-agent": "Mozilla/5.0 (bench)"}
    all_headers.update(headers or {})
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "cookies": cookies or [],
        "headers": all_headers,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": False,
    }


def new_request(person, role):
    body = json.dumps({"role": role, "duration": "1h",
                       "justification": "benchmark: looking at production logs"})
    return http_event("POST", "/requests", body, caller=person,
                      headers={"content-type": "application/json"})


def scheduled_event():
    """The event of an EventBridge scheduled rule (the audit shipper's)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/bench"],
        "detail": {},
    }


def response_cookies(response):
    cookies = list(response.get("cookies") or [])
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == "set-cookie":
            cookies.append(value)
    return cookies


# --- the benchmark ------------------------------------------------------------------------


def summary(values_ns):
    """median, p90, p99 and max in milliseconds."""
    ordered = sorted(values_ns)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] / 1e6

    return {
        "n": len(ordered),
        "median": statistics.median(ordered) / 1e6,
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": ordered[-1] / 1e6,
    }


def merge(samples):
    """One set of raw samples from several."""
    return {key: [v for sample in samples for v in sample[key]] for key in ("latency", "cpu")}


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.lambda_dir = args.lambda_dir
        self.log = open(os.path.join(workdir, "functions.log"), "wb")
        self.python = sys.executable
        self.endpoint = None
        self.env = None
        self.elevation_requester = requesters(args.requesters)[-1]

    def bootstrap(self, name):
        return os.path.join(self.workdir, name, "bootstrap")

    def task_root(self, name):
        return os.path.join(self.workdir, name)

    def lambda_env(self, name, runtime_api, endpoint):
        env = {
            "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": self.task_root(name),
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "_HANDLER": "bootstrap",
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/04/[$LATEST]bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "ASIABENCHBENCHBENCH0",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_SESSION_TOKEN": "bench-session-token",
            "AWS_ENDPOINT_URL": endpoint,
        }
        if name == "pim-audit-shipper":
            env.update(self.env["shipper"])
        else:
            env.update(self.env["api"])
            env["PIM_POLICY_FILE"] = os.path.join(self.task_root(name), "policy.yaml")
        return env

    # set-up

    def stage_packages(self):
        """Copies each bootstrap (other builds may replace target/lambda meanwhile) and puts
        the bench's policy document beside it, as the package's policy.yaml."""
        packages = {}
        for name in FUNCTIONS:
            binary = os.path.join(self.lambda_dir, name, "bootstrap")
            archive = os.path.join(self.lambda_dir, name + ".zip")
            if not os.path.exists(binary):
                raise RuntimeError(f"{binary} is missing; run scripts/package first")
            os.makedirs(self.task_root(name))
            shutil.copy2(binary, self.bootstrap(name))
            with open(os.path.join(self.task_root(name), "policy.yaml"), "w") as handle:
                handle.write(bench_policy(self.args.requesters))
            packages[name] = {
                "binary_bytes": os.path.getsize(binary),
                "zip_bytes": os.path.getsize(archive) if os.path.exists(archive) else None,
                "built": datetime.datetime.fromtimestamp(
                    os.path.getmtime(binary), datetime.timezone.utc
                ).strftime("%Y-%m-%d %H:%M UTC"),
            }
        return packages

    def provision(self):
        output = subprocess.run(
            [self.args.pim_local, "provision", "--emulator", self.endpoint,
             "--policy", os.path.join(self.task_root("pim-request"), "policy.yaml"),
             "--public-url", PUBLIC_URL],
            check=True, capture_output=True, text=True,
        ).stdout
        provisioned = json.loads(output)
        shipper_vars = ("PIM_TABLE", "PIM_AUDIT_LOG_GROUP", "PIM_CHECKPOINT_KEY_ID",
                        "PIM_EVENT_BUS")
        api = {k: v for k, v in provisioned.items() if k not in shipper_vars[1:]}
        self.env = {
            "api": api,
            "shipper": {k: provisioned[k] for k in shipper_vars},
        }

    def start(self, name, endpoint=None):
        """Starts `name`'s bootstrap against `endpoint` (the emulator unless given)."""
        return Function(self, name, endpoint or self.endpoint)

    def mail_links(self, recipient="approver@example.com"):
        """Every approval link the emulator's mailbox holds for `recipient`, oldest first."""
        with urllib.request.urlopen(self.endpoint + "/pim-emulator/mail.json") as answer:
            data = json.load(answer)
        links = []
        for message in data.get("messages", []):
            if recipient not in message.get("destinations", {}).get("ToAddresses", []):
                continue
            links += re.findall(r'href="' + re.escape(PUBLIC_URL) + r'(/approvals/[^"]+)"',
                                message.get("body", ""))
        seen = set()
        return [link for link in links if not (link in seen or seen.add(link))]

    # measurements

    def cold_starts(self, name, event_of, runs):
        to_next, to_response, peak, failures = [], [], [], []
        for _ in range(runs):
            function = self.start(name)
            try:
                request_id = function.api.queue(event_of())
                kind, body, arrived = function.api.wait_result(request_id, function.process)
                function.wait_next_calls(2)
                if kind != "response":
                    failures.append(body.decode(errors="replace")[:200])
                to_next.append(function.api.next_calls[0] - function.started)
                to_response.append(arrived - function.started)
                peak.append(function.peak_rss_kib())
            finally:
                function.stop()
        return {
            "to_next": summary(to_next),
            "to_response": summary(to_response),
            "peak_rss_mb": max(peak) / 1024,
            "failures": failures,
        }

    def warm(self, function, events, check):
        """Raw latency and CPU times (ns) of one invocation per event, each checked."""
        latencies, cpu = [], []
        for event in events:
            kind, body, latency, spent = function.invoke(event)
            check(kind, body)
            latencies.append(latency)
            cpu.append(spent)
        return {"latency": latencies, "cpu": cpu}

    def spawn_floor(self, runs):
        """Wall time of starting and reaping `true` the way the bootstraps are started: what
        this harness adds to every cold start figure."""
        times = []
        for _ in range(runs):
            started = now_ns()
            subprocess.Popen(["true"], stdout=self.log, stderr=self.log).wait()
            times.append(now_ns() - started)
        return summary(times)

    def reference(self, runs):
        """Wall time of a Python process that imports boto3 and builds the same clients."""
        code = (
            "import boto3\n"
            "session = boto3.session.Session()\n"
            f"clients = [session.client(name) for name in {CLIENTS!r}]\n"
        )
        env = {"PATH": "/usr/bin:/bin", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
               "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
               "AWS_ENDPOINT_URL": self.endpoint}
        times = []
        for _ in range(runs):
            started = now_ns()
            subprocess.run([self.python, "-c", code], env=env, check=True)
            times.append(now_ns() - started)
        return summary(times)


def expect_status(*statuses):
    def check(kind, body):
        if kind != "response" or body.get("statusCode") not in statuses:
            raise RuntimeError(f"unexpected answer ({kind}): {str(body)[:300]}")
    return check


def expect_ok(kind, body):
    if kind != "response":
        raise RuntimeError(f"the function answered an error: {str(body)[:300]}")


def expect_expired(kind, body):
    expect_ok(kind, body)
    if body.get("outcome") != "expired":
        raise RuntimeError(f"the grant was not expired: {body}")


def csrf_of(page):
    match = re.search(r'name="csrf" value="([^"]+)"', page.get("body") or "")
    if not match:
        raise RuntimeError("the approval page carries no CSRF field")
    return match.group(1)


def decide_event(link, page, decision):
    csrf = csrf_of(page)
    cookie = next(c.split(";")[0] for c in response_cookies(page) if c.startswith("pim_csrf="))
    body = urllib.parse.urlencode({"csrf": csrf, "decision": decision})
    return http_event("POST", link, body,
                      headers={"content-type": "application/x-www-form-urlencoded",
                               "origin": PUBLIC_URL, "sec-fetch-site": "same-origin"},
                      cookies=[cookie])


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
    }


def run(args):
    workdir = tempfile.mkdtemp(prefix="pim-bench-")
    bench = Bench(args, workdir)
    results = {"machine": machine(), "budgets": BUDGETS, "runs": args.runs}
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    emulator = None
    try:
        results["packages"] = bench.stage_packages()
        say(f"emulator and provisioning (work files in {workdir})")
        emulator, bench.endpoint = start_emulator(bench.python, workdir)
        bench.provision()

        # 1. AWS calls of one elevation, through the counting proxy, on fresh processes.
        say("AWS calls of one elevation")
        proxy = CountingProxy(bench.endpoint)
        results["elevation_calls"], link = elevation_calls(bench, proxy)
        proxy.close()

        # 2. Cold starts, with events of each kind.
        say(f"cold starts ({args.runs} per function)")
        results["init"] = {
            "pim-request": bench.cold_starts(
                "pim-request", lambda: http_event("GET", "/requests", caller="user00"),
                args.runs),
            # The elevation's link: its page is shown again (decided), changing nothing.
            "pim-approval": bench.cold_starts(
                "pim-approval", lambda: http_event("GET", link), args.runs),
            "pim-revocation": bench.cold_starts(
                "pim-revocation", lambda: UNKNOWN_EXPIRY, args.runs),
            "pim-audit-shipper": bench.cold_starts(
                "pim-audit-shipper", scheduled_event, args.runs),
        }

        # 3. Warm handler cost, one process per function.
        say("warm handler cost")
        results["warm"] = warm_costs(bench, args)

        results["spawn_floor"] = bench.spawn_floor(args.runs)

        # 4. The floor of the Python designs.
        say(f"reference: python importing boto3 ({args.runs} runs)")
        results["reference"] = bench.reference(args.runs)
    finally:
        if emulator is not None:
            emulator.kill()
            emulator.wait()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def elevation_calls(bench, proxy):
    """Counts per service and operation of request, one approval, the grant and expiry."""
    request = bench.start("pim-request", proxy.url)
    approval = bench.start("pim-approval", proxy.url)
    revocation = bench.start("pim-revocation", proxy.url)
    try:
        # Warm each process on a read that is not part of the elevation, so the counts are
        # the elevation's own.
        first_read = http_event("GET", "/requests", caller=bench.elevation_requester)
        for function, event in ((request, first_read),
                                (approval, http_event("GET", "/approvals/x.y")),
                                (revocation, {"kind": "grant_expiry", "request_id": "none",
                                              "grant_id": "none"})):
            function.invoke(event)
        proxy.take()
        phases = {}
        mailed_before = set(bench.mail_links())
        kind, created, _, _ = request.invoke(
            new_request(bench.elevation_requester, "bench-approved"))
        expect_status(201)(kind, created)
        request_id = json.loads(created["body"])["id"]
        phases["request"] = proxy.take()
        mailed = [link for link in bench.mail_links() if link not in mailed_before]
        if len(mailed) != 1:
            raise RuntimeError(f"expected one approval link for {request_id}, found {mailed}")
        link = mailed[0]
        kind, page, _, _ = approval.invoke(http_event("GET", link))
        expect_status(200)(kind, page)
        phases["open approval page"] = proxy.take()
        kind, decided, _, _ = approval.invoke(decide_event(link, page, "approve"))
        expect_status(200)(kind, decided)
        phases["approve and grant"] = proxy.take()
        payload = schedule_payload(bench, request_id)
        kind, expired, _, _ = revocation.invoke(payload)
        if kind != "response" or expired.get("outcome") != "expired":
            raise RuntimeError(f"expiry did not expire the grant: {expired}")
        phases["expiry"] = proxy.take()
    finally:
        for function in (request, approval, revocation):
            function.stop()
    counts = {phase: [[s, o, n] for (s, o), n in sorted(counts.items())]
              for phase, counts in phases.items()}
    return counts, link


def schedule_payload(bench, request_id):
    """The input of the grant's expiry schedule, as the scheduler would deliver it."""
    import boto3

    scheduler = boto3.client("scheduler", region_name=REGION, endpoint_url=bench.endpoint,
                             aws_access_key_id="x", aws_secret_access_key="x")
    group = bench.env["api"]["PIM_SCHEDULE_GROUP"]
    for schedule in scheduler.list_schedules(GroupName=group)["Schedules"]:
        found = scheduler.get_schedule(GroupName=group, Name=schedule["Name"])
        payload = json.loads(found["Target"]["Input"])
        # The request's other timers (reminder, warning) name it too; the expiry is the
        # grant's.
        if payload.get("request_id") == request_id and payload.get("kind") == "grant_expiry":
            return payload
    raise RuntimeError(f"no expiry schedule for {request_id}")


def warm_costs(bench, args):
    n, grants = args.warm, args.grants
    request = bench.start("pim-request")
    approval = bench.start("pim-approval")
    revocation = bench.start("pim-revocation")
    shipper = bench.start("pim-audit-shipper")
    people = requesters(args.requesters)[:-1]
    warm = {}
    try:
        for function, event in ((request, http_event("GET", "/requests", caller="user00")),
                                (approval, http_event("GET", "/approvals/x.y")),
                                (revocation, {"kind": "grant_expiry", "request_id": "none",
                                              "grant_id": "none"}),
                                (shipper, scheduled_event())):
            function.invoke(event)

        mailed_before = set(bench.mail_links())
        warm["create request (needs approval, mails the approver)"] = bench.warm(
            request, [new_request(people[k % len(people)], "bench-approved") for k in range(2 * n)],
            expect_status(201))
        links = [link for link in bench.mail_links() if link not in mailed_before]
        if len(links) != 2 * n:
            raise RuntimeError(f"expected {2 * n} approval links, found {len(links)}")
        pages = {}

        def keep_page(link):
            def check(kind, body):
                expect_status(200)(kind, body)
                pages[link] = body
            return check

        for link in links:
            warm.setdefault("open approval page", []).append(
                bench.warm(approval, [http_event("GET", link)], keep_page(link)))
        warm["open approval page"] = merge(warm["open approval page"])
        warm["decide: deny"] = bench.warm(
            approval, [decide_event(link, pages[link], "deny") for link in links[:n]],
            expect_status(200))
        warm["decide: approve, grant (policy and schedule written)"] = bench.warm(
            approval, [decide_event(link, pages[link], "approve") for link in links[n:]],
            expect_status(200))
        warm["create request, auto-approved grant"] = bench.warm(
            request, [new_request(people[k % len(people)], "bench-auto") for k in range(grants)],
            expect_status(201))

        def sweep_check(kind, body):
            expect_ok(kind, body)
            if body.get("failures"):
                raise RuntimeError(f"the sweep reported failures: {body['failures']}")

        warm[f"sweep ({grants + n} active grants)"] = bench.warm(
            revocation, [{"kind": "sweep"} for _ in range(args.sweeps)], sweep_check)
        expiring = list_active(bench, limit=n)
        warm["revoke (expiry schedule delivery)"] = bench.warm(
            revocation, expiring, expect_expired)
        warm["audit shipper run (first run ships the backlog)"] = bench.warm(
            shipper, [scheduled_event() for _ in range(3)], expect_ok)
        peaks = {f.name: f.peak_rss_kib() / 1024 for f in (request, approval, revocation, shipper)}
        warm = {operation: {key: summary(values) for key, values in raw.items()}
                for operation, raw in warm.items()}
    finally:
        for function in (request, approval, revocation, shipper):
            function.stop()
    return {"operations": warm, "peak_rss_mb": peaks}


def list_active(bench, limit):
    """Expiry payloads of `limit` active grants, from their schedules."""
    import boto3

    scheduler = boto3.client("scheduler", region_name=REGION, endpoint_url=bench.endpoint,
                             aws_access_key_id="x", aws_secret_access_key="x")
    group = bench.env["api"]["PIM_SCHEDULE_GROUP"]
    payloads, token = [], None
    while len(payloads) < limit:
        page = scheduler.list_schedules(GroupName=group, **({"NextToken": token} if token else {}))
        for schedule in page["Schedules"]:
            if not schedule["Name"].startswith("pim-expire-"):
                continue  # a request's reminder or a holder's warning
            found = scheduler.get_schedule(GroupName=group, Name=schedule["Name"])
            payloads.append(json.loads(found["Target"]["Input"]))
            if len(payloads) == limit:
                break
        token = page.get("NextToken")
        if not token:
            break
    return payloads


# --- report -------------------------------------------------------------------------------


def report(results):
    lines = []
    out = lines.append
    m = results["machine"]
    out(f"pim performance, {m['date']}, commit {m['commit']}")
    out(f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, load {m['load']} at start, Python {m['python']}")
    out("")
    budget = results["budgets"]

    def mark(ok):
        return "within" if ok else "OVER"

    out(f"## Init: release bootstrap, cold start to first `next` and to first response "
        f"({results['runs']} starts each)")
    out("")
    out("| function | to `next` median | p99 | to first response median | p99 | peak RSS | "
        f"budget {budget['init_ms']:.0f} ms, {budget['peak_rss_mb']:.0f} MB |")
    out("|---|---|---|---|---|---|---|")
    for name, init in results["init"].items():
        ok = init["to_next"]["median"] < budget["init_ms"] and \
            init["peak_rss_mb"] < budget["peak_rss_mb"]
        out(f"| {name} | {init['to_next']['median']:.1f} ms | {init['to_next']['p99']:.1f} ms | "
            f"{init['to_response']['median']:.1f} ms | {init['to_response']['p99']:.1f} ms | "
            f"{init['peak_rss_mb']:.1f} MB | {mark(ok)} |")
        if init["failures"]:
            out(f"|   {name} answered errors: {init['failures'][0]} |")
    out("")
    out(f"Starting and reaping `true` the same way takes {results['spawn_floor']['median']:.1f} ms"
        " median: the harness's own share of the figures above.")
    ref = results["reference"]
    out("")
    out(f"Reference: a Python {m['python']} process that imports boto3 and builds the same "
        f"{len(CLIENTS)} clients ({', '.join(CLIENTS)}) takes {ref['median']:.0f} ms median "
        f"(p99 {ref['p99']:.0f} ms) from start to exit. This is a lower bound for the Python "
        "designs, not their measured time: their handlers still load config, policy and "
        "their own code, and Lambda's Python runtime adds its bootstrap.")
    out("")
    warm = results["warm"]
    out("## Warm handler cost (one warm process per function, against the emulator)")
    out("")
    out("| function: operation | n | latency median | p90 | p99 | max | "
        "CPU median | CPU p99 |")
    out("|---|---|---|---|---|---|---|---|")
    owners = {"create": "pim-request", "open": "pim-approval", "decide": "pim-approval",
              "sweep": "pim-revocation", "revoke": "pim-revocation", "audit": "pim-audit-shipper"}
    for operation, cost in warm["operations"].items():
        owner = owners[operation.split()[0].rstrip(":")]
        lat, cpu = cost["latency"], cost["cpu"]
        out(f"| {owner}: {operation} | {lat['n']} | {lat['median']:.1f} ms | {lat['p90']:.1f} ms"
            f" | {lat['p99']:.1f} ms | {lat['max']:.1f} ms | {cpu['median']:.2f} ms | "
            f"{cpu['p99']:.2f} ms |")
    out("")
    sweep = next(v for k, v in warm["operations"].items() if k.startswith("sweep"))
    out(f"Sweep: {sweep['latency']['max'] / 1000:.1f} s at most, against the "
        f"{budget['sweep_seconds']:.0f} s timeout of the revocation function "
        f"({mark(sweep['latency']['max'] / 1000 < budget['sweep_seconds'])}).")
    out("Peak RSS of the warm processes after every operation: " + ", ".join(
        f"{name} {mb:.1f} MB" for name, mb in warm["peak_rss_mb"].items()) + ".")
    out("")
    out("## AWS calls of one elevation (request, one approval, grant, expiry)")
    out("")
    out("| phase | service | operation | calls |")
    out("|---|---|---|---|")
    total, per_service = 0, {}
    for phase, counts in results["elevation_calls"].items():
        for service, operation, count in counts:
            out(f"| {phase} | {service} | {operation} | {count} |")
            total += count
            per_service[service] = per_service.get(service, 0) + count
    out("")
    out("Per service: " + ", ".join(f"{s} {n}" for s, n in sorted(per_service.items())) +
        f"; total {total} against the budget of {budget['calls_per_elevation']} "
        f"({mark(total <= budget['calls_per_elevation'])}).")
    out("")
    out("## Packages (target/lambda)")
    out("")
    out("| function | zip | bootstrap | built | budget 3 MB (3,000,000 bytes) |")
    out("|---|---|---|---|---|")
    for name, package in results["packages"].items():
        zip_bytes = package["zip_bytes"]
        zip_text = f"{zip_bytes:,} bytes" if zip_bytes else "no zip"
        ok = zip_bytes is not None and zip_bytes <= budget["zip_bytes"]
        out(f"| {name} | {zip_text} | {package['binary_bytes']:,} bytes | {package['built']} | "
            f"{mark(ok)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="cold starts per function")
    parser.add_argument("--warm", type=int, default=50,
                        help="invocations per warm operation (decisions: this many each)")
    parser.add_argument("--grants", type=int, default=950,
                        help="auto-approved grants made before the sweep (plus --warm approved)")
    parser.add_argument("--sweeps", type=int, default=5, help="sweeps timed")
    parser.add_argument("--requesters", type=int, default=100,
                        help="requesters, each with the IAM role their grants land on")
    parser.add_argument("--lambda-dir", default=os.path.join(ROOT, "target/lambda"))
    parser.add_argument("--pim-local", required=True, help="the pim-local binary")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
