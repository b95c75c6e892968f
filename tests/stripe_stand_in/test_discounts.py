"""A subscription update's `discounts` is the whole new list, as on Stripe: what it names stays or
is added, what it leaves out is removed, `""` clears it; `{discount: di_…}` reuses "an existing
discount on the object", `{coupon}` / `{promotion_code}` adds a new one
(docs.stripe.com/api/subscriptions/update#update_subscription-discounts)."""

from __future__ import annotations

import pytest
import stripe


def test_discounts_replace_the_list_and_an_existing_one_is_kept_by_id(two_item_subscription):
    stripe_server, sub, _ = two_item_subscription
    client = stripe_server.client()
    ten, half = (
        client.v1.coupons.create(params={"percent_off": pct, "duration": "forever"}).id
        for pct in (10, 50)
    )
    first = client.v1.subscriptions.update(sub["id"], params={"discounts": [{"coupon": ten}]})
    (kept,) = first.discounts

    both = client.v1.subscriptions.update(
        sub["id"], params={"discounts": [{"discount": kept}, {"coupon": half}]}
    )
    assert both.discounts[0] == kept and len(both.discounts) == 2

    only_new = client.v1.subscriptions.update(sub["id"], params={"discounts": [{"coupon": ten}]})
    assert kept not in only_new.discounts and len(only_new.discounts) == 1
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.subscriptions.update(sub["id"], params={"discounts": [{"discount": kept}]})
    assert unknown.value.param == "discounts[0][discount]"
    cleared = client.v1.subscriptions.update(sub["id"], params={"discounts": ""})
    assert cleared.discounts == []
