import pytest
import sqlalchemy as sa

from app.data import catalog
from app.extensions import db
from app.models import ServiceClass
from app.services import classes
from app.services.errors import ValidationError


def test_there_are_32_classes_named_as_the_guide_writes_them():
    names = catalog.all_names()
    assert len(names) == 32 == len(set(names))
    assert "Business Mail 5.000 MB" in names
    assert "Professional Suite 1.000 MB" in names
    assert "Business Mail Plus 100 MB" in names
    assert "Standard Suite 25.000 MB" in names


def test_features_grow_with_the_type():
    feats = {k.type: k.features for k in catalog.all_keys()}
    assert feats["business_mail"] == ("email", "contacts")
    assert feats["business_mail_plus"] == ("email", "contacts", "calendar")
    assert set(feats["standard_suite"]) == {"email", "contacts", "calendar", "briefcase", "sharing"}
    assert {"mobile", "outlook_mapi"} <= set(feats["professional_suite"])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Business Mail 5.000 MB", ("business_mail", 5000)),
        ("business mail 5000", ("business_mail", 5000)),
        ("BUSINESS MAIL 5000MB", ("business_mail", 5000)),
        ("Business Mail 5 GB", ("business_mail", 5000)),
        ("Business Mail Plus 100 MB", ("business_mail_plus", 100)),
        ("business_mail_plus 25.000 mb", ("business_mail_plus", 25000)),
        ("  Professional Suite 1.000 MB  ", ("professional_suite", 1000)),
        ("standard suite 10000", ("standard_suite", 10000)),
        ("Standard Suite 2,000 MB", ("standard_suite", 2000)),
    ],
)
def test_parsing_accepts_the_guide_form_and_variants(text, expected):
    key = classes.parse_class_name(text)
    assert (key.type, key.quota_mb) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Business Mail",
        "Business Mail 300 MB",
        "Business Mail 2,5 GB",
        "Gold 100 MB",
        "100 MB",
        "Business Mail -100",
        "Business Mail 100 TB",
        None,
        5000,
        ["Business Mail 100 MB"],
    ],
)
def test_parsing_rejects_anything_else_with_the_valid_names(text):
    with pytest.raises(classes.UnknownServiceClass) as err:
        classes.parse_class_name(text)
    assert "Business Mail 100 MB" in err.value.valid_names


def test_database_rows_match_the_catalogue(app):
    rows = db.session.execute(sa.select(ServiceClass.type, ServiceClass.quota_mb)).all()
    assert sorted(rows) == sorted((k.type, k.quota_mb) for k in catalog.all_keys())
    assert [c.name for c in classes.all_classes()] == catalog.all_names()


def test_resolve_explains_the_valid_names(app):
    with pytest.raises(ValidationError) as err:
        classes.resolve("Business Mail 300 MB")
    message = err.value.errors["service_class"]
    assert "Business Mail 300 MB" in message and "Professional Suite 25.000 MB" in message
