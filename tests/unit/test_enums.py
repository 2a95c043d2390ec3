"""Each stored code set is one enum: the database, the labels, the CLI and the models agree with it."""

from __future__ import annotations

import warnings

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CapacityRequest, Customer, DistributionList, Domain, Mailbox, User
from app.models.enums import ALL, DomainState, Locale, MailboxStatus, Plan, PostPolicy, RequestStatus, Role
from app.services import capacity, labels

# Each enum, the column that stores it, and a row of that table the test can change.
COLUMNS = [
    (MailboxStatus, Mailbox, "status"),
    (Plan, Customer, "plan"),
    (RequestStatus, CapacityRequest, "status"),
    (DomainState, Domain, "state"),
    (PostPolicy, DistributionList, "post_policy"),
]


@pytest.fixture
def rows(make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    make.mailbox(c, local="anna")
    make.dlist(c, "tutti", [])
    capacity.request_capacity(
        make.SYSTEM, c.id, service_class="Business Mail 100 MB", extra_accounts=1, note="Serve"
    )
    return c


@pytest.mark.parametrize(("enum", "model", "column"), COLUMNS, ids=lambda x: getattr(x, "__name__", x))
def test_the_database_takes_every_code_and_nothing_else(rows, enum, model, column):
    for code in enum:
        db.session.execute(sa.update(model).values({column: code}))
        assert db.session.scalar(sa.select(getattr(model, column)).limit(1)) == code.value
    db.session.rollback()
    with pytest.raises(IntegrityError):
        db.session.execute(sa.update(model).values({column: "other"}))
        db.session.flush()
    db.session.rollback()


def test_roles_and_languages_are_what_users_may_have(make):
    staff = make.staff()
    db.session.execute(sa.update(User).where(User.id == staff.id).values(locale=Locale.EN))
    assert db.session.get(User, staff.id).is_staff and staff.role == Role.STAFF
    with pytest.raises(IntegrityError):
        db.session.execute(sa.update(User).where(User.id == staff.id).values(role="root"))
    db.session.rollback()


def test_every_code_has_words_and_forms_offer_them_in_order(app):
    # (tests/test_i18n.py checks that every one of these words has its English translation.)
    kinds = {enum: kind for kind, enum in labels.ENUMS.items()}
    assert set(kinds) == set(ALL)
    for enum, kind in kinds.items():
        offered = labels.choices(kind)
        assert [code for code, _words in offered] == list(enum.values()), kind
        assert all(words and words != code for code, words in offered), kind
    assert labels.choices("mailbox_status") == [
        ("active", "Attiva"),
        ("suspended", "Sospesa"),
        ("disabled", "Disabilitata"),
    ]


def test_every_code_a_person_may_type_has_a_refusal(app):
    for enum in (MailboxStatus, Plan, Role, RequestStatus, PostPolicy, Locale):
        assert str(labels.INVALID[enum]), enum


def test_the_cli_offers_the_roles(app):
    create = app.cli.commands["users"].commands["create"]
    role = next(p for p in create.params if p.name == "role")
    assert list(role.type.choices) == list(Role.values())


def test_a_code_equals_its_stored_string_and_membership_never_warns():
    assert MailboxStatus.SUSPENDED == "suspended" and f"{MailboxStatus.SUSPENDED}" == "suspended"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert MailboxStatus.has("active") and not MailboxStatus.has("gone")
        assert not MailboxStatus.has(None) and not MailboxStatus.has(1)
    assert Plan.check("plan") == "plan IN ('payg', 'contract')"
