"""The price list for staff: the prices in force per class, each class's history, a new price from a date."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from flask import request, url_for
from flask_babel import gettext as _

from app.services import billing, classes, clock, labels
from app.services.errors import FieldErrors, ValidationError
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.portal.mailboxes import money
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

PAGE, FRAGMENT = "admin/prices.html", "admin/_prices.html"
FIELDS = ("service_class", "points", "valid_from")


def _centipoints(value: str) -> int:
    """Points per day as people type them ("4,50", "4.50", "12") in centipoints; two decimals at most."""
    text = value.strip().replace(" ", "")
    if "," in text:
        text = text.replace(".", "").replace(",", ".")  # 1.234,50 in Italian
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValidationError.one(
            "points", _("Scrivi i punti al giorno come numero, con due decimali al massimo.")
        )
    return int(amount.scaleb(2))


def _day(value: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError.one("valid_from", _("Scrivi la data come AAAA-MM-GG.")) from None


def _groups() -> list:
    """Classes grouped by type, in the guide's order, for the select's <optgroup>s."""
    groups: dict[str, list] = {}
    for cls in classes.all_classes():
        groups.setdefault(cls.type_name, []).append(cls)
    return list(groups.items())


def _context(values: dict | None = None, errors: dict | None = None, saved: str | None = None) -> dict:
    today = clock.today()
    in_force = billing.price_list(today)
    since = billing.price_since(today)
    history: dict[int, list] = {}
    for row in billing.price_history():
        history.setdefault(row.service_class_id, []).append(
            {
                "from": labels.when(row.valid_from, "date"),
                "future": row.valid_from > today,
                "current": row.valid_from == since.get(row.service_class_id),
                **money(row.centipoints_per_day),
                "by": row.created_by,
            }
        )
    rows = []
    for cls in classes.all_classes():
        price = in_force.get(cls.id)
        rows.append(
            {
                "cls": cls,
                "price": money(price) if price is not None else None,
                "since": labels.when(since[cls.id], "date") if cls.id in since else "",
                "history": history.get(cls.id, []),
            }
        )
    return {
        "rows": rows,
        "class_groups": _groups(),
        "values": values or {"service_class": "", "points": "", "valid_from": today.isoformat()},
        "errors": errors or {},
        "saved": saved,
        "today": today.isoformat(),
    }


@bp.route("/prices", methods=["GET", "POST"], endpoint="prices")
@staff_required
def prices_page():
    if request.method == "GET":
        return render(PAGE, FRAGMENT, **_context())
    values = {k: request.form.get(k, "") for k in FIELDS}
    try:
        problems = FieldErrors()
        cls = problems.collect(classes.resolve, values["service_class"])
        amount = problems.collect(_centipoints, values["points"])
        start = problems.collect(_day, values["valid_from"])
        problems.raise_if_any()
        row = billing.set_price(current_actor(), cls.id, amount, start)
    except FORM_ERRORS as e:
        errors = field_errors(e, "points")
        if "centipoints_per_day" in errors:
            errors["points"] = errors.pop("centipoints_per_day")
        return failed(e, PAGE, FRAGMENT, **_context(values, errors))
    shown = money(row.centipoints_per_day)
    message = _(
        "Prezzo di %(c)s: %(p)s punti al giorno (%(e)s EUR) dal %(d)s.",
        c=cls.name,
        p=shown["points"],
        e=shown["eur"],
        d=labels.when(row.valid_from, "date"),
    )
    return done(message, url_for("admin.prices"), FRAGMENT, lambda: _context(saved=message))
