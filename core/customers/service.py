"""Customers: creation (with a trial and a first license, in one transaction), lookups, the lock.

Creating a customer runs in-process for the API and the CLI alike (`billing customer add` calls
`create_customer` in its own transaction): the caller waits for the answer either way, the work is
one short transaction, and going through a worker would only add a way to fail (no worker running)
and put the new license JWT into the broker's result store.

The one customer lock, `get_for_update`, is core/customers/lock.py (licensing and billing take it
too; this module calls into them).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.billing import trials
from core.billing.repository import get_subscription
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.licensing.service import current_license, reissue_license
from core.plans import Plan
from core.text import clean_text
from models import Customer, License, Subscription

CUSTOMER_ID_PREFIX = "cust_"
_ID_ALPHABET = string.ascii_lowercase + string.digits
# 16 characters of 36: about 82 bits, so ids can neither collide nor be guessed.
_ID_LENGTH = 16
MAX_TEXT = 255


def new_customer_id() -> str:
    return CUSTOMER_ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def normalize_email(email: object) -> str:
    """A syntactically valid address (domain lower-cased), or a 422 naming `email`."""
    if not isinstance(email, str) or not email.strip():
        raise InvalidInputError("email is required", field="email")
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInputError(f"email {email!r} is not valid: {exc}", field="email") from None
    if len(checked.normalized) > MAX_TEXT:
        raise InvalidInputError(f"email is longer than {MAX_TEXT} characters", field="email")
    return checked.normalized


def get_customer(session: Session, customer_id: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.customer_id == customer_id))
    if customer is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customerId")
    return customer


def find_by_email(session: Session, email: str) -> Customer | None:
    return session.scalar(select(Customer).where(func.lower(Customer.email) == email.lower()))


def create_customer(
    session: Session,
    *,
    email: str,
    name: str | None = None,
    company_name: str | None = None,
    plan: str | None = None,
    customer_id: str | None = None,
) -> Customer:
    """A new customer with its trial subscription and first license; the caller commits.

    Email is unique whatever its letter case (409). `customer_id` lets a retried request (the CLI's
    task, redelivered after a crash) find the customer it already created instead of failing.
    """
    email = normalize_email(email)
    name = clean_text(name, "name", max_length=MAX_TEXT)
    company_name = clean_text(company_name, "companyName", max_length=MAX_TEXT)
    spec = trials.parse_plan(plan if plan is not None else Plan.TRIAL.value)
    if customer_id is not None:
        if not customer_id.startswith(CUSTOMER_ID_PREFIX) or len(customer_id) > 64:
            raise InvalidInputError("customerId must look like cust_…", field="customerId")
        existing = session.scalar(select(Customer).where(Customer.customer_id == customer_id))
        if existing is not None:
            if existing.email.lower() == email.lower():
                return existing
            raise ConflictError(f"customer id {customer_id} is taken", field="customerId")
    if find_by_email(session, email) is not None:
        raise _duplicate_email(email)
    customer = Customer(
        customer_id=customer_id or new_customer_id(),
        email=email,
        name=name,
        company_name=company_name,
    )
    try:
        # A savepoint: a concurrent insert of the same email fails here without spoiling the
        # caller's transaction, and becomes the same 409 as the check above.
        with session.begin_nested():
            session.add(customer)
            session.flush()
    except IntegrityError:
        raise _duplicate_email(email) from None
    session.add(trials.new_trial(customer.customer_id, spec))
    session.flush()
    reissue_license(session, customer.customer_id, reason="customer created")
    audit.record(
        session,
        "customer.create",
        customer_id=customer.customer_id,
        after={"email": email, "company_name": company_name, "plan": spec.plan.value},
    )
    return customer


def _duplicate_email(email: str) -> ConflictError:
    return ConflictError(f"a customer with email {email} already exists", field="email")


@dataclass(frozen=True)
class CustomerDetail:
    customer: Customer
    subscription: Subscription | None
    license: License | None


def customer_detail(session: Session, customer_id: str) -> CustomerDetail:
    customer = get_customer(session, customer_id)
    return CustomerDetail(
        customer=customer,
        subscription=get_subscription(session, customer_id),
        license=current_license(session, customer_id),
    )


def list_customers(session: Session, *, limit: int, offset: int) -> tuple[list[Customer], int]:
    total = session.scalar(select(func.count()).select_from(Customer)) or 0
    rows = session.scalars(select(Customer).order_by(Customer.id).limit(limit).offset(offset))
    return list(rows), total
