"""Domain squatting, through every door: the portal form, the back office and the JSON API."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Domain
from app.services import domains, users
from app.services.access import Actor
from tests import factories
from tests.dbstate import row_counts as counts

HTMX = {"HX-Request": "true"}


def domain_named(name: str) -> Domain | None:
    return db.session.scalar(sa.select(Domain).where(Domain.name == name))


def add_as_customer(make, c, name: str, user=None) -> Domain:
    return domains.add_domain(Actor.for_user(user or make.admin(c)), c.id, name)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def api(client):
    def for_user(user):
        token = users.create_token(factories.SYSTEM, user, "tests")[1]

        def call(method: str, path: str, json=None):
            headers = {"Authorization": f"Bearer {token}"}
            return client.open("/api/v1" + path, method=method, json=json, headers=headers)

        return call

    return for_user


# The portal form


@pytest.mark.parametrize(
    "name, message",
    [
        ("collabra.it", "è un dominio del fornitore del servizio"),
        ("posta.collabra.it", "è un dominio del fornitore del servizio"),
        ("gmail.com", "è un servizio di posta pubblico"),
        ("Hotmail.IT.", "è un servizio di posta pubblico"),
        ("co.uk", "è un suffisso pubblico"),
        ("azienda.nonesiste", "non è un dominio registrabile"),
    ],
)
def test_a_customer_hears_why_a_name_is_refused_beside_the_field_and_nothing_is_written(
    client, auth, make, name, message
):
    c = make.customer()
    auth.login(make.admin(c).email)
    before = counts()
    for headers in ({}, HTMX):
        response = client.post(f"/customers/{c.id}/domains", data={"name": name}, headers=headers)
        assert response.status_code == 422
        html = text(response)
        assert 'id="domain-name-error"' in html and message in html and 'aria-invalid="true"' in html
        # Only staff may set the public-provider rule aside: a customer is never offered to.
        assert 'name="override_reason"' not in html
    assert counts() == before


def test_a_customers_new_domain_is_pending_with_what_to_do_next(client, auth, make):
    c = make.customer(domain="rossi.example")
    auth.login(make.admin(c).email)
    response = client.post(f"/customers/{c.id}/domains", data={"name": "Bianchi.IT"}, follow_redirects=True)
    html = text(response)
    assert "Dominio bianchi.it aggiunto: è in attesa di verifica." in html
    assert "pubblica il record TXT indicato: si attiva da solo appena lo troviamo nel DNS" in html
    assert "MX 10 mx.collabra.it" in html
    row = re.search(r'<tr id="domain-\d+">.*?</tr>', html[html.index("bianchi.it</a>") - 200 :]).group(0)
    assert "In attesa di verifica" in row and "Approva" not in row
    assert "Intanto puoi già preparare caselle, alias e liste sul dominio" in html
    assert domain_named("bianchi.it").state == "pending"
    # The domain staff added with the customer is active.
    assert re.search(r"rossi\.example</a></td>\s*<td[^>]*>\s*<span class=\"badge badge-active\">Attivo", html)


def test_a_domain_held_by_another_customer_is_not_available_to_a_customer_and_named_to_staff(
    client, auth, make
):
    make.customer(name="Torrefazione Rossi", domain="rossi.it")
    c = make.customer(name="Concorrente")
    auth.login(make.admin(c).email)
    response = client.post(f"/customers/{c.id}/domains", data={"name": "rossi.it"})
    assert response.status_code == 409
    html = text(response)
    assert (
        "Il dominio rossi.it non è disponibile. Se è della tua azienda, contatta il supporto tecnico." in html
    )
    assert "Torrefazione" not in html

    auth.logout()
    auth.login(make.staff().email)
    html = text(client.post(f"/customers/{c.id}/domains", data={"name": "rossi.it"}))
    assert "già registrato sul servizio per il cliente «Torrefazione Rossi» (attivo)" in html


def test_staff_add_a_public_providers_domain_only_with_a_reason(client, auth, make):
    c = make.customer()
    auth.login(make.staff().email)
    refused = client.post(f"/customers/{c.id}/domains", data={"name": "libero.it"}, headers=HTMX)
    assert refused.status_code == 422
    html = text(refused)
    assert "è un servizio di posta pubblico" in html and "scrivi il motivo della deroga" in html
    # The reason field appears once the rule bites.
    assert 'name="override_reason"' in html and "Motivo della deroga (solo supporto)" in html
    assert domain_named("libero.it") is None

    reason = "Italiaonline ci affida la posta di libero.it (contratto firmato)"
    added = client.post(
        f"/customers/{c.id}/domains", data={"name": "libero.it", "override_reason": reason}, headers=HTMX
    )
    assert added.status_code == 200
    assert "Dominio libero.it aggiunto e attivo." in text(added)
    assert domain_named("libero.it").state == "active"
    event = db.session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "domain.create", AuditEvent.target == "libero.it")
    )
    assert event.changes["override_reason"] == [None, reason]
    audit = text(client.get(f"/admin/audit?customer_id={c.id}"))
    assert "motivo della deroga" in audit and "Italiaonline ci affida la posta" in audit


def test_the_provider_domain_is_refused_to_staff_even_with_a_reason(client, auth, make):
    c = make.customer()
    auth.login(make.staff().email)
    response = client.post(
        f"/customers/{c.id}/domains",
        data={"name": "clienti.collabra.it", "override_reason": "Serve per una prova interna"},
    )
    assert response.status_code == 422
    assert "è un dominio del fornitore del servizio" in text(response)
    assert domain_named("clienti.collabra.it") is None


def test_staff_approve_from_the_customers_domains_page(client, auth, make):
    c = make.customer()
    pending = add_as_customer(make, c, "verdi.it")
    auth.login(make.staff().email)
    page = text(client.get(f"/customers/{c.id}/domains"))
    assert f"/customers/{c.id}/domains/{pending.id}/approve" in page and "Approva verdi.it" in page
    response = client.post(f"/customers/{c.id}/domains/{pending.id}/approve", headers=HTMX)
    assert response.status_code == 200
    assert "Dominio verdi.it attivato: ora i server di posta lo servono." in text(response)
    assert domain_named("verdi.it").state == "active"


def test_a_customer_cannot_approve_its_own_domain_nor_see_anothers(client, auth, make):
    c = make.customer()
    mine = add_as_customer(make, c, "mio.it")
    other = make.customer()
    theirs = add_as_customer(make, other, "altrui.it")
    auth.login(make.admin(c).email)
    assert client.post(f"/customers/{c.id}/domains/{mine.id}/approve").status_code == 403
    assert client.post(f"/customers/{c.id}/domains/{theirs.id}/approve").status_code == 404
    assert client.post(f"/customers/{other.id}/domains/{theirs.id}/approve").status_code == 404
    assert client.post(f"/admin/domains/{mine.id}/approve").status_code == 404
    assert client.get("/admin/domains").status_code == 404
    assert {domain_named("mio.it").state, domain_named("altrui.it").state} == {"pending"}
    assert 'name="override_reason"' not in text(client.get(f"/customers/{c.id}/domains"))
    forged = {"name": "gmail.com", "override_reason": "Il dominio è nostro da sempre"}
    assert client.post(f"/customers/{c.id}/domains", data=forged).status_code == 403
    assert domain_named("gmail.com") is None


# The back office


def test_the_back_office_lists_pending_domains_across_customers_and_approves_them(client, auth, make):
    a = make.customer(name="Ottica Verdi")
    b = make.customer(name="Studio Neri")
    a_admin = make.admin(a)
    first = add_as_customer(make, a, "verdi.it", a_admin)
    add_as_customer(make, b, "neri.it")
    auth.login(make.staff().email)

    page = text(client.get("/admin/domains"))
    assert 'Da approvare <span class="muted">(2)</span>' in page
    assert page.index("verdi.it") < page.index("neri.it")  # oldest first
    assert "Ottica Verdi" in page and "Studio Neri" in page
    assert a_admin.email in page  # who added it, from the audit trail
    assert "Domini in attesa (2)" in page  # the navigation's count

    # Without htmx: redirect back to the list with the message.
    response = client.post(f"/admin/domains/{first.id}/approve", follow_redirects=True)
    html = text(response)
    assert "Dominio verdi.it di Ottica Verdi attivato" in html
    assert "Domini in attesa (1)" in html and 'Da approvare <span class="muted">(1)</span>' in html

    # With htmx: the fragment alone; approving twice changes nothing and says so again.
    again = client.post(f"/admin/domains/{first.id}/approve", headers=HTMX)
    assert again.status_code == 200 and "<html" not in again.get_data(as_text=True)
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "domain.approve")).all()
    assert [(e.target, e.customer_id) for e in events] == [("verdi.it", a.id)]
    for missing in (999999, 2**31, 2**63, 2**64):
        assert client.post(f"/admin/domains/{missing}/approve").status_code == 404, missing


def test_the_back_office_customer_page_shows_the_domains_with_their_state(client, auth, make):
    c = make.customer(domain="attivo.example")
    add_as_customer(make, c, "attesa.example")
    auth.login(make.staff().email)
    html = text(client.get(f"/admin/customers/{c.id}"))
    section = html[html.index('id="h-domains"') :]
    assert re.search(
        r"attesa\.example</td>\s*<td[^>]*><span class=\"badge badge-suspended\">In attesa", section
    )
    assert re.search(r"attivo\.example</td>\s*<td[^>]*><span class=\"badge badge-active\">Attivo", section)


# Addresses on a pending domain


def test_mailbox_alias_and_list_pages_say_addresses_on_a_pending_domain_wait_for_it(client, auth, make):
    c = make.customer(domain="attivo.example")
    add_as_customer(make, c, "attesa.example")
    admin = make.admin(c)
    auth.login(admin.email)
    data = {
        "local_part": "anna",
        "domain": "attesa.example",
        "display_name": "Anna",
        "password": "Correct-horse-9",
        "service_class": "Business Mail 100 MB",
    }
    # The form offers the pending domain, marked, and the mailbox can be prepared on it.
    page = text(client.get(f"/customers/{c.id}/mailboxes"))
    assert ">attesa.example (in attesa di verifica)</option>" in page
    assert client.post(f"/customers/{c.id}/mailboxes", data=data).status_code in (200, 303)
    box = db.session.scalar(sa.text("SELECT id FROM mailboxes WHERE address = 'anna@attesa.example'"))
    assert box is not None
    factories.mailbox(c, "bruno")  # on attesa.example too: domain_of() is the first by name
    domains.add_domain(factories.SYSTEM, c.id, "zeta.example")

    for path in ("mailboxes", "aliases", "lists"):
        html = text(client.get(f"/customers/{c.id}/{path}"))
        assert "Dominio in attesa di verifica: attesa.example." in html, path
        assert "funzioneranno (accesso e ricezione della posta) solo quando il supporto tecnico" in html
    html = text(client.get(f"/customers/{c.id}/mailboxes"))
    row = re.search(r'<tr id="mailbox-\d+">.*?anna@<wbr>attesa\.example</a>(.*?)</td>', html).group(1)
    assert "Dominio in attesa" in row
    html = text(client.get(f"/customers/{c.id}/mailboxes/{box}"))
    assert "Dominio in attesa" in html

    domains.approve_domain(factories.SYSTEM, domain_named("attesa.example").id)
    html = text(client.get(f"/customers/{c.id}/mailboxes"))
    assert "Dominio in attesa" not in html and "in attesa di verifica" not in html


# The JSON API


def test_api_a_domains_json_carries_its_state(api, make):
    c = make.customer(domain="attivo.example")
    admin = api(make.admin(c))
    r = admin("POST", f"/customers/{c.id}/domains", {"name": "attesa.example"})
    assert r.status_code == 201
    body = r.get_json()
    assert (body["state"], body["activated_at"]) == ("pending", None)
    states = {d["name"]: d["state"] for d in admin("GET", f"/customers/{c.id}/domains").get_json()}
    assert states == {"attivo.example": "active", "attesa.example": "pending"}
    assert admin("GET", f"/domains/{body['id']}").get_json()["state"] == "pending"


def test_api_refusals_name_the_field_and_a_customer_hears_only_not_available(api, make):
    make.customer(name="Torrefazione Rossi", domain="rossi.it")
    c = make.customer()
    admin = api(make.admin(c))
    before = counts()
    for name, status, words in (
        ("gmail.com", 422, "servizio di posta pubblico"),
        ("mx.collabra.it", 422, "dominio del fornitore"),
        ("co.uk", 422, "suffisso pubblico"),
        ("rossi.it", 409, "non è disponibile"),
        ("posta.rossi.it", 409, "non è disponibile"),
    ):
        r = admin("POST", f"/customers/{c.id}/domains", {"name": name})
        assert r.status_code == status, (name, r.get_json())
        body = r.get_json()
        message = body["errors"]["name"] if status == 422 else body["error"]
        assert words in message and "Rossi" not in message, (name, body)
        if status == 409:
            assert body["field"] == "name"
    # Only staff may give a reason, whatever it is; a non-text one is refused by its type first.
    for reason, status in (("È nostro, davvero", 403), ("\x00", 403), (12, 422)):
        r = admin("POST", f"/customers/{c.id}/domains", {"name": "gmail.com", "override_reason": reason})
        assert r.status_code == status, (reason, r.get_json())
    # The state is the service's to decide, never the caller's.
    r = admin("POST", f"/customers/{c.id}/domains", {"name": "mio.it", "state": "active"})
    assert r.status_code == 422 and "state" in r.get_json()["errors"]
    assert counts() == before


def test_api_staff_override_with_a_reason_and_see_the_holder(api, make):
    make.customer(name="Torrefazione Rossi", domain="rossi.it")
    c = make.customer()
    staff = api(make.staff())
    r = staff("POST", f"/customers/{c.id}/domains", {"name": "rossi.it"})
    assert r.status_code == 409 and "«Torrefazione Rossi»" in r.get_json()["error"]
    r = staff("POST", f"/customers/{c.id}/domains", {"name": "yahoo.it"})
    assert r.status_code == 422 and "motivo della deroga" in r.get_json()["errors"]["name"]
    r = staff("POST", f"/customers/{c.id}/domains", {"name": "yahoo.it", "override_reason": "corto"})
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"override_reason"}
    r = staff("POST", f"/customers/{c.id}/domains", {"name": "yahoo.it", "override_reason": 12})
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"override_reason"}
    r = staff(
        "POST",
        f"/customers/{c.id}/domains",
        {"name": "yahoo.it", "override_reason": "Yahoo Italia è cliente"},
    )
    assert r.status_code == 201 and r.get_json()["state"] == "active"
    event = db.session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "domain.create", AuditEvent.target == "yahoo.it")
    )
    assert event.via == "api" and event.changes["override_reason"] == [None, "Yahoo Italia è cliente"]


def test_api_staff_list_pending_domains_and_approve_audited_a_customer_cannot(api, make):
    c = make.customer()
    pending = add_as_customer(make, c, "attesa.it")
    other = make.customer()
    theirs = add_as_customer(make, other, "altrui.it")
    admin = api(make.admin(c))
    # Another customer's domain is not found; their own is reserved to staff, as every staff-only endpoint.
    assert admin("POST", f"/domains/{theirs.id}/approve").status_code == 404
    r = admin("POST", f"/domains/{pending.id}/approve")
    assert r.status_code == 403 and r.get_json()["error"]
    assert admin("GET", "/domains?state=pending").status_code == 403
    assert domain_named("attesa.it").state == "pending"

    staff = api(make.staff())
    listed = staff("GET", "/domains?state=pending").get_json()
    assert [d["name"] for d in listed] == ["attesa.it", "altrui.it"]
    assert staff("GET", "/domains?state=active").status_code == 422
    r = staff("POST", f"/domains/{pending.id}/approve")
    assert r.status_code == 200
    body = r.get_json()
    assert body["state"] == "active" and body["activated_at"]
    assert staff("POST", f"/domains/{pending.id}/approve").get_json() == body  # idempotent
    assert staff("POST", "/domains/999999/approve").status_code == 404
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "domain.approve")).all()
    assert [(e.target, e.via) for e in events] == [("attesa.it", "api")]
    assert [d["name"] for d in staff("GET", "/domains").get_json()] == ["altrui.it"]


# Rejecting a squatter's pending domain


def squatted(make):
    """A customer that claimed verdi.it (pending) and prepared addresses on it, some used elsewhere."""
    from app.services import aliases, lists, mailboxes

    squatter = make.customer("contract", {"Business Mail 100 MB": 5}, name="Abusivo Srl")
    claim = add_as_customer(make, squatter, "verdi.it")
    own = domains.list_domains(factories.SYSTEM, squatter.id)[0].name
    for local in ("mario", "anna"):
        mailboxes.create_mailbox(
            factories.SYSTEM,
            squatter.id,
            address=f"{local}@verdi.it",
            password=factories.PASSWORD,
            service_class="Business Mail 100 MB",
        )
    keeper = make.mailbox(squatter, "resta")
    aliases.create_alias(factories.SYSTEM, squatter.id, address="info@verdi.it", target="mario@verdi.it")
    aliases.create_alias(factories.SYSTEM, squatter.id, address=f"capo@{own}", target="anna@verdi.it")
    aliases.create_alias(factories.SYSTEM, squatter.id, address=f"altro@{own}", target=keeper.address)
    lists.create_list(factories.SYSTEM, squatter.id, address="tutti@verdi.it", members=["mario@verdi.it"])
    lists.create_list(
        factories.SYSTEM, squatter.id, address=f"soci@{own}", members=["anna@verdi.it", keeper.address]
    )
    return squatter, claim, own


def test_rejecting_a_pending_domain_removes_what_was_prepared_on_it_and_frees_the_name(make):
    from app.models import Alias, DistributionList, ListMember, Mailbox, MailboxPeriod

    squatter, claim, own = squatted(make)
    staff = Actor.for_user(make.staff())
    # The customer's own delete is refused while addresses use the domain: the reason for this door.
    with pytest.raises(domains.Conflict):
        domains.delete_domain(Actor.for_user(make.admin(squatter)), claim.id)
    with pytest.raises(domains.ValidationError):
        domains.reject_domain(staff, claim.id, "   ")
    assert domain_named("verdi.it") is not None

    removed = domains.reject_domain(staff, claim.id, "Il titolare è Ottica Verdi (PEC del 3 marzo)")
    assert removed.mailboxes == ["anna@verdi.it", "mario@verdi.it"]
    assert removed.aliases == [f"capo@{own}", "info@verdi.it"]
    assert removed.lists == ["tutti@verdi.it"]
    assert domain_named("verdi.it") is None
    assert db.session.scalars(sa.select(Mailbox.address)).all() == [f"resta@{own}"]
    assert db.session.scalars(sa.select(Alias.address)).all() == [f"altro@{own}"]
    assert db.session.scalars(sa.select(DistributionList.address)).all() == [f"soci@{own}"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ListMember)) == 1
    # Billing sees the mailboxes end now; only the kept one is still open.
    open_periods = db.session.scalars(
        sa.select(MailboxPeriod.address).where(MailboxPeriod.valid_to.is_(None))
    )
    assert open_periods.all() == [f"resta@{own}"]
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "domain.reject"))
    assert (event.target, event.customer_id) == ("verdi.it", squatter.id)
    assert event.changes["note"] == [None, "Il titolare è Ottica Verdi (PEC del 3 marzo)"]
    assert event.changes["removed"] == sorted(
        ["anna@verdi.it", "mario@verdi.it", f"capo@{own}", "info@verdi.it", "tutti@verdi.it"]
    )
    # The real owner can now add it.
    owner = make.customer(name="Ottica Verdi")
    assert add_as_customer(make, owner, "verdi.it").customer_id == owner.id


def test_an_active_domain_cannot_be_rejected_and_a_customer_cannot_reject(make):
    c = make.customer()
    active = domains.list_domains(factories.SYSTEM, c.id)[0]
    pending = add_as_customer(make, c, "mio.it")
    staff = Actor.for_user(make.staff())
    with pytest.raises(domains.Conflict) as refused:
        domains.reject_domain(staff, active.id, "Non è suo")
    assert refused.value.status == 409
    with pytest.raises(domains.PermissionDenied):
        domains.reject_domain(Actor.for_user(make.admin(c)), pending.id, "Non è mio")
    assert domain_named("mio.it") is not None and domain_named(active.name) is not None


def test_the_back_office_rejects_a_pending_domain_with_a_reason_saying_what_goes(client, auth, make):
    squatter, claim, own = squatted(make)
    auth.login(make.staff().email)
    listed = text(client.get("/admin/domains"))
    assert f"/admin/domains/{claim.id}/reject" in listed and "Rifiuta verdi.it" in listed

    page = text(client.get(f"/admin/domains/{claim.id}/reject"))
    assert "Rifiutare il dominio verdi.it?" in page and "Abusivo Srl" in page
    assert "2 caselle, 2 alias e 1 liste" in page
    for address in ("mario@verdi.it", "anna@verdi.it", "info@verdi.it", f"capo@{own}", "tutti@verdi.it"):
        assert f"<li>{address}</li>" in page, address
    assert f"altro@{own}" not in page and 'name="reason"' in page and 'name="csrf_token"' in page

    missing = client.post(f"/admin/domains/{claim.id}/reject", data={"reason": " "})
    assert missing.status_code == 422 and "Campo obbligatorio" in text(missing)
    assert domain_named("verdi.it") is not None

    done = client.post(
        f"/admin/domains/{claim.id}/reject", data={"reason": "Non è il titolare"}, follow_redirects=True
    )
    html = text(done)
    assert "Dominio verdi.it di Abusivo Srl rifiutato e tolto con 5 indirizzi preparati" in html
    assert "Nessun dominio in attesa." in html
    assert domain_named("verdi.it") is None
    audit_page = text(client.get("/admin/audit?action=domain.reject"))
    assert "Dominio rifiutato" in audit_page and "Non è il titolare" in audit_page

    active = domains.list_domains(factories.SYSTEM, squatter.id)[0]
    assert client.get(f"/admin/domains/{active.id}/reject").status_code == 409
    assert client.post(f"/admin/domains/{active.id}/reject", data={"reason": "x"}).status_code == 409
    for missing_id in (999999, 2**31, 2**63):
        assert client.get(f"/admin/domains/{missing_id}/reject").status_code == 404, missing_id


def test_a_customer_cannot_reach_the_reject_page(client, auth, make):
    c = make.customer()
    mine = add_as_customer(make, c, "mio.it")
    auth.login(make.admin(c).email)
    assert client.get(f"/admin/domains/{mine.id}/reject").status_code == 404
    assert client.post(f"/admin/domains/{mine.id}/reject", data={"reason": "Non è mio"}).status_code == 404
    assert domain_named("mio.it") is not None


def test_api_staff_reject_a_pending_domain_a_customer_cannot(api, make):
    squatter, claim, own = squatted(make)
    other = make.customer()
    theirs = add_as_customer(make, other, "altrui.it")
    admin = api(make.admin(squatter))
    assert admin("POST", f"/domains/{theirs.id}/reject", {"reason": "Non è suo"}).status_code == 404
    r = admin("POST", f"/domains/{claim.id}/reject", {"reason": "Non è mio"})
    assert r.status_code == 403 and r.get_json()["error"]
    assert domain_named("verdi.it") is not None

    staff = api(make.staff())
    for body in (None, {}, {"reason": ""}):
        r = staff("POST", f"/domains/{claim.id}/reject", body)
        assert r.status_code == 422 and "reason" in r.get_json()["errors"], body
    active = domains.list_domains(factories.SYSTEM, squatter.id)[0]
    r = staff("POST", f"/domains/{active.id}/reject", {"reason": "Non è suo"})
    assert r.status_code == 409 and r.get_json()["error"]
    claim_id = claim.id
    r = staff("POST", f"/domains/{claim_id}/reject", {"reason": "Il titolare ha scritto"})
    assert r.status_code == 200
    assert r.get_json() == {
        "id": claim_id,
        "customer_id": squatter.id,
        "name": "verdi.it",
        "mailboxes": ["anna@verdi.it", "mario@verdi.it"],
        "aliases": [f"capo@{own}", "info@verdi.it"],
        "lists": ["tutti@verdi.it"],
    }
    assert staff("POST", f"/domains/{claim_id}/reject", {"reason": "Di nuovo"}).status_code == 404
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "domain.reject")).all()
    assert [(e.target, e.via, e.changes["note"][1]) for e in events] == [
        ("verdi.it", "api", "Il titolare ha scritto")
    ]
