"""The mail servers' templates: a variable nobody passed is an error, never an empty line."""

from __future__ import annotations

import jinja2
import jinja2.meta
import pytest

from app.mailserver import render
from app.mailserver.settings import Database, MailServerSettings

TEMPLATES = sorted(
    name for name in render.environment.list_templates() if name.endswith(".j2") and name != "header.j2"
)


def context() -> dict:
    # Every optional part on, so that every variable is reached.
    settings = MailServerSettings(
        database=Database(kind="sqlite", path="/srv/panel.db"),
        doveadm_port=8089,
        doveadm_api_key="chiave",
        log_dir="/var/log/panel",
        tls_cert="/etc/ssl/cert.pem",
        tls_key="/etc/ssl/key.pem",
        auth_penalty=False,
        milter=True,
        rspamd_redis_url="redis://:segreta@127.0.0.1:6379/2",
        rspamd_dns="127.0.0.1:53",
    )
    return {
        **render._context(settings, 1024),
        **render.rspamd_context(settings),
        "name": "mail_users.cf",
        "query": "SELECT 1",
    }


def test_every_template_is_covered():
    assert {"dovecot.conf.j2", "dovecot-sql.conf.ext.j2", "main.cf.j2", "master.cf.j2"} <= set(TEMPLATES)
    assert "postfix-map.cf.j2" in TEMPLATES and "list_policy.cf.j2" in TEMPLATES
    assert {"rspamd.conf.j2", "rspamd-modules.conf.j2", "rspamd-outbound.lua.j2"} <= set(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_renders_with_all_it_needs(template):
    text = render.render(template, **context())
    comment = "-- " if template.endswith(".lua.j2") else "# "
    assert text.startswith(comment) and text.endswith("\n") and "{{" not in text


def used_variables(template: str) -> set[str]:
    # header.j2 uses only `what`, which each template sets before including it.
    env = render.environment
    return jinja2.meta.find_undeclared_variables(env.parse(env.loader.get_source(env, template)[0]))


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_missing_variable_fails_loudly(template):
    full = context()
    used = used_variables(template)
    assert used and used <= set(full)
    for missing in used:
        with pytest.raises(jinja2.UndefinedError, match=missing):
            render.render(template, **{k: v for k, v in full.items() if k != missing})


def test_the_environment_is_the_packages_own_and_does_not_escape():
    assert render.environment.undefined is jinja2.StrictUndefined
    assert render.environment.autoescape is False
    text = render.render("postfix-map.cf.j2", **{**context(), "query": "SELECT '<a>' & \"b\""})
    assert "query = SELECT '<a>' & \"b\"\n" in text
