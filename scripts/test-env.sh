#!/usr/bin/env bash
# Prepares what the AWS adapter tests need and cannot get from cargo: a moto
# server (DynamoDB, S3, SES, EventBridge, SQS without AWS or Docker) and
# cfn-lint for the SAM template. Idempotent: a venv that already has both
# pinned tools is left alone, so running it before every `cargo test` is cheap.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
# Pinned by major version: moto 5 is the line whose server API (/moto-api/reset,
# /moto-api/data.json) and SESv2 raw sends the tests rely on.
requirements=("moto[server]==5.*" "cfn-lint==1.*")

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi

if ! "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("moto").startswith("5.") and m.version("cfn-lint").startswith("1.")
import flask  # moto[server] extra
sys.exit(0 if ok else 1)
PY
then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${requirements[@]}"
fi

test -x "$venv/bin/moto_server" || { echo "moto_server missing in $venv" >&2; exit 1; }
echo "$venv"
