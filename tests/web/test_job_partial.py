"""The job component in the portal and the back office: it polls while the job runs, stops with
the final state, reads without JavaScript, cancels with CSRF, and shows nobody another customer's job."""

from __future__ import annotations

import re

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent
from tests import factories
from tests.integration import loop_jobs  # noqa: F401  (registers the cancellable test kind)
from tests.web.jobrows import job_row

HTMX = {"HX-Request": "true"}


def text(response) -> str:
    return response.get_data(as_text=True)


def test_a_running_job_polls_itself_and_says_how_far_it_got(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    job = job_row(c.id, "running", kind="test_count", done=3, total=10, message="Passo 3 di 10")
    url = f"/customers/{c.id}/jobs/{job.id}"

    html = text(client.get(url, headers=HTMX))
    assert f'<div class="job job-running" id="job-{job.id}" hx-get="{url}" hx-trigger="every 2s"' in html
    assert "In corso" in html and "3 di 10 (30%)" in html and "Passo 3 di 10" in html
    assert 'aria-valuenow="3"' in html and 'style="width: 30%"' in html
    assert f'<a href="{url}">Aggiorna lo stato</a>' in html  # without JavaScript: a link that reloads it
    assert "Annulla il lavoro" in html

    page = client.get(url)  # the same URL, opened as a page
    assert page.status_code == 200 and f"Lavoro n. {job.id}" in text(page) and "3 di 10 (30%)" in text(page)


def test_a_finished_job_stops_polling_and_tells_the_page_what_changed(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    job = job_row(c.id, "done", result={"mailboxes_read": 2})
    job.finished_at = job.created_at
    db.session.commit()
    response = client.get(f"/customers/{c.id}/jobs/{job.id}", headers=HTMX)
    html = text(response)
    assert "hx-get" not in html and "hx-trigger" not in html and "Annulla" not in html
    assert "Completato" in html and re.search(r"Spazio occupato aggiornato alle \d\d:\d\d\.", html)
    assert response.headers["HX-Trigger"] == "mailboxes-changed"

    failed = job_row(
        c.id, "failed", message="Lettura dello spazio non riuscita: server di posta non raggiungibile."
    )
    html = text(client.get(f"/customers/{c.id}/jobs/{failed.id}", headers=HTMX))
    assert "Non riuscito" in html and "server di posta non raggiungibile" in html and "hx-trigger" not in html


def test_a_queued_job_is_cancelled_at_once_and_a_running_one_at_its_next_step(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    queued = job_row(c.id, "queued", kind="test_count")
    url = f"/customers/{c.id}/jobs/{queued.id}/cancel"
    assert client.post(url, headers=HTMX, csrf=False).status_code == 400
    html = text(client.post(url, headers=HTMX))
    assert "Annullato" in html and "Annullato prima di iniziare." in html and "hx-trigger" not in html
    again = client.post(url, headers=HTMX)
    assert again.status_code == 409 and "Il lavoro è già terminato." in text(again)

    running = job_row(c.id, "running", kind="test_count")
    html = text(client.post(f"/customers/{c.id}/jobs/{running.id}/cancel", headers=HTMX))
    assert "Annullamento richiesto: il lavoro si ferma al prossimo passo." in html
    assert 'hx-trigger="every 2s"' in html and "Annulla il lavoro" not in html  # asked once; it still reports

    # Without JavaScript: back to the job's page, which says so.
    plain = job_row(c.id, "queued", kind="test_count")
    response = client.post(f"/customers/{c.id}/jobs/{plain.id}/cancel")
    assert (
        response.status_code == 303 and response.headers["Location"] == f"/customers/{c.id}/jobs/{plain.id}"
    )
    assert "Annullamento richiesto." in text(client.get(response.headers["Location"]))

    actions = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.customer_id == c.id)).all()
    assert actions.count("job.cancel") == 3


def test_a_job_that_cannot_stop_midway_has_no_cancel_button_once_running(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    running = job_row(c.id, "running")
    html = text(client.get(f"/customers/{c.id}/jobs/{running.id}", headers=HTMX))
    assert "Annulla il lavoro" not in html and 'hx-trigger="every 2s"' in html
    refused = client.post(f"/customers/{c.id}/jobs/{running.id}/cancel", headers=HTMX)
    assert refused.status_code == 409
    assert "Questo lavoro non si può fermare a metà: attendi che finisca." in text(refused)
    html = text(client.get(f"/customers/{c.id}/jobs/{job_row(c.id, 'queued').id}", headers=HTMX))
    assert "Annulla il lavoro" in html  # not started yet: it can always be taken off the queue


def test_nobody_sees_another_customers_job_and_staff_see_every_job(client, auth, make):
    a, b = make.customer(), make.customer()
    theirs, provider = job_row(b.id), job_row(None)
    auth.login(make.admin(a).email)
    for url in (
        f"/customers/{b.id}/jobs/{theirs.id}",
        f"/customers/{a.id}/jobs/{theirs.id}",
        f"/customers/{a.id}/jobs/{provider.id}",
        f"/admin/jobs/{theirs.id}",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/customers/{a.id}/jobs/{theirs.id}/cancel").status_code == 404
    assert client.post(f"/admin/jobs/{theirs.id}/cancel").status_code == 404

    auth.logout()
    auth.login(factories.staff().email)
    html = text(client.get(f"/admin/jobs/{provider.id}", headers=HTMX))
    assert f'hx-get="/admin/jobs/{provider.id}"' in html  # staff pages poll the back office's URL
    assert client.get(f"/customers/{b.id}/jobs/{theirs.id}").status_code == 200
