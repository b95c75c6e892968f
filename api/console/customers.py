"""Customers: the list (search, filters, pages) and one customer's page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from core.customers.search import DEFAULT_SORT, MAX_QUERY, CustomerSearch, search_customers
from core.sorting import MAX_SORT

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/customers")
def customers_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
    plan: Annotated[str, Query(max_length=50)] = "",
    status: Annotated[str, Query(max_length=50)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    sort: Annotated[str, Query(max_length=MAX_SORT)] = DEFAULT_SORT,
) -> Response:
    search = CustomerSearch(q=q, plan=plan, status=status, page=page, sort=sort)
    found = search_customers(session, search)
    order = search.order

    def link(**changed: object) -> str:
        values = {"q": q, "plan": plan, "status": status, "sort": order.param, **changed}
        if values["sort"] == DEFAULT_SORT:
            values["sort"] = ""
        return "/console/customers?" + urlencode({k: v for k, v in values.items() if v})

    return render(
        request,
        "customers.html",
        {
            "search": search,
            "page": found,
            "sort": order,
            "page_link": lambda number: link(page=number),
            "sort_link": lambda param: link(sort=param),
        },
        user=user,
        block="results",
    )
