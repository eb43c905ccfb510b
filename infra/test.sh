#!/usr/bin/env bash
# The one test command (README, "Testing"; .ci/run calls it).
#
# Installs the pinned Python tools into .venv, starts moto on a free loopback
# port with dummy credentials, then runs fmt, clippy, the tests and the
# template checks. Every step runs even when an earlier one fails, so one run
# shows every problem; the exit status is non-zero if any step failed. moto is
# stopped on every exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/infra/requirements-test.txt"
PY="$VENV/bin/python"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

FAILED=()
run_step() {
    local name="$1"; shift
    step "$name"
    if "$@"; then
        printf -- '--- ok: %s\n' "$name"
    else
        printf -- '--- FAILED: %s\n' "$name"
        FAILED+=("$name")
    fi
}

# --- Tools --------------------------------------------------------------

step "Python tools in .venv ($(basename "$REQUIREMENTS"))"
# The venv is rebuilt whenever the pinned list changes (or the venv broke).
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [[ -x "$PY" ]] && "$PY" -c 'import sys' 2>/dev/null && [[ "$(cat "$stamp" 2>/dev/null)" == "$wanted" ]]; then
    echo "up to date"
else
    command -v python3 >/dev/null || die "python3 is needed (apt-get install python3 python3-venv)"
    python3 -m venv --clear "$VENV" \
        || die "cannot create $VENV: install python3-venv (apt-get install python3-venv)"
    "$PY" -m pip install --disable-pip-version-check --quiet -r "$REQUIREMENTS"
    echo "$wanted" > "$stamp"
    "$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE '^(moto|cfn-lint|aws-sam-translator|cargo-lambda) '
fi

step "Rust components"
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
for component in rustfmt clippy; do
    tool=$([[ $component == rustfmt ]] && echo fmt || echo clippy)
    if ! cargo "$tool" --version >/dev/null 2>&1; then
        command -v rustup >/dev/null || die "cargo $tool is missing and rustup is not there to add it"
        rustup component add "$component"
    fi
done
cargo --version

# --- moto ---------------------------------------------------------------

step "moto (local S3, SQS, DynamoDB, Secrets Manager)"
MOTO_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kode-push-moto.XXXXXX")"
MOTO_PID=""
stop_moto() {
    local status=$?
    if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        echo "moto (pid $MOTO_PID) stopped"
    fi
    rm -rf "$MOTO_DIR"
    exit "$status"
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ask the kernel for a free port; the tiny race with other processes is
# caught by the readiness check below (moto exits if the port is taken).
MOTO_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_DIR/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 120); do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        cat "$MOTO_DIR/moto.log" >&2
        die "moto exited before answering"
    fi
    if "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.25
done
"$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/', timeout=1)" 2>/dev/null \
    || die "moto did not answer on 127.0.0.1:$MOTO_PORT within 30 s"
echo "moto (pid $MOTO_PID) on http://127.0.0.1:$MOTO_PORT"

# Dummy credentials only; no profile or credentials file of the user is read,
# so the tests cannot reach a real AWS account.
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=eu-north-1 AWS_DEFAULT_REGION=eu-north-1
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE

# --- Checks -------------------------------------------------------------

run_step "cargo fmt --check" cargo fmt --all -- --check
run_step "cargo clippy (all targets, warnings are errors)" \
    cargo clippy --workspace --all-targets --locked -- -D warnings
run_step "cargo test" cargo test --workspace --locked
run_step "Lambda smoke test (real binaries, cargo lambda's Runtime API, moto, fake-kode)" \
    "$PY" infra/lambda_smoke.py

if [[ -f template.yaml ]]; then
    run_step "template lint (cfn-lint on template.yaml and its SAM translation)" \
        "$PY" infra/lint_template.py template.yaml
    run_step "template lint catches seeded mistakes in a function's SQS event (cfn-lint alone misses some)" \
        "$PY" infra/lint_template.py --self-test template.yaml
    run_step "template rules (builds, queues, grants, storage, secrets, alarms, dashboard, samconfig)" \
        "$PY" infra/check_template.py template.yaml
    run_step "template rules: every rule finds its seeded violation" \
        "$PY" infra/check_template.py --self-test template.yaml
else
    step "template checks skipped: no template.yaml"
fi

step "Summary"
if ((${#FAILED[@]})); then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "all steps passed"
