#!/usr/bin/env python3
"""Runs the real webhook, processor and sweeper binaries the way Lambda runs them.

`cargo lambda watch --only-lambda-apis` serves the Lambda Runtime API; each
function binary is started as Lambda starts `bootstrap`: AWS_LAMBDA_RUNTIME_API
pointing at the emulator and only the environment template.yaml gives it
(QUEUE_URL + PUSH_SECRET_ARN + STACK_NAME; QUEUE_URL, ASSET_BUCKET, LEDGER_TABLE, KODE_API_URL,
KODE_SECRET_ARN, ...), against moto (AWS_ENDPOINT_URL, exported by
infra/test.sh) and `fake-kode --sample`. Then `cargo lambda invoke` sends the
sample events of infra/events/ and the script checks the responses, what
the queue, bucket and table hold afterwards, and the metric lines each
function printed. Everything it starts is stopped and everything it creates
is deleted on every exit. Exit status 1 on any failed check.

The binaries are built with `cargo build --workspace --bins --tests`: the
feature set of `cargo test --workspace`, so after the test step only the two
function binaries link. (`cargo lambda watch` starting the functions itself
would `cargo run --bin NAME`, a per-package feature set that recompiles part
of the dependency tree.)
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import unicodedata
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "infra" / "events"
WEBHOOK_EVENT = EVENTS / "webhook-function-url.json"
PROCESSOR_EVENT = EVENTS / "processor-sqs.json"
# `fake-kode --sample` serves this order; the sample events push it.
SAMPLE_ORDER = 2345678
INVOKE_TIMEOUT_S = 120
# The stack name the functions get, as template.yaml gives them theirs.
STACK = "kode-smoke"


class Failed(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def check(ok, what):
    if not ok:
        raise Failed(what)
    log(f"  ok: {what}")


def free_port():
    # A tiny race with other processes; a taken port shows as a start failure.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, name, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise Failed(f"{name} exited with status {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Failed(f"{name} did not listen on 127.0.0.1:{port} within {seconds} s")


class Run:
    """Processes and AWS resources of one run, all undone by close()."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []  # (name, Popen, log path)
        self.undo = []  # callables, run in reverse

    def start(self, name, argv, env=None, stop_signal=signal.SIGTERM):
        path = self.workdir / f"{name}.log"
        out = open(path, "wb")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out.close()
        self.procs.append((name, proc, path, stop_signal))
        return proc

    def log_of(self, name):
        for n, _, path, _ in self.procs:
            if n == name:
                return path.read_text(errors="replace")
        return ""

    def dump_logs(self):
        for name, _, path, _ in self.procs:
            lines = path.read_text(errors="replace").splitlines()[-25:]
            log(f"--- last lines of {name}'s output ---")
            for line in lines:
                log(f"  {line}")

    def close(self):
        for name, proc, _, stop_signal in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(stop_signal)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for undo in reversed(self.undo):
            try:
                undo()
            except Exception as e:  # cleanup is best effort; moto goes away with test.sh
                log(f"  (cleanup: {e})")


def aws_clients():
    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise Failed("AWS_ENDPOINT_URL is not set: run through infra/test.sh (it starts moto)")
    region = os.environ.get("AWS_REGION", "eu-north-1")
    return {
        name: boto3.client(name, region_name=region)
        for name in ("sqs", "s3", "dynamodb", "secretsmanager")
    }


def create_resources(run, aws, prefix, kode_credentials, push_token):
    sqs, s3, ddb, sm = aws["sqs"], aws["s3"], aws["dynamodb"], aws["secretsmanager"]
    dlq = sqs.create_queue(QueueName=f"{prefix}-dlq.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    run.undo.append(lambda: sqs.delete_queue(QueueUrl=dlq))
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName=f"{prefix}-push.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "1800",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    run.undo.append(lambda: sqs.delete_queue(QueueUrl=queue))

    bucket = f"{prefix}-assets"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name}
    )

    def delete_bucket():
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)

    run.undo.append(delete_bucket)

    table = f"{prefix}-ledger"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk", "sweep", "sweepUntil")
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        # As template.yaml declares it: the open orders the sweep reads.
        GlobalSecondaryIndexes=[
            {
                "IndexName": "open-orders",
                "KeySchema": [
                    {"AttributeName": "sweep", "KeyType": "HASH"},
                    {"AttributeName": "sweepUntil", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["sweptAt", "purgedAt", "sweepClosedAt"],
                },
            }
        ],
    )
    run.undo.append(lambda: ddb.delete_table(TableName=table))

    def secret(name, value):
        arn = sm.create_secret(Name=f"{prefix}-{name}", SecretString=value)["ARN"]
        run.undo.append(lambda: sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True))
        return arn

    return {
        "queue": queue,
        "dlq": dlq,
        "bucket": bucket,
        "table": table,
        "push_secret": secret("push-secret", push_token),
        "kode_secret": secret("kode-credentials", json.dumps(kode_credentials)),
    }


def function_env(name, runtime_port, config):
    """What Lambda gives a function: runtime variables, the AWS settings
    (here moto's) and the function's own variables, nothing else."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("AWS_") and not k.startswith("AWS_LAMBDA_")
    }
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{runtime_port}/.rt/{name}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        }
    )
    env.update(config)
    return env


def invoke(run, cargo_lambda, port, name, function_proc, data_file=None, data=None):
    argv = [
        cargo_lambda,
        "lambda",
        "invoke",
        name,
        "-A",
        "127.0.0.1",
        "-P",
        str(port),
        "-o",
        "json",
    ]
    argv += ["--data-file", str(data_file)] if data_file else ["--data-ascii", data]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    end = time.monotonic() + INVOKE_TIMEOUT_S
    while proc.poll() is None:
        # A function that died (bad configuration) would leave the invoke
        # waiting for the emulator's timeout: fail at once instead.
        if function_proc.poll() is not None:
            proc.kill()
            proc.wait()
            raise Failed(
                f"{name} exited with status {function_proc.returncode} (see its output below)"
            )
        if time.monotonic() > end:
            proc.kill()
            proc.wait()
            raise Failed(f"invoking {name}: no answer within {INVOKE_TIMEOUT_S} s")
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise Failed(
            f"cargo lambda invoke {name} failed ({proc.returncode}): {(err or out).strip()}"
        )
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise Failed(f"{name} answered something that is not JSON: {out!r}")


def kode_get(base_url, credentials, path):
    """The fake's own view of the sample order (independent of our client)."""
    form = urllib.parse.urlencode({"grant_type": "password", **credentials}).encode()
    with urllib.request.urlopen(f"{base_url}/authentication/v2/token", data=form, timeout=10) as r:
        token = json.load(r)["access_token"]
    req = urllib.request.Request(f"{base_url}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def ok_assets(node):
    """Every OK asset of an order, at sub-order and order-line level."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "assets" and isinstance(value, list):
                yield from (a for a in value if a.get("assetStatus") == "OK")
            else:
                yield from ok_assets(value)
    elif isinstance(node, list):
        for item in node:
            yield from ok_assets(item)


def target_dir():
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def smoke(run):
    cargo_lambda = Path(sys.executable).parent / "cargo-lambda"
    if not cargo_lambda.exists():
        raise Failed(
            f"{cargo_lambda} is missing: install infra/requirements-test.txt (infra/test.sh does)"
        )
    aws = aws_clients()

    log("building the function binaries (test feature set; links only after `cargo test`)")
    subprocess.run(
        ["cargo", "build", "--workspace", "--bins", "--tests", "--locked", "--quiet"],
        cwd=ROOT,
        check=True,
    )
    bins = target_dir() / "debug"

    webhook_event = json.loads(WEBHOOK_EVENT.read_text())
    push_token = webhook_event["queryStringParameters"]["token"]

    # fake KODE with the sample order; it prints the credentials it accepts.
    fake_port = free_port()
    fake = run.start(
        "fake-kode",
        [str(bins / "fake-kode"), "--listen", f"127.0.0.1:{fake_port}", "--sample"],
        stop_signal=signal.SIGINT,
    )
    wait_for_port(fake_port, fake, "fake-kode")
    # It listens before it prints what it accepts: wait for its last line.
    end = time.monotonic() + 10
    while "Ctrl-C stops." not in run.log_of("fake-kode"):
        if time.monotonic() > end:
            raise Failed("fake-kode did not print its credentials within 10 s")
        time.sleep(0.05)
    printed = dict(
        part.split("=", 1)
        for line in run.log_of("fake-kode").splitlines()
        for part in line.split()
        if "=" in part
    )
    credentials = {k: printed[k] for k in ("client_id", "client_secret", "username", "password")}
    kode_url = f"http://127.0.0.1:{fake_port}"

    prefix = f"kode-smoke-{uuid.uuid4().hex[:10]}"
    res = create_resources(run, aws, prefix, credentials, push_token)
    log(f"moto: queue, DLQ, bucket, table and two secrets named {prefix}-*")

    rt_port = free_port()
    watch = run.start(
        "cargo-lambda-watch",
        [
            str(cargo_lambda),
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            str(rt_port),
        ],
    )
    wait_for_port(rt_port, watch, "cargo lambda watch")
    log(f"cargo lambda watch: Runtime API on 127.0.0.1:{rt_port}")

    webhook = run.start(
        "webhook",
        [str(bins / "webhook")],
        env=function_env(
            "webhook",
            rt_port,
            {"QUEUE_URL": res["queue"], "PUSH_SECRET_ARN": res["push_secret"], "STACK_NAME": STACK},
        ),
    )
    processor = run.start(
        "processor",
        [str(bins / "processor")],
        env=function_env(
            "processor",
            rt_port,
            {
                "ASSET_BUCKET": res["bucket"],
                "LEDGER_TABLE": res["table"],
                "QUEUE_URL": res["queue"],
                "KODE_API_URL": kode_url,
                "KODE_SECRET_ARN": res["kode_secret"],
                "DOWNLOAD_CONCURRENCY": "4",
                "MAX_ASSET_BYTES": "1073741824",
                "STACK_NAME": STACK,
            },
        ),
    )

    sqs, s3, ddb = aws["sqs"], aws["s3"], aws["dynamodb"]

    log(f"webhook <- {WEBHOOK_EVENT.relative_to(ROOT)} with a wrong token")
    wrong = dict(
        webhook_event,
        rawQueryString="token=not-the-secret",
        queryStringParameters={"token": "not-the-secret"},
    )
    answer = invoke(run, cargo_lambda, rt_port, "webhook", webhook, data=json.dumps(wrong))
    check(answer.get("statusCode") == 401, f"answered 401 (got {answer.get('statusCode')})")
    depth = sqs.get_queue_attributes(
        QueueUrl=res["queue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    check(depth["Attributes"]["ApproximateNumberOfMessages"] == "0", "nothing was queued")

    log(f"webhook <- {WEBHOOK_EVENT.relative_to(ROOT)}")
    answer = invoke(run, cargo_lambda, rt_port, "webhook", webhook, data_file=WEBHOOK_EVENT)
    check(
        answer.get("statusCode") == 200,
        f"answered 200 (got {answer.get('statusCode')}: {answer.get('body')})",
    )
    got = sqs.receive_message(
        QueueUrl=res["queue"], MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
    )
    messages = got.get("Messages", [])
    check(len(messages) == 1, f"the queue holds one message (got {len(messages)})")
    envelope = json.loads(messages[0]["Body"])
    attrs = messages[0]["Attributes"]
    check(
        envelope.get("v") == 1 and envelope.get("kind") == "order" and envelope.get("receivedAt"),
        "the message is a v1 order envelope with receivedAt",
    )
    check(
        envelope.get("push") == json.loads(webhook_event["body"]),
        "the envelope carries the pushed body",
    )
    check(attrs.get("MessageGroupId") == f"order-{SAMPLE_ORDER}", f"group order-{SAMPLE_ORDER}")
    check(
        attrs.get("MessageDeduplicationId") == webhook_event["requestContext"]["requestId"],
        "deduplicated by the Function URL request id",
    )
    # The processor gets the sample event below; an in-flight message would
    # hold the order's group (and the sweeper's message) back.
    sqs.delete_message(QueueUrl=res["queue"], ReceiptHandle=messages[0]["ReceiptHandle"])

    log(f"processor <- {PROCESSOR_EVENT.relative_to(ROOT)}")
    answer = invoke(run, cargo_lambda, rt_port, "processor", processor, data_file=PROCESSOR_EVENT)
    check(answer == {"batchItemFailures": []}, f"no batch item failures (got {answer})")

    order = json.loads(kode_get(kode_url, credentials, f"/kode/v1/orders/{SAMPLE_ORDER}"))
    assets = list(ok_assets(order))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=res["bucket"]).get("Contents", [])}
    expected = {
        f"orders/{SAMPLE_ORDER}/{a['id']}/{unicodedata.normalize('NFC', a['filename'])}": a
        for a in assets
    }
    check(
        len(assets) > 0 and keys == set(expected),
        f"the bucket holds exactly the sample order's {len(assets)} files",
    )
    for key, asset in expected.items():
        body = s3.get_object(Bucket=res["bucket"], Key=key)["Body"].read()
        served = kode_get(kode_url, credentials, f"/shopping/v2/assets/{asset['id']}")
        item = ddb.get_item(
            TableName=res["table"],
            Key={"pk": {"S": f"ORDER#{SAMPLE_ORDER}"}, "sk": {"S": f"ASSET#{asset['id']}"}},
        ).get("Item", {})
        check(
            body == served
            and item.get("state", {}).get("S") == "STORED"
            and item.get("key", {}).get("S") == key
            and item.get("bytes", {}).get("N") == str(len(body))
            and item.get("sha256", {}).get("S", hashlib.sha256(body).hexdigest())
            == hashlib.sha256(body).hexdigest(),
            f"{key}: the served bytes, ledger entry STORED with its key and size",
        )
    distributor = json.loads(json.loads(PROCESSOR_EVENT.read_text())["Records"][1]["body"])["push"]
    item = ddb.get_item(
        TableName=res["table"],
        Key={
            "pk": {"S": f"DISTMSG#{distributor['content']['id']}"},
            "sk": {"S": distributor["eventAction"]},
        },
    ).get("Item")
    check(item is not None, "the distributor message is in the ledger")

    pushes = [name for name, value in emf_metrics(run.log_of("webhook")) if value == 1]
    check(
        pushes == ["PushesUnauthorized", "PushesAccepted"],
        f"the webhook counted each push by its outcome, under Stack {STACK} (got {pushes})",
    )
    stored = [value for name, value in emf_metrics(run.log_of("processor")) if name == "AssetsStored"]
    check(
        sum(stored) == len(assets),
        f"the processor printed AssetsStored {len(assets)} under Stack {STACK} (got {stored})",
    )

    sweeper = run.start(
        "sweeper",
        [str(bins / "sweeper")],
        env=function_env(
            "sweeper",
            rt_port,
            {"QUEUE_URL": res["queue"], "LEDGER_TABLE": res["table"], "SWEEP_INTERVAL": "60m", "STACK_NAME": STACK},
        ),
    )
    log("sweeper <- a scheduled event")
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    answer = invoke(run, cargo_lambda, rt_port, "sweeper", sweeper, data=json.dumps(scheduled))
    check(
        answer.get("enqueued") == [SAMPLE_ORDER] and answer.get("failed") == [],
        f"the sample order is open and swept (got {answer})",
    )
    got = sqs.receive_message(
        QueueUrl=res["queue"], MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
    )
    messages = got.get("Messages", [])
    check(len(messages) == 1, f"the queue holds one sweep message (got {len(messages)})")
    body = json.loads(messages[0]["Body"])
    check(
        body.get("kind") == "sweep"
        and body.get("orderId") == SAMPLE_ORDER
        and messages[0]["Attributes"].get("MessageGroupId") == f"order-{SAMPLE_ORDER}",
        f"a sweep message for order {SAMPLE_ORDER} in its group (got {body})",
    )


def emf_metrics(output):
    """(metric, value) of each embedded-metric line in a function's output
    that CloudWatch would count for this stack at any Lambda log level."""
    found = []
    for line in output.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict) or "_aws" not in doc:
            continue
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        if (
            directive["Namespace"] == "KodePush"
            and directive["Dimensions"] == [["Stack"]]
            and doc.get("Stack") == STACK
            and doc.get("level") == "FATAL"
        ):
            found += [(m["Name"], doc[m["Name"]]) for m in directive["Metrics"]]
    return found


def main():
    # SIGTERM (CI cancelling) runs the same cleanup as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="kode-lambda-smoke.") as tmp:
        run = Run(Path(tmp))
        try:
            smoke(run)
        except (Failed, subprocess.CalledProcessError) as e:
            log(f"FAILED: {e}")
            run.dump_logs()
            return 1
        except Exception:
            traceback.print_exc()
            run.dump_logs()
            return 1
        finally:
            run.close()
    log("lambda smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
