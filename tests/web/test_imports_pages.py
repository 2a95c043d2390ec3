"""The bulk import's pages, portal and back office: the template, an upload (good, bad, too big),
the preview with every problem at its cell, apply as a job, the report and the generated passwords
(once, for the user's own password), another customer's import as a 404, CSRF on every POST."""

from __future__ import annotations

import html as html_lib
import io
import re

import pytest
import redis
import sqlalchemy as sa
from openpyxl import load_workbook

from app.extensions import db
from app.models import Import, Job, Mailbox
from app.services import imports as import_service
from app.web.portal import imports as import_pages
from tests import factories, sheetkit
from tests.conftest import TEST_REDIS_URL

BM = "Business Mail 100 MB"
HTMX = {"HX-Request": "true"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def text(response) -> str:
    return response.get_data(as_text=True)


def field_error(html: str, field_id: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    return html_lib.unescape(found.group(1)) if found else None


def plain(html: str) -> str:
    """The page's words, tags dropped and spaces folded: what a reader sees."""
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))).replace(" :", ":")


@pytest.fixture
def inline_jobs(app):
    app.config["JOBS_INLINE"] = True
    yield
    app.config["JOBS_INLINE"] = False


@pytest.fixture
def customer(make):
    c = make.customer("contract", {BM: 20})
    return c, make.domain_of(c), make.admin(c)


def upload(client, url: str, data: bytes, name: str = "personale.xlsx", **kw):
    return client.post(url, data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data", **kw)


def good_file(domain: str) -> bytes:
    return sheetkit.filled_template(
        [BM],
        mailboxes=[
            [f"mario.rossi@{domain}", "Segreta-Lunga-1", "Mario Rossi", BM],
            [f"giulia.bianchi@{domain}", "Segreta-Lunga-2", "Giulia Bianchi", BM],
        ],
        aliases=[[f"info@{domain}", f"mario.rossi@{domain}"]],
        lists=[[f"tutti@{domain}", f"mario.rossi@{domain}, giulia.bianchi@{domain}", "Tutto l'ufficio"]],
    )


def imports_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Import))


def mailbox_addresses(customer_id: int) -> set[str]:
    return set(db.session.scalars(sa.select(Mailbox.address).where(Mailbox.customer_id == customer_id)))


def test_the_imports_page_explains_offers_the_template_and_the_upload_form(client, auth, make):
    c = make.customer("contract", {BM: 5, "Business Mail Plus 100 MB": 0, "Professional Suite 5.000 MB": 2})
    auth.login(make.admin(c).email)
    html = text(client.get(f"/customers/{c.id}/imports"))
    assert "<h1>Importa da Excel</h1>" in html and "Come funziona" in html
    assert f'href="/customers/{c.id}/imports"' in html and ">Importa da Excel</a>" in html  # in the menu
    assert 'enctype="multipart/form-data"' in html and 'name="csrf_token"' in html
    assert 'type="file" accept=".xlsx,.csv" required' in html
    assert "al massimo 10 MB" in html and "Nessuna importazione ancora." in html

    template = client.get(f"/customers/{c.id}/imports/modello.xlsx")
    assert template.status_code == 200 and template.mimetype == XLSX
    assert template.headers["Content-Disposition"] == "attachment; filename=modello-importazione.xlsx"
    book = load_workbook(io.BytesIO(template.data))
    assert book.sheetnames[:4] == ["Caselle", "Alias", "Liste", "Istruzioni"]
    # The drop-down offers the contract's classes with an allowance, and only those.
    offered = [row[0].value for row in book["Classi"].iter_rows()]
    assert offered == [BM, "Professional Suite 5.000 MB"]


def test_a_good_file_previews_then_applies_and_the_report_downloads(client, auth, customer, inline_jobs):
    c, domain, admin = customer
    auth.login(admin.email)
    response = upload(client, f"/customers/{c.id}/imports", good_file(domain))
    assert response.status_code == 303
    detail_url = response.headers["Location"]
    assert re.fullmatch(rf"/customers/{c.id}/imports/\d+", detail_url)
    assert mailbox_addresses(c.id) == set()  # the preview writes nothing

    html = text(client.get(detail_url))
    words = plain(html)
    assert "Importazione di personale.xlsx" in words and "Da confermare" in words
    assert "Caselle 2 0 0" in words and "Alias 1 0 0" in words and "Liste di distribuzione 1 0 0" in words
    assert f"mario.rossi@{domain}" in words and "Caselle, riga 2, colonna A" in words
    assert "Mario Rossi · Business Mail 100 MB" in words and f"→ mario.rossi@{domain}" in words
    assert "Segreta-Lunga" not in html  # passwords are never shown back
    assert "Verranno creati 6 elementi" in words  # 2 mailboxes, 1 alias, 1 list, 2 members
    assert "Applica solo le righe valide" not in html and 'name="scope" value="all"' in html

    applied = client.post(detail_url + "/apply", data={"scope": "all"})
    assert applied.status_code == 303 and applied.headers["Location"] == detail_url
    assert mailbox_addresses(c.id) == {f"mario.rossi@{domain}", f"giulia.bianchi@{domain}"}

    words = plain(text(client.get(detail_url)))
    assert "Completata" in words and "Caselle 2 0 0 0" in words
    assert "Importazione finita: 6 elementi creati, 0 già presenti, 0 errori." in words
    assert "Scarica il resoconto" in words and "Password generate" not in words

    report = client.get(detail_url + "/resoconto.xlsx")
    assert report.status_code == 200 and report.mimetype == XLSX
    assert report.headers["Content-Disposition"] == "attachment; filename=personale-esito.xlsx"
    sheet = load_workbook(io.BytesIO(report.data)).active
    lines = [[v for v in row] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert [line[4] for line in lines if line[3] == "Casella"] == [
        f"mario.rossi@{domain}",
        f"giulia.bianchi@{domain}",
    ]
    assert {line[7] for line in lines} == {"Creato"}
    assert "Segreta" not in str(lines)

    # The history lists it: who, file, state, counts, the report.
    history = plain(text(client.get(f"/customers/{c.id}/imports")))
    assert "personale.xlsx" in history and admin.email in history and "Completata" in history
    assert "6 creati · 0 già presenti · 0 errori" in history and "Resoconto" in history

    # The same file again creates nothing twice: everything is already there.
    again = upload(client, f"/customers/{c.id}/imports", good_file(domain))
    words = plain(text(client.get(again.headers["Location"])))
    assert "Caselle 0 2 0" in words and "Non c'è niente da creare" in words


def test_the_preview_shows_every_problem_at_its_cell_and_applies_only_valid_rows_on_request(
    client, auth, customer, inline_jobs
):
    c, domain, admin = customer
    auth.login(admin.email)
    data = sheetkit.filled_template(
        [BM],
        mailboxes=[
            [f"buona@{domain}", "Segreta-Lunga-1", "Buona", BM],
            [f"corta@{domain}", "corta", "Corta", BM],
            ["estranea@altrove.example", "Segreta-Lunga-3", "Estranea", BM],
        ],
        aliases=[[f"info@{domain}", f"nessuno@{domain}"]],
    )
    detail_url = upload(client, f"/customers/{c.id}/imports", data).headers["Location"]
    html = text(client.get(detail_url))
    words = plain(html)
    assert "3 problemi da correggere" in words
    assert "Foglio Caselle, riga 3, colonna B: La password deve avere almeno 8 caratteri." in words
    assert re.search(r"Foglio Caselle, riga 4, colonna A: [^.]*altrove\.example", words)
    assert f"Foglio Alias, riga 2, colonna B: «nessuno@{domain}» non è una casella" in words
    assert re.search(
        r'<button class="btn primary" disabled aria-describedby="apply-why">Applica</button>', html
    )
    assert "Il foglio ha 3 problemi: correggili nel file e caricalo di nuovo." in words
    assert "Applica solo le righe valide" in words

    refused = client.post(detail_url + "/apply", data={"scope": "all"})
    assert refused.status_code == 409 and "applica solo le righe valide" in text(refused)
    assert mailbox_addresses(c.id) == set()

    assert client.post(detail_url + "/apply", data={"scope": "valid"}).status_code == 303
    assert mailbox_addresses(c.id) == {f"buona@{domain}"}
    words = plain(text(client.get(detail_url)))
    assert "Righe con errore" in words and f"corta@{domain}" in words and "Non applicata" in words
    again = client.post(detail_url + "/apply", data={"scope": "valid"})
    assert again.status_code == 409 and "non è più da confermare" in text(again)


def test_many_problems_are_paged_and_those_not_kept_are_counted(client, auth, customer, monkeypatch):
    c, domain, admin = customer
    auth.login(admin.email)
    monkeypatch.setattr(import_service, "MAX_PROBLEMS", 5)
    monkeypatch.setattr(import_pages, "PROBLEMS_PAGE", 3)
    monkeypatch.setattr(import_pages, "ROWS_PAGE", 4)
    rows = [[f"utente{n}@{domain}", "corta", f"Utente {n}", BM] for n in range(1, 8)]
    detail_url = upload(client, f"/customers/{c.id}/imports", sheetkit.filled_template([BM], rows)).headers[
        "Location"
    ]
    html = text(client.get(detail_url))
    words = plain(html)
    assert "7 problemi da correggere" in words
    assert "riga 4, colonna B" in words and "riga 5, colonna B" not in words
    more = re.search(r'<a class="btn small" href="([^"]+)" hx-get="[^"]+"[^>]*>Mostra altri problemi', html)
    page = text(client.get(more.group(1).replace("&amp;", "&"), headers=HTMX))
    words = plain(page)
    assert "riga 5, colonna B" in words and "riga 6, colonna B" in words and "riga 7" not in words
    assert "e altri 2 problemi: correggi questi e ricarica il file per vederli." in words
    assert "<html" not in page  # htmx gets the list items only

    # The rows: the first page, then "Mostra altre righe" brings the next ones with htmx.
    assert f"utente4@{domain}" in html and f"utente5@{domain}" not in html
    rows_url = re.search(r'href="([^"]+/rows\?[^"]+)"', html).group(1).replace("&amp;", "&")
    more_rows = text(client.get(rows_url, headers=HTMX))
    assert f"utente5@{domain}" in more_rows and f"utente7@{domain}" in more_rows
    assert f"utente4@{domain}" not in more_rows and "Mostra altre righe" not in more_rows
    assert client.get(rows_url).status_code == 200  # without JavaScript, a page


def test_bad_files_are_refused_beside_the_file_field_writing_nothing(client, auth, customer):
    c, domain, admin = customer
    auth.login(admin.email)
    url = f"/customers/{c.id}/imports"
    cases = [
        (b"just some words", "note.pdf", "sono accettati i formati .xlsx e .csv"),
        (b"", "vuoto.xlsx", "Il file è vuoto."),
        (b"PK\x03\x04 broken", "rotto.xlsx", "danneggiato"),
    ]
    for data, name, message in cases:
        response = upload(client, url, data, name)
        assert response.status_code == 422, name
        html = text(response)
        assert message in (field_error(html, "f-file") or ""), (name, field_error(html, "f-file"))
        assert 'aria-invalid="true" aria-describedby="f-file-error"' in html
    missing = client.post(url, data={}, content_type="multipart/form-data")
    assert missing.status_code == 422 and "Scegli il file" in field_error(text(missing), "f-file")
    assert imports_count() == 0


def test_a_file_over_the_limit_gets_the_limit_in_words(app, client, auth, customer):
    c, domain, admin = customer
    auth.login(admin.email)
    url = f"/customers/{c.id}/imports"
    saved = app.config["IMPORT_MAX_BYTES"]
    app.config["IMPORT_MAX_BYTES"] = 512 * 1024
    try:
        # Past the file limit: the reader says so, beside the field.
        over = upload(client, url, good_file(domain) + b"\0" * 512 * 1024)
        assert over.status_code == 422
        assert "Il file è troppo grande: al massimo" in field_error(text(over), "f-file")
        # Past the request's own room (the limit and the form around it): the same words, 413.
        huge = upload(client, url, b"x" * (512 * 1024 + 2 * 1024 * 1024))
        assert huge.status_code == 413
        assert field_error(text(huge), "f-file") == "Il file è troppo grande: al massimo 0,5 MB."
    finally:
        app.config["IMPORT_MAX_BYTES"] = saved
    # A file between the app's 2 MiB and the import limit passes the request's size check.
    big = upload(client, url, b"x" * (3 * 1024 * 1024), "grande.csv")
    assert big.status_code == 422 and "troppo grande" not in (field_error(text(big), "f-file") or "")
    # Every other form keeps the app's limit.
    elsewhere = client.post(f"/customers/{c.id}/mailboxes", data={"display_name": "x" * (3 * 1024 * 1024)})
    assert elsewhere.status_code == 413
    assert imports_count() == 0


def test_another_customers_import_is_a_404(client, auth, customer, make):
    c, domain, admin = customer
    other = make.customer("contract", {BM: 5})
    theirs = import_service.preview(factories.SYSTEM, other.id, good_file(make.domain_of(other)), "loro.xlsx")
    mine = import_service.preview(factories.SYSTEM, c.id, good_file(domain), "mio.xlsx")
    auth.login(admin.email)
    for path in (
        f"/customers/{other.id}/imports",
        f"/customers/{other.id}/imports/{theirs.id}",
        f"/customers/{c.id}/imports/{theirs.id}",  # another's import under one's own customer
        f"/customers/{c.id}/imports/{theirs.id}/rows",
        f"/customers/{c.id}/imports/{theirs.id}/resoconto.xlsx",
    ):
        assert client.get(path).status_code == 404, path
    for path in (
        f"/customers/{c.id}/imports/{theirs.id}/apply",
        f"/customers/{other.id}/imports/{theirs.id}/apply",
    ):
        assert client.post(path, data={"scope": "all"}).status_code == 404, path
    assert "loro.xlsx" not in text(client.get(f"/customers/{c.id}/imports"))
    assert client.get(f"/customers/{c.id}/imports/{mine.id}").status_code == 200
    db.session.refresh(theirs)
    assert theirs.state == "previewed"


def test_staff_import_on_behalf_of_a_customer_from_the_back_office(client, auth, customer, make, inline_jobs):
    c, domain, _admin = customer
    staff = make.staff()
    auth.login(staff.email)
    page = text(client.get(f"/admin/customers/{c.id}"))
    assert f'href="/admin/customers/{c.id}/imports">Importazioni</a>' in page

    html = text(client.get(f"/admin/customers/{c.id}/imports"))
    assert f'action="/admin/customers/{c.id}/imports"' in html and c.name in html
    assert f'href="/admin/customers/{c.id}/imports/modello.xlsx"' in html
    response = upload(client, f"/admin/customers/{c.id}/imports", good_file(domain))
    assert response.status_code == 303
    detail_url = response.headers["Location"]
    assert re.fullmatch(rf"/admin/customers/{c.id}/imports/\d+", detail_url)
    assert f'action="{detail_url}/apply"' in text(client.get(detail_url))
    assert client.post(detail_url + "/apply", data={"scope": "all"}).headers["Location"] == detail_url
    assert len(mailbox_addresses(c.id)) == 2
    words = plain(text(client.get(detail_url)))
    assert f"Caricato da {staff.email}" in words and f"applicato da {staff.email}" in words
    assert client.get(detail_url + "/resoconto.xlsx").status_code == 200


def test_a_customer_admin_cannot_open_the_back_office_imports(client, auth, customer):
    c, domain, admin = customer
    auth.login(admin.email)
    assert client.get(f"/admin/customers/{c.id}/imports").status_code == 404
    assert upload(client, f"/admin/customers/{c.id}/imports", good_file(domain)).status_code == 404
    assert imports_count() == 0


def test_a_contract_without_self_administration_is_refused_as_elsewhere(client, auth, make):
    c = make.customer("contract", {BM: 5}, self_service=False)
    auth.login(make.admin(c).email)
    html = text(client.get(f"/customers/{c.id}/imports"))
    assert "non prevede l'amministrazione autonoma" in html and 'type="file"' not in html
    assert ">Importa da Excel</a>" not in html  # not offered in the menu either
    refused = upload(client, f"/customers/{c.id}/imports", good_file(make.domain_of(c)))
    assert refused.status_code == 403 and "amministrazione autonoma" in text(refused)
    assert imports_count() == 0


def test_generated_passwords_download_once_for_the_users_own_password(client, auth, customer, inline_jobs):
    c, domain, admin = customer
    auth.login(admin.email)
    data = sheetkit.filled_template(
        [BM],
        mailboxes=[
            [f"nuovo@{domain}", None, "Nuovo", BM, "Sì"],
            [f"scelta@{domain}", "Segreta-Lunga-9", "Scelta", BM],
        ],
    )
    detail_url = upload(client, f"/customers/{c.id}/imports", data).headers["Location"]
    client.post(detail_url + "/apply", data={"scope": "all"})
    words = plain(text(client.get(detail_url)))
    assert "Abbiamo generato la password di 1 casella." in words
    assert "si può scaricare una sola volta" in words

    wrong = client.post(detail_url + "/passwords", data={"current_password": "Non-la-mia-1"})
    assert wrong.status_code == 422
    assert field_error(text(wrong), "f-current_password") == "La password attuale non è corretta."

    taken = client.post(detail_url + "/passwords", data={"current_password": factories.PASSWORD})
    assert taken.status_code == 200 and taken.mimetype == XLSX
    assert taken.headers["Content-Disposition"] == "attachment; filename=personale-password.xlsx"
    rows = list(load_workbook(io.BytesIO(taken.data)).active.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 1 and rows[0][0] == f"nuovo@{domain}" and len(rows[0][1]) >= 12

    again = client.post(detail_url + "/passwords", data={"current_password": factories.PASSWORD})
    assert again.status_code == 404 and "già state scaricate" in text(again)
    words = plain(text(client.get(detail_url)))
    assert "è stato scaricato il" in words and "current_password" not in text(client.get(detail_url))


@pytest.fixture
def queue_redis(app):
    conn = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"Redis unreachable at {TEST_REDIS_URL}: {e}")
    conn.flushdb()
    saved = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = TEST_REDIS_URL
    yield conn
    app.config["REDIS_URL"] = saved
    conn.flushdb()
    conn.close()


def test_while_applying_the_page_shows_the_job_and_a_dead_job_can_be_resumed(
    app, client, auth, customer, queue_redis
):
    c, domain, admin = customer
    auth.login(admin.email)
    detail_url = upload(client, f"/customers/{c.id}/imports", good_file(domain)).headers["Location"]
    client.post(detail_url + "/apply", data={"scope": "all"})  # queued: no worker runs here
    imp = db.session.scalar(sa.select(Import))
    html = text(client.get(detail_url))
    assert "Importazione in corso" in html and f'id="job-{imp.job_id}"' in html
    assert 'role="progressbar"' in html and 'aria-valuemax="6"' in html and 'aria-valuenow="0"' in html
    assert 'hx-trigger="every 2s"' in html and "Riprendi" not in html
    assert 'hx-trigger="import-finished from:body"' in html

    # The worker died for good: the job failed, the import is left half-way.
    job = db.session.get(Job, imp.job_id)
    job.state = "failed"
    db.session.commit()
    html = text(client.get(detail_url))
    assert "Il lavoro si è interrotto prima della fine" in html and ">Riprendi</button>" in html
    app.config["JOBS_INLINE"] = True
    try:
        assert client.post(detail_url + "/resume").status_code == 303
    finally:
        app.config["JOBS_INLINE"] = False
    assert len(mailbox_addresses(c.id)) == 2
    assert "Completata" in text(client.get(detail_url))
    refused = client.post(detail_url + "/resume")
    assert refused.status_code == 409 and "non è interrotta" in text(refused)

    # The finished job tells the page (htmx) to show the outcome, and says what it did.
    job_url = f"/customers/{c.id}/jobs/{db.session.get(Import, imp.id).job_id}"
    polled = client.get(job_url, headers=HTMX)
    assert polled.headers["HX-Trigger"] == "import-finished"
    assert "Importazione finita: 6 elementi creati" in text(polled)
    state = text(client.get(detail_url, headers=HTMX))
    assert "<html" not in state and "Scarica il resoconto" in state


def test_every_import_post_needs_the_csrf_token(client, auth, customer, make):
    c, domain, admin = customer
    imp = import_service.preview(factories.SYSTEM, c.id, good_file(domain), "a.xlsx")
    auth.login(admin.email)
    base = f"/customers/{c.id}/imports"
    assert upload(client, base, good_file(domain), csrf=False).status_code == 400
    for path in (f"{base}/{imp.id}/apply", f"{base}/{imp.id}/resume", f"{base}/{imp.id}/passwords"):
        assert client.post(path, data={"scope": "all"}, csrf=False).status_code == 400, path
    assert imports_count() == 1 and mailbox_addresses(c.id) == set()


def test_a_file_name_with_any_characters_gives_safe_downloads_and_the_passwords_survive_it(
    client, auth, customer, inline_jobs
):
    """An en dash, a curly apostrophe or a euro sign (not Latin-1) in the uploaded name: the
    downloads still work, named per RFC 6266, and the generated passwords are not lost."""
    c, domain, admin = customer
    auth.login(admin.email)
    data = sheetkit.filled_template([BM], mailboxes=[[f"gen@{domain}", None, "Gen", BM, "Sì"]])
    name = "Nuovi utenti – sede d’€.xlsx"
    detail_url = upload(client, f"/customers/{c.id}/imports", data, name=name).headers["Location"]
    assert client.post(detail_url + "/apply", data={"scope": "all"}).status_code == 303
    for response in (
        client.get(detail_url + "/resoconto.xlsx"),
        client.post(detail_url + "/passwords", data={"current_password": factories.PASSWORD}),
    ):
        assert response.status_code == 200 and response.mimetype == XLSX
        header = response.headers["Content-Disposition"]
        header.encode("latin-1")  # what a WSGI server can send
        assert (
            header.startswith("attachment; filename=") and "%E2%80%93" in header
        )  # the en dash, in filename*
        load_workbook(io.BytesIO(response.data))
