"""Operator commands: flask users create, flask tokens create, flask seed-demo."""

from __future__ import annotations

import click
import pytest
import sqlalchemy as sa

from app.cli import demo
from app.extensions import db
from app.models import ApiToken, AuditEvent, Customer, Mailbox, User
from tests import factories

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


# --- users list, set-password, disable/enable; seed-demo outside development; huge ids ---------


def failed_cleanly(result) -> bool:
    """A non-zero exit through sys.exit (a message), never an uncaught exception (a traceback)."""
    return (
        result.exit_code != 0
        and isinstance(result.exception, SystemExit)
        and "Traceback" not in result.output
    )


def test_users_list_shows_role_customer_and_whether_they_may_log_in(runner, make):
    c = make.customer(name="Studio Verdi")
    admin = make.admin(c, "it@studioverdi.example")
    make.staff("supporto@collabra.it")
    runner.invoke(args=["users", "disable", admin.email])

    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["email", "ruolo", "cliente", "attivo"]
    staff_line = next(line for line in lines if "supporto@collabra.it" in line)
    assert staff_line.split() == ["supporto@collabra.it", "staff", "—", "sì"]
    admin_line = next(line for line in lines if admin.email in line)
    assert admin_line.split() == [admin.email, "customer_admin", str(c.id), "Studio", "Verdi", "no"]

    only = runner.invoke(args=["users", "list", "--customer", str(c.id)])
    assert admin.email in only.output and "supporto@collabra.it" not in only.output


def test_users_set_password_from_the_environment(runner, auth, make):
    admin = make.admin(make.customer())
    result = runner.invoke(
        args=["users", "set-password", admin.email.upper(), "--password-env", "NEW_PW"],
        env={"NEW_PW": "Nuova-password-42"},
    )
    assert result.exit_code == 0, result.output
    assert "Nuova-password-42" not in result.output
    assert auth.login(admin.email, factories.PASSWORD).status_code == 401  # the old one is refused
    assert auth.login(admin.email, "Nuova-password-42").status_code == 302
    event = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.target) == ("user.password", admin.email)


def test_users_set_password_ends_open_sessions_and_revokes_tokens(runner, auth, client, make):
    c = make.customer()
    admin = make.admin(c)
    token = runner.invoke(args=["tokens", "create", admin.email]).output.strip()
    assert auth.login(admin.email).status_code == 302  # a session opened with the old password

    result = runner.invoke(
        args=["users", "set-password", admin.email, "--password-env", "NEW_PW"],
        env={"NEW_PW": "Nuova-password-42"},
    )
    assert result.exit_code == 0, result.output
    page = client.get(f"/customers/{c.id}/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert client.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_users_set_password_at_the_prompt(runner, auth, make):
    staff = make.staff()
    result = runner.invoke(args=["users", "set-password", staff.email], input="Nuova-password-42\n" * 2)
    assert result.exit_code == 0, result.output
    assert auth.login(staff.email, "Nuova-password-42").status_code == 302


@pytest.mark.parametrize(
    ("email", "env", "expected"),
    [
        ("nessuno@collabra.it", {"NEW_PW": "Nuova-password-42"}, "nessuno@collabra.it"),
        (None, {"NEW_PW": "corta"}, "password"),
        (None, {"NEW_PW": None}, "NEW_PW"),
        (None, {"NEW_PW": "Breve-pw-42"}, "12"),  # long enough for a customer, not for staff
        ("STAFF", {"NEW_PW": "STAFF"}, "indirizzo"),  # the staff member's own address
    ],
    ids=["unknown-user", "weak-password", "missing-variable", "staff-minimum", "equal-to-address"],
)
def test_users_set_password_fails_cleanly(runner, make, email, env, expected):
    staff = make.staff()
    before = (staff.password_hash, rows())
    email = staff.email if email in (None, "STAFF") else email
    env = {k: staff.email if v == "STAFF" else v for k, v in env.items()}
    result = runner.invoke(args=["users", "set-password", email, "--password-env", "NEW_PW"], env=env)
    assert failed_cleanly(result), result.output
    assert expected.lower() in result.output.lower()
    db.session.refresh(staff)
    assert (staff.password_hash, rows()) == before


def test_users_disable_ends_login_api_and_open_sessions_and_enable_restores(runner, auth, client, make):
    c = make.customer()
    admin = make.admin(c)
    token = runner.invoke(args=["tokens", "create", admin.email]).output.strip()
    assert auth.login(admin.email).status_code == 302  # a session open before

    result = runner.invoke(args=["users", "disable", admin.email])
    assert result.exit_code == 0, result.output
    assert "disattivato" in result.output
    page = client.get(f"/customers/{c.id}/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert client.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert auth.login(admin.email).status_code == 401  # refused

    assert runner.invoke(args=["users", "enable", admin.email]).exit_code == 0
    assert auth.login(admin.email).status_code == 302
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["user.deactivate", "user.activate"]


def test_users_disable_an_unknown_user_fails_cleanly(runner):
    before = rows()
    result = runner.invoke(args=["users", "disable", "nessuno@collabra.it"])
    assert failed_cleanly(result) and "nessuno@collabra.it" in result.output
    assert rows() == before


@pytest.mark.parametrize(
    "args",
    [
        [
            "users",
            "create",
            "a@collabra.it",
            "--role",
            "customer_admin",
            "--customer",
            "99999999999999999999",
        ],
        ["users", "create", "a@collabra.it", "--role", "customer_admin", "--customer", str(2**31)],
        ["users", "create", "a@collabra.it", "--role", "customer_admin", "--customer", "0"],
        ["users", "create", "a@collabra.it", "--role", "customer_admin", "--customer", "-5"],
        ["users", "list", "--customer", "99999999999999999999"],
    ],
    ids=["above-2^63", "2^31", "zero", "negative", "list-above-2^63"],
)
def test_out_of_range_customer_ids_fail_cleanly(runner, args):
    before = rows()
    result = runner.invoke(args=args, env={"PANEL_PW": PASSWORD})
    assert failed_cleanly(result), (result.output, result.exception)
    assert "--customer" in result.output
    assert rows() == before


def test_seed_demo_refuses_outside_development(runner, app, monkeypatch):
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    before = rows()
    result = runner.invoke(args=["seed-demo"])
    assert failed_cleanly(result)
    assert "APP_ENV=development" in result.output
    assert demo.CONTRACT_ADMIN[1] not in result.output
    assert rows() == before


# --- one error policy for every command: the exit code says what went wrong ---------------------


def test_the_exit_code_says_what_went_wrong(runner, make):
    make.staff("doppio@collabra.it")
    invalid = create_user(runner, "non-una-email", "--role", "staff")
    assert invalid.exit_code == 2 and invalid.stderr.startswith("Errore (email): "), invalid.output
    unknown = runner.invoke(args=["users", "disable", "nessuno@collabra.it"])
    assert unknown.exit_code == 3 and "nessuno@collabra.it" in unknown.stderr, unknown.output
    duplicate = create_user(runner, "doppio@collabra.it", "--role", "staff")
    assert duplicate.exit_code == 4 and duplicate.stderr.startswith("Errore: "), duplicate.output
    assert duplicate.stdout == unknown.stdout == invalid.stdout == ""


def test_seed_demo_outside_development_is_not_permitted(runner, app, monkeypatch):
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    assert runner.invoke(args=["seed-demo"]).exit_code == 5


def test_every_panel_command_goes_through_the_error_policy(app):
    from app.cli.errors import Command

    flask_migrate = {"db"}
    found = []

    def walk(command):
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)
        else:
            found.append(command)

    for name, command in app.cli.commands.items():
        if name not in flask_migrate:
            walk(command)
    assert {c.name for c in found} >= {"create", "list", "seed-demo", "config", "master-user"}
    assert [c.name for c in found if not isinstance(c, Command)] == []
