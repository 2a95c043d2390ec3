"""Asking for more mailboxes: how many and why, one open request per class, a decision with a reason, an email.

Regression for the walk-through: "Chiedi più caselle" made three identical
+1 requests, each telling staff "after approval: 5", and the customer never
learned why a request was refused.
"""

from __future__ import annotations

import logging
import re
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Allowance, CapacityRequest, User
from app.services import capacity, classes
from app.services.access import Actor
from app.services.errors import ValidationError
from tests.smtp_sink import SmtpSink, free_port

HX = {"HX-Request": "true"}
BM100 = "Business Mail 100 MB"


@pytest.fixture
def smtp(app):
    sink = SmtpSink().start()
    saved = {k: app.config[k] for k in ("SMTP_HOST", "SMTP_PORT", "SALES_EMAIL", "JOBS_INLINE")}
    # The mails go through the outbox, sent by `send_email` jobs: run here at once
    # (tests/integration/test_jobs.py runs them in a worker).
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, SALES_EMAIL="", JOBS_INLINE=True)
    yield sink
    app.config.update(saved)
    sink.stop()


@pytest.fixture
def studio(make):
    c = make.customer("contract", {BM100: 5}, name="Studio Verdi", domain="verdi.example")
    for _ in range(5):
        make.mailbox(c)
    c.contact_email = "segreteria@verdi-contatti.example"
    db.session.commit()
    admin = make.admin(c, "it@verdi.example")
    return c, admin


def _allowance(c) -> int:
    return db.session.scalar(sa.select(Allowance.max_accounts).where(Allowance.customer_id == c.id))


def _ask_on_page(client, c, n="3", note="Tre nuovi praticanti a gennaio", cls=None):
    return client.post(
        f"/customers/{c.id}/capacity-requests",
        data={"service_class": cls or classes.resolve(BM100).id, "extra_accounts": n, "note": note},
    )


def test_asking_again_for_a_class_revises_the_open_request(client, auth, studio):
    c, admin = studio
    auth.login(admin.email)
    for _ in range(3):
        assert _ask_on_page(client, c, n="1", note="Un nuovo collega").status_code == 303
    revised = _ask_on_page(client, c, n="3", note="Tre nuovi praticanti a gennaio")
    assert revised.status_code == 303
    page = client.get(revised.headers["Location"]).get_data(as_text=True)
    assert "Richiesta aggiornata: ora chiedi 3 caselle Business Mail 100 MB in più" in page
    [req] = db.session.scalars(sa.select(CapacityRequest)).all()
    assert (req.extra_accounts, req.note, req.status) == (3, "Tre nuovi praticanti a gennaio", "open")
    assert req.updated_at is not None


def test_the_database_refuses_a_second_open_request_for_a_class(app, make, studio):
    c, admin = studio
    req = capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=2, note="Due assunti"
    ).request
    db.session.add(
        CapacityRequest(customer_id=c.id, service_class_id=req.service_class_id, extra_accounts=1, note="bis")
    )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # Once decided, the class may be asked for again.
    capacity.decide(make.SYSTEM, req.id, approve=False, reason="Non ora")
    again = capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=1, note="Riprovo"
    )
    assert again.created and again.request.id != req.id


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"extra_accounts": "2", "note": ""}, "note", "Scrivi perché ti servono"),
        ({"extra_accounts": "0", "note": "Serve"}, "extra_accounts", "Deve essere tra 1 e 10000"),
        ({"extra_accounts": "", "note": "Serve"}, "extra_accounts", "Deve essere un numero intero"),
        ({"extra_accounts": "99999999999999999999", "note": "Serve"}, "extra_accounts", "Deve essere tra"),
        ({"extra_accounts": "2", "note": "x" * 1001}, "note", "Al massimo 1000 caratteri"),
    ],
)
def test_a_request_needs_a_number_and_a_reason(client, auth, studio, form, field, message):
    c, admin = studio
    auth.login(admin.email)
    response = client.post(
        f"/customers/{c.id}/capacity-requests", data={"service_class": classes.resolve(BM100).id, **form}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'aria-invalid="true"' in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CapacityRequest)) == 0


def test_the_form_is_offered_before_the_limit_from_the_dashboard(client, auth, make):
    c = make.customer("contract", {BM100: 5, "Business Mail Plus 100 MB": 2})
    make.mailbox(c)
    auth.login(make.admin(c).email)
    dashboard = client.get(f"/customers/{c.id}/").get_data(as_text=True)
    cls_id = classes.resolve(BM100).id
    link = f"/customers/{c.id}/capacity-requests?class={cls_id}#ask"
    assert f'href="{link}"' in dashboard and "Chiedi più caselle Business Mail 100 MB" in dashboard
    page = client.get(link.split("#")[0]).get_data(as_text=True)
    assert re.search(rf'<option value="{cls_id}" selected>Business Mail 100 MB · 1 di 5 in uso', page)
    assert 'name="extra_accounts"' in page and 'name="note"' in page


def test_the_limit_notice_asks_how_many_and_why(client, auth, make):
    c = make.customer("contract", {BM100: 1}, domain="pieno.example")
    make.mailbox(c)
    auth.login(make.admin(c).email)
    data = {
        "local_part": "luca",
        "domain": "pieno.example",
        "display_name": "Luca",
        "password": "Luca-pass-123",
    }
    notice = client.post(f"/customers/{c.id}/mailboxes", data={**data, "service_class": BM100}, headers=HX)
    html = notice.get_data(as_text=True)
    assert notice.status_code == 409 and 'name="extra_accounts"' in html and 'name="note"' in html
    cls_id = classes.resolve(BM100).id
    refused = client.post(
        f"/customers/{c.id}/capacity-requests",
        data={"service_class": cls_id, "fixed": "1", "extra_accounts": "2", "note": ""},
        headers=HX,
    )
    assert refused.status_code == 422
    assert f'id="capacity-{cls_id}"' in refused.get_data(as_text=True)
    assert "Scrivi perché ti servono" in refused.get_data(as_text=True)
    sent = client.post(
        f"/customers/{c.id}/capacity-requests",
        data={"service_class": cls_id, "fixed": "1", "extra_accounts": "2", "note": "Arrivano Luca e Sara"},
        headers=HX,
    )
    assert sent.status_code == 200 and sent.headers["HX-Retarget"] == "#limit-notice"
    assert "2 caselle Business Mail 100 MB in più" in sent.get_data(as_text=True)
    [req] = capacity.list_requests(Actor.system(), customer_id=c.id)
    assert (req.extra_accounts, req.note) == (2, "Arrivano Luca e Sara")


def test_staff_approve_a_different_number_and_the_customer_reads_it(client, auth, make, studio, smtp):
    c, admin = studio
    auth.login(admin.email)
    _ask_on_page(client, c, n="3")
    req = db.session.scalar(sa.select(CapacityRequest))
    staff = make.staff()
    auth.logout()
    auth.login(staff.email)
    page = client.get("/admin/capacity-requests").get_data(as_text=True)
    assert "Tre nuovi praticanti a gennaio" in page and "5 / 5" in page
    assert "dopo l'approvazione" not in page  # the number is staff's to choose now
    response = client.post(
        f"/admin/capacity-requests/{req.id}/decision",
        data={"decision": "approve", "accounts": "2", "reason": "Due ora, la terza a marzo"},
        headers=HX,
    )
    assert response.status_code == 200
    assert "Studio Verdi ha ora 2 caselle Business Mail 100 MB in più (limite: 7)" in response.get_data(
        as_text=True
    )
    assert _allowance(c) == 7

    auth.logout()
    auth.login(admin.email)
    mine = client.get(f"/customers/{c.id}/capacity-requests").get_data(as_text=True)
    row = mine[mine.index(f'id="capacity-request-{req.id}"') :]
    assert "Approvata" in row and "2 caselle in più concesse" in row and "Due ora, la terza a marzo" in row

    [mail] = smtp.wait_for(1)
    assert sorted(mail.envelope_to) == ["it@verdi.example", "segreteria@verdi-contatti.example"]
    assert mail.subject == "Richiesta al commerciale approvata: Business Mail 100 MB"
    assert "La richiesta di 3 caselle Business Mail 100 MB in più" in mail.body
    assert "Concesse 2 caselle invece delle 3 richieste." in mail.body
    assert "Il contratto ora prevede 7 caselle Business Mail 100 MB." in mail.body
    assert "Motivo: Due ora, la terza a marzo" in mail.body
    assert f"/customers/{c.id}/capacity-requests" in mail.body


def test_a_rejection_needs_a_reason_the_customer_reads(client, auth, make, studio, smtp):
    c, admin = studio
    req = capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=4, note="Quattro stagisti"
    ).request
    auth.login(make.staff().email)
    url = f"/admin/capacity-requests/{req.id}/decision"
    refused = client.post(url, data={"decision": "reject", "reason": "  "}, headers=HX)
    assert refused.status_code == 422
    assert "Scrivi il motivo del rifiuto" in refused.get_data(as_text=True)
    assert db.session.get(CapacityRequest, req.id).status == "open"
    done = client.post(url, data={"decision": "reject", "reason": "Gli stagisti usano le caselle esistenti"})
    assert done.status_code == 303
    assert _allowance(c) == 5

    auth.logout()
    auth.login(admin.email)
    mine = client.get(f"/customers/{c.id}/capacity-requests").get_data(as_text=True)
    assert "Rifiutata" in mine and "Gli stagisti usano le caselle esistenti" in mine
    assert "Respinta" not in mine
    [mail] = smtp.wait_for(1)
    assert mail.subject == "Richiesta al commerciale rifiutata: Business Mail 100 MB"
    assert "Motivo: Gli stagisti usano le caselle esistenti" in mail.body


def test_each_admin_reads_the_mail_in_their_language(app, make, studio, smtp):
    c, admin = studio
    english = make.admin(c, "boss@verdi.example")
    db.session.get(User, english.id).locale = "en"
    db.session.commit()
    req = capacity.request_capacity(
        Actor.for_user(english), c.id, service_class=BM100, extra_accounts=1, note="One more"
    ).request
    capacity.decide(make.SYSTEM, req.id, approve=True)
    mails = smtp.wait_for(2)
    by_to = {tuple(sorted(m.envelope_to)): m for m in mails}
    # The contact address goes with the language of whoever asked.
    assert set(by_to) == {("it@verdi.example",), ("boss@verdi.example", "segreteria@verdi-contatti.example")}
    from zoneinfo import ZoneInfo

    day = req.created_at.astimezone(ZoneInfo(app.config["TIMEZONE"]))  # the mails' dates are the panel's
    assert f"{day:%d/%m/%Y}" in by_to[("it@verdi.example",)].body
    english_day = f"{day.day} {day:%b %Y}"
    assert english_day in by_to[("boss@verdi.example", "segreteria@verdi-contatti.example")].body


def test_a_mail_that_cannot_leave_does_not_undo_the_decision(app, make, studio, caplog):
    c, admin = studio
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), JOBS_INLINE=True)  # nobody listens there
    try:
        req = capacity.request_capacity(
            Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=1, note="Uno"
        ).request
        with caplog.at_level(logging.WARNING, logger="app.services.outbox"):
            decided = capacity.decide(make.SYSTEM, req.id, approve=True)
    finally:
        app.config.update(SMTP_HOST="", JOBS_INLINE=False)
    assert decided.status == "approved" and _allowance(c) == 6
    assert "mail not sent" in caplog.text


def test_sales_hear_of_a_new_request(app, make, studio, smtp):
    c, admin = studio
    app.config["SALES_EMAIL"] = "commerciale@collabra.example"
    capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=2, note="Due soci"
    )
    [mail] = smtp.wait_for(1)
    assert mail.envelope_to == ["commerciale@collabra.example"]
    assert mail.subject == "Nuova richiesta al commerciale: Studio Verdi, Business Mail 100 MB"
    assert "Studio Verdi chiede 2 caselle Business Mail 100 MB in più." in mail.body
    assert "Motivo: Due soci" in mail.body


def test_sales_hear_of_a_revision_once_not_of_every_edit(app, make, studio, smtp):
    c, admin = studio
    app.config["SALES_EMAIL"] = "commerciale@collabra.example"
    ask = lambda n, note: capacity.request_capacity(  # noqa: E731
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=n, note=note
    )
    ask(2, "Due soci")
    ask(2, "Due soci")  # the same again: nothing changed, nothing to tell
    ask(3, "Tre soci")  # edited right away, then again: sales are not flooded
    ask(4, "Quattro soci")
    time.sleep(0.5)
    assert [m.subject for m in smtp.received] == [
        "Nuova richiesta al commerciale: Studio Verdi, Business Mail 100 MB"
    ]
    # Later on, a revision is news again.
    req = db.session.scalar(sa.select(CapacityRequest).where(CapacityRequest.customer_id == c.id))
    req.updated_at = req.updated_at - capacity.REVISION_MAIL_GAP
    db.session.commit()
    ask(5, "Cinque soci")
    mails = smtp.wait_for(2)
    assert mails[1].subject == "Richiesta al commerciale modificata: Studio Verdi, Business Mail 100 MB"
    assert "Studio Verdi chiede 5 caselle Business Mail 100 MB in più." in mails[1].body


def test_a_decision_checks_the_number(app, make, studio):
    c, admin = studio
    req = capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=1, note="Uno"
    ).request
    for bad in ("0", "-3", "abc", 10_001, True):
        with pytest.raises(ValidationError) as e:
            capacity.decide(make.SYSTEM, req.id, approve=True, accounts=bad)
        assert "accounts" in e.value.errors
    assert db.session.get(CapacityRequest, req.id).status == "open" and _allowance(c) == 5


def test_api_revise_approve_a_different_number_and_reject(client, make, studio):
    from app.services import users

    c, admin = studio
    admin_token = users.create_token(make.SYSTEM, admin, "t")[1]
    staff_token = users.create_token(make.SYSTEM, make.staff(), "t")[1]

    def call(token, path, body=None):
        return client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {token}"})

    body = {"service_class": BM100, "extra_accounts": 2, "note": "Due soci"}
    first = call(admin_token, f"/customers/{c.id}/capacity-requests", body)
    assert first.status_code == 201
    again = call(admin_token, f"/customers/{c.id}/capacity-requests", {**body, "extra_accounts": 4})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["extra_accounts"] == 4 and again.get_json()["updated_at"]
    approved = call(staff_token, f"/capacity-requests/{first.get_json()['id']}/approve", {"accounts": 3})
    assert approved.status_code == 200
    assert (approved.get_json()["granted_accounts"], _allowance(c)) == (3, 8)


def test_the_limit_notice_in_an_edited_row_is_not_a_form_inside_the_edit_form(client, auth, make):
    """Forms cannot nest: the browser would send the request form's button to the edit form."""
    c = make.customer("contract", {BM100: 2, "Business Mail Plus 100 MB": 1})
    make.mailbox(c, "plus", service_class="Business Mail Plus 100 MB")
    box = make.mailbox(c, "anna")
    auth.login(make.admin(c).email)
    html = client.post(
        f"/customers/{c.id}/mailboxes/{box.id}",
        data={"display_name": "Anna", "service_class": "Business Mail Plus 100 MB"},
        headers=HX,
    ).get_data(as_text=True)
    depth, deepest = 0, 0
    for tag in re.findall(r"<(/?)form\b", html):
        depth += -1 if tag else 1
        deepest = max(deepest, depth)
    assert html.count("<form") == 2 and deepest == 1


def test_a_reason_on_several_lines_is_kept_other_control_characters_are_not(client, auth, studio):
    c, admin = studio
    auth.login(admin.email)
    assert _ask_on_page(client, c, note="Tre praticanti:\r\nLuca, Sara\r\ne Marco").status_code == 303
    req = db.session.scalar(sa.select(CapacityRequest))
    assert req.note == "Tre praticanti:\nLuca, Sara\ne Marco"
    refused = _ask_on_page(client, c, note="Motivo\x00nascosto")
    assert refused.status_code == 422 and "Contiene caratteri non ammessi" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(CapacityRequest, req.id).note == "Tre praticanti:\nLuca, Sara\ne Marco"
