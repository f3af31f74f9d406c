#!/usr/bin/env python3
"""Validates every EventBridge schedule expression in template.yaml.

cfn-lint accepts malformed expressions such as `rate(5 minute)`, and CloudFormation
only rejects them halfway through a deploy, so this check reads the template
itself: every `rate(...)`/`cron(...)` string anywhere in it (parameter defaults,
literal properties), plus the default of every parameter that a `Schedule` or
`ScheduleExpression` property references. Parameter `AllowedPattern`s must accept
their own default. Exit status 1 names each bad expression.

Usage: check_schedules.py [template.yaml]   (runs its own self-test first)
"""

import re
import sys

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
DAYS = "SUN MON TUE WED THU FRI SAT".split()
RATE_UNITS = {"minute", "hour", "day"}


def check_rate(body):
    m = re.fullmatch(r"(\d+) ([a-z]+)", body)
    if not m:
        return "rate needs '<positive integer> <unit>'"
    value, unit = m.group(1), m.group(2)
    if value.startswith("0"):
        return "rate value must be a positive integer without leading zeros"
    n = int(value)
    singular = unit.rstrip("s") if unit.endswith("s") else unit
    if singular not in RATE_UNITS:
        return f"unknown rate unit {unit!r} (minute(s), hour(s), day(s))"
    if n == 1 and unit != singular:
        return f"rate(1 ...) takes the singular unit: rate(1 {singular})"
    if n > 1 and unit == singular:
        return f"rate({n} ...) takes the plural unit: rate({n} {singular}s)"
    return None


def number_or_name(token, low, high, names):
    if names and token.upper() in names:
        return True
    return token.isdigit() and low <= int(token) <= high


def check_cron_field(value, low, high, names=(), extra=()):
    """Comma list of: *, ?, n, n-m, n/step, n-m/step, */step, plus field extras."""
    for part in value.split(","):
        if part in extra or part in ("*",):
            continue
        if "L" in extra and re.fullmatch(r"\d+W|LW|L", part):
            continue
        if "#" in extra and re.fullmatch(r"[1-7A-Za-z]{1,3}#[1-5]", part):
            day = part.split("#")[0]
            if number_or_name(day, low, high, names):
                continue
            return f"{part!r} out of range"
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return f"bad step in {part!r}"
        if base == "*" and step:
            continue
        lo, dash, hi = base.partition("-")
        if not number_or_name(lo, low, high, names):
            return f"{part!r} is not in {low}-{high}"
        if dash and not number_or_name(hi, low, high, names):
            return f"{part!r} is not in {low}-{high}"
    return None


def check_cron(body):
    fields = body.split()
    if len(fields) != 6:
        return f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    checks = [
        ("minutes", minutes, 0, 59, (), ()),
        ("hours", hours, 0, 23, (), ()),
        ("day-of-month", dom, 1, 31, (), ("?", "L")),
        ("month", month, 1, 12, MONTHS, ()),
        ("day-of-week", dow, 1, 7, DAYS, ("?", "L", "#")),
        ("year", year, 1970, 2199, (), ()),
    ]
    for name, value, low, high, names, extra in checks:
        if "?" in value and value != "?":
            return f"{name}: '?' must stand alone"
        if value == "?" and "?" not in extra:
            return f"{name}: '?' is only allowed in day-of-month or day-of-week"
        problem = check_cron_field(value, low, high, names, extra)
        if problem:
            return f"{name}: {problem}"
    return None


def check_expression(expr):
    m = re.fullmatch(r"(rate|cron)\((.*)\)", expr)
    if not m:
        return "not rate(...) or cron(...)"
    kind, body = m.groups()
    if body != body.strip() or "  " in body:
        return "stray spaces"
    return check_rate(body) if kind == "rate" else check_cron(body)


SELF_TEST = {
    "rate(1 minute)": True,
    "rate(10 minutes)": True,
    "rate(1 hour)": True,
    "rate(2 days)": True,
    "rate(5 minute)": False,
    "rate(1 minutes)": False,
    "rate(0 minutes)": False,
    "rate(10 mins)": False,
    "rate(010 minutes)": False,
    "cron(0 12 * * ? *)": True,
    "cron(0/10 * ? * MON-FRI *)": True,
    "cron(15 10 ? * 6#3 *)": True,
    "cron(0 18 L * ? *)": True,
    "cron(0 12 * * *)": False,
    "cron(0 12 * * * *)": False,
    "cron(0 12 ? * ? *)": False,
    "cron(60 12 * * ? *)": False,
    "cron(0 24 * * ? *)": False,
    "cron(0 12 * 13 ? *)": False,
}


def self_test():
    wrong = [e for e, ok in SELF_TEST.items() if (check_expression(e) is None) != ok]
    if wrong:
        print("schedule checker self-test failed on: " + ", ".join(wrong), file=sys.stderr)
        sys.exit(2)


def load(path):
    from cfnlint.decode import decode  # understands !Ref, !Sub, ...

    template, matches = decode(path)
    if matches:
        for match in matches:
            print(f"{path}: {match}", file=sys.stderr)
        sys.exit(1)
    return template


def walk(node, trail=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, trail + (str(key),))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, trail + (str(index),))
    else:
        yield trail, node


def main():
    self_test()
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    template = load(path)
    parameters = template.get("Parameters", {})
    found = {}  # expression -> where
    for trail, value in walk(template):
        if trail and trail[-1].endswith("Description"):
            continue  # prose may quote examples
        if isinstance(value, str) and re.match(r"\s*(rate|cron)\s*\(", value):
            found.setdefault(value, []).append("/".join(trail))
    # Schedule properties that take their value from a parameter.
    for trail, value in walk(template.get("Resources", {})):
        if len(trail) >= 2 and trail[-1] == "Ref" and trail[-2] in ("Schedule", "ScheduleExpression"):
            param = parameters.get(value)
            if param is None:
                print(f"{'/'.join(trail)}: !Ref {value} is not a parameter", file=sys.stderr)
                sys.exit(1)
            if "Default" not in param:
                print(f"parameter {value} feeds a schedule but has no default", file=sys.stderr)
                sys.exit(1)
            found.setdefault(str(param["Default"]), []).append(f"Parameters/{value}/Default")
    if not found:
        print(f"{path}: no schedule expression found", file=sys.stderr)
        sys.exit(1)
    failures = 0
    for expr, where in sorted(found.items()):
        problem = check_expression(expr)
        if problem:
            failures += 1
            print(f"BAD  {expr!r} at {', '.join(sorted(set(where)))}: {problem}", file=sys.stderr)
        else:
            print(f"ok   {expr}")
    for name, param in parameters.items():
        pattern = param.get("AllowedPattern")
        default = param.get("Default")
        if pattern and default is not None and not re.fullmatch(pattern, str(default)):
            failures += 1
            print(f"BAD  parameter {name}: default {default!r} fails its AllowedPattern", file=sys.stderr)
    if failures:
        print(f"{failures} bad schedule expression(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
