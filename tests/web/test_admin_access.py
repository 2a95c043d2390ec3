"""Every back-office page is a 404 for a customer admin, and for nobody logged in a login redirect."""

from __future__ import annotations

import re

import pytest


def prime_csrf(client) -> None:
    """Take the session's CSRF token from the account page, which every user can open."""
    page = client.get("/account").get_data(as_text=True)
    client._csrf_token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


ADMIN_GETS = [
    "/admin/customers",
    "/admin/customers?q=x",
    "/admin/customers/new",
    "/admin/customers/{cid}",
    "/admin/capacity-requests",
    "/admin/recharges",
    "/admin/domains",
    "/admin/domains/1/reject",
    "/admin/audit",
    "/admin/billing",
    "/admin/users",
    "/admin/health",
    "/admin/jobs/1",
    "/admin/prices",
    "/admin/customers/{cid}/imports",
    "/admin/customers/{cid}/imports/modello.xlsx",
    "/admin/customers/{cid}/imports/1",
    "/admin/customers/{cid}/imports/1/rows",
    "/admin/customers/{cid}/imports/1/problems",
    "/admin/customers/{cid}/imports/1/resoconto.xlsx",
    "/admin/domains/1/migrations/sheet",
    "/admin/domains/1/migrations",
    "/admin/migrations",
    "/admin/migrations/1",
    "/admin/migrations/1/cancel",
    "/admin/migrations/1/resoconto.csv",
]
ADMIN_POSTS = [
    "/admin/customers/new",
    "/admin/customers/{cid}",
    "/admin/customers/{cid}/contract",
    "/admin/customers/{cid}/admins",
    "/admin/customers/{cid}/list-limits",
    "/admin/customers/{cid}/hold",
    "/admin/customers/{cid}/hold/lift",
    "/admin/customers/{cid}/outbox/1/retry",
    "/admin/customers/{cid}/wallet/credit",
    "/admin/customers/{cid}/wallet/adjustment",
    "/admin/recharges/1/confirm",
    "/admin/recharges/1/cancel",
    "/admin/capacity-requests/1/decision",
    "/admin/domains/1/approve",
    "/admin/domains/1/reject",
    "/admin/users",
    "/admin/users/1/active",
    "/admin/users/1/two-factor/reset",
    "/admin/jobs/1/cancel",
    "/admin/prices",
    "/admin/customers/{cid}/imports",
    "/admin/customers/{cid}/imports/1/apply",
    "/admin/customers/{cid}/imports/1/resume",
    "/admin/customers/{cid}/imports/1/passwords",
    "/admin/domains/1/migrations/sheet",
    "/admin/domains/1/migrations",
    "/admin/migrations/1/preflight",
    "/admin/migrations/1/start",
    "/admin/migrations/1/finish",
    "/admin/migrations/1/cancel",
]


def test_every_admin_url_is_listed_here(app):
    # A new back-office route must be added to the lists above, so it is walked too.
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")}
    listed = {u.split("?")[0].replace("{cid}", "<int:customer_id>") for u in ADMIN_GETS + ADMIN_POSTS}
    listed = {
        u.replace("/1/", "/<int:request_id>/", 1) if "capacity" in u or "recharges" in u else u
        for u in listed
    }
    listed = {u.replace("users/1/", "users/<int:user_id>/") for u in listed}
    listed = {u.replace("domains/1/", "domains/<int:domain_id>/") for u in listed}
    listed = {u.replace("jobs/1", "jobs/<int:job_id>") for u in listed}
    listed = {u.replace("outbox/1/", "outbox/<int:outbox_id>/") for u in listed}
    listed = {re.sub(r"imports/1\b", "imports/<int:import_id>", u) for u in listed}
    listed = {re.sub(r"migrations/1\b", "migrations/<int:migration_id>", u) for u in listed}
    listed = {u.replace("migration_id>/resoconto.csv", "migration_id>/resoconto.<fmt>") for u in listed}
    assert rules == listed


@pytest.mark.parametrize("url", ADMIN_GETS)
def test_customer_admin_gets_404(client, make, auth, url):
    c = make.customer()
    auth.login(make.admin(c).email)
    assert client.get(url.format(cid=c.id)).status_code == 404


@pytest.mark.parametrize("url", ADMIN_POSTS)
def test_customer_admin_posts_get_404(client, make, auth, url):
    c = make.customer()
    auth.login(make.admin(c).email)
    prime_csrf(client)
    assert client.post(url.format(cid=c.id), data={"name": "x", "plan": "payg"}).status_code == 404


def test_anonymous_is_sent_to_login(client):
    response = client.get("/admin/customers")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
