"""The back office's page of a domain's migrations from a sheet: the preview (rows and problems, never a
password), the confirmation that creates exactly what was shown, all or nothing, staff only."""

from __future__ import annotations

import html as html_lib
import io
import re
import uuid

import sqlalchemy as sa

from app.extensions import db
from app.models import Migration
from app.services import domains, vault
from tests import factories

SECRET = "Vecchia-" + uuid.uuid4().hex[:10]


def plain(response) -> str:
    page = response.get_data(as_text=True)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _setup(make):
    c = make.customer(domain=f"pagina{uuid.uuid4().hex[:8]}.example")
    boxes = [make.mailbox(c, local) for local in ("anna", "bruno")]
    return c, domains.list_domains(factories.SYSTEM, c.id)[0], boxes


def _upload(client, url: str, content: bytes, name: str = "migra.csv", **form):
    form.setdefault("security", "ssl")
    form.setdefault("verify_cert", "1")
    form["file"] = (io.BytesIO(content), name)
    return client.post(url, data=form, content_type="multipart/form-data")


def _count(domain_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Migration).where(Migration.domain_id == domain_id)
    )


def test_preview_then_create_and_the_password_never_on_the_page(client, auth, make):
    c, domain, (anna, bruno) = _setup(make)
    auth.login(make.staff().email)
    url = f"/admin/domains/{domain.id}/migrations/sheet"
    page = client.get(url)
    assert page.status_code == 200 and "Migrazioni da foglio" in plain(page)

    sheet = f"Casella;Vecchio utente;Vecchia password\nanna;anna.old;{SECRET}\n{bruno.address};bruno.old;{SECRET}\n"
    preview = _upload(client, url, sheet.encode(), host="imap.vecchio.it")
    assert preview.status_code == 200
    words = plain(preview)
    assert anna.address in words and "bruno.old" in words and "imap.vecchio.it:993" in words
    assert "Crea 2 migrazioni" in words
    assert SECRET not in preview.get_data(as_text=True)  # not even inside the sealed token
    assert _count(domain.id) == 0  # the preview wrote nothing

    token = re.search(r'name="token" value="([^"]+)"', preview.get_data(as_text=True)).group(1)
    created = client.post(url, data={"token": token})
    assert created.status_code == 303
    # Where the new drafts are: the domain's migrations.
    assert created.headers["Location"] == f"/admin/domains/{domain.id}/migrations"
    landed = client.get(created.headers["Location"])
    assert "Create 2 migrazioni in bozza" in plain(landed)
    rows = db.session.scalars(sa.select(Migration).where(Migration.domain_id == domain.id)).all()
    assert {r.mailbox_id for r in rows} == {anna.id, bruno.id}
    assert all(vault.unseal_text(r.secret) == SECRET and r.state == "draft" for r in rows)

    again = client.post(url, data={"token": token})  # the same confirmation twice creates nothing more
    assert again.status_code == 422 and "già una migrazione aperta" in plain(again)
    assert _count(domain.id) == 2


def test_errors_name_row_and_column_and_nothing_can_be_confirmed(client, auth, make):
    c, domain, _boxes = _setup(make)
    other = make.customer()
    foreign = make.mailbox(other, "zeno")
    auth.login(make.staff().email)
    url = f"/admin/domains/{domain.id}/migrations/sheet"
    sheet = (
        "mailbox,old username,old password,security\n"
        f"anna,anna.old,{SECRET},\n"
        f"{foreign.address},z,{SECRET},\n"
        f"bruno,bruno.old,{SECRET},tls-maybe\n"
    )
    r = _upload(client, url, sheet.encode(), host="imap.vecchio.it")
    assert r.status_code == 422
    words = plain(r)
    assert "Riga 3, colonna A" in words and "Riga 4, colonna D" in words
    assert 'name="token"' not in r.get_data(as_text=True) and SECRET not in r.get_data(as_text=True)
    assert _count(domain.id) == 0

    # A default of the form that is wrong is said beside its field.
    r = _upload(client, url, f"casella,utente,password\nanna,a,{SECRET}\n".encode(), host="non valido!")
    assert r.status_code == 422
    assert re.search(r'<p class="field-error" id="f-host-error">', r.get_data(as_text=True))
    r = _upload(client, url, b"nome,cognome\nMario,Rossi\n")
    assert r.status_code == 422 and re.search(r'id="f-file-error"', r.get_data(as_text=True))
    r = client.post(url, data={"token": "non-un-token"})
    assert r.status_code == 422 and "carica di nuovo il file" in plain(r)


def test_only_staff_see_the_page(client, auth, make):
    c, domain, _boxes = _setup(make)
    auth.login(make.admin(c).email)
    url = f"/admin/domains/{domain.id}/migrations/sheet"
    assert client.get(url).status_code == 404
    assert (
        _upload(client, url, f"casella,utente,password\nanna,a,{SECRET}\n".encode(), host="h.it").status_code
        == 404
    )
    assert _count(domain.id) == 0
    auth.logout()
    auth.login(make.staff().email)
    assert client.get("/admin/domains/999999/migrations/sheet").status_code == 404
    assert client.post(url, data={"token": "x"}, headers={"X-CSRFToken": ""}, csrf=False).status_code == 400


def test_the_page_links_back_to_the_domains_migrations(client, auth, make):
    c, domain, _boxes = _setup(make)
    auth.login(make.staff().email)
    html = client.get(f"/admin/domains/{domain.id}/migrations/sheet").get_data(as_text=True)
    crumb = re.search(r'<p class="breadcrumb[^"]*">(.*?)</p>', html, re.S)
    assert crumb and f'href="/admin/domains/{domain.id}/migrations"' in crumb.group(1)


def test_a_file_over_the_limit_is_answered_as_the_page_would_answer_whoever_sends_it(app, client, auth, make):
    """The size is refused before the view runs: still no page for a customer, no 500 for a visitor."""
    c, domain, _boxes = _setup(make)
    url = f"/admin/domains/{domain.id}/migrations/sheet"
    saved = app.config["IMPORT_MAX_BYTES"]
    app.config["IMPORT_MAX_BYTES"] = 64 * 1024
    huge = b"casella,utente,password\n" + b"x" * (64 * 1024 + 2 * 1024 * 1024)
    try:
        anonymous = _upload(client, url, huge, host="h.it")
        assert anonymous.status_code in (302, 303, 401), anonymous.status_code
        if anonymous.status_code != 401:
            assert "/login" in anonymous.headers["Location"]
        auth.login(make.admin(c).email)
        customer = _upload(client, url, huge, host="h.it")
        assert customer.status_code == 404
        assert "Pagina non trovata." in plain(customer) and "Migrazioni da foglio" not in plain(customer)
        auth.logout()
        auth.login(make.staff().email)
        staff = _upload(client, url, huge, host="h.it")
        assert staff.status_code == 413 and "Il file è troppo grande" in plain(staff)
    finally:
        app.config["IMPORT_MAX_BYTES"] = saved
    assert _count(domain.id) == 0
