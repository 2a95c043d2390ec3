"""Warnings in time, the grace period and the hold of a Pay-per-Use point account.

Days left = balance // today's daily cost (`billing.days_left`). The levels are 14, 7,
3, 1 days and 0 (the credit is exhausted: a negative balance, or none while something
costs). When a customer's level goes down past one it was not yet warned of, one email
goes to its users in their language (balance, days left, the day the credit ends, how
to recharge), through the outbox with the dedupe key `credit:<customer>:<level>:<epoch>`:
however often the check runs, a level is mailed once per epoch. `customers.warned_level`
keeps the lowest level mailed; when a recharge lifts the balance above it, the epoch
grows, so the levels are mailed again when the balance falls again.

Out of credit, `customers.negative_since` records since when. The charge path puts the
customer on hold (`app.services.hold`, reason HOLD_REASON) once that lasts more than
BILLING_GRACE_DAYS days; any entry that brings the balance above zero clears it and
lifts a hold that billing put (a hold staff put, with another reason, stays).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for
from flask_babel import force_locale, format_decimal, ngettext
from flask_babel import gettext as _

from app.extensions import db
from app.models import Customer, User
from app.models.enums import Plan
from app.services import billing, clock, hold, labels, limits, outbox
from app.services.access import Actor

LEVELS = (14, 7, 3, 1, 0)
HOLD_REASON = "Credito esaurito"
BILLING = Actor.system("billing", via="job")


def out_of_credit(customer: Customer, cost: int) -> bool:
    return billing.out_of_credit(customer.balance_centipoints, cost)


def level(customer: Customer, cost: int | None = None) -> int | None:
    """The warning level the account is at now (None: more than 14 days, or nothing costs)."""
    cost = billing.daily_cost(customer) if cost is None else cost
    if out_of_credit(customer, cost):
        return 0
    left = billing.days_left(customer, cost)
    if left is None:
        return None
    return next((n for n in reversed(LEVELS[:-1]) if left <= n), None)


def on_billing_hold(customer: Customer) -> bool:
    return customer.on_hold_since is not None and customer.on_hold_reason == HOLD_REASON


def grace_days() -> int:
    return current_app.config["BILLING_GRACE_DAYS"]


def grace_ends(customer: Customer):
    """The last day of the grace period (None when the credit is not exhausted)."""
    if customer.negative_since is None:
        return None
    return clock.local_day(customer.negative_since) + timedelta(days=grace_days())


def review(customer_id: int, *, charged: bool = False) -> int | None:
    """Look at one account after a movement: grace, hold, warnings. Commits; the level mailed, if any.

    charged: after a daily charge (only then may the customer be put on hold)."""
    limits.lock_customer(customer_id)  # one review of a customer at a time
    customer = db.session.get(Customer, customer_id)
    db.session.refresh(customer)
    if customer.plan != Plan.PAYG:
        db.session.commit()
        return None
    cost = billing.daily_cost(customer)
    now = clock.now()
    if out_of_credit(customer, cost):
        if customer.negative_since is None:
            customer.negative_since = now
        elapsed = (clock.local_day(now) - clock.local_day(customer.negative_since)).days
        if charged and elapsed > grace_days():
            hold.put_on_hold(BILLING, customer.id, HOLD_REASON, at=now, commit=False)
    else:
        customer.negative_since = None
        if on_billing_hold(customer):
            hold.lift_hold(BILLING, customer.id, commit=False)
    mailed = _warn(customer, cost)
    db.session.commit()
    outbox.send_queued()
    return mailed


def review_all(customer_ids: Iterable[int] | None = None, *, charged: bool = False) -> int:
    """review() each Pay-per-Use customer (or these); how many mails were queued."""
    if customer_ids is None:
        customer_ids = db.session.scalars(sa.select(Customer.id).where(Customer.plan == Plan.PAYG)).all()
        db.session.rollback()
    return sum(1 for cid in customer_ids if review(cid, charged=charged) is not None)


def _warn(customer: Customer, cost: int) -> int | None:
    now_level = level(customer, cost)
    warned = customer.warned_level
    if warned is not None and (now_level is None or now_level > warned):
        # Lifted above the level last mailed (a recharge): the levels below count again.
        customer.warning_epoch += 1
        customer.warned_level = now_level
        return None
    if now_level is None or (warned is not None and now_level >= warned):
        return None
    customer.warned_level = now_level
    _queue_mail(customer, now_level, cost)
    return now_level


def _recharge_url(customer_id: int) -> str | None:
    try:
        if has_request_context():
            return url_for("portal.recharge", customer_id=customer_id, _external=True)
        base = current_app.config.get("PANEL_URL")
        if base:
            with current_app.test_request_context(base_url=base):
                return url_for("portal.recharge", customer_id=customer_id, _external=True)
    except Exception:  # noqa: BLE001 - the page may not be routed (a CLI without the portal)
        return None
    return None


def _recipients(customer_id: int) -> dict[str, list[str]]:
    rows = db.session.execute(
        sa.select(User.email, User.locale)
        .where(User.customer_id == customer_id, User.active.is_(True))
        .order_by(User.id)
    )
    by_lang: dict[str, list[str]] = {}
    for email, lang in rows:
        by_lang.setdefault(lang or "it", []).append(email)
    return by_lang


def _points(centipoints: int) -> str:
    return format_decimal(billing.points(centipoints), format="#,##0.00")


def _eur(centipoints: int) -> str:
    return format_decimal(billing.eur(centipoints), format="#,##0.00")


def _queue_mail(customer: Customer, at_level: int, cost: int) -> None:
    link = _recharge_url(customer.id)
    left = billing.days_left(customer, cost)
    key = f"credit:{customer.id}:{at_level}:{customer.warning_epoch}"
    brand = current_app.config.get("BRAND_NAME", "")
    for lang, to in _recipients(customer.id).items():
        with force_locale(lang):
            balance = _points(customer.balance_centipoints)
            if at_level == 0:
                subject = _("Credito esaurito: ricarica il conto")
                body = [
                    _("Buongiorno,"),
                    "",
                    _(
                        "il credito del conto di %(name)s è esaurito: il saldo è di %(points)s punti (%(eur)s EUR).",
                        name=customer.name,
                        points=balance,
                        eur=_eur(customer.balance_centipoints),
                    ),
                    ngettext(
                        "Dopo %(num)d giorno di tolleranza le caselle non potranno più accedere alla posta "
                        "(la posta in arrivo resta conservata) finché il conto non torna sopra lo zero.",
                        "Dopo %(num)d giorni di tolleranza le caselle non potranno più accedere alla posta "
                        "(la posta in arrivo resta conservata) finché il conto non torna sopra lo zero.",
                        grace_days(),
                    ),
                ]
            else:
                days = left or 0
                subject = ngettext(
                    "Credito in esaurimento: %(num)d giorno rimasto",
                    "Credito in esaurimento: %(num)d giorni rimasti",
                    days,
                )
                body = [
                    _("Buongiorno,"),
                    "",
                    _(
                        "il saldo del conto di %(name)s è di %(points)s punti (%(eur)s EUR).",
                        name=customer.name,
                        points=balance,
                        eur=_eur(customer.balance_centipoints),
                    ),
                    ngettext(
                        "Al costo di oggi, %(cost)s punti al giorno, il credito basta per %(num)d giorno: "
                        "finisce il %(day)s.",
                        "Al costo di oggi, %(cost)s punti al giorno, il credito basta per %(num)d giorni: "
                        "finisce il %(day)s.",
                        days,
                        cost=_points(cost),
                        day=labels.when(clock.today() + timedelta(days=days), "date"),
                    ),
                ]
            body.append("")
            if link:
                body.append(_("Per ricaricare con un bonifico: %(url)s", url=link))
            else:
                body.append(_("Per ricaricare, apri «Ricarica» nel pannello di controllo."))
            text = "\n".join(body) + "\n\n-- \n" + brand + "\n"
            outbox.queue_email(
                "credit_warning",
                to,
                subject,
                text,
                customer_id=customer.id,
                locale=lang,
                dedupe_key=f"{key}:{lang}",
            )


def banner(customer: Customer) -> dict | None:
    """What the portal's credit banner says of a customer, or None when there is nothing to say
    (more than 14 days of credit, a contract, or a hold, which has its own banner)."""
    if customer.plan != Plan.PAYG or customer.on_hold_since is not None:
        return None
    cost = billing.daily_cost(customer)
    left = billing.days_left(customer, cost)
    out = out_of_credit(customer, cost)
    if not out and (left is None or left > billing.WARNING_DAYS):
        return None
    return {
        "balance": customer.balance_centipoints,
        "days_left": left,
        "out": out,
        "ends": clock.today() + timedelta(days=left or 0),
        "grace_ends": grace_ends(customer),
    }
