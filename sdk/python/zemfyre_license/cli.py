"""`zemfyre-license`: verify a license, check in, report usage, from the shell.

Each command prints JSON on stdout and, when it fails, one line on stderr saying why. Exit codes:
0 success (the license lets the instance run), 1 refused or invalid, 2 bad arguments,
3 revoked, 4 service unreachable. The license comes from a file (`--license @FILE`,
`--license-file FILE`) or the environment, never from the command line itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from zemfyre_license.checkin import Outcome
from zemfyre_license.client import LICENSE_ENV, URL_ENV, LicenseClient
from zemfyre_license.errors import (
    LicenseError,
    LicenseRevokedError,
    ServiceError,
    ServiceUnreachableError,
)
from zemfyre_license.keys import KeySetError
from zemfyre_license.retry import RetryPolicy
from zemfyre_license.verdict import DEFAULT_GRACE, Verdict
from zemfyre_license.verify import DEFAULT_ISSUER, read_token

PROG = "zemfyre-license"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_REVOKED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Arguments that do not make a command (exit 2)."""


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _fail(code: int, reason: str) -> int:
    print(f"{PROG}: {reason}", file=sys.stderr)
    return code


_HOW = f"--license @FILE, --license-file FILE, or the {' or '.join(LICENSE_ENV)} variable"


def _refuse_license_in_argv(args: argparse.Namespace) -> None:
    """Any user sees argv (ps, /proc/*/cmdline) and the shell history keeps it: the token itself
    is refused there before anything else is checked, and not echoed back; only a path may be."""
    if args.license is not None and not args.license.strip().startswith("@"):
        raise UsageError(
            "refusing a license given on the command line, where other users can read it"
            f" (ps, shell history); pass it as {_HOW}"
        )


def _license(args: argparse.Namespace) -> str:
    if args.license_file is not None:
        return read_token("@" + args.license_file)
    if args.license is not None:
        return read_token(args.license)
    value = next((os.environ[n] for n in LICENSE_ENV if os.environ.get(n)), None)
    if not value:
        raise UsageError(f"a license is required: {_HOW}")
    return read_token(value)


def _url(args: argparse.Namespace) -> str:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise UsageError(f"--url is required (or set {URL_ENV})")
    return str(url)


def _client(args: argparse.Namespace, url: str | None) -> LicenseClient:
    return LicenseClient(
        _license(args),
        url=url,
        public_key=args.public_key,
        jwks=args.jwks,
        state_dir=args.state_dir,
        issuer=args.issuer,
        grace=timedelta(days=args.grace_days),
        retry=RetryPolicy(attempts=args.attempts, base_delay=args.retry_delay),
    )


def _verdict_exit(verdict: Verdict) -> int:
    if verdict.allowed:
        return EXIT_OK
    if verdict.revoked:
        return _fail(EXIT_REVOKED, f"revoked: {verdict.reason}")
    return _fail(EXIT_REFUSED, verdict.reason)


def run_verify(args: argparse.Namespace) -> int:
    if not args.public_key and not args.jwks:
        raise UsageError("verify needs --public-key FILE or --jwks FILE|URL")
    with _client(args, None) as client:
        verdict = client.verdict()
    _print(verdict.to_dict())
    return _verdict_exit(verdict)


def run_check_in(args: argparse.Namespace) -> int:
    with _client(args, _url(args)) as client:
        result = client.check_in()
    _print(result.to_dict())
    if result.outcome is Outcome.REVOKED:
        return _fail(EXIT_REVOKED, f"revoked: {result.message}")
    if result.outcome is Outcome.UNREACHABLE:
        return _fail(EXIT_UNREACHABLE, f"unreachable: {result.message} ({result.verdict.reason})")
    if result.outcome is Outcome.REFUSED:
        return _fail(EXIT_REFUSED, f"refused: {result.message}")
    return _verdict_exit(result.verdict)


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_report(args: argparse.Namespace) -> int:
    with _client(args, _url(args)) as client:
        receipt = client.report_usage(
            args.instance_id,
            active_devices=args.active,
            total_devices=args.total,
            timestamp=_timestamp(args.timestamp),
            idempotency_key=args.idempotency_key,
        )
        newest = client.license
    output = receipt.to_dict()
    if receipt.license_updated and newest is not None:
        output["license"] = newest.token
    _print(output)
    return EXIT_OK


def _common(parser: argparse.ArgumentParser, *, keys_required: bool) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--license",
        metavar="@FILE",
        help=f"@ then the file holding the license (default: ${LICENSE_ENV[0]})",
    )
    source.add_argument("--license-file", metavar="FILE", help="the file holding the license")
    keys = parser.add_mutually_exclusive_group(required=False)
    keys.add_argument(
        "--public-key", metavar="FILE", help="PEM public key: the only key trusted (pinned)"
    )
    suffix = "" if keys_required else " (default: the service's /.well-known/jwks.json)"
    keys.add_argument("--jwks", metavar="FILE|URL", help="JWKS file or URL" + suffix)
    parser.add_argument("--state-dir", metavar="DIR", help="keep licenses, keys, trusted time")
    parser.add_argument("--issuer", default=DEFAULT_ISSUER, help="expected iss claim")
    parser.add_argument(
        "--grace-days", type=float, default=DEFAULT_GRACE.days, help="grace after expiry"
    )
    parser.add_argument("--attempts", type=int, default=5, help="tries per request")
    parser.add_argument("--retry-delay", type=float, default=1.0, help="first backoff, seconds")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify a license offline; exit 0 if it allows")
    _common(verify, keys_required=True)
    check_in = commands.add_parser("check-in", help="fetch the current license from the service")
    check_in.add_argument("--url", help=f"the billing service (default: ${URL_ENV})")
    _common(check_in, keys_required=False)
    report = commands.add_parser("report", help="report device counts")
    report.add_argument("--url", help=f"the billing service (default: ${URL_ENV})")
    report.add_argument("--instance-id", required=True)
    report.add_argument("--active", type=int, required=True, help="active devices")
    report.add_argument("--total", type=int, required=True, help="total devices")
    report.add_argument("--timestamp", help="ISO 8601 (default: now)")
    report.add_argument("--idempotency-key", help="default: derived from the report")
    _common(report, keys_required=False)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "verify": run_verify,
    "check-in": run_check_in,
    "report": run_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _refuse_license_in_argv(args)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except LicenseRevokedError as exc:
        return _fail(EXIT_REVOKED, f"revoked: {exc.reason}")
    except ServiceUnreachableError as exc:
        return _fail(EXIT_UNREACHABLE, f"unreachable: {exc.reason}")
    except (LicenseError, ServiceError) as exc:
        return _fail(EXIT_REFUSED, exc.reason)
    except (OSError, ValueError, KeySetError) as exc:
        return _fail(EXIT_REFUSED, str(exc))


if __name__ == "__main__":
    sys.exit(main())
