#!/usr/bin/env python3
"""Checks the rules of template.yaml and samconfig.toml that a linter cannot know.

A valid template can still build x86 binaries, lose FIFO ordering in the
dead-letter queue, redeliver a batch that is still running, hand a function
`*` permissions, fail on a new account, or page nobody when every push is
lost. These checks pin the choices of issues 5 and 12.

    check_template.py [TEMPLATE]              exit 1 on any violation
    check_template.py --self-test [TEMPLATE]  seed one violation per rule into
                                              copies of TEMPLATE (and of the
                                              samconfig.toml beside it), exit 1
                                              unless each is found by its rule

Every finding names its rule; the self-test fails when a rule has no seeded
violation, or when a seed is found by another rule than the one meant for it.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable

from cfnlint.decode import cfn_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lint_template import DEFAULT_TEMPLATE, ROOT, translate  # noqa: E402

FUNCTION = "AWS::Serverless::Function"
ALARM = "AWS::CloudWatch::Alarm"
# Lambda's advice for SQS sources: a batch must not become visible again
# while a run of it may still be going.
VISIBILITY_FACTOR = 6
MIN_RETENTION_SECONDS = 4 * 24 * 3600
MAX_RECEIVE_COUNT = 10
# docs/DESIGN.md, Configuration.
KNOWN_ENV = {
    "QUEUE_URL", "ASSET_BUCKET", "LEDGER_TABLE", "KODE_API_URL", "KODE_AUTH_URL",
    "KODE_SECRET_ARN", "PUSH_SECRET_ARN", "DOWNLOAD_CONCURRENCY", "MAX_ASSET_BYTES",
    "DOWNLOAD_HOSTS", "STACK_NAME", "SWEEP_INTERVAL", "SWEEP_FINISHED_DAYS", "SWEEP_MAX_MISSES",
    "EVENT_BUS_NAME",
}  # fmt: skip
REQUIRED_ENV = {
    "webhook": {"QUEUE_URL", "PUSH_SECRET_ARN", "STACK_NAME"},
    "processor": {"ASSET_BUCKET", "LEDGER_TABLE", "KODE_API_URL", "KODE_SECRET_ARN", "QUEUE_URL", "STACK_NAME"},
    "sweeper": {"QUEUE_URL", "LEDGER_TABLE", "STACK_NAME"},
}
# Every action a role may be granted, with what calls it. An action that is
# not here is one no code calls: remove it, or name its caller here.
USED_ACTIONS = {
    "logs:CreateLogStream": "the Lambda service, writing the function's log",
    "logs:PutLogEvents": "the Lambda service, writing the function's log",
    "sqs:SendMessage": "shared/src/store/aws/sqs.rs (webhook)",
    "sqs:ReceiveMessage": "the processor's SQS event source mapping",
    "sqs:DeleteMessage": "the processor's SQS event source mapping",
    "sqs:GetQueueAttributes": "the processor's SQS event source mapping",
    "sqs:ChangeMessageVisibility": "functions/processor: deferred records go back early",
    "secretsmanager:GetSecretValue": "shared/src/intake/secret.rs, shared/src/config.rs",
    "kms:Decrypt": "Secrets Manager, reading a secret under a customer managed key",
    "s3:GetObject": "shared/src/store/aws/s3.rs: HeadObject",
    "s3:PutObject": "shared/src/store/aws/s3.rs: PutObject, multipart uploads",
    "s3:PutObjectTagging": "shared/src/store/aws/s3.rs: the sha256 tag of a multipart upload",
    "s3:PutObjectVersionTagging": "shared/src/store/aws/s3.rs: the tag on the exact version uploaded",
    "s3:DeleteObject": "shared/src/store/aws/s3.rs: DeleteObject",
    "s3:AbortMultipartUpload": "shared/src/store/aws/s3.rs: AbortMultipartUpload",
    "dynamodb:Query": "shared/src/store/aws/dynamodb.rs",
    "dynamodb:GetItem": "shared/src/store/aws/dynamodb.rs",
    "dynamodb:PutItem": "shared/src/store/aws/dynamodb.rs",
    "dynamodb:UpdateItem": "shared/src/store/aws/dynamodb.rs",
    "events:PutEvents": "shared/src/announce: EventBridgeAnnouncer (processor)",
    "dynamodb:ConditionCheckItem": "shared/src/store/aws/dynamodb.rs: record_stored's purge check",
    "dynamodb:DeleteItem": "shared/src/store/aws/dynamodb.rs: release_hold (processor)",
}
# A wrong value must not match the KODE credentials secret's parameter.
SECRET_ARN_SAMPLE = "arn:aws:secretsmanager:eu-north-1:123456789012:secret:kode-credentials-AbC123"
SECRET_ARN_WILDCARDS = [
    "arn:aws:secretsmanager:eu-north-1:123456789012:secret:*",
    "arn:aws:secretsmanager:eu-north-1:123456789012:secret:kode-*",
    "arn:aws:secretsmanager:eu-north-1:123456789012:secret:kode-credentials-??????",
]
# Edits of these regenerate the push secret (KODE's URL stops working) or
# overwrite the KODE credentials stored since the first deploy.
PUSH_SECRET_GENERATION = {"PasswordLength": 48, "ExcludePunctuation": True, "IncludeSpace": False}
KODE_SECRET_PLACEHOLDER = '{"client_id":"","client_secret":"","username":"","password":""}'
STACK = {"Ref": "AWS::StackName"}
NOVALUE = {"Ref": "AWS::NoValue"}
DLQ_EXPIRY_ALARM_SECONDS = 10 * 24 * 3600


def dims(name: str, value: Any) -> list:
    return [{"Name": name, "Value": value}]


def queue(logical_id: str) -> list:
    return dims("QueueName", {"Fn::GetAtt": [logical_id, "QueueName"]})


def function(logical_id: str) -> list:
    return dims("FunctionName", {"Ref": logical_id})


OWN = dims("Stack", STACK)
# The alarms that must exist: what each measures, on which resource, and
# for metric-math alarms a pattern their expression must match.
REQUIRED_ALARMS: dict[str, dict] = {
    "DeadLetterQueueAlarm": {"metrics": [("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue("DeadLetterQueue"))]},
    "ProcessorErrorsAlarm": {"metrics": [("AWS/Lambda", "Errors", function("ProcessorFunction"))]},
    "WebhookServerErrorsAlarm": {"metrics": [("AWS/Lambda", "Url5xxCount", function("WebhookFunction"))]},
    "OldestMessageAgeAlarm": {"metrics": [("AWS/SQS", "ApproximateAgeOfOldestMessage", queue("PushQueue"))]},
    "PushSecretMismatchAlarm": {
        "metrics": [("KodePush", "PushesUnauthorized", OWN), ("KodePush", "PushesAccepted", OWN)],
        # Unauthorized pushes AND no accepted one, not any 401.
        "expression": r"unauthorized.*\bAND\b.*accepted, 0\) == 0",
    },
    "WebhookThrottlesAlarm": {"metrics": [("AWS/Lambda", "Throttles", function("WebhookFunction"))]},
    "ProcessorThrottlesAlarm": {"metrics": [("AWS/Lambda", "Throttles", function("ProcessorFunction"))]},
    "RecordsDeferredAlarm": {"metrics": [("KodePush", "RecordsDeferred", OWN)]},
    "AssetsFailedAlarm": {"metrics": [("KodePush", "AssetsFailed", OWN)]},
    "DeadLetterExpiryAlarm": {
        "metrics": [("AWS/SQS", "ApproximateAgeOfOldestMessage", queue("DeadLetterQueue"))],
        "threshold_at_most": DLQ_EXPIRY_ALARM_SECONDS,
    },
    "NewDeadLetterAlarm": {
        "metrics": [("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue("DeadLetterQueue"))],
        # A rise of the visible count: NumberOfMessagesSent misses redrives.
        "expression": r"^DIFF\(",
    },
}
# What the dashboard must show (besides every alarm).
DASHBOARD_METRICS = [
    "PushesAccepted", "PushesUnauthorized", "PushesInvalid", "PushesTooLarge", "PushesQueueFailed",
    "AssetsStored", "BytesStored", "AssetsDeleted", "AssetsFailed", "Failures", "PushLagMs",
    "RecordsDeferred", "OrdersSwept", "ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage",
    "Duration", "Errors", "Throttles", "ConcurrentExecutions",
]  # fmt: skip

# Every rule, as a finding names it.
RULES = {
    "events.bus-grant": "events:PutEvents only on an event bus of this template",
    "function.arm64": "functions run on arm64",
    "function.runtime": "functions run on provided.al2023",
    "function.build": "functions build with cargo-lambda from a crate in functions/",
    "function.json-logs": "functions log JSON",
    "function.env": "environment variables: all known, the required ones set",
    "function.stack-name": "STACK_NAME is the stack's name (the metrics' dimension)",
    "function.log-level": "one log-level knob: ApplicationLogLevel from a parameter",
    "function.concurrency-default": "reserved concurrency is off by default (new accounts)",
    "function.url-cappable": "a public Function URL's concurrency can be capped",
    "queue.event": "the processor reads a queue of this template",
    "queue.batch-failures": "the SQS event reports batch item failures",
    "queue.max-concurrency": "the SQS event sets MaximumConcurrency",
    "queue.fifo": "the push queue is FIFO",
    "queue.visibility": "visibility timeout >= 6 x processor timeout",
    "queue.retention": "queues keep messages at least 4 days",
    "queue.redrive": "a FIFO dead-letter queue after 1..10 receives",
    "iam.not": "no NotAction / NotResource",
    "iam.wildcard-resource": "no wildcard in a resource",
    "iam.wildcard-action": "no wildcard in an action",
    "iam.managed": "no managed policies, only inline statements",
    "iam.unused-action": "every granted action is one some code calls",
    "iam.secret-arn": "KodeCredentialsSecretArn accepts one secret's ARN only",
    "iam.kms": "kms:Decrypt only on the given key, only through Secrets Manager",
    "storage.locked": "bucket private, encrypted, owner-enforced, TLS-only; table on demand, PITR, SSE",
    "storage.deletion": "bucket and table: RetainExceptOnCreate, replaced ones retained",
    "storage.versions": "bucket versioned; old versions and dead delete markers expire",
    "secret.push": "the push secret: generated, URL-safe, generation pinned",
    "secret.placeholder": "the KODE credentials placeholder is pinned",
    "alarm.required": "every required alarm exists and measures what it should",
    "alarm.actions": "every alarm notifies the alarm topic",
    "alarm.stack": "alarms on our metrics select this stack's",
    "dashboard.exists": "a dashboard named after the stack, output as DashboardUrl",
    "dashboard.content": "the dashboard shows the metrics, logs and every alarm",
    "samconfig.prompts": "sam build/sync opt in to the cargo-lambda beta; deploys confirm",
}

Finding = tuple[str, str]


class Template:
    def __init__(self, data: dict, samconfig: dict):
        self.data = data
        self.samconfig = samconfig
        self.params: dict = data.get("Parameters", {})
        self.resources: dict = data.get("Resources", {})
        self.globals: dict = data.get("Globals", {}).get("Function", {})

    def of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v.get("Type") == type_}

    def function_prop(self, fn: dict, name: str, default: Any = None) -> Any:
        return fn.get("Properties", {}).get(name, self.globals.get(name, default))

    def value(self, v: Any) -> Any:
        """A literal, or the default of the parameter a `!Ref` names."""
        if isinstance(v, dict) and set(v) == {"Ref"}:
            return self.params.get(v["Ref"], {}).get("Default")
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


def finding(rule: str, message: str) -> Finding:
    assert rule in RULES, rule
    return rule, message


def as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def branches(v: Any) -> list:
    """Both sides of an `!If` (recursively), without AWS::NoValue."""
    if isinstance(v, dict) and set(v) == {"Fn::If"}:
        return [b for side in v["Fn::If"][1:] for b in branches(side)]
    return [] if v == NOVALUE else [v]


def check_functions(t: Template) -> list[Finding]:
    problems = []
    functions = t.of_type(FUNCTION)
    if not functions:
        problems.append(finding("function.build", "no AWS::Serverless::Function in the template"))
    for name, fn in functions.items():
        props = fn.get("Properties", {})
        if t.function_prop(fn, "Architectures") != ["arm64"]:
            problems.append(finding("function.arm64", f"{name}: Architectures must be [arm64]"))
        if t.function_prop(fn, "Runtime") != "provided.al2023":
            problems.append(finding("function.runtime", f"{name}: Runtime must be provided.al2023"))
        meta = fn.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(finding("function.build", f"{name}: Metadata.BuildMethod must be rust-cargolambda"))
        binary = meta.get("BuildProperties", {}).get("Binary")
        if not (ROOT / "functions" / str(binary) / "src" / "main.rs").is_file():
            problems.append(
                finding("function.build", f"{name}: BuildProperties.Binary {binary!r} is not a crate in functions/")
            )
        logging = {**t.globals.get("LoggingConfig", {}), **props.get("LoggingConfig", {})}
        if logging.get("LogFormat") != "JSON":
            problems.append(finding("function.json-logs", f"{name}: LoggingConfig.LogFormat must be JSON"))
        level = logging.get("ApplicationLogLevel")
        if t.target(level) not in t.params:
            problems.append(
                finding("function.log-level", f"{name}: ApplicationLogLevel must be !Ref a parameter, not {level!r}")
            )
        variables = props.get("Environment", {}).get("Variables", {})
        if unknown := set(variables) - KNOWN_ENV:
            problems.append(finding("function.env", f"{name}: environment variables unknown to DESIGN.md: {sorted(unknown)}"))
        if missing := REQUIRED_ENV.get(str(binary), set()) - set(variables):
            problems.append(finding("function.env", f"{name}: environment variables missing: {sorted(missing)}"))
        if "STACK_NAME" in variables and variables["STACK_NAME"] != STACK:
            problems.append(finding("function.stack-name", f"{name}: STACK_NAME must be !Ref AWS::StackName"))
        reserved = props.get("ReservedConcurrentExecutions")
        for value in branches(reserved) if reserved is not None else []:
            if t.target(value) not in t.params:
                problems.append(
                    finding(
                        "function.concurrency-default",
                        f"{name}: ReservedConcurrentExecutions must come from a parameter "
                        f"({value!r} cannot be turned off)",
                    )
                )
            elif (default := t.value(value)) != 0:
                problems.append(
                    finding(
                        "function.concurrency-default",
                        f"{name}: ReservedConcurrentExecutions defaults to {default}; new accounts cannot reserve any",
                    )
                )
        url = props.get("FunctionUrlConfig")
        if url and url.get("AuthType") == "NONE" and reserved is None:
            problems.append(
                finding("function.url-cappable", f"{name}: a public Function URL needs ReservedConcurrentExecutions (a parameter) to cap abuse")
            )
    return problems


def check_queues(t: Template) -> list[Finding]:
    problems = []
    sqs_events = [
        (name, fn, ev)
        for name, fn in t.of_type(FUNCTION).items()
        for ev in fn.get("Properties", {}).get("Events", {}).values()
        if ev.get("Type") == "SQS"
    ]
    if not sqs_events:
        problems.append(finding("queue.event", "no function has an SQS event"))
    for name, fn, ev in sqs_events:
        props = ev.get("Properties", {})
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(finding("queue.batch-failures", f"{name}: its SQS event must report batch item failures"))
        if "MaximumConcurrency" not in props.get("ScalingConfig", {}):
            problems.append(finding("queue.max-concurrency", f"{name}: its SQS event must set ScalingConfig.MaximumConcurrency"))
        queue_id = t.target(props.get("Queue"))
        queue_res = t.resources.get(queue_id or "", {})
        if queue_res.get("Type") != "AWS::SQS::Queue":
            problems.append(finding("queue.event", f"{name}: its SQS event must read a queue of this template"))
            continue
        q = queue_res.get("Properties", {})
        if q.get("FifoQueue") is not True:
            problems.append(finding("queue.fifo", f"{queue_id}: must be FIFO (pushes of one order in order)"))
        visibility = t.value(q.get("VisibilityTimeout", 30))
        timeout = t.value(t.function_prop(fn, "Timeout", 3))
        if not (isinstance(visibility, int) and isinstance(timeout, int)) or visibility < VISIBILITY_FACTOR * timeout:
            problems.append(
                finding(
                    "queue.visibility",
                    f"{queue_id}: VisibilityTimeout {visibility} must be at least "
                    f"{VISIBILITY_FACTOR} x {name} Timeout {timeout}",
                )
            )
        retention = t.value(q.get("MessageRetentionPeriod", 345600))
        if not isinstance(retention, int) or retention < MIN_RETENTION_SECONDS:
            problems.append(finding("queue.retention", f"{queue_id}: MessageRetentionPeriod must be at least 4 days (a weekend outage)"))
        redrive = q.get("RedrivePolicy", {})
        receives = redrive.get("maxReceiveCount")
        if not isinstance(receives, int) or not 1 <= receives <= MAX_RECEIVE_COUNT:
            problems.append(finding("queue.redrive", f"{queue_id}: RedrivePolicy.maxReceiveCount must be 1..{MAX_RECEIVE_COUNT}"))
        dlq_id = t.target(redrive.get("deadLetterTargetArn"))
        dlq = t.resources.get(dlq_id or "", {}).get("Properties", {})
        if dlq.get("FifoQueue") is not True:
            problems.append(finding("queue.redrive", f"{queue_id}: needs a FIFO dead-letter queue of this template"))
        elif t.value(dlq.get("MessageRetentionPeriod", 345600)) < (retention or 0):
            problems.append(finding("queue.retention", f"{dlq_id}: must keep messages at least as long as {queue_id}"))
    return problems


def _resource_wildcard(t: Template, r: Any) -> str | None:
    """Why resource `r` grants more than named resources, if it does."""
    if isinstance(r, str):
        return None if "*" not in r and "?" not in r else f"Resource {r!r}"
    if isinstance(r, dict) and "Fn::Sub" in r:
        text = r["Fn::Sub"] if isinstance(r["Fn::Sub"], str) else r["Fn::Sub"][0]
        if "*" not in text and "?" not in text:
            return None
        # The objects of a bucket of this template are the one allowed wildcard.
        objects = re.fullmatch(r"\$\{(\w+)\.Arn\}/\*", text)
        if objects and t.resources.get(objects.group(1), {}).get("Type") == "AWS::S3::Bucket":
            return None
        return f"Resource {text!r}"
    if isinstance(r, dict) and "Fn::Join" in r:
        return _resource_wildcard(t, "".join(p if isinstance(p, str) else "" for p in r["Fn::Join"][1]))
    return None


def _statements(t: Template, statements: Any, where: str) -> list[Finding]:
    problems = []
    for s in [b for item in as_list(statements) for b in branches(item)]:
        if "NotResource" in s or "NotAction" in s:
            problems.append(finding("iam.not", f"{where}: NotResource/NotAction grant everything else"))
        if s.get("Effect") != "Allow":
            continue
        for r in [b for item in as_list(s.get("Resource", [])) for b in branches(item)]:
            if why := _resource_wildcard(t, r):
                problems.append(finding("iam.wildcard-resource", f"{where}: {why} (name the resource)"))
        for a in as_list(s.get("Action", [])):
            if not isinstance(a, str):
                continue
            if "*" in a or "?" in a:
                problems.append(finding("iam.wildcard-action", f"{where}: Action {a!r} (list the actions used)"))
            elif a not in USED_ACTIONS:
                problems.append(finding("iam.unused-action", f"{where}: no code calls {a!r}: remove it or name its caller in USED_ACTIONS"))
    return problems


def check_policies(t: Template) -> list[Finding]:
    problems = []
    for name, fn in t.of_type(FUNCTION).items():
        props = fn.get("Properties", {})
        if role_id := t.target(props.get("Role")):
            role = t.resources.get(role_id, {}).get("Properties", {})
            for policy in role.get("Policies", []):
                statements = policy.get("PolicyDocument", {}).get("Statement", [])
                problems += _statements(t, statements, f"{name} role {role_id}")
        for policy in as_list(props.get("Policies", [])):
            if isinstance(policy, dict) and "Statement" in policy:
                problems += _statements(t, policy["Statement"], f"{name} Policies")
            else:
                problems.append(finding("iam.managed", f"{name}: Policies entry {policy!r} is not an inline statement"))
    # What is deployed: SAM attaches AWS managed policies (Resource "*") to
    # the roles it generates, which the source does not show.
    for name, role in translate(t.data)["Resources"].items():
        if role["Type"] != "AWS::IAM::Role":
            continue
        if role["Properties"].get("ManagedPolicyArns"):
            problems.append(finding("iam.managed", f"{name} (deployed): managed policies {role['Properties']['ManagedPolicyArns']}"))
        for policy in role["Properties"].get("Policies", []):
            for f in _statements(t, policy["PolicyDocument"]["Statement"], f"{name} (deployed)"):
                if f not in problems and f[0] != "iam.unused-action":
                    problems.append(f)

    param = t.params.get("KodeCredentialsSecretArn", {})
    pattern = param.get("AllowedPattern")
    if not pattern:
        problems.append(finding("iam.secret-arn", "KodeCredentialsSecretArn needs an AllowedPattern of one secret's ARN"))
    else:
        accepted = [v for v in SECRET_ARN_WILDCARDS if re.fullmatch(pattern, v)]
        if accepted or not re.fullmatch(pattern, SECRET_ARN_SAMPLE) or not re.fullmatch(pattern, ""):
            problems.append(
                finding("iam.secret-arn", f"KodeCredentialsSecretArn's pattern must take one secret's ARN or nothing; it accepts {accepted}")
            )

    kms = [
        s
        for role in t.of_type("AWS::IAM::Role").values()
        for policy in role.get("Properties", {}).get("Policies", [])
        for item in as_list(policy.get("PolicyDocument", {}).get("Statement", []))
        for s in branches(item)
        if "kms:Decrypt" in as_list(s.get("Action", []))
    ]
    via_secrets_manager = {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
    if "KodeCredentialsKmsKeyArn" not in t.params or len(kms) != 1:
        problems.append(finding("iam.kms", "kms:Decrypt must be granted once, on the KodeCredentialsKmsKeyArn parameter"))
    elif (
        kms[0].get("Resource") != {"Ref": "KodeCredentialsKmsKeyArn"}
        or kms[0].get("Condition", {}).get("StringEquals", {}).get("kms:ViaService") != via_secrets_manager
    ):
        problems.append(finding("iam.kms", "kms:Decrypt must be on !Ref KodeCredentialsKmsKeyArn, via Secrets Manager only"))
    return problems


def check_events(t: Template) -> list[Finding]:
    """events:PutEvents only on event buses of this template."""
    problems = []
    buses = set(t.of_type("AWS::Events::EventBus"))
    for role_id, role in t.of_type("AWS::IAM::Role").items():
        for policy in role.get("Properties", {}).get("Policies", []):
            for s in as_list(policy.get("PolicyDocument", {}).get("Statement", [])):
                if "events:PutEvents" not in as_list(s.get("Action", [])):
                    continue
                for r in as_list(s.get("Resource", [])):
                    if t.target(r) not in buses:
                        problems.append(finding(
                            "events.bus-grant",
                            f"{role_id}: events:PutEvents on {r!r}, not on an event bus of this template",
                        ))
    return problems


def check_storage(t: Template) -> list[Finding]:
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
            problems.append(finding("storage.locked", f"{name}: public access must be blocked (all four flags)"))
        if not b.get("BucketEncryption"):
            problems.append(finding("storage.locked", f"{name}: needs BucketEncryption"))
        rules = b.get("OwnershipControls", {}).get("Rules", [])
        if [r.get("ObjectOwnership") for r in rules] != ["BucketOwnerEnforced"]:
            problems.append(finding("storage.locked", f"{name}: ObjectOwnership must be BucketOwnerEnforced"))
        if name not in tls_only:
            problems.append(finding("storage.locked", f"{name}: needs a bucket policy denying requests without TLS"))
        if b.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            problems.append(finding("storage.versions", f"{name}: versioning must be Enabled (a wrong delete can be undone)"))
        lifecycle = [r for r in b.get("LifecycleConfiguration", {}).get("Rules", []) if r.get("Status") == "Enabled"]
        expiry = [
            t.value(r["NoncurrentVersionExpiration"].get("NoncurrentDays"))
            for r in lifecycle
            if "NoncurrentVersionExpiration" in r
            and t.target(r["NoncurrentVersionExpiration"].get("NoncurrentDays")) in t.params
        ]
        if expiry != [30]:
            problems.append(
                finding("storage.versions", f"{name}: old versions must expire after a parameter's days, default 30 (found {expiry})")
            )
        if not any(r.get("ExpiredObjectDeleteMarker") is True for r in lifecycle):
            problems.append(finding("storage.versions", f"{name}: expired delete markers must be removed"))
        if not any("AbortIncompleteMultipartUpload" in r for r in lifecycle):
            problems.append(finding("storage.versions", f"{name}: incomplete multipart uploads must be aborted"))
    tables = t.of_type("AWS::DynamoDB::Table")
    for name, table in tables.items():
        p = table.get("Properties", {})
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(finding("storage.locked", f"{name}: BillingMode must be PAY_PER_REQUEST"))
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(finding("storage.locked", f"{name}: needs point-in-time recovery"))
        if p.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(finding("storage.locked", f"{name}: needs SSESpecification.SSEEnabled"))
    for name, r in {**buckets, **tables}.items():
        if r.get("DeletionPolicy") != "RetainExceptOnCreate":
            problems.append(
                finding(
                    "storage.deletion",
                    f"{name}: DeletionPolicy must be RetainExceptOnCreate (kept on delete, "
                    "gone when the first deploy fails)",
                )
            )
        if r.get("UpdateReplacePolicy") != "Retain":
            problems.append(finding("storage.deletion", f"{name}: UpdateReplacePolicy must be Retain"))
    return problems


def check_secrets(t: Template) -> list[Finding]:
    problems = []
    generated = {
        name: s["Properties"]["GenerateSecretString"]
        for name, s in t.of_type("AWS::SecretsManager::Secret").items()
        if "GenerateSecretString" in s.get("Properties", {})
    }
    if list(generated.values()) != [PUSH_SECRET_GENERATION]:
        problems.append(
            finding(
                "secret.push",
                f"the push secret must be generated once as {PUSH_SECRET_GENERATION} (URL-safe); "
                f"found {generated}. Any edit generates a new secret and breaks KODE's URL",
            )
        )
    placeholder = t.resources.get("KodeCredentialsSecret", {})
    if (
        placeholder.get("Condition") != "CreateKodeSecret"
        or placeholder.get("Properties", {}).get("SecretString") != KODE_SECRET_PLACEHOLDER
    ):
        problems.append(
            finding(
                "secret.placeholder",
                "KodeCredentialsSecret must stay the conditional empty placeholder: "
                "an edited SecretString overwrites the credentials stored since",
            )
        )
    return problems


def _metric_specs(alarm: dict) -> list[tuple[Any, Any, Any]]:
    p = alarm.get("Properties", {})
    if "Metrics" in p:
        return [
            (m["MetricStat"]["Metric"].get("Namespace"), m["MetricStat"]["Metric"].get("MetricName"),
             m["MetricStat"]["Metric"].get("Dimensions"))
            for m in p["Metrics"]
            if "MetricStat" in m
        ]  # fmt: skip
    return [(p.get("Namespace"), p.get("MetricName"), p.get("Dimensions"))]


def check_alarms(t: Template) -> list[Finding]:
    problems = []
    alarms = t.of_type(ALARM)
    topics = set(t.of_type("AWS::SNS::Topic"))
    for name, want in REQUIRED_ALARMS.items():
        alarm = alarms.get(name)
        if alarm is None:
            problems.append(finding("alarm.required", f"no {name}"))
            continue
        specs = _metric_specs(alarm)
        for namespace, metric, dimensions in want["metrics"]:
            if namespace == "KodePush":
                # Which stack is alarm.stack's to check.
                found = any(s[:2] == (namespace, metric) for s in specs)
            else:
                found = (namespace, metric, dimensions) in specs
            if not found:
                where = dimensions[0]["Value"]
                problems.append(finding("alarm.required", f"{name} must measure {namespace} {metric} of {where}"))
        props = alarm.get("Properties", {})
        if pattern := want.get("expression"):
            returned = [m.get("Expression", "") for m in props.get("Metrics", []) if m.get("ReturnData")]
            if len(returned) != 1 or not re.search(pattern, returned[0]):
                problems.append(finding("alarm.required", f"{name}: its expression must match {pattern!r}, not {returned}"))
        if (limit := want.get("threshold_at_most")) and not props.get("Threshold", limit + 1) <= limit:
            problems.append(finding("alarm.required", f"{name}: Threshold must be at most {limit}"))
    for name, alarm in alarms.items():
        props = alarm.get("Properties", {})
        actions = [t.target(a) for a in props.get("AlarmActions", [])]
        if props.get("ActionsEnabled") is False or not topics & set(actions):
            problems.append(finding("alarm.actions", f"{name}: must notify the alarm topic (AlarmActions)"))
        for namespace, metric, dimensions in _metric_specs(alarm):
            if namespace == "KodePush" and dimensions != OWN:
                problems.append(finding("alarm.stack", f"{name}: {metric} must select Stack = !Ref AWS::StackName"))
    return problems


def check_dashboard(t: Template) -> list[Finding]:
    problems = []
    dashboards = t.of_type("AWS::CloudWatch::Dashboard")
    outputs = t.data.get("Outputs", {})
    url = json.dumps(outputs.get("DashboardUrl", {}).get("Value"))
    if len(dashboards) != 1:
        return [finding("dashboard.exists", f"needs one AWS::CloudWatch::Dashboard, found {len(dashboards)}")]
    name, dashboard = next(iter(dashboards.items()))
    props = dashboard.get("Properties", {})
    if props.get("DashboardName") != STACK:
        problems.append(finding("dashboard.exists", f"{name}: DashboardName must be !Ref AWS::StackName"))
    if "${" + name + "}" not in url:
        problems.append(finding("dashboard.exists", f"output DashboardUrl must link to ${{{name}}}"))
    body_sub = props.get("DashboardBody", {})
    body_text = body_sub.get("Fn::Sub") if isinstance(body_sub, dict) else None
    if not isinstance(body_text, str):
        return problems + [finding("dashboard.content", f"{name}: DashboardBody must be one !Sub JSON text")]
    body = json.loads(body_text)
    widgets = body.get("widgets", [])
    shown = {m[1] for w in widgets if w.get("type") == "metric" for m in w["properties"].get("metrics", [])}
    if missing := [m for m in DASHBOARD_METRICS if m not in shown]:
        problems.append(finding("dashboard.content", f"{name}: no widget shows {missing}"))
    queries = [w["properties"].get("query", "") for w in widgets if w.get("type") == "log"]
    if not any('level = \\"ERROR\\"' in q or 'level = "ERROR"' in q for q in queries) or not any(
        "outcome" in q for q in queries
    ):
        problems.append(finding("dashboard.content", f"{name}: needs Logs Insights widgets for failures and for pushes"))
    listed = {a for w in widgets if w.get("type") == "alarm" for a in w["properties"].get("alarms", [])}
    if unlisted := sorted(a for a in t.of_type(ALARM) if "${" + a + ".Arn}" not in listed):
        problems.append(finding("dashboard.content", f"{name}: the alarm widget lacks {unlisted}"))
    processor = t.resources.get("ProcessorFunction", {})
    timeout_ms = (t.value(t.function_prop(processor, "Timeout", 3)) or 0) * 1000
    marks = [
        a.get("value")
        for w in widgets
        if "ProcessorFunction" in json.dumps(w) and "Duration" in json.dumps(w)
        for a in w["properties"].get("annotations", {}).get("horizontal", [])
    ]
    if timeout_ms not in marks:
        problems.append(finding("dashboard.content", f"{name}: processor duration needs its timeout ({timeout_ms} ms) marked"))
    return problems


def check_samconfig(t: Template) -> list[Finding]:
    problems = []
    default = t.samconfig.get("default", {})
    for command in ("build", "sync"):
        if default.get(command, {}).get("parameters", {}).get("beta_features") is not True:
            problems.append(
                finding("samconfig.prompts", f"samconfig.toml: [default.{command}.parameters] needs beta_features = true (rust-cargolambda)")
            )
    if default.get("deploy", {}).get("parameters", {}).get("confirm_changeset") is not True:
        problems.append(finding("samconfig.prompts", "samconfig.toml: deploys must confirm their change set"))
    return problems


CHECKS = [
    check_functions, check_queues, check_policies, check_events, check_storage, check_secrets,
    check_alarms, check_dashboard, check_samconfig,
]  # fmt: skip


def check(data: dict, samconfig: dict) -> list[Finding]:
    t = Template(data, samconfig)
    return [p for c in CHECKS for p in c(t)]


# Seeded violations: each breaks one rule in copies of the template and the
# samconfig.
Seed = Callable[[dict, dict], None]


def _fn(d: dict, events: bool = False) -> dict:
    for fn in d["Resources"].values():
        if fn.get("Type") == FUNCTION and bool(fn["Properties"].get("Events")) == events:
            return fn
    raise SystemExit("self-test: template lacks a function to seed")


def _sqs_event(d: dict) -> dict:
    return next(iter(_fn(d, events=True)["Properties"]["Events"].values()))["Properties"]


def _sqs_queue(d: dict) -> dict:
    return d["Resources"][Template(d, {}).target(_sqs_event(d)["Queue"])]


def _dlq(d: dict) -> dict:
    arn = _sqs_queue(d)["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    return d["Resources"][Template(d, {}).target(arn)]


def _role_statements(d: dict, events: bool = True) -> list:
    role = d["Resources"][Template(d, {}).target(_fn(d, events=events)["Properties"]["Role"])]
    return role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _statement_with(d: dict, action: str) -> dict:
    for s in _role_statements(d):
        if action in as_list(s.get("Action", [])):
            return s
    raise SystemExit(f"self-test: no statement grants {action}")


def _alarm(d: dict, name: str) -> dict:
    return d["Resources"][name]["Properties"]


def _bucket(d: dict) -> dict:
    return d["Resources"]["AssetBucket"]


def _widgets(d: dict) -> list:
    return json.loads(d["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])["widgets"]


def _set_widgets(d: dict, widgets: list) -> None:
    body = {"widgets": widgets}
    d["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"] = json.dumps(body)


def _drop_metric_widget(d: dict, metric: str) -> None:
    widgets = _widgets(d)
    for w in widgets:
        if w["type"] == "metric":
            w["properties"]["metrics"] = [m for m in w["properties"]["metrics"] if m[1] != metric]
    _set_widgets(d, widgets)


def _drop_alarm_from_widget(d: dict, alarm: str) -> None:
    widgets = _widgets(d)
    for w in widgets:
        if w["type"] == "alarm":
            w["properties"]["alarms"].remove("${" + alarm + ".Arn}")
    _set_widgets(d, widgets)


def _first_lifecycle(d: dict, key: str) -> dict:
    rules = _bucket(d)["Properties"]["LifecycleConfiguration"]["Rules"]
    return next(r for r in rules if key in r)


def _kms_statement(d: dict) -> dict:
    for item in _role_statements(d):
        if isinstance(item, dict) and "Fn::If" in item:
            return item["Fn::If"][1]
    raise SystemExit("self-test: no conditional kms:Decrypt statement")


def _set(obj: dict, key: str, value: Any) -> None:
    obj[key] = value


SEEDS: list[tuple[str, str, Seed]] = [
    ("PutEvents on the default bus", "events.bus-grant", lambda d, c: _role_statements(d).append({
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": {"Fn::Sub": "arn:aws:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
    })),
    ("x86_64 function", "function.arm64", lambda d, c: _set(_fn(d)["Properties"], "Architectures", ["x86_64"])),
    ("provided.al2 runtime", "function.runtime", lambda d, c: _set(_fn(d)["Properties"], "Runtime", "provided.al2")),
    ("build method not cargo-lambda", "function.build", lambda d, c: _set(_fn(d, True)["Metadata"], "BuildMethod", "makefile")),
    ("text logs", "function.json-logs", lambda d, c: _set(d["Globals"]["Function"]["LoggingConfig"], "LogFormat", "Text")),
    ("log level fixed in the template", "function.log-level",
     lambda d, c: _set(d["Globals"]["Function"]["LoggingConfig"], "ApplicationLogLevel", "WARN")),
    ("environment variable DESIGN.md does not know", "function.env",
     lambda d, c: _set(_fn(d)["Properties"]["Environment"]["Variables"], "QUEUE", "x")),
    ("STACK_NAME a literal", "function.stack-name",
     lambda d, c: _set(_fn(d)["Properties"]["Environment"]["Variables"], "STACK_NAME", "kode-push")),
    ("reserved concurrency 10 by default", "function.concurrency-default",
     lambda d, c: _set(d["Parameters"]["WebhookReservedConcurrency"], "Default", 10)),
    ("reserved concurrency a literal", "function.concurrency-default",
     lambda d, c: _set(_fn(d)["Properties"], "ReservedConcurrentExecutions", 10)),
    ("public URL that cannot be capped", "function.url-cappable", lambda d, c: _fn(d)["Properties"].pop("ReservedConcurrentExecutions")),
    ("SQS event on a queue of another stack", "queue.event",
     lambda d, c: _set(_sqs_event(d), "Queue", "arn:aws:sqs:eu-north-1:123456789012:other.fifo")),
    ("no batch item failures", "queue.batch-failures", lambda d, c: _sqs_event(d).pop("FunctionResponseTypes")),
    ("no maximum concurrency", "queue.max-concurrency", lambda d, c: _sqs_event(d).pop("ScalingConfig")),
    ("standard push queue", "queue.fifo", lambda d, c: _set(_sqs_queue(d)["Properties"], "FifoQueue", False)),
    ("visibility below 6x timeout", "queue.visibility", lambda d, c: _set(_sqs_queue(d)["Properties"], "VisibilityTimeout", 600)),
    ("one day of retention", "queue.retention", lambda d, c: _set(_sqs_queue(d)["Properties"], "MessageRetentionPeriod", 86400)),
    ("DLQ keeps less than the queue", "queue.retention", lambda d, c: _set(_dlq(d)["Properties"], "MessageRetentionPeriod", 345600)),
    ("standard dead-letter queue", "queue.redrive", lambda d, c: _dlq(d)["Properties"].pop("FifoQueue")),
    ("50 receives", "queue.redrive", lambda d, c: _set(_sqs_queue(d)["Properties"]["RedrivePolicy"], "maxReceiveCount", 50)),
    ("NotAction", "iam.not", lambda d, c: _role_statements(d).append(
        {"Effect": "Deny", "NotAction": "s3:GetObject", "Resource": {"Fn::GetAtt": ["AssetBucket", "Arn"]}})),
    ("resource '*'", "iam.wildcard-resource", lambda d, c: _set(_statement_with(d, "dynamodb:Query"), "Resource", "*")),
    ("every bucket", "iam.wildcard-resource", lambda d, c: _set(_statement_with(d, "s3:GetObject"), "Resource", "arn:aws:s3:::*")),
    ("every table", "iam.wildcard-resource",
     lambda d, c: _set(_statement_with(d, "dynamodb:Query"), "Resource", {"Fn::Sub": "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"})),
    ("every secret", "iam.wildcard-resource",
     lambda d, c: _set(_statement_with(d, "secretsmanager:GetSecretValue"), "Resource", {"Fn::Sub": "arn:aws:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"})),
    ("s3:Get*", "iam.wildcard-action", lambda d, c: _statement_with(d, "s3:GetObject")["Action"].append("s3:Get*")),
    ("s3:*", "iam.wildcard-action", lambda d, c: _set(_statement_with(d, "s3:GetObject"), "Action", "s3:*")),
    ("dynamodb:Scan, which no code calls", "iam.unused-action",
     lambda d, c: _statement_with(d, "dynamodb:Query")["Action"].append("dynamodb:Scan")),
    ("s3:ListMultipartUploadParts, which no code calls", "iam.unused-action",
     lambda d, c: _statement_with(d, "s3:GetObject")["Action"].append("s3:ListMultipartUploadParts")),
    ("SAM-generated role", "iam.managed", lambda d, c: _fn(d)["Properties"].pop("Role")),
    ("SAM policy template", "iam.managed", lambda d, c: _set(_fn(d)["Properties"], "Policies", ["AWSLambdaBasicExecutionRole"])),
    ("secret ARN parameter taking secret:*", "iam.secret-arn",
     lambda d, c: _set(d["Parameters"]["KodeCredentialsSecretArn"], "AllowedPattern", r"^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$")),
    ("kms:Decrypt from any service", "iam.kms", lambda d, c: _kms_statement(d).pop("Condition")),
    ("bucket without versioning", "storage.versions", lambda d, c: _bucket(d)["Properties"].pop("VersioningConfiguration")),
    ("old versions kept for a year", "storage.versions",
     lambda d, c: _set(d["Parameters"]["NoncurrentVersionExpirationDays"], "Default", 365)),
    ("expired delete markers kept", "storage.versions",
     lambda d, c: _first_lifecycle(d, "ExpiredObjectDeleteMarker").pop("ExpiredObjectDeleteMarker")),
    ("bucket deleted with the stack", "storage.deletion", lambda d, c: _set(_bucket(d), "DeletionPolicy", "Delete")),
    ("table retained after a failed first deploy", "storage.deletion", lambda d, c: _set(d["Resources"]["LedgerTable"], "DeletionPolicy", "Retain")),
    ("public bucket", "storage.locked",
     lambda d, c: _set(_bucket(d)["Properties"]["PublicAccessBlockConfiguration"], "BlockPublicPolicy", False)),
    ("table without point-in-time recovery", "storage.locked", lambda d, c: d["Resources"]["LedgerTable"]["Properties"].pop("PointInTimeRecoverySpecification")),
    ("push secret lengthened", "secret.push", lambda d, c: _set(d["Resources"]["PushSecret"]["Properties"]["GenerateSecretString"], "PasswordLength", 64)),
    ("credentials placeholder edited", "secret.placeholder",
     lambda d, c: _set(d["Resources"]["KodeCredentialsSecret"]["Properties"], "SecretString", '{"client_id":"demo"}')),
    ("no throttles alarm for the processor", "alarm.required", lambda d, c: d["Resources"].pop("ProcessorThrottlesAlarm")),
    ("DLQ alarm on the push queue", "alarm.required",
     lambda d, c: _set(_alarm(d, "DeadLetterQueueAlarm")["Dimensions"][0], "Value", {"Fn::GetAtt": ["PushQueue", "QueueName"]})),
    ("dead-letter arrivals from NumberOfMessagesSent", "alarm.required",
     lambda d, c: _set(_alarm(d, "NewDeadLetterAlarm")["Metrics"][0]["MetricStat"]["Metric"], "MetricName", "NumberOfMessagesSent")),
    ("secret mismatch alarm on any 401", "alarm.required",
     lambda d, c: _set(_alarm(d, "PushSecretMismatchAlarm")["Metrics"][2], "Expression", "FILL(unauthorized, 0)")),
    ("alarm without actions", "alarm.actions", lambda d, c: _alarm(d, "AssetsFailedAlarm").pop("AlarmActions")),
    ("alarm actions disabled", "alarm.actions", lambda d, c: _set(_alarm(d, "RecordsDeferredAlarm"), "ActionsEnabled", False)),
    ("alarm summing every stack", "alarm.stack", lambda d, c: _alarm(d, "AssetsFailedAlarm").pop("Dimensions")),
    ("no dashboard", "dashboard.exists", lambda d, c: d["Resources"].pop("Dashboard")),
    ("dashboard with a fixed name", "dashboard.exists", lambda d, c: _set(d["Resources"]["Dashboard"]["Properties"], "DashboardName", "kode-push")),
    ("no DashboardUrl", "dashboard.exists", lambda d, c: d["Outputs"].pop("DashboardUrl")),
    ("dashboard without AssetsFailed", "dashboard.content", lambda d, c: _drop_metric_widget(d, "AssetsFailed")),
    ("dashboard without an alarm", "dashboard.content", lambda d, c: _drop_alarm_from_widget(d, "NewDeadLetterAlarm")),
    ("dashboard without log widgets", "dashboard.content", lambda d, c: _set_widgets(d, [w for w in _widgets(d) if w["type"] != "log"])),
    ("timeout mark stale", "dashboard.content", lambda d, c: _set(_fn(d, True)["Properties"], "Timeout", 120)),
    ("sam build prompts", "samconfig.prompts", lambda d, c: c["default"]["build"]["parameters"].pop("beta_features")),
    ("sam sync prompts", "samconfig.prompts", lambda d, c: c["default"].pop("sync")),
]  # fmt: skip


def self_test(data: dict, samconfig: dict) -> int:
    baseline = check(data, samconfig)
    if baseline:
        print("self-test needs a clean template; it has:", *map(": ".join, baseline), sep="\n  ", file=sys.stderr)
        return 1
    failed = []
    for name, rule, seed in SEEDS:
        broken, broken_config = copy.deepcopy(data), copy.deepcopy(samconfig)
        seed(broken, broken_config)
        fired = {r for r, _ in check(broken, broken_config)}
        if fired == {rule}:
            message = next(m for r, m in check(broken, broken_config) if r == rule)
            print(f"found by {rule}: {name}: {message}")
        else:
            print(f"WRONG: {name}: meant for {rule}, found by {sorted(fired) or 'no rule'}")
            failed.append(name)
    unseeded = sorted(set(RULES) - {rule for _, rule, _ in SEEDS})
    for rule in unseeded:
        print(f"UNTESTED: rule {rule} has no seeded violation")
    if failed or unseeded:
        print(f"self-test: {len(failed)} seed(s) not found by their rule, {len(unseeded)} rule(s) unseeded", file=sys.stderr)
        return 1
    print(f"self-test: {len(SEEDS)} seeded violations, each found by its rule; all {len(RULES)} rules seeded")
    return 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    template = Path(args[0]) if args else DEFAULT_TEMPLATE
    data = cfn_yaml.load(str(template))
    samconfig = tomllib.loads((template.resolve().parent / "samconfig.toml").read_text(encoding="utf-8"))
    if len(argv) != len(args):
        return self_test(data, samconfig)
    problems = check(data, samconfig)
    for rule, message in problems:
        print(f"{rule}: {message}")
    if problems:
        print(f"{len(problems)} violation(s) in {template}", file=sys.stderr)
        return 1
    print(f"{template}: all {len(RULES)} rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
