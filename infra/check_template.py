#!/usr/bin/env python3
"""Checks the rules of template.yaml that a linter cannot know.

A valid template can still build x86 binaries, lose FIFO ordering in the
dead-letter queue, redeliver a batch that is still running, or hand a
function `*` permissions. These checks pin the choices of issue 5.

    check_template.py [TEMPLATE]              exit 1 on any violation
    check_template.py --self-test [TEMPLATE]  seed violations into copies of
                                              TEMPLATE, exit 1 unless each is found
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Callable

from cfnlint.decode import cfn_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lint_template import DEFAULT_TEMPLATE, ROOT, translate  # noqa: E402

FUNCTION = "AWS::Serverless::Function"
# Lambda's advice for SQS sources: a batch must not become visible again
# while a run of it may still be going.
VISIBILITY_FACTOR = 6
MIN_RETENTION_SECONDS = 4 * 24 * 3600
MAX_RECEIVE_COUNT = 10
# docs/DESIGN.md, Configuration.
KNOWN_ENV = {
    "QUEUE_URL", "ASSET_BUCKET", "LEDGER_TABLE", "KODE_API_URL", "KODE_AUTH_URL",
    "KODE_SECRET_ARN", "PUSH_SECRET_ARN", "DOWNLOAD_CONCURRENCY", "MAX_ASSET_BYTES",
    "DOWNLOAD_HOSTS", "EVENT_BUS_NAME",
}  # fmt: skip
REQUIRED_ENV = {
    "webhook": {"QUEUE_URL", "PUSH_SECRET_ARN"},
    "processor": {"ASSET_BUCKET", "LEDGER_TABLE", "KODE_API_URL", "KODE_SECRET_ARN"},
}


class Template:
    def __init__(self, data: dict):
        self.data = data
        self.resources: dict = data.get("Resources", {})
        self.globals: dict = data.get("Globals", {}).get("Function", {})

    def of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v.get("Type") == type_}

    def function_prop(self, fn: dict, name: str, default: Any = None) -> Any:
        return fn.get("Properties", {}).get(name, self.globals.get(name, default))

    def value(self, v: Any) -> Any:
        """A literal, or the default of the parameter a `!Ref` names."""
        if isinstance(v, dict) and set(v) == {"Ref"}:
            return self.data.get("Parameters", {}).get(v["Ref"], {}).get("Default")
        return v

    def target(self, ref: Any) -> str | None:
        """The logical id behind `!Ref X` or `!GetAtt X.Arn`."""
        if isinstance(ref, dict):
            if "Ref" in ref:
                return ref["Ref"]
            if "Fn::GetAtt" in ref:
                att = ref["Fn::GetAtt"]
                return att[0] if isinstance(att, list) else str(att).split(".")[0]
        return None


def check_functions(t: Template) -> list[str]:
    problems = []
    functions = t.of_type(FUNCTION)
    if not functions:
        problems.append("no AWS::Serverless::Function in the template")
    for name, fn in functions.items():
        if t.function_prop(fn, "Architectures") != ["arm64"]:
            problems.append(f"{name}: Architectures must be [arm64]")
        if t.function_prop(fn, "Runtime") != "provided.al2023":
            problems.append(f"{name}: Runtime must be provided.al2023")
        meta = fn.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{name}: Metadata.BuildMethod must be rust-cargolambda")
        binary = meta.get("BuildProperties", {}).get("Binary")
        if not (ROOT / "functions" / str(binary) / "src" / "main.rs").is_file():
            problems.append(f"{name}: BuildProperties.Binary {binary!r} is not a crate in functions/")
        logging = t.function_prop(fn, "LoggingConfig", {})
        if logging.get("LogFormat") != "JSON" and t.globals.get("LoggingConfig", {}).get("LogFormat") != "JSON":
            problems.append(f"{name}: LoggingConfig.LogFormat must be JSON")
        env = set(fn.get("Properties", {}).get("Environment", {}).get("Variables", {}))
        if unknown := env - KNOWN_ENV:
            problems.append(f"{name}: environment variables unknown to DESIGN.md: {sorted(unknown)}")
        if missing := REQUIRED_ENV.get(str(binary), set()) - env:
            problems.append(f"{name}: environment variables missing: {sorted(missing)}")
        url = fn.get("Properties", {}).get("FunctionUrlConfig")
        if url and url.get("AuthType") == "NONE" and "ReservedConcurrentExecutions" not in fn["Properties"]:
            problems.append(f"{name}: a public Function URL needs ReservedConcurrentExecutions to cap abuse")
    return problems


def check_queues(t: Template) -> list[str]:
    problems = []
    sqs_events = [
        (name, fn, ev)
        for name, fn in t.of_type(FUNCTION).items()
        for ev in fn.get("Properties", {}).get("Events", {}).values()
        if ev.get("Type") == "SQS"
    ]
    if not sqs_events:
        problems.append("no function has an SQS event")
    for name, fn, ev in sqs_events:
        props = ev.get("Properties", {})
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(f"{name}: its SQS event must report batch item failures")
        if "MaximumConcurrency" not in props.get("ScalingConfig", {}):
            problems.append(f"{name}: its SQS event must set ScalingConfig.MaximumConcurrency")
        queue_id = t.target(props.get("Queue"))
        queue = t.resources.get(queue_id or "", {})
        if queue.get("Type") != "AWS::SQS::Queue":
            problems.append(f"{name}: its SQS event must read a queue of this template")
            continue
        q = queue.get("Properties", {})
        if q.get("FifoQueue") is not True:
            problems.append(f"{queue_id}: must be FIFO (pushes of one order in order)")
        visibility = t.value(q.get("VisibilityTimeout", 30))
        timeout = t.value(t.function_prop(fn, "Timeout", 3))
        if not (isinstance(visibility, int) and isinstance(timeout, int)) or visibility < VISIBILITY_FACTOR * timeout:
            problems.append(
                f"{queue_id}: VisibilityTimeout {visibility} must be at least "
                f"{VISIBILITY_FACTOR} x {name} Timeout {timeout}"
            )
        retention = t.value(q.get("MessageRetentionPeriod", 345600))
        if not isinstance(retention, int) or retention < MIN_RETENTION_SECONDS:
            problems.append(f"{queue_id}: MessageRetentionPeriod must be at least 4 days (a weekend outage)")
        redrive = q.get("RedrivePolicy", {})
        receives = redrive.get("maxReceiveCount")
        if not isinstance(receives, int) or not 1 <= receives <= MAX_RECEIVE_COUNT:
            problems.append(f"{queue_id}: RedrivePolicy.maxReceiveCount must be 1..{MAX_RECEIVE_COUNT}")
        dlq_id = t.target(redrive.get("deadLetterTargetArn"))
        dlq = t.resources.get(dlq_id or "", {}).get("Properties", {})
        if dlq.get("FifoQueue") is not True:
            problems.append(f"{queue_id}: needs a FIFO dead-letter queue of this template")
        elif t.value(dlq.get("MessageRetentionPeriod", 345600)) < (retention or 0):
            problems.append(f"{dlq_id}: must keep messages at least as long as {queue_id}")
    return problems


def _wildcards(statements: list, where: str) -> list[str]:
    problems = []
    for s in statements if isinstance(statements, list) else [statements]:
        if "NotResource" in s or "NotAction" in s:
            problems.append(f"{where}: NotResource/NotAction grant everything else")
        if s.get("Effect") != "Allow":
            continue
        resources = s.get("Resource", [])
        for r in resources if isinstance(resources, list) else [resources]:
            if r == "*" or (isinstance(r, dict) and r.get("Fn::Sub") == "*"):
                problems.append(f"{where}: Resource '*' (name the resource)")
        actions = s.get("Action", [])
        for a in actions if isinstance(actions, list) else [actions]:
            if isinstance(a, str) and (a == "*" or a.endswith(":*")):
                problems.append(f"{where}: Action {a!r} (list the actions used)")
    return problems


def check_policies(t: Template) -> list[str]:
    problems = []
    for name, fn in t.of_type(FUNCTION).items():
        props = fn.get("Properties", {})
        role_id = t.target(props.get("Role"))
        if role_id:
            role = t.resources.get(role_id, {}).get("Properties", {})
            for policy in role.get("Policies", []):
                statements = policy.get("PolicyDocument", {}).get("Statement", [])
                problems += _wildcards(statements, f"{name} role {role_id}")
        for policy in props.get("Policies", []) if isinstance(props.get("Policies"), list) else []:
            if isinstance(policy, dict) and "Statement" in policy:
                problems += _wildcards(policy["Statement"], f"{name} Policies")
            else:
                problems.append(f"{name}: Policies entry {policy!r} is not an inline statement")
    # What is deployed: SAM attaches AWS managed policies (Resource "*") to
    # the roles it generates, which the source does not show.
    for name, role in translate(t.data)["Resources"].items():
        if role["Type"] != "AWS::IAM::Role":
            continue
        if role["Properties"].get("ManagedPolicyArns"):
            problems.append(f"{name} (deployed): managed policies {role['Properties']['ManagedPolicyArns']}")
        for policy in role["Properties"].get("Policies", []):
            problems += _wildcards(policy["PolicyDocument"]["Statement"], f"{name} (deployed)")
    return problems


def check_events(t: Template) -> list[str]:
    """events:PutEvents only on event buses of this template."""
    problems = []
    buses = set(t.of_type("AWS::Events::EventBus"))
    for role_id, role in t.of_type("AWS::IAM::Role").items():
        for policy in role.get("Properties", {}).get("Policies", []):
            statements = policy.get("PolicyDocument", {}).get("Statement", [])
            for s in statements if isinstance(statements, list) else [statements]:
                actions = s.get("Action", [])
                if "events:PutEvents" not in (actions if isinstance(actions, list) else [actions]):
                    continue
                resources = s.get("Resource", [])
                for r in resources if isinstance(resources, list) else [resources]:
                    if t.target(r) not in buses:
                        problems.append(f"{role_id}: events:PutEvents on {r!r}, not on an event bus of this template")
    return problems


def check_storage(t: Template) -> list[str]:
    problems = []
    buckets = t.of_type("AWS::S3::Bucket")
    tls_only = {
        t.target(p["Properties"].get("Bucket"))
        for p in t.of_type("AWS::S3::BucketPolicy").values()
        for s in p["Properties"].get("PolicyDocument", {}).get("Statement", [])
        if s.get("Effect") == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
    }
    for name, bucket in buckets.items():
        b = bucket.get("Properties", {})
        block = b.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(block.get(k) is True for k in flags):
            problems.append(f"{name}: public access must be blocked (all four flags)")
        if not b.get("BucketEncryption"):
            problems.append(f"{name}: needs BucketEncryption")
        rules = b.get("OwnershipControls", {}).get("Rules", [])
        if [r.get("ObjectOwnership") for r in rules] != ["BucketOwnerEnforced"]:
            problems.append(f"{name}: ObjectOwnership must be BucketOwnerEnforced")
        if name not in tls_only:
            problems.append(f"{name}: needs a bucket policy denying requests without TLS")
    for name, table in t.of_type("AWS::DynamoDB::Table").items():
        p = table.get("Properties", {})
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{name}: BillingMode must be PAY_PER_REQUEST")
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{name}: needs point-in-time recovery")
        if p.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{name}: needs SSESpecification.SSEEnabled")
    for name, r in {**buckets, **t.of_type("AWS::DynamoDB::Table")}.items():
        if r.get("DeletionPolicy") != "Retain":
            problems.append(f"{name}: DeletionPolicy must be Retain (stored files outlive the stack)")
    return problems


def check_secrets_and_alarms(t: Template) -> list[str]:
    problems = []
    generated = [
        s["Properties"]["GenerateSecretString"]
        for s in t.of_type("AWS::SecretsManager::Secret").values()
        if "GenerateSecretString" in s.get("Properties", {})
    ]
    if not any(g.get("ExcludePunctuation") is True for g in generated):
        problems.append("the push secret must be generated at deploy time without punctuation (URL-safe)")
    metrics = {a.get("Properties", {}).get("MetricName") for a in t.of_type("AWS::CloudWatch::Alarm").values()}
    for metric in ("ApproximateNumberOfMessagesVisible", "Errors", "Url5xxCount", "ApproximateAgeOfOldestMessage"):
        if metric not in metrics:
            problems.append(f"no alarm on {metric}")
    return problems


CHECKS = [check_functions, check_queues, check_policies, check_events, check_storage, check_secrets_and_alarms]


def check(data: dict) -> list[str]:
    t = Template(data)
    return [p for c in CHECKS for p in c(t)]


# Seeded violations: each breaks one rule in a copy of the template.
Seed = Callable[[dict], None]


def _fn(d: dict, events: bool = False) -> dict:
    for fn in d["Resources"].values():
        if fn.get("Type") == FUNCTION and bool(fn["Properties"].get("Events")) == events:
            return fn
    raise SystemExit("self-test: template lacks a function to seed")


def _sqs_queue(d: dict) -> dict:
    ev = next(iter(_fn(d, events=True)["Properties"]["Events"].values()))
    return d["Resources"][Template(d).target(ev["Properties"]["Queue"])]


def _dlq(d: dict) -> dict:
    arn = _sqs_queue(d)["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    return d["Resources"][Template(d).target(arn)]


def _role_statements(d: dict) -> list:
    role = d["Resources"][Template(d).target(_fn(d, events=True)["Properties"]["Role"])]
    return role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


SEEDS: dict[str, Seed] = {
    "x86_64 function": lambda d: _fn(d)["Properties"].__setitem__("Architectures", ["x86_64"]),
    "build method not cargo-lambda": lambda d: _fn(d, events=True)["Metadata"].__setitem__("BuildMethod", "makefile"),
    "standard dead-letter queue": lambda d: _dlq(d)["Properties"].pop("FifoQueue"),
    "no batch item failures": lambda d: next(iter(_fn(d, events=True)["Properties"]["Events"].values()))[
        "Properties"
    ].pop("FunctionResponseTypes"),
    "visibility below 6x timeout": lambda d: _sqs_queue(d)["Properties"].__setitem__("VisibilityTimeout", 600),
    "wildcard resource": lambda d: _role_statements(d).append(
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}
    ),
    "SAM-generated role": lambda d: _fn(d)["Properties"].pop("Role"),
    "public URL without reserved concurrency": lambda d: _fn(d)["Properties"].pop("ReservedConcurrentExecutions"),
    "bucket deleted with the stack": lambda d: d["Resources"]["AssetBucket"].__setitem__("DeletionPolicy", "Delete"),
    "PutEvents on the default bus": lambda d: _role_statements(d).append(
        {
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": {"Fn::Sub": "arn:aws:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
        }
    ),
}


def self_test(data: dict) -> int:
    baseline = check(data)
    if baseline:
        print("self-test needs a clean template; it has:", *baseline, sep="\n  ", file=sys.stderr)
        return 1
    missed = []
    for name, seed in SEEDS.items():
        broken = copy.deepcopy(data)
        seed(broken)
        found = check(broken)
        print(f"found: {name}: {found[0]}" if found else f"MISSED: {name}")
        if not found:
            missed.append(name)
    if missed:
        print(f"the template check missed {len(missed)} seeded violation(s)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    template = Path(args[0]) if args else DEFAULT_TEMPLATE
    data = cfn_yaml.load(str(template))
    if len(argv) != len(args):
        return self_test(data)
    problems = check(data)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} violation(s) in {template}", file=sys.stderr)
        return 1
    print(f"{template}: arm64 + cargo-lambda, FIFO + FIFO DLQ, batch item failures, "
          f"visibility >= {VISIBILITY_FACTOR}x timeout, no wildcard grants, events on own bus only, "
          f"storage locked down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
