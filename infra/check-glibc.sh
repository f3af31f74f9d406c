#!/usr/bin/env bash
# Builds the Lambda bootstrap binaries and fails when any of them needs a glibc
# newer than Amazon Linux 2023's (2.34, the provided.al2023 runtime): such a
# binary would deploy fine and then die at cold start with "GLIBC_x.yy not found".
#
# The glibc symbols a binary needs come from the functions std and the libc
# crate call, not from optimisation or LTO, which only drop code: an unoptimised
# build references at least what the release build does. So the test command
# checks the dev build `cargo test` already made (seconds), and a deployment can
# check the release build itself with CHECK_GLIBC_PROFILE=release. The dev check
# builds the workspace's binaries and tests as the test command's build stage
# does (a no-op after it); `-p` the five packages, or `--bins` alone, would
# resolve other features and compile the AWS SDK once more.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
max_allowed="2.34"
packages=(sne-lambda-webhook sne-lambda-admin sne-lambda-dispatcher sne-lambda-uploader sne-lambda-queue-checker sne-lambda-order-importer sne-lambda-drift-checker)

command -v objdump >/dev/null || { echo "check-glibc: objdump missing (apt-get install binutils)" >&2; exit 1; }

profile="${CHECK_GLIBC_PROFILE:-dev}"
case "$profile" in
    dev) out_dir=debug ;;
    release) out_dir=release ;;
    *) echo "check-glibc: CHECK_GLIBC_PROFILE must be dev or release" >&2; exit 2 ;;
esac
# The dev build without `--profile dev`: naming the profile changes what the
# test targets are built with, and with it every dependency's hash.
if [ "$profile" = dev ]; then
    cargo build --locked --quiet --workspace --bins --tests
else
    args=()
    for p in "${packages[@]}"; do args+=(-p "$p"); done
    cargo build --profile "$profile" --locked --quiet "${args[@]}"
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
failed=0
for p in "${packages[@]}"; do
    bin="$target_dir/$out_dir/$p"
    if [ ! -x "$bin" ]; then
        echo "check-glibc: FAIL $p: $bin was not built" >&2
        failed=1
        continue
    fi
    newest="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)"
    if [ -z "$newest" ]; then
        echo "check-glibc: ok   $p (no versioned glibc symbols)"
    elif [ "$(printf '%s\n%s\n' "$newest" "$max_allowed" | sort -V | tail -n1)" != "$max_allowed" ]; then
        echo "check-glibc: FAIL $p needs GLIBC_$newest > $max_allowed:" >&2
        objdump -T "$bin" | grep "GLIBC_$newest" | head -5 >&2
        failed=1
    else
        echo "check-glibc: ok   $p needs at most GLIBC_$newest (<= $max_allowed)"
    fi
done
exit "$failed"
