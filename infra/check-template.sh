#!/usr/bin/env bash
# Offline checks of template.yaml: cfn-lint (runs the SAM transform locally, no
# AWS credentials) and our own schedule-expression check, which cfn-lint lacks.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ ! -x .venv/bin/cfn-lint ]; then
    bash scripts/test-env.sh >/dev/null
fi

status=0
# The template path goes first: --regions takes several values and would swallow it.
if .venv/bin/cfn-lint -t template.yaml --regions ap-northeast-1; then
    echo "check-template: cfn-lint ok"
else
    echo "check-template: FAIL cfn-lint reported the problems above" >&2
    status=1
fi
if .venv/bin/python infra/check_schedules.py template.yaml; then
    echo "check-template: schedule expressions ok"
else
    echo "check-template: FAIL schedule expressions (see above)" >&2
    status=1
fi
exit "$status"
