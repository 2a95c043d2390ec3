"""Staff sign in with a password and a TOTP code; customer admins may turn it on."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import segno
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, RecoveryCode, User, UserSession
from app.services import totp
from tests import twofactor
from tests.factories import PASSWORD


def _password_step(client, email: str, password: str = PASSWORD):
    response = client.post("/login", data={"email": email, "password": password})
    client._csrf_token = None  # the session was renewed
    return response


def _code_step(client, code: str):
    response = client.post("/login/code", data={"code": code})
    client._csrf_token = None  # signed in: a new session
    return response


def _signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def _staff_urls(app) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("admin.", "auth.account")) and "GET" in rule.methods:
            urls.append(re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule))
    return urls


def test_staff_without_enrolment_is_sent_to_enrolment_and_can_do_nothing_else(app, client, make):
    staff = make.staff()
    response = _password_step(client, staff.email)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/enrol")
    for url in _staff_urls(app):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    # The half-signed-in state opens no session either.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0


def test_enrolment_shows_a_qr_code_and_the_secret_then_recovery_codes(client, make):
    staff = make.staff()
    _password_step(client, staff.email)
    page = client.get("/login/enrol").text
    assert "<svg" in page and "otpauth" not in page  # the QR is drawn here, not fetched from anyone
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert client.get("/login/enrol").text.count(secret[:4] + " ") >= 1  # a reload keeps the secret
    wrong = client.post(
        "/login/enrol",
        data={"code": "000000" if totp.code_at(secret, totp.current_step()) != "000000" else "111111"},
    )
    assert wrong.status_code == 422 and "Il codice non è corretto" in wrong.text
    assert not _signed_in(client)
    done = client.post("/login/enrol", data={"code": totp.code_at(secret, totp.current_step())})
    assert done.status_code == 200 and "non saranno più mostrati" in done.text
    codes = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert _signed_in(client)
    assert client.get("/admin/customers").status_code == 200
    stored = db.session.scalars(sa.select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashed, not kept in clear
    assert db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.totp_enable"))


def test_the_enrolment_qr_code_carries_the_otpauth_uri_of_the_secret_shown(app, client, make):
    """No QR decoder is installed: the page's QR must be exactly segno's drawing of the expected URI."""
    staff = make.staff()
    _password_step(client, staff.email)
    page = client.get("/login/enrol").text
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    drawn = re.search(r'<div class="qr">(<svg.*?</svg>)</div>', page, re.S).group(1)
    brand = quote(app.config["BRAND_NAME"])
    expected = f"otpauth://totp/{brand}:{staff.email}?secret={secret}&issuer={brand}&digits=6&period=30"

    def qr(payload: str) -> str:
        return segno.make(payload, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")

    assert drawn == qr(expected)
    assert drawn != qr(expected.replace(secret, secret[:-1] + ("A" if secret[-1] != "A" else "B")))
    # The secret in it is the one that gives the codes the panel accepts.
    done = client.post("/login/enrol", data={"code": totp.code_at(secret, totp.current_step())})
    assert done.status_code == 200 and _signed_in(client)


def test_login_asks_for_the_code_and_the_half_state_grants_nothing(client, make):
    staff = make.staff()
    twofactor.enrol(staff)
    response = _password_step(client, staff.email)
    assert response.headers["Location"].endswith("/login/code")
    assert client.get("/admin/customers").status_code == 302
    assert _code_step(client, "12345").status_code == 401
    response = _code_step(client, twofactor.next_code(staff))
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/customers")
    assert client.get("/admin/customers").status_code == 200


def test_the_code_step_needs_the_password_step(client, make):
    staff = make.staff()
    twofactor.enrol(staff)
    response = _code_step(client, twofactor.next_code(staff))
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert not _signed_in(client)


def test_a_code_is_not_accepted_twice(client, auth, make):
    staff = make.staff()
    twofactor.enrol(staff)
    _password_step(client, staff.email)
    code = twofactor.next_code(staff)
    assert _code_step(client, code).status_code == 302
    auth.logout()
    _password_step(client, staff.email)
    response = _code_step(client, code)
    assert response.status_code == 401 and "già usato" in response.text
    assert not _signed_in(client)


def test_codes_from_one_step_either_side_are_accepted_not_two(client, auth, make):
    staff = make.staff()
    twofactor.enrol(staff)
    db.session.execute(sa.update(User).values(totp_last_step=None))
    db.session.commit()
    _password_step(client, staff.email)
    assert _code_step(client, totp.code_at(staff.totp_secret, _settled_step() - 3)).status_code == 401
    assert _code_step(client, totp.code_at(staff.totp_secret, _settled_step() + 3)).status_code == 401
    # The step read just before the request: a loaded machine may have crossed a step boundary since the start.
    assert _code_step(client, totp.code_at(staff.totp_secret, _settled_step() - 1)).status_code == 302


def _settled_step() -> int:
    """The current TOTP step, with at least 3 seconds of it left (so the request lands in it)."""
    while totp.STEP_SECONDS - time.time() % totp.STEP_SECONDS < 3:
        time.sleep(0.5)
    return totp.current_step()


def test_a_recovery_code_works_once(client, auth, make):
    staff = make.staff()
    codes = twofactor.enrol(staff)
    _password_step(client, staff.email)
    assert _code_step(client, codes[3].lower()).status_code == 302  # typed in lower case: still fine
    assert _signed_in(client)
    auth.logout()
    _password_step(client, staff.email)
    assert _code_step(client, codes[3]).status_code == 401
    assert not _signed_in(client)
    assert _code_step(client, codes[4]).status_code == 302
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "user.recovery_code")).all()
    assert [e.changes for e in event] == [{"left": [None, 9]}, {"left": [None, 8]}]


def test_reset_by_another_staff_member_is_audited(app, client, auth, make):
    lost_phone = make.staff()
    twofactor.enrol(lost_phone)
    their_browser = app.test_client()
    from tests.conftest import Auth

    Auth(their_browser).login(lost_phone.email)
    colleague = make.staff()
    auth.login(colleague.email)
    page = client.get("/admin/users").text
    assert f"/admin/users/{lost_phone.id}/two-factor/reset" in page
    response = client.post(f"/admin/users/{lost_phone.id}/two-factor/reset", follow_redirects=True)
    assert "azzerata" in response.text
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.totp_reset"))
    assert event.actor == colleague.email and event.target == lost_phone.email
    assert not _signed_in(their_browser)
    db.session.expire_all()
    assert db.session.get(User, lost_phone.id).totp_secret is None
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == lost_phone.id)
        )
        == 0
    )
    # Their next sign-in goes through enrolment again.
    fresh = app.test_client()
    assert _password_step(fresh, lost_phone.email).headers["Location"].endswith("/login/enrol")


def test_nobody_resets_their_own_and_customers_cannot_reset(client, auth, make):
    staff = make.staff()
    auth.login(staff.email)
    response = client.post(f"/admin/users/{staff.id}/two-factor/reset")
    assert response.status_code == 409 and "chiedi a un collega" in response.text
    auth.logout()
    admin = make.admin(make.customer())
    auth.login(admin.email)
    assert client.post(f"/admin/users/{staff.id}/two-factor/reset").status_code == 404
    db.session.expire_all()
    assert db.session.get(User, staff.id).totp_secret is not None


def test_customer_admin_turns_it_on_and_off_from_the_account_page(client, auth, make):
    admin = make.admin(make.customer())
    assert auth.login(admin.email).headers["Location"].startswith("/customers/")  # no code asked yet
    page = client.get("/account").text
    assert "Verifica in due passaggi" in page and "Non attiva" in page
    page = client.get("/account/two-factor").text
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    done = client.post("/account/two-factor", data={"code": totp.code_at(secret, totp.current_step())})
    assert done.status_code == 200 and len(re.findall(r"<li><code>", done.text)) == 10
    auth.logout()
    assert _password_step(client, admin.email).headers["Location"].endswith("/login/code")
    assert _code_step(client, twofactor.next_code(admin)).status_code == 302
    wrong = client.post("/account/two-factor/disable", data={"current_password": "sbagliata"})
    assert wrong.status_code == 422 and "non è corretta" in wrong.text
    client.post("/account/two-factor/disable", data={"current_password": PASSWORD})
    auth.logout()
    assert _password_step(client, admin.email).headers["Location"].startswith("/customers/")


def test_staff_cannot_turn_it_off(client, auth, make):
    staff = make.staff()
    auth.login(staff.email)
    assert "/account/two-factor/disable" not in client.get("/account").text
    response = client.post("/account/two-factor/disable", data={"current_password": PASSWORD})
    assert response.status_code == 403 and "obbligatoria" in response.text
    db.session.expire_all()
    assert db.session.get(User, staff.id).has_totp


def test_new_recovery_codes_replace_the_old_ones(client, auth, make):
    staff = make.staff()
    old = twofactor.enrol(staff)
    auth.login(staff.email)
    response = client.post("/account/two-factor/recovery-codes", data={"current_password": PASSWORD})
    new = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", response.text)
    assert len(new) == 10
    auth.logout()
    _password_step(client, staff.email)
    assert _code_step(client, old[0]).status_code == 401
    assert _code_step(client, new[0]).status_code == 302


def test_api_tokens_need_no_code(client, make):
    from app.services import users

    staff = make.staff()
    twofactor.enrol(staff)
    _token, plaintext = users.create_token(make.SYSTEM, staff, "ci")
    response = client.get("/api/v1/customers", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200


def test_the_password_step_expires(client, make):
    staff = make.staff()
    twofactor.enrol(staff)
    _password_step(client, staff.email)
    with client.session_transaction() as session:
        session["pending_login"] = {**session["pending_login"], "at": session["pending_login"]["at"] - 601}
    response = _code_step(client, twofactor.next_code(staff))
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "Il tempo per inserire il codice è scaduto" in client.get("/login").text
    assert not _signed_in(client)
