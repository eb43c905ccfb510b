#!/usr/bin/env python3
"""Lints the SAM template: cfn-lint on the source, then on its SAM translation.

cfn-lint alone checks little inside AWS::Serverless::* resources (a trial
caught 5 of 15 seeded mistakes); translating first with aws-sam-translator
and linting the CloudFormation it produces caught all 15. Offline: the
translator gets an s3:// CodeUri and a managed-policy loader that never asks
IAM.

    lint_template.py [TEMPLATE]              exit 1 on any finding
    lint_template.py --self-test [TEMPLATE]  seed mistakes into copies of
                                             TEMPLATE, exit 1 unless each is caught
                                             and cfn-lint alone misses one of them
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The translator resolves regional ARNs and partitions from this.
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-north-1")

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# The translator warns about its own unpublished usage metrics on every run.
logging.getLogger("samtranslator").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
# The region samconfig.toml deploys to. Informational checks are included:
# a finding of any level fails the lint.
CFN_LINT_ARGS = ["--regions", "eu-north-1", "--include-checks", "I", "--format", "parseable"]
PLACEHOLDER_CODE_URI = "s3://kode-push-lint-placeholder/code.zip"


class _NoIam:
    """Managed-policy loader for the translator that never calls IAM."""

    def load(self) -> dict:
        return {}


def load(path: Path) -> dict:
    return yaml_parse(path.read_text(encoding="utf-8"))


def translate(template: dict) -> dict:
    """The CloudFormation `sam deploy` would submit (code location aside)."""
    template = copy.deepcopy(template)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = PLACEHOLDER_CODE_URI
    return transform(template, {}, _NoIam())


def cfn_lint(paths: list[Path]) -> dict[Path, list[str]]:
    """Findings per file, from one cfn-lint run over all of them."""
    cfn_lint_bin = Path(sys.executable).parent / "cfn-lint"
    run = subprocess.run(
        [str(cfn_lint_bin), *CFN_LINT_ARGS, "--", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings: dict[Path, list[str]] = {p: [] for p in paths}
    for line in run.stdout.splitlines():
        for path in paths:
            if line.startswith(f"{path}:"):
                findings[path].append(line)
                break
        else:
            raise RuntimeError(f"cfn-lint printed a line about no linted file: {line}")
    if run.returncode != 0 and not any(findings.values()):
        raise RuntimeError(f"cfn-lint failed without findings (exit {run.returncode}): {run.stderr.strip()}")
    return findings


def lint(sources: list[Path], workdir: Path) -> dict[Path, list[str]]:
    """Findings per source template, its translation's findings included."""
    findings: dict[Path, list[str]] = {s: [] for s in sources}
    to_lint: dict[Path, Path] = {}
    for i, source in enumerate(sources):
        to_lint[source] = source
        try:
            translated = translate(load(source))
        except InvalidDocumentException as e:
            findings[source] += [f"{source}: SAM translation: {cause.message}" for cause in e.causes]
            continue
        out = workdir / f"translated-{i}.json"
        out.write_text(json.dumps(translated, indent=1), encoding="utf-8")
        to_lint[out] = source
    for path, found in cfn_lint(list(to_lint)).items():
        findings[to_lint[path]] += found
    return findings


# Mistakes in the processor's SQS event that a plain cfn-lint run does not
# all see. Each takes the event's Properties and breaks them in place.
def _batch_size_wrong_type(p: dict) -> None:
    p["BatchSize"] = "ten"


def _unknown_property(p: dict) -> None:
    p["QueueUrl"] = {"Ref": "PushQueue"}


def _missing_queue(p: dict) -> None:
    p["Queue"] = {"Fn::GetAtt": ["NoSuchQueue", "Arn"]}


def _unknown_response_type(p: dict) -> None:
    p["FunctionResponseTypes"] = ["ReportBatchItemFailure"]


SEEDS = [_batch_size_wrong_type, _unknown_property, _missing_queue, _unknown_response_type]


def _sqs_event_properties(template: dict) -> dict:
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "SQS":
                return event["Properties"]
    raise SystemExit("self-test: the template has no function with an SQS event to seed mistakes into")


def self_test(template: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="kode-lint-") as tmp:
        workdir = Path(tmp)
        # The unmodified template is linted alongside: a seed only counts as
        # caught when the template is clean without it.
        sources = [template]
        for seed in SEEDS:
            broken = load(template)
            seed(_sqs_event_properties(broken))
            path = workdir / f"{seed.__name__.strip('_')}.json"
            path.write_text(json.dumps(broken, indent=1), encoding="utf-8")
            sources.append(path)
        results = lint(sources, workdir)
        # The same seeds through cfn-lint alone, to show what the
        # translation adds.
        source_only = cfn_lint(sources[1:])
    if baseline := results.pop(template):
        print("self-test needs a clean template; it has:", *baseline, sep="\n  ", file=sys.stderr)
        return 1
    missed = [path.stem for path, found in results.items() if not found]
    for path, found in results.items():
        alone = "also" if source_only[path] else "NOT"
        print(f"caught: {path.stem} ({alone} by cfn-lint alone): {found[0]}" if found else f"MISSED: {path.stem}")
    if missed:
        print(f"the template lint missed {len(missed)} seeded mistake(s)", file=sys.stderr)
        return 1
    if all(source_only.values()):
        print("cfn-lint alone caught every seed: the SAM translation pass shows nothing", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    template = Path(args[0]) if args else DEFAULT_TEMPLATE
    if len(argv) != len(args):
        return self_test(template)
    with tempfile.TemporaryDirectory(prefix="kode-lint-") as tmp:
        found = lint([template], Path(tmp))[template]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} finding(s) in {template}", file=sys.stderr)
        return 1
    print(f"{template}: clean (source and SAM translation)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
