"""Operator commands: flask users create, flask tokens create, flask seed-demo."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, AuditEvent, Customer, Mailbox, User
from app.services import demo

PASSWORD = "Operator-pass-7"


def rows() -> dict[str, int]:
    return {
        m.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(m))
        for m in (User, ApiToken, AuditEvent, Customer, Mailbox)
    }


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def create_user(runner, *args, env=None):
    return runner.invoke(
        args=["users", "create", *args, "--password-env", "PANEL_PW"],
        env={"PANEL_PW": PASSWORD} if env is None else env,
    )


def test_create_staff_user_who_can_then_log_in(runner, auth):
    result = create_user(runner, "Nuovo.Supporto@Collabra.it", "--role", "staff")
    assert result.exit_code == 0, result.output
    assert "nuovo.supporto@collabra.it" in result.output
    user = db.session.scalar(sa.select(User).where(User.email == "nuovo.supporto@collabra.it"))
    assert user.role == "staff" and user.customer_id is None
    assert PASSWORD not in result.output
    r = auth.login("nuovo.supporto@collabra.it", PASSWORD)
    assert r.status_code == 302 and "/login" not in r.headers["Location"]


def test_create_customer_admin_for_a_customer(runner, auth, make):
    c = make.customer()
    result = create_user(runner, "it@cliente.example", "--role", "customer_admin", "--customer", str(c.id))
    assert result.exit_code == 0, result.output
    assert auth.login("it@cliente.example", PASSWORD).headers["Location"].endswith(f"/customers/{c.id}/")


def test_password_can_be_typed_at_the_prompt(runner):
    result = runner.invoke(
        args=["users", "create", "prompt@collabra.it", "--role", "staff"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert db.session.scalar(sa.select(User.id).where(User.email == "prompt@collabra.it")) is not None


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["a@collabra.it", "--role", "staff"], {"PANEL_PW": None}, "PANEL_PW"),
        (["a@collabra.it", "--role", "boss"], None, "--role"),
        (["a@collabra.it"], None, "--role"),
        (["a@collabra.it", "--role", "customer_admin"], None, "cliente"),
        (
            ["a@collabra.it", "--role", "customer_admin", "--customer", "999999"],
            None,
            "cliente 999999 non esiste",
        ),
        (["a@collabra.it", "--role", "customer_admin", "--customer", "primo"], None, "--customer"),
        (["a@collabra.it", "--role", "staff", "--customer", "1"], None, "staff"),
        (["non-una-email", "--role", "staff"], None, "email"),
        (["a@collabra.it", "--role", "staff"], {"PANEL_PW": "corta"}, "password"),
        (["a@collabra.it", "--role", "staff"], {"PANEL_PW": ""}, "password"),
    ],
    ids=[
        "missing-variable",
        "bad-role",
        "no-role",
        "admin-without-customer",
        "unknown-customer",
        "customer-not-a-number",
        "staff-with-customer",
        "bad-email",
        "short-password",
        "empty-password",
    ],
)
def test_bad_user_creation_fails_cleanly_and_writes_nothing(runner, args, env, expected):
    before = rows()
    result = create_user(runner, *args, env=env)
    assert result.exit_code != 0
    assert expected.lower() in result.output.lower(), result.output
    assert "Traceback" not in result.output
    assert rows() == before


def test_a_duplicate_email_fails_cleanly(runner, make):
    make.staff("doppio@collabra.it")
    before = rows()
    result = create_user(runner, "Doppio@collabra.it", "--role", "staff")
    assert result.exit_code != 0
    assert "doppio@collabra.it" in result.output and "esiste già" in result.output.lower()
    assert rows() == before


def test_tokens_create_prints_a_token_that_opens_the_api(runner, client, make):
    c = make.customer(name="Cliente API")
    admin = make.admin(c)
    result = runner.invoke(args=["tokens", "create", admin.email.upper(), "--name", "gestionale"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("cp_") and "\n" not in token
    stored = db.session.scalar(sa.select(ApiToken).where(ApiToken.user_id == admin.id))
    assert stored.name == "gestionale" and token not in stored.token_hash
    r = client.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert [x["name"] for x in r.get_json()["items"]] == ["Cliente API"]


def test_tokens_create_for_an_unknown_email_fails_cleanly(runner):
    before = rows()
    result = runner.invoke(args=["tokens", "create", "nessuno@collabra.it"])
    assert result.exit_code != 0
    assert "nessuno@collabra.it" in result.output
    assert "cp_" not in result.output
    assert rows() == before


def test_seed_demo_twice_is_harmless_and_prints_the_logins(runner, auth):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    for line in demo.LOGINS:
        assert line in first.output
    after_first = rows()
    assert after_first["Customer"] == 2 and after_first["Mailbox"] > 0

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert "già presenti" in second.output
    for line in demo.LOGINS:
        assert line in second.output
    assert rows() == after_first

    email, password = demo.CONTRACT_ADMIN
    assert auth.login(email, password).status_code == 302
