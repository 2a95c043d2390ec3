"""The client settings page and a setup guide in a real browser, on a desktop and on a phone:
nothing scrolls sideways, the steps are numbered, and the mailbox page's profile link downloads
an Apple profile."""

from __future__ import annotations

import plistlib

import pytest

from tests.e2e.conftest import open_context
from tests.e2e.test_phone_layout import DESKTOP, PHONE, SIDEWAYS, shot


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_client_settings_and_a_guide_read_well(browser, live_server, htmx_js, app, make, login, size):
    c = make.customer(domain="studio-rossi.it")
    admin = make.admin(c)
    viewport = DESKTOP if size == "desktop" else PHONE
    context = open_context(browser, live_server, htmx_js, viewport=viewport)
    page = context.new_page()
    try:
        login(page, admin.email)
        pages = [("client-settings", "/help/client-settings")]
        pages += [(f"guide-{g}", f"/help/guides/{g}") for g in ("outlook", "apple", "android", "thunderbird")]
        for name, url in pages:
            page.goto(url)
            shot(page, f"{name}-{viewport['width']}")
            assert page.evaluate(SIDEWAYS) == [], url
        assert page.locator("ol.steps > li").count() >= 5
        assert page.get_by_text("mario.rossi@studio-rossi.it").first.is_visible()
    finally:
        context.close()


def test_the_mailbox_page_downloads_its_apple_profile(page, make, login):
    c = make.customer(domain="studio-rossi.it")
    box = make.mailbox(c, "anna.bianchi")
    login(page, make.admin(c).email)
    page.goto(f"/customers/{c.id}/mailboxes/{box.id}")
    shot(page, "mailbox-profile-link-1280")
    with page.expect_download() as info:
        page.get_by_role("link", name="Scarica il profilo per iPhone, iPad e Mac").click()
    download = info.value
    assert download.suggested_filename == "anna.bianchi@studio-rossi.it.mobileconfig"
    profile = plistlib.loads(open(download.path(), "rb").read())
    assert profile["PayloadContent"][0]["EmailAddress"] == "anna.bianchi@studio-rossi.it"
