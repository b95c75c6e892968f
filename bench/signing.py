"""License signing benchmark: licenses per second next to a bare `cryptography` RS256 sign loop.

`./scripts/bench signing`. Both use the same freshly generated 2048-bit signing key, loaded the
way the service loads it (`core.licensing.keys.load_signing_key`):

- the product: `core.licensing.tokens.issue_license` for a professional customer (expiry, the
  license claims, a new jti, the content fingerprint, the compact JWS with its kid);
- bare: `private_key.sign(message, PKCS1v15(), SHA256())` over a message of the same length.

Each runs BENCH_SIGN_SECONDS (1 s) per round, alternately, BENCH_ROUNDS (7) rounds; medians.
Target: the product reaches at least 80% of the bare rate.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from bench.common import bench_environment, median, print_table, print_verdict

SECONDS = float(os.environ.get("BENCH_SIGN_SECONDS", "1"))
# Many short alternating rounds: the median shrugs off a neighbour's burst on a shared machine.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
TARGET = 0.8


def _rate(step, seconds: float) -> float:  # type: ignore[no-untyped-def]
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(20):
            step()
        done += 20
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - started)


def main() -> None:
    with bench_environment("signing"):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        from core.licensing.keys import load_public_keys, load_signing_key
        from core.licensing.tokens import LicenseContent, issue_license, verify_license
        from core.plans import get_plan
        from core.settings import get_settings

        settings = get_settings()
        key = load_signing_key(settings)
        spec = get_plan("professional")
        now = datetime.now(UTC)
        content = LicenseContent(
            customer_id="cust_bench000001",
            customer_name="Bench Corporation",
            plan=spec.plan,
            features=spec.features,
            limits=spec.limits,
            is_trial=False,
            trial_ends_at=None,
            subscription_status="active",
            current_period_ends_at=now + timedelta(days=30),
        )

        def product() -> None:
            issue_license(
                content,
                key,
                now=datetime.now(UTC),
                issuer=settings.license_issuer,
                grace_days=settings.license_grace_days,
                max_days=settings.license_max_days,
            )

        sample = issue_license(
            content,
            key,
            now=now,
            issuer=settings.license_issuer,
            grace_days=settings.license_grace_days,
            max_days=settings.license_max_days,
        )
        # The product's output is a real license: it verifies with the published keys.
        verify_license(sample.token, load_public_keys(settings), issuer=settings.license_issuer)
        message = sample.token.rsplit(".", 1)[0].encode("ascii")
        pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def bare() -> None:
            key.private_key.sign(message, pkcs1v15, sha256)

        product_rates, bare_rates = [], []
        _rate(bare, 0.5)  # warm up
        for _ in range(ROUNDS):
            bare_rates.append(_rate(bare, SECONDS))
            product_rates.append(_rate(product, SECONDS))
        product_rate, bare_rate = median(product_rates), median(bare_rates)
        ratio = product_rate / bare_rate
        print_table(
            f"License signing, RS256 2048-bit, one thread, median of {ROUNDS} x {SECONDS:.0f} s",
            [
                ("issue_license (product)", f"{product_rate:.0f}"),
                ("bare cryptography sign loop", f"{bare_rate:.0f}"),
            ],
            ("loop", "per second"),
        )
        print(f"license size: {len(sample.token)} characters; signed message {len(message)} bytes")
        print_verdict("signing", f"product / bare = {ratio:.2f}", f">= {TARGET}", ratio >= TARGET)


if __name__ == "__main__":
    main()
