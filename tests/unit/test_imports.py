"""The import service: a file checked in full at its cells, nothing written by a preview; apply
creates through the same rules as the forms, once, and keeps no secret after the end."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Alias, AuditEvent, DistributionList, Import, ImportRow, Job, ListMember, Mailbox
from app.models.enums import ImportState
from app.services import clock, customers, imports, passwords
from app.services.access import Actor
from app.services.errors import Conflict, NotFound, ValidationError
from tests import billingkit, sheetkit

C100 = "Business Mail 100 MB"
C5000 = "Business Mail 5.000 MB"
SECRET = "Segreta-Lunga-42"


@pytest.fixture
def inline(app):
    saved = app.config["JOBS_INLINE"]
    app.config["JOBS_INLINE"] = True
    yield
    app.config["JOBS_INLINE"] = saved


@pytest.fixture
def rossi(make):
    return make.customer("contract", {C100: 5, C5000: 2}, domain="rossi.it")


def book(mailboxes=(), aliases=(), lists=()) -> bytes:
    return sheetkit.filled_template([C100, C5000], mailboxes=mailboxes, aliases=aliases, lists=lists)


def problems_at(imp: Import) -> dict[tuple, str]:
    return {(p["sheet"], p["row"], p["column"]): p["message"] for p in imp.problems}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def report_rows(imp: Import) -> list[tuple]:
    db.session.refresh(imp)
    sheet = openpyxl.load_workbook(io.BytesIO(imp.report)).active
    return list(sheet.iter_rows(values_only=True))[1:]


GOOD = dict(
    mailboxes=[
        ["anna@rossi.it", SECRET, "Anna Rossi", C100],
        ["BRUNO@Rossi.it ", SECRET, "Bruno", C100],
        ["carla@rossi.it", None, "Carla", C5000, "Sì"],
    ],
    aliases=[["info@rossi.it", "anna@rossi.it"], ["vendite@rossi.it", "bruno@rossi.it"]],
    lists=[["tutti@rossi.it", "anna@rossi.it, bruno@rossi.it;carla@rossi.it\nsocio@partner.com", "Tutti"]],
)


def test_a_good_file_is_previewed_with_what_it_will_create_and_nothing_is_written(make, rossi):
    imp = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "caselle.xlsx")
    assert imp.problems == [] and imp.problem_count == 0
    assert imp.counts["mailbox"]["create"] == 3
    assert imp.counts["alias"]["create"] == 2
    assert imp.counts["list"]["create"] == 1
    assert imp.counts["member"]["create"] == 4
    assert imp.state == ImportState.PREVIEWED
    assert count(Mailbox) == count(Alias) == count(DistributionList) == 0
    addresses = [r.address for r in imports.rows_page(imp, op="mailbox")]
    assert addresses == ["anna@rossi.it", "bruno@rossi.it", "carla@rossi.it"]


def test_every_problem_is_reported_at_its_cell(make, rossi):
    make.mailbox(rossi, "esistente")
    make.alias(rossi, "occupato", db.session.scalar(sa.select(Mailbox)))
    data = book(
        mailboxes=[
            ["anna@rossi.it", SECRET, "Anna", C100],  # 2: fine
            ["bob@rossi.it", "corta", "Bob", C100],  # 3: weak password
            ["x@altro.it", SECRET, "X", C100],  # 4: not the customer's domain
            ["dino@rossi.it", SECRET, "Dino", "Business Mail 7 MB"],  # 5: unknown class
            ["ANNA@rossi.it", SECRET, "Anna bis", C100],  # 6: repeated
            ["esistente@rossi.it", SECRET, "Già", C100],  # 7: present, not a problem
            ["occupato@rossi.it", SECRET, "Occ", C100],  # 8: an alias has it
            ["eva@rossi.it", None, "Eva", C100],  # 9: no password, none to generate
            ["ugo@rossi.it", "password", "Ugo", C100],  # 10: a common password
        ],
        aliases=[["info@rossi.it", "nessuno@rossi.it"], ["a@gmail.com", "anna@rossi.it"]],
        lists=[["tutti@rossi.it", "anna@rossi.it, fantasma@rossi.it, non-un-indirizzo", ""]],
    )
    imp = imports.preview(make.SYSTEM, rossi.id, data, "caselle.xlsx")
    at = problems_at(imp)
    assert "almeno 8 caratteri" in at[("Caselle", 3, "B")]
    assert "altro.it" in at[("Caselle", 4, "A")]
    assert ("Caselle", 5, "D") in at
    assert "riga 2 del foglio Caselle" in at[("Caselle", 6, "A")]
    assert ("Caselle", 7, "A") not in at
    assert "alias" in at[("Caselle", 8, "A")]
    assert "Manca la password" in at[("Caselle", 9, "B")]
    assert "più usate" in at[("Caselle", 10, "B")]
    assert "nessuno@rossi.it" in at[("Alias", 2, "B")]
    assert "gmail.com" in at[("Alias", 3, "A")]
    members = [(p["row"], p["column"], p["message"]) for p in imp.problems if p["sheet"] == "Liste"]
    assert [m[:2] for m in members] == [(2, "B"), (2, "B")]
    assert any("fantasma@rossi.it" in m[2] for m in members) and any(
        "non-un-indirizzo" in m[2] for m in members
    )
    assert imp.counts["mailbox"] == {"create": 1, "present": 1, "error": 7}
    assert imp.problem_count == len(imp.problems) == 11
    assert count(Mailbox) == 1 and count(Alias) == 1  # only what the test made


def test_the_contract_rows_past_the_allowance_say_by_how_many(make, rossi):
    make.mailbox(rossi, "gia1", service_class=C5000)
    rows = [[f"u{i}@rossi.it", SECRET, f"U{i}", C5000] for i in range(4)]
    imp = imports.preview(make.SYSTEM, rossi.id, book(mailboxes=rows), "c.xlsx")
    at = problems_at(imp)
    # 2 allowed, 1 in use, 4 in the file: the last 3 rows are past it, each at its class cell.
    assert set(at) == {("Caselle", 3, "D"), ("Caselle", 4, "D"), ("Caselle", 5, "D")}
    assert "mancano 3 caselle" in at[("Caselle", 5, "D")]


def test_a_pay_per_use_credit_that_cannot_pay_one_day_is_a_problem_of_the_file(make):
    billingkit.seed_prices()
    c = make.customer("payg", domain="payg.it")
    rows = [[f"u{i}@payg.it", SECRET, f"U{i}", C100] for i in range(3)]
    imp = imports.preview(make.SYSTEM, c.id, book(mailboxes=rows), "c.xlsx")
    assert [p["row"] for p in imp.problems] == [None]
    assert "Credito insufficiente" in imp.problems[0]["message"]
    customers_balance = 3 * billingkit.price(C100)
    db.session.execute(
        sa.text("UPDATE customers SET balance_centipoints = :b WHERE id = :c"),
        {"b": customers_balance, "c": c.id},
    )
    db.session.commit()
    assert imports.preview(make.SYSTEM, c.id, book(mailboxes=rows), "c.xlsx").problems == []


def test_passwords_are_sealed_never_shown_and_wiped_at_the_end(make, rossi, inline):
    imp = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "c.xlsx")
    stored = db.session.scalars(sa.select(ImportRow.secret).where(ImportRow.secret.is_not(None))).all()
    assert len(stored) == 2 and all(SECRET.encode() not in s for s in stored)
    assert SECRET not in repr(imp.problems) and SECRET not in repr(
        db.session.scalars(sa.select(AuditEvent.changes)).all()
    )
    imports.start_apply(make.SYSTEM, imp.id)
    assert db.session.scalar(sa.select(sa.func.count()).where(ImportRow.secret.is_not(None))) == 0
    job = db.session.get(Job, imp.job_id)
    assert job.args == [imp.id]
    assert all(SECRET not in str(cell) for row in report_rows(imp) for cell in row)


def test_apply_creates_through_the_service_rules_and_reports_every_row(make, rossi, inline):
    imp = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "c.xlsx")
    job = imports.start_apply(make.SYSTEM, imp.id)
    db.session.refresh(imp)
    assert job.state == "done" and imp.state == ImportState.DONE
    anna = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == "anna@rossi.it"))
    assert passwords.verify_mailbox_password(anna.password_hash, SECRET)
    assert anna.display_name == "Anna Rossi"
    assert db.session.scalar(sa.select(Alias.target_id).where(Alias.address == "vendite@rossi.it")) == (
        db.session.scalar(sa.select(Mailbox.id).where(Mailbox.address == "bruno@rossi.it"))
    )
    tutti = db.session.scalar(sa.select(DistributionList).where(DistributionList.address == "tutti@rossi.it"))
    assert sorted(m.address for m in tutti.members) == [
        "anna@rossi.it",
        "bruno@rossi.it",
        "carla@rossi.it",
        "socio@partner.com",
    ]
    assert tutti.description == "Tutti"
    outcomes = {(r[0], r[1], r[3], r[4], r[5]): r[7] for r in report_rows(imp)}
    assert outcomes[("Caselle", 3, "Casella", "bruno@rossi.it", None)] == "Creato"
    assert outcomes[("Liste", 2, "Membro di lista", "tutti@rossi.it", "socio@partner.com")] == "Creato"
    assert len(outcomes) == 3 + 2 + 1 + 4
    assert imp.result["mailbox"] == {"created": 3}


def test_applying_the_same_file_again_creates_nothing_twice(make, rossi, inline):
    first = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "c.xlsx")
    imports.start_apply(make.SYSTEM, first.id)
    again = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "c.xlsx")
    assert again.problems == []
    assert all(per["create"] == 0 for per in again.counts.values())
    imports.start_apply(make.SYSTEM, again.id)
    db.session.refresh(again)
    assert again.result == {
        "mailbox": {"present": 3},
        "alias": {"present": 2},
        "list": {"present": 1},
        "member": {"present": 4},
    }
    assert count(Mailbox) == 3 and count(Alias) == 2 and count(ListMember) == 4


def test_a_run_killed_half_way_is_finished_by_the_next_with_nothing_lost_or_twice(make, rossi, inline):
    rows = [[f"u{i}@rossi.it", SECRET, f"U{i}", C100] for i in range(5)]
    imp = imports.preview(make.SYSTEM, rossi.id, book(mailboxes=rows), "c.xlsx")
    imports.start_apply(make.SYSTEM, imp.id)  # runs inline: done; now replay a crash on a copy
    assert count(Mailbox) == 5
    # A second import of 5 more, its first run "killed" after claiming 4 rows and creating 2.
    rows2 = [[f"v{i}@rossi.it", SECRET, f"V{i}", C5000] for i in range(2)] + [
        [f"w{i}@rossi.it", SECRET, f"W{i}", C100] for i in range(0)
    ]
    imp2 = imports.preview(make.SYSTEM, rossi.id, book(mailboxes=rows2), "c2.xlsx")
    dead = Job(
        kind="bulk_import",
        queue="bulk",
        customer_id=rossi.id,
        requested_by="x",
        args=[imp2.id],
        state="failed",
    )
    db.session.add(dead)
    db.session.execute(
        sa.update(Import).where(Import.id == imp2.id).values(state=ImportState.APPLYING, job_id=None)
    )
    db.session.commit()
    claimed = imports._claim(imp2.id, dead.id)
    context = imports._context(type("Ctx", (), {"actor": make.SYSTEM})(), imp2)
    imports._create_mailboxes(context, claimed[:1], imp2.id)  # one created before the "kill"
    assert count(Mailbox) == 6
    assert imports.resumable(db.session.get(Import, imp2.id))
    imports.resume(make.SYSTEM, imp2.id)
    db.session.refresh(imp2)
    assert imp2.state == ImportState.DONE
    assert imp2.result == {"mailbox": {"created": 2}}
    assert count(Mailbox) == 7


def test_problems_block_apply_unless_only_the_valid_rows_are_asked_for(make, rossi, inline):
    data = book(mailboxes=[["anna@rossi.it", SECRET, "Anna", C100], ["bob@rossi.it", "corta", "Bob", C100]])
    imp = imports.preview(make.SYSTEM, rossi.id, data, "c.xlsx")
    with pytest.raises(Conflict, match="1 problema"):
        imports.start_apply(make.SYSTEM, imp.id)
    assert count(Mailbox) == 0
    imports.start_apply(make.SYSTEM, imp.id, valid_only=True)
    db.session.refresh(imp)
    assert [m.address for m in db.session.scalars(sa.select(Mailbox))] == ["anna@rossi.it"]
    assert imp.result["mailbox"] == {"created": 1, "skipped": 1}
    skipped = [r for r in report_rows(imp) if r[4] == "bob@rossi.it"]
    assert skipped[0][7] == "Non applicata" and "almeno 8" in skipped[0][8]
    with pytest.raises(Conflict):
        imports.start_apply(make.SYSTEM, imp.id, valid_only=True)  # not waiting any more


def test_the_contract_is_checked_again_when_applying(make, rossi, inline):
    rows = [[f"u{i}@rossi.it", SECRET, f"U{i}", C5000] for i in range(2)]
    imp = imports.preview(make.SYSTEM, rossi.id, book(mailboxes=rows), "c.xlsx")
    assert imp.problems == []
    customers.set_contract(
        make.SYSTEM,
        rossi.id,
        [{"service_class": C100, "max_accounts": 5}, {"service_class": C5000, "max_accounts": 1}],
        True,
    )
    imports.start_apply(make.SYSTEM, imp.id)
    db.session.refresh(imp)
    assert imp.result["mailbox"] == {"created": 1, "error": 1}
    assert count(Mailbox) == 1
    assert any("Limite del contratto" in (r[8] or "") for r in report_rows(imp))


def test_generated_passwords_log_in_and_are_given_once_to_who_confirms_their_password(make, rossi, inline):
    admin = make.admin(rossi)
    actor = Actor.for_user(admin)
    data = book(
        mailboxes=[["gen@rossi.it", None, "Gen", C100, "Sì"], ["mia@rossi.it", SECRET, "Mia", C100, "no"]]
    )
    imp = imports.preview(actor, rossi.id, data, "c.xlsx")
    imports.start_apply(actor, imp.id)
    db.session.refresh(imp)
    assert imp.generated_count == 1
    with pytest.raises(ValidationError):
        imports.take_generated_passwords(actor, imp.id, "sbagliata")
    name, data = imports.take_generated_passwords(actor, imp.id, make.PASSWORD)
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert rows[1][0] == "gen@rossi.it"
    gen = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == "gen@rossi.it"))
    assert passwords.verify_mailbox_password(gen.password_hash, rows[1][1])
    assert len(rows) == 2  # the password the customer wrote is not in it
    with pytest.raises(NotFound):
        imports.take_generated_passwords(actor, imp.id, make.PASSWORD)
    assert db.session.get(Import, imp.id).generated is None


def test_another_customers_import_is_not_found(make, rossi):
    other = make.customer("contract", {C100: 5}, domain="altro.it")
    imp = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "c.xlsx")
    stranger = Actor.for_user(make.admin(other))
    for call in (
        lambda: imports.get_import(stranger, imp.id),
        lambda: imports.start_apply(stranger, imp.id),
        lambda: imports.report(stranger, imp.id),
        lambda: imports.preview(stranger, rossi.id, book(**GOOD), "c.xlsx"),
    ):
        with pytest.raises(NotFound):
            call()


def test_an_unreadable_file_is_refused_and_nothing_is_stored(make, rossi):
    with pytest.raises(ValidationError) as refused:
        imports.preview(make.SYSTEM, rossi.id, b"not a workbook at all", "c.xlsx")
    assert "file" in refused.value.errors
    assert count(Import) == 0


def test_previews_never_applied_and_generated_files_never_taken_are_wiped(make, rossi, inline):
    waiting = imports.preview(make.SYSTEM, rossi.id, book(**GOOD), "c.xlsx")
    applied = imports.preview(
        make.SYSTEM, rossi.id, book(mailboxes=[["g@rossi.it", None, "G", C100, "Sì"]]), "g.xlsx"
    )
    imports.start_apply(make.SYSTEM, applied.id)
    clock.set_now(clock.now() + timedelta(hours=25))
    try:
        assert imports.expire_abandoned() == {"expired": 1, "generated_wiped": 1, "failed": 0}
    finally:
        clock.reset()
    db.session.expire_all()
    assert db.session.get(Import, waiting.id).state == ImportState.EXPIRED
    assert db.session.scalar(sa.select(sa.func.count()).where(ImportRow.secret.is_not(None))) == 0
    assert db.session.get(Import, applied.id).generated is None
    with pytest.raises(Conflict):
        imports.start_apply(make.SYSTEM, waiting.id)


def test_the_guides_one_sheet_file_is_understood(make):
    c = make.customer("contract", {C5000: 10, C100: 10, "Business Mail 1.000 MB": 10}, domain="rossi.example")
    data, expected = sheetkit.messy_workbook()
    imp = imports.preview(make.SYSTEM, c.id, data, "Foglio caselle.xlsx")
    assert imp.problems == []
    created = [r for r in imports.rows_page(imp, op="mailbox") if r.action == "create"]
    assert [r.address for r in created] == [e["address"].strip().lower() for e in expected]
    assert [r.data["service_class"] for r in created] == [C5000, C100, "Business Mail 1.000 MB"]
    assert imp.counts["alias"]["create"] == 4
    assert imp.counts["list"]["create"] == 3  # info, amministrazione, vendite
    members = {(r.address, r.member) for r in imports.rows_page(imp, op="member")}
    assert ("info@rossi.example", "anna.bianchi@rossi.example") in members and len(members) == 4


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("C:\\Users\\anna\\caselle.xlsx", "caselle.xlsx"),
        ("../../etc/passwd", "passwd"),
        ('a"; filename*=x.html.xlsx', "a filename*=x.html.xlsx"),
        ("rossi\r\nX-Header: 1.xlsx", "rossiX-Header: 1.xlsx"),
        ("", "foglio.xlsx"),
        ("...", "foglio.xlsx"),
    ],
)
def test_an_uploaded_file_name_keeps_only_its_printable_last_part(given, kept):
    assert imports.clean_filename(given) == kept


def _applying(make, customer, rows, name="c.xlsx") -> Import:
    """A previewed import moved to applying by hand, as start_apply leaves it for its job."""
    imp = imports.preview(make.SYSTEM, customer.id, book(mailboxes=rows), name)
    db.session.execute(sa.update(Import).where(Import.id == imp.id).values(state=ImportState.APPLYING))
    db.session.commit()
    return imp


def _job_row(customer, import_id, state="running", kind="bulk_import_part") -> Job:
    row = Job(
        kind=kind, queue="bulk", customer_id=customer.id, requested_by="x", args=[import_id], state=state
    )
    db.session.add(row)
    db.session.commit()
    return row


def _ctx(make):
    return type("Ctx", (), {"actor": make.SYSTEM})()


def test_a_cancel_stops_the_helpers_at_their_next_row_and_the_end_keeps_nothing_sealed(make, rossi):
    rows = [[f"g{i}@rossi.it", None, f"G{i}", C100, "Sì"] for i in range(2)] + [
        [f"p{i}@rossi.it", SECRET, f"P{i}", C100] for i in range(4)
    ]
    imp = _applying(make, rossi, rows)
    helper = _job_row(rossi, imp.id)
    claimed = imports._claim(imp.id, helper.id)
    assert len(claimed) == 6
    context = imports._context(_ctx(make), imp)
    imports._create_mailboxes(context, claimed[:1], imp.id)  # the helper made one, then...
    imports._stop(imp.id)  # ...the main job was cancelled
    imports._create_mailboxes(context, claimed[1:], imp.id)  # the helper's next rows: nothing
    assert count(Mailbox) == 1
    db.session.execute(sa.update(Job).where(Job.id == helper.id).values(state="done"))
    db.session.commit()
    imports._wait_for_claims(imp.id, 0)
    result = imports.finish(imp.id, ImportState.CANCELLED)
    db.session.refresh(imp)
    assert imp.state == ImportState.CANCELLED
    assert result == {"mailbox": {"created": 1, "skipped": 5}}
    assert imp.generated_count == 1  # the one generated before the cancel is handed out
    assert db.session.scalar(sa.select(sa.func.count()).where(ImportRow.secret.is_not(None))) == 0


def test_finish_happens_once_and_never_turns_a_cancelled_import_into_done(make, rossi):
    imp = _applying(make, rossi, [["a@rossi.it", SECRET, "A", C100]])
    imports._stop(imp.id)
    first = imports.finish(imp.id, ImportState.CANCELLED)
    report = db.session.get(Import, imp.id).report
    assert imports.finish(imp.id, ImportState.DONE) == first
    assert imports.finish(imp.id, ImportState.CANCELLED) == first
    db.session.expire_all()
    assert db.session.get(Import, imp.id).state == ImportState.CANCELLED
    assert db.session.get(Import, imp.id).report == report


def test_a_job_cancelled_before_a_worker_took_it_cancels_its_import(make, rossi):
    from app.services import jobs

    imp = _applying(make, rossi, [["a@rossi.it", SECRET, "A", C100]])
    queued = _job_row(rossi, imp.id, state="queued", kind="bulk_import")
    jobs.cancel(make.SYSTEM, queued.id)
    db.session.expire_all()
    assert db.session.get(Import, imp.id).state == ImportState.CANCELLED
    assert db.session.scalar(sa.select(sa.func.count()).where(ImportRow.secret.is_not(None))) == 0
    assert not imports.resumable(db.session.get(Import, imp.id))


def test_a_read_only_customer_admin_cannot_cancel_an_import_support_runs_for_it(make):
    from app.services import jobs
    from app.services.errors import PermissionDenied

    c = make.customer("contract", {C100: 5}, self_service=False, domain="sola.it")
    imp = _applying(make, c, [["a@sola.it", SECRET, "A", C100]])
    running = _job_row(c, imp.id, state="running", kind="bulk_import")
    with pytest.raises(PermissionDenied):
        jobs.cancel(Actor.for_user(make.admin(c)), running.id)


def test_a_second_resume_while_one_runs_is_refused(make, rossi):
    imp = _applying(make, rossi, [["a@rossi.it", SECRET, "A", C100]])
    _job_row(rossi, imp.id, state="failed", kind="bulk_import")
    db.session.execute(sa.update(Import).where(Import.id == imp.id).values(job_id=None))
    db.session.commit()
    assert imports.resumable(db.session.get(Import, imp.id))
    _job_row(rossi, imp.id, state="queued", kind="bulk_import")  # the first resume's job
    with pytest.raises(Conflict):
        imports.resume(make.SYSTEM, imp.id)


def test_usage_already_past_the_allowance_refuses_every_new_row_of_the_class(make, rossi):
    from app.models import Allowance

    for i in range(2):
        make.mailbox(rossi, f"gia{i}", service_class=C5000)
    # Usage past the allowance (the contract forms refuse it; data from before them may have it).
    db.session.execute(
        sa.update(Allowance)
        .where(Allowance.customer_id == rossi.id, Allowance.service_class_id == billingkit.class_id(C5000))
        .values(max_accounts=1)
    )
    db.session.commit()
    rows = [[f"u{i}@rossi.it", SECRET, f"U{i}", C5000] for i in range(3)]
    imp = imports.preview(make.SYSTEM, rossi.id, book(mailboxes=rows), "c.xlsx")
    assert imp.counts["mailbox"] == {"create": 0, "present": 0, "error": 3}


def test_generated_passwords_past_their_time_are_not_given_even_before_the_cron_wipes_them(
    make, rossi, inline
):
    imp = imports.preview(
        make.SYSTEM, rossi.id, book(mailboxes=[["g@rossi.it", None, "G", C100, "Sì"]]), "g.xlsx"
    )
    imports.start_apply(make.SYSTEM, imp.id)
    clock.set_now(clock.now() + timedelta(hours=25))
    try:
        with pytest.raises(NotFound):
            imports.take_generated_passwords(make.SYSTEM, imp.id, None)
    finally:
        clock.reset()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_on_postgresql_a_claim_passes_over_rows_another_process_is_claiming(make, rossi):
    rows = [[f"u{i:02d}@rossi.it", SECRET, f"U{i}", C100] for i in range(5)]
    imp = _applying(make, rossi, rows)
    with db.engine.connect() as other:
        other.execute(
            sa.text(
                "UPDATE import_rows SET claimed_by = 999 WHERE id IN (SELECT id FROM import_rows"
                " WHERE import_id = :i AND op = 'mailbox' ORDER BY seq LIMIT 2)"
            ),
            {"i": imp.id},
        )  # not committed: those two rows stay locked
        mine = imports._claim(imp.id, 1)
        other.rollback()
    assert [r.address for r in mine] == ["u02@rossi.it", "u03@rossi.it", "u04@rossi.it"]


def test_an_alias_taken_between_preview_and_apply_fails_alone_the_rest_of_its_batch_is_created(
    make, rossi, inline
):
    data = book(
        mailboxes=[["anna@rossi.it", SECRET, "Anna", C100]],
        aliases=[[f"a{i}@rossi.it", "anna@rossi.it"] for i in range(3)],
    )
    imp = imports.preview(make.SYSTEM, rossi.id, data, "c.xlsx")
    assert imp.problems == []
    make.dlist(rossi, "a1", [])  # the address is taken meanwhile
    imports.start_apply(make.SYSTEM, imp.id)
    db.session.refresh(imp)
    assert imp.result["alias"] == {"created": 2, "error": 1}
    assert sorted(db.session.scalars(sa.select(Alias.address))) == ["a0@rossi.it", "a2@rossi.it"]
    failed = [r for r in report_rows(imp) if r[4] == "a1@rossi.it"]
    assert failed[0][7] == "Errore" and "lista" in failed[0][8]
