"""Jobs through the API: a customer reads its own jobs, another customer's are 404, staff read all."""

from __future__ import annotations

import pytest
import redis
from rq import Queue

from app.services import users
from tests import factories
from tests.conftest import TEST_REDIS_URL
from tests.web.jobrows import job_row


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {users.create_token(factories.SYSTEM, user, 'tests')[1]}"}


@pytest.fixture
def two(make):
    a, b = make.customer(name="Cliente A"), make.customer(name="Cliente B")
    return a, b, bearer(make.admin(a)), bearer(make.admin(b))


@pytest.fixture
def queue_redis(app):
    """The app's queues on the test Redis, emptied before and after."""
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


def test_a_customer_reads_its_own_job_and_never_another_customers(client, two):
    a, b, as_a, as_b = two
    own = job_row(a.id, "running", done=3, total=10, message="Passo 3 di 10")
    theirs = job_row(b.id, "done", result={"mailboxes_read": 4})
    provider = job_row(None, "done")

    r = client.get(f"/api/v1/jobs/{own.id}", headers=as_a)
    assert r.status_code == 200
    assert r.get_json() == {
        "id": own.id,
        "kind": "quota_refresh",
        "state": "running",
        "done": 3,
        "total": 10,
        "message": "Passo 3 di 10",
        "result": None,
    }
    missing = client.get("/api/v1/jobs/999999", headers=as_a)
    for other in (theirs.id, provider.id):
        r = client.get(f"/api/v1/jobs/{other}", headers=as_a)
        assert (r.status_code, r.get_json()) == (
            404,
            missing.get_json(),
        )  # the same as one that does not exist
    assert client.get(f"/api/v1/jobs/{theirs.id}", headers=as_b).get_json()["result"] == {"mailboxes_read": 4}
    assert client.get(f"/api/v1/customers/{b.id}/jobs", headers=as_a).status_code == 404
    assert client.post(f"/api/v1/customers/{b.id}/quota-refresh", headers=as_a).status_code == 404


def test_staff_read_every_job_and_a_customers_list_newest_first_and_bounded(client, two, make):
    a, b, as_a, _ = two
    first, second, third = (job_row(a.id, state) for state in ("failed", "done", "queued"))
    job_row(b.id, "done")
    as_staff = bearer(make.staff())
    assert client.get(f"/api/v1/jobs/{first.id}", headers=as_staff).get_json()["state"] == "failed"
    assert client.get(f"/api/v1/jobs/{job_row(None).id}", headers=as_staff).status_code == 200

    listed = client.get(f"/api/v1/customers/{a.id}/jobs", headers=as_a).get_json()
    assert [j["id"] for j in listed] == [third.id, second.id, first.id]
    two_only = client.get(f"/api/v1/customers/{a.id}/jobs?limit=2", headers=as_staff).get_json()
    assert [j["id"] for j in two_only] == [third.id, second.id]
    too_many = client.get(f"/api/v1/customers/{a.id}/jobs?limit=5000", headers=as_a)
    assert too_many.status_code == 422 and "limit" in too_many.get_json()["errors"]


def test_a_quota_refresh_answers_202_with_the_job_and_its_location_and_is_not_doubled(
    client, two, queue_redis
):
    a, _, as_a, _ = two
    r = client.post(f"/api/v1/customers/{a.id}/quota-refresh", headers=as_a)
    assert r.status_code == 202
    body = r.get_json()
    assert (body["kind"], body["state"], body["done"], body["total"]) == ("quota_refresh", "queued", 0, None)
    assert r.headers["Location"].endswith(f"/api/v1/jobs/{body['id']}")
    assert client.get(r.headers["Location"], headers=as_a).get_json() == body

    again = client.post(f"/api/v1/customers/{a.id}/quota-refresh", headers=as_a, json={})
    assert (again.status_code, again.get_json()["id"]) == (202, body["id"])
    assert Queue("default", connection=queue_redis).count == 1


def test_a_quota_refresh_without_redis_is_a_503_that_says_so(client, two, app):
    a, _, as_a, _ = two
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    try:
        r = client.post(f"/api/v1/customers/{a.id}/quota-refresh", headers=as_a)
    finally:
        app.config["REDIS_URL"] = None
    assert r.status_code == 503
    assert r.get_json() == {
        "error": "Impossibile avviare il lavoro: la coda dei lavori non è raggiungibile. Riprova più tardi."
    }
    (job,) = client.get(f"/api/v1/customers/{a.id}/jobs", headers=as_a).get_json()
    assert job["state"] == "failed"
