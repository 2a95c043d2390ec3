"""The point account of a Pay-per-Use customer ("Conto Collabra"): balance, how long it lasts, the
consumption as charts and tables, a day's mailboxes, and the exports of the ledger and the charge lines.

Staff see any Pay-per-Use customer's page; a contract customer has no point account: its URL is a 404.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel.dates import get_month_names
from flask import Response, request
from flask_babel import format_currency, format_decimal, get_locale
from flask_babel import gettext as _

from app.models.enums import Plan
from app.services import billing, clock, labels
from app.services.errors import NotFound, ValidationError
from app.web.portal import bp
from app.web.portal.common import customer_view
from app.web.respond import render

CHART_DAYS = 90
TABLE_DAYS = 30
MONTHS_SHOWN = 12


# Amounts for people: points with two decimals and EUR, in the reader's language.


def fmt_points(centipoints: int) -> str:
    return format_decimal(billing.points(centipoints), format="#,##0.00")


def fmt_eur(centipoints: int) -> str:
    return format_currency(billing.eur(centipoints), "EUR")


def month_label(month: date) -> str:
    """ "Maggio 2026": the month's name standing alone, in the reader's language."""
    names = get_month_names("wide", context="stand-alone", locale=get_locale())
    return f"{names[month.month].capitalize()} {month.year}"


def state_label(state: str) -> str:
    return labels.label("wallet_state", state)


def _payg_view(customer_id: int):
    view = customer_view(customer_id)
    if view.customer.plan != Plan.PAYG:
        raise NotFound(_("Il cliente ha un contratto a canone: non ha un conto a punti."))
    return view


# Charts: server-rendered SVG, geometry computed here.

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 240, 10, 10, 34, 34


@dataclass
class Chart:
    points: list[tuple[float, float, date, int]]  # x, y, day, value
    bars: list[tuple[float, float, float, float, date, int]]  # x, y, w, h, day, value
    ticks: list[tuple[float, str]]  # y, label
    zero_y: float
    line: str
    first: date
    last: date
    width: int = WIDTH
    height: int = HEIGHT


def _scale(values: list[int]):
    low, high = min([0, *values]), max([0, *values])
    if high == low:
        high = low + 100
    span = HEIGHT - PAD_T - PAD_B

    def y(v: int) -> float:
        return round(PAD_T + (high - v) * span / (high - low), 1)

    ticks = [(y(v), fmt_points(v)) for v in sorted({low, high, 0})]
    return y, ticks


def balance_chart(series: list[tuple[date, int]]) -> Chart:
    y, ticks = _scale([v for _d, v in series])
    step = (WIDTH - PAD_L - PAD_R) / max(1, len(series) - 1)
    pts = [(round(PAD_L + i * step, 1), y(v), d, v) for i, (d, v) in enumerate(series)]
    return Chart(
        points=pts,
        bars=[],
        ticks=ticks,
        zero_y=y(0),
        line=" ".join(f"{px},{py}" for px, py, _d, _v in pts),
        first=series[0][0],
        last=series[-1][0],
    )


def cost_chart(days: list[billing.ChargedDay]) -> Chart:
    y, ticks = _scale([d.cost for d in days])
    slot = (WIDTH - PAD_L - PAD_R) / max(1, len(days))
    bars = []
    for i, d in enumerate(days):
        top = y(d.cost)
        bars.append(
            (
                round(PAD_L + i * slot + slot * 0.15, 1),
                top,
                round(slot * 0.7, 1),
                round(y(0) - top, 1),
                d.day,
                d.cost,
            )
        )
    return Chart(
        points=[], bars=bars, ticks=ticks, zero_y=y(0), line="", first=days[0].day, last=days[-1].day
    )


# The page.


def _month_arg(value: str | None, today: date) -> date | None:
    if not value:
        return None
    try:
        month = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        return None
    return month if month <= today else None


def _month_end(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def page_context(view, export_form=None, export_errors=None) -> dict:
    customer = view.customer
    account = billing.wallet(view.actor, customer.id)
    today = clock.today()
    chart_start = today - timedelta(days=CHART_DAYS - 1)
    series = billing.balance_series(customer, chart_start, today)
    by_day = billing.charges_by_day(customer, chart_start, today - timedelta(days=1))
    month = _month_arg(request.args.get("month"), today)
    if month is None:
        table_start, table_end = today - timedelta(days=TABLE_DAYS), today - timedelta(days=1)
    else:
        table_start, table_end = month, min(_month_end(month), today - timedelta(days=1))
    table_days = billing.charges_by_day(customer, table_start, table_end) if table_start <= table_end else []
    shown_month = month or today.replace(day=1)
    prev_month = (shown_month - timedelta(days=1)).replace(day=1)
    next_month = _month_end(shown_month) + timedelta(days=1)
    months_from = (today.replace(day=1) - timedelta(days=31 * (MONTHS_SHOWN - 1))).replace(day=1)
    left = account.days_left
    return {
        "customer": customer,
        "account": account,
        "state": account.state,
        "lasts_until": today + timedelta(days=left) if left is not None else None,
        "balance_chart": balance_chart(series),
        "cost_chart": cost_chart(by_day) if by_day else None,
        "table_days": list(reversed(table_days)),
        "table_month": month,
        "prev_month": prev_month,
        "next_month": next_month if next_month <= today else None,
        "months": billing.monthly_totals(customer, months_from, today),
        "export_form": export_form or {"from": today.replace(day=1).isoformat(), "to": today.isoformat()},
        "export_errors": export_errors or {},
        "fmt_points": fmt_points,
        "fmt_eur": fmt_eur,
        "month_label": month_label,
        "state_label": state_label,
    }


@bp.route("/customers/<int:customer_id>/wallet")
def wallet(customer_id: int):
    view = _payg_view(customer_id)
    return render("portal/wallet.html", **page_context(view))


@bp.route("/customers/<int:customer_id>/wallet/days/<day>")
def wallet_day(customer_id: int, day: str):
    view = _payg_view(customer_id)
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise NotFound(_("Giorno non valido.")) from None
    lines = billing.day_lines(view.customer, when)
    classes: dict[str, list[int]] = {}
    for line in lines:
        total = classes.setdefault(line.class_name, [0, 0])
        total[0] += 1
        total[1] += line.centipoints
    return render(
        "portal/wallet_day.html",
        customer=view.customer,
        day=when,
        lines=lines,
        classes=sorted(classes.items()),
        total=sum(line.centipoints for line in lines),
        fmt_points=fmt_points,
        fmt_eur=fmt_eur,
    )


# Exports.


def export_period(args) -> tuple[date, date]:
    """The ?from=YYYY-MM-DD&to=YYYY-MM-DD of an export: valid dates, in order, at most 366 days."""
    errors = {}
    found = {}
    for key in ("from", "to"):
        value = args.get(key, "").strip()
        try:
            found[key] = date.fromisoformat(value) if len(value) == 10 else None
        except ValueError:
            found[key] = None
        if found[key] is None:
            errors[key] = _("Scrivi una data come 2026-05-31.")
    if not errors:
        if found["to"] < found["from"]:
            errors["to"] = _("La data finale viene prima di quella iniziale.")
        elif (found["to"] - found["from"]).days + 1 > billing.MAX_RANGE_DAYS:
            errors["to"] = _(
                "Si esporta al massimo un anno (%(n)d giorni) alla volta.", n=billing.MAX_RANGE_DAYS
            )
    if errors:
        raise ValidationError(errors)
    return found["from"], found["to"]


def _ledger_rows(view, start: date, end: date):
    header = [
        _("Giorno"),
        _("Tipo"),
        _("Punti"),
        _("EUR"),
        _("Riferimento"),
        _("Motivo"),
        _("Registrato da"),
        _("Registrato il"),
    ]
    rows = []
    for e in billing.ledger(view.actor, view.customer.id, start, end):
        day = e.day or clock.local_day(e.created_at)
        rows.append(
            [
                day,
                labels.label("entry_kind", e.kind),
                billing.points(e.centipoints),
                billing.eur(e.centipoints),
                e.reference,
                e.reason,
                e.created_by,
                e.created_at.astimezone(clock.provider_tz()).replace(tzinfo=None, microsecond=0),
            ]
        )
    return header, rows


def _line_rows(view, start: date, end: date):
    header = [_("Giorno"), _("Casella"), _("Classe di servizio"), _("Punti"), _("EUR")]
    rows = [
        [day, line.address, line.class_name, billing.points(line.centipoints), billing.eur(line.centipoints)]
        for day, line in billing.charge_lines(view.customer, start, end)
    ]
    return header, rows


EXPORTS = {"ledger": _ledger_rows, "lines": _line_rows}


def _csv(header, rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in row])
    return out.getvalue().encode("utf-8-sig")  # the BOM: spreadsheets open it as UTF-8


def _xlsx(header, rows, title: str) -> bytes:
    from openpyxl import Workbook  # only the export needs it

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(cell.value, (int, float)) or type(cell.value).__name__ == "Decimal":
                cell.number_format = "0.00"
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@bp.route("/customers/<int:customer_id>/wallet/export/<what>.<fmt>")
def wallet_export(customer_id: int, what: str, fmt: str):
    view = _payg_view(customer_id)
    if what not in EXPORTS or fmt not in ("csv", "xlsx"):
        raise NotFound(_("Esportazione non trovata."))
    try:
        start, end = export_period(request.args)
    except ValidationError as e:
        form = {"from": request.args.get("from", "")[:20], "to": request.args.get("to", "")[:20]}
        return render("portal/wallet.html", status=422, **page_context(view, form, e.errors))
    header, rows = EXPORTS[what](view, start, end)
    name = f"{'movimenti' if what == 'ledger' else 'addebiti'}-{start.isoformat()}-{end.isoformat()}.{fmt}"
    if fmt == "csv":
        body, mimetype = _csv(header, rows), "text/csv; charset=utf-8"
    else:
        title = _("Movimenti") if what == "ledger" else _("Addebiti")
        body = _xlsx(header, rows, title)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
