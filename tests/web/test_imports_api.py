"""Bulk provisioning through the API: upload -> preview with every problem at its cell, apply as
a job, the report, generated passwords once; bad files, sizes and media types; tenant scoping."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from openpyxl import load_workbook

from app.extensions import db
from app.models import Alias, Import, Mailbox
from app.services import passwords, users
from tests import factories, sheetkit

CLASS = "Business Mail 100 MB"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Api:
    def __init__(self, client, token: str):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def get(self, path: str):
        return self.client.get("/api/v1" + path, headers=self.headers)

    def post(self, path: str, json=None, **kw):
        return self.client.post("/api/v1" + path, json=json, headers=self.headers, **kw)

    def upload(self, customer_id: int, data: bytes, filename: str = "caselle.xlsx"):
        return self.post(
            f"/customers/{customer_id}/imports",
            data={"file": (io.BytesIO(data), filename)},
            content_type="multipart/form-data",
        )


@pytest.fixture
def ctx(client, make):
    c = make.customer("contract", {CLASS: 10}, name="Rossi Srl")
    other = make.customer("contract", {CLASS: 10}, name="Bianchi Spa")

    def api(user) -> Api:
        return Api(client, users.create_token(factories.SYSTEM, user, "tests")[1])

    class Ctx:
        customer, domain = c, make.domain_of(c)
        admin_user = make.admin(c)
        admin = api(admin_user)
        staff = api(make.staff())
        other_admin = api(make.admin(other))
        other_customer = other

    return Ctx


@pytest.fixture
def inline(app, monkeypatch):
    """Jobs run in the process that starts them (no worker)."""
    monkeypatch.setitem(app.config, "JOBS_INLINE", True)


def book(domain: str, *rows, aliases=()) -> bytes:
    return sheetkit.filled_template([CLASS], mailboxes=list(rows), aliases=list(aliases))


def good_rows(domain: str) -> list[list]:
    return [
        [f"mario@{domain}", "Primavera-2026!", "Mario Rossi", CLASS, None],
        [f"anna@{domain}", "Autunno-2026!", "Anna", CLASS, None],
    ]


def mailbox_addresses() -> set[str]:
    return set(db.session.scalars(sa.select(Mailbox.address)))


def fits(client, path: str, method: str, status: int, answer: object) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    responses = doc["paths"][path][method]["responses"][str(status)]
    schema = responses["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(answer)]
    assert not problems, problems


def test_the_preview_lists_every_problem_at_its_cell_and_writes_no_mailbox(ctx, client):
    d = ctx.domain
    data = book(
        d,
        *good_rows(d),
        [f"corta@{d}", "abc", "Corta", CLASS, None],
        ["nessuno@altrove.example", "Inverno-2026!", "Fuori", CLASS, None],
        [f"mario@{d}", "Estate-2026!!", "Doppio", CLASS, None],
    )
    before = mailbox_addresses()
    r = ctx.admin.upload(ctx.customer.id, data, "nuove caselle.xlsx")
    assert r.status_code == 201, r.get_json()
    got = r.get_json()
    assert r.headers["Location"].endswith(f"/api/v1/imports/{got['id']}")
    assert got["state"] == "previewed" and got["filename"] == "nuove caselle.xlsx"
    assert got["counts"]["mailbox"] == {"create": 2, "present": 0, "error": 3}
    assert got["to_create"] == 2 and got["problem_count"] == len(got["errors"]) == 3
    places = {(e["sheet"], e["row"], e["column"]) for e in got["errors"]}
    assert places == {("Caselle", 4, "B"), ("Caselle", 5, "A"), ("Caselle", 6, "A")}
    short = next(e for e in got["errors"] if e["row"] == 4)
    assert "password" in short["message"].lower()
    assert "mario@" in next(e for e in got["errors"] if e["row"] == 6)["message"]
    assert got["links"]["apply"].endswith(f"/imports/{got['id']}/apply")
    assert got["links"]["report"] is None and got["links"]["job"] is None
    # Passwords are never shown back.
    assert "Primavera-2026!" not in r.get_data(as_text=True)
    assert mailbox_addresses() == before
    fits(client, "/api/v1/customers/{customer_id}/imports", "post", 201, got)

    detail = ctx.admin.get(f"/imports/{got['id']}").get_json()
    assert detail["errors"] == got["errors"] and detail["result"] is None and detail["job"] is None
    fits(client, "/api/v1/imports/{import_id}", "get", 200, detail)
    history = ctx.admin.get(f"/customers/{ctx.customer.id}/imports").get_json()
    assert [h["id"] for h in history] == [got["id"]] and history[0]["created_by"] == ctx.admin_user.email
    fits(client, "/api/v1/customers/{customer_id}/imports", "get", 200, history)


def test_the_file_may_be_the_body_itself_named_by_the_query(ctx):
    d = ctx.domain
    r = ctx.admin.post(
        f"/customers/{ctx.customer.id}/imports?filename=elenco.xlsx",
        data=book(d, *good_rows(d)),
        content_type=XLSX,
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["filename"] == "elenco.xlsx" and r.get_json()["to_create"] == 2
    rows = [sheetkit.MAILBOX_HEADER, [f"luca@{d}", "Primavera-2026!", "Luca", CLASS, ""]]
    r = ctx.admin.post(
        f"/customers/{ctx.customer.id}/imports?filename=luca.csv",
        data=sheetkit.csv_bytes(rows, delimiter=";"),
        content_type="text/csv; charset=utf-8",
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["counts"]["mailbox"]["create"] == 1 and r.get_json()["filename"] == "luca.csv"


def test_a_file_that_is_not_a_spreadsheet_is_422_on_file_and_nothing_is_stored(ctx):
    r = ctx.admin.upload(ctx.customer.id, b"%PDF-1.4 not a sheet", "contratto.pdf")
    assert r.status_code == 422
    assert list(r.get_json()["errors"]) == ["file"]
    assert ".xlsx" in r.get_json()["errors"]["file"]
    r = ctx.admin.upload(ctx.customer.id, b"", "vuoto.xlsx")
    assert r.status_code == 422 and "vuoto" in r.get_json()["errors"]["file"]
    r = ctx.admin.post(
        f"/customers/{ctx.customer.id}/imports",
        data={"altro": (io.BytesIO(b"x"), "x.xlsx")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["file"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Import)) == 0


def test_a_json_body_or_another_media_type_is_415(ctx):
    for kw in ({"json": {"file": "caselle.xlsx"}}, {"data": b"a,b", "content_type": "text/plain"}):
        r = ctx.admin.post(f"/customers/{ctx.customer.id}/imports", **kw)
        assert r.status_code == 415, kw
        assert "multipart/form-data" in r.get_json()["error"]


def test_a_file_over_the_limit_is_413_saying_the_limit(ctx, app, monkeypatch):
    d = ctx.domain
    # Past MAX_CONTENT_LENGTH (2 MiB) but within IMPORT_MAX_BYTES: read, and refused for what it is.
    big = b"PK" + b"\0" * (3 * 1024 * 1024)
    r = ctx.admin.upload(ctx.customer.id, big, "grande.xlsx")
    assert r.status_code == 422, r.status_code
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 1024 * 1024)
    # Over the limit by a little (inside the form's envelope), and by much (stopped while read).
    for size in (1024 * 1024 + 10, 3 * 1024 * 1024):
        r = ctx.admin.upload(ctx.customer.id, b"\0" * size, "grande.xlsx")
        assert r.status_code == 413, size
        assert r.get_json() == {"error": "Il file è troppo grande: al massimo 1 MB."}
        r = ctx.admin.post(f"/customers/{ctx.customer.id}/imports", data=b"\0" * size, content_type=XLSX)
        assert r.status_code == 413 and "al massimo 1 MB" in r.get_json()["error"]
    assert ctx.admin.upload(ctx.customer.id, book(d, *good_rows(d))).status_code == 201
    # Elsewhere the API keeps its own limit and words.
    r = ctx.admin.post(
        f"/customers/{ctx.customer.id}/aliases",
        data=b"{" * (3 * 1024 * 1024),
        content_type="application/json",
    )
    assert r.status_code == 413 and r.get_json() == {"error": "La richiesta è troppo grande."}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Import)) == 1


def test_apply_starts_a_job_that_creates_the_mailboxes_and_the_report(ctx, client, inline):
    d = ctx.domain
    data = book(d, *good_rows(d), aliases=[[f"info@{d}", f"mario@{d}"]])
    imp = ctx.admin.upload(ctx.customer.id, data).get_json()
    r = ctx.admin.get(f"/imports/{imp['id']}/report")
    assert r.status_code == 404 and r.get_json()["error"]

    r = ctx.admin.post(f"/imports/{imp['id']}/apply")
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert r.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["kind"] == "bulk_import" and job["state"] == "done"
    fits(client, "/api/v1/imports/{import_id}/apply", "post", 202, job)
    assert {f"mario@{d}", f"anna@{d}"} <= mailbox_addresses()
    assert db.session.scalar(sa.select(Alias.address)) == f"info@{d}"
    mario = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == f"mario@{d}"))
    assert passwords.verify_mailbox_password(mario.password_hash, "Primavera-2026!")

    detail = ctx.admin.get(f"/imports/{imp['id']}").get_json()
    assert detail["state"] == "done" and detail["job"]["id"] == job["id"]
    assert detail["result"]["mailbox"] == {"created": 2} and detail["result"]["alias"] == {"created": 1}
    assert detail["links"]["apply"] is None and detail["links"]["report"].endswith("/report")
    fits(client, "/api/v1/imports/{import_id}", "get", 200, detail)
    # Applying again is refused: the import has ended.
    assert ctx.admin.post(f"/imports/{imp['id']}/apply").status_code == 409

    r = ctx.admin.get(f"/imports/{imp['id']}/report")
    assert r.status_code == 200 and r.mimetype == XLSX
    assert (
        "attachment" in r.headers["Content-Disposition"]
        and "caselle-esito.xlsx" in r.headers["Content-Disposition"]
    )
    ws = load_workbook(io.BytesIO(r.data)).active
    lines = [[str(v) if v is not None else "" for v in row] for row in ws.iter_rows(values_only=True)]
    assert any(f"mario@{d}" in line and "Creato" in line for line in lines)
    assert "Primavera-2026!" not in repr(lines)


def test_a_preview_with_problems_is_409_unless_valid_only(ctx, inline):
    d = ctx.domain
    data = book(d, *good_rows(d), [f"corta@{d}", "abc", "Corta", CLASS, None])
    imp = ctx.admin.upload(ctx.customer.id, data).get_json()
    r = ctx.admin.post(f"/imports/{imp['id']}/apply", {})
    assert r.status_code == 409 and "1 problema" in r.get_json()["error"]
    assert mailbox_addresses() == set()
    r = ctx.admin.post(f"/imports/{imp['id']}/apply", {"valid_only": "yes"})
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["valid_only"]
    r = ctx.admin.post(f"/imports/{imp['id']}/apply", {"valid_only": True})
    assert r.status_code == 202 and r.get_json()["state"] == "done"
    assert mailbox_addresses() == {f"mario@{d}", f"anna@{d}"}
    detail = ctx.admin.get(f"/imports/{imp['id']}").get_json()
    assert detail["valid_only"] is True and detail["result"]["mailbox"] == {"created": 2, "skipped": 1}


def test_generated_passwords_are_given_once_to_the_user_who_confirms_their_password(ctx, inline):
    d = ctx.domain
    data = book(d, [f"gen@{d}", None, "Generata", CLASS, "Sì"], good_rows(d)[0])
    imp = ctx.admin.upload(ctx.customer.id, data).get_json()
    assert imp["links"]["generated_passwords"] is None
    assert ctx.admin.post(f"/imports/{imp['id']}/apply").status_code == 202
    detail = ctx.admin.get(f"/imports/{imp['id']}").get_json()
    assert detail["generated_count"] == 1
    url = f"/imports/{imp['id']}/generated-passwords"
    assert detail["links"]["generated_passwords"].endswith(url)

    r = ctx.admin.post(url, {"current_password": "Sbagliata-123"})
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["current_password"]
    r = ctx.admin.post(url)
    assert r.status_code == 422
    r = ctx.admin.post(url, {"current_password": factories.PASSWORD})
    assert r.status_code == 200 and r.mimetype == XLSX
    assert r.headers["Cache-Control"] == "no-store"
    rows = list(load_workbook(io.BytesIO(r.data)).active.iter_rows(values_only=True))
    [(address, password)] = [row[:2] for row in rows[1:]]
    assert address == f"gen@{d}"
    gen = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == address))
    assert passwords.verify_mailbox_password(gen.password_hash, password)
    # Once: the second call finds nothing, even with the right password.
    r = ctx.admin.post(url, {"current_password": factories.PASSWORD})
    assert r.status_code == 404 and r.get_json()["error"]
    assert ctx.admin.get(f"/imports/{imp['id']}").get_json()["links"]["generated_passwords"] is None


def test_another_customers_import_is_404_everywhere(ctx, inline):
    d = ctx.domain
    imp = ctx.admin.upload(ctx.customer.id, book(d, [f"gen@{d}", None, "Gen", CLASS, "Sì"])).get_json()
    assert ctx.admin.post(f"/imports/{imp['id']}/apply").status_code == 202
    other = ctx.other_admin
    missing = other.get("/imports/99999999").get_json()
    calls = [
        other.get(f"/imports/{imp['id']}"),
        other.get(f"/imports/{imp['id']}/report"),
        other.post(f"/imports/{imp['id']}/apply", {"valid_only": True}),
        other.post(f"/imports/{imp['id']}/generated-passwords", {"current_password": factories.PASSWORD}),
        other.post(f"/imports/{imp['id']}/generated-passwords", data=b"{", content_type="application/json"),
        other.get(f"/customers/{ctx.customer.id}/imports"),
        other.upload(ctx.customer.id, book(d, *good_rows(d))),
        other.post(f"/customers/{ctx.customer.id}/imports", json={"not": "a file"}),
    ]
    for r in calls:
        assert r.status_code == 404, (r.request.path, r.status_code)
        assert set(r.get_json()) == {"error"}
    assert missing == calls[0].get_json()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Import)) == 1
    # The owner still has its one download.
    r = ctx.admin.post(f"/imports/{imp['id']}/generated-passwords", {"current_password": factories.PASSWORD})
    assert r.status_code == 200


def test_staff_import_on_behalf_of_a_customer(ctx, inline):
    d = ctx.domain
    imp = ctx.staff.upload(ctx.customer.id, book(d, *good_rows(d))).get_json()
    assert ctx.staff.post(f"/imports/{imp['id']}/apply").status_code == 202
    assert mailbox_addresses() == {f"mario@{d}", f"anna@{d}"}
    assert [i["id"] for i in ctx.admin.get(f"/customers/{ctx.customer.id}/imports").get_json()] == [imp["id"]]


def test_resume_runs_an_interrupted_import_again_and_is_refused_otherwise(ctx, client, inline):
    from app.models import Import, Job

    d = ctx.domain
    imp = ctx.admin.upload(ctx.customer.id, book(d, *good_rows(d))).get_json()
    assert ctx.admin.post(f"/imports/{imp['id']}/resume").status_code == 409  # waiting, not interrupted
    # Interrupted: applying, and its job ended (a worker died for good).
    dead = Job(
        kind="bulk_import",
        queue="bulk",
        customer_id=ctx.customer.id,
        requested_by="x",
        args=[imp["id"]],
        state="failed",
    )
    db.session.add(dead)
    db.session.flush()
    db.session.execute(
        sa.update(Import).where(Import.id == imp["id"]).values(state="applying", job_id=dead.id)
    )
    db.session.commit()
    r = ctx.admin.post(f"/imports/{imp['id']}/resume")
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["kind"] == "bulk_import" and r.headers["Location"].endswith(
        f"/api/v1/jobs/{r.get_json()['id']}"
    )
    fits(client, "/api/v1/imports/{import_id}/resume", "post", 202, r.get_json())
    assert ctx.admin.get(f"/imports/{imp['id']}").get_json()["state"] == "done"
    assert {f"mario@{d}", f"anna@{d}"} <= mailbox_addresses()
    assert ctx.admin.post(f"/imports/{imp['id']}/resume").status_code == 409
