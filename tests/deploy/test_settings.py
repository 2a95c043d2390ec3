"""The settings an operator meets in deploy/panel.env.example: each described in the README, each read."""

from __future__ import annotations

import re

from tests.deploy.conftest import DEPLOY, ROOT


def _example_variables() -> list[str]:
    text = (DEPLOY / "panel.env.example").read_text()
    return re.findall(r"(?m)^#?([A-Z][A-Z0-9_]+)=", text)


def _readme_variables() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration (environment)", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))


def _read_by_the_code() -> str:
    sources = [*sorted((ROOT / "app").rglob("*.py")), DEPLOY / "gunicorn.conf.py"]
    return "\n".join(path.read_text() for path in sources)


def test_every_variable_of_the_environment_file_is_described_in_the_readme():
    variables = _example_variables()
    assert "REDIS_URL" in variables and "DATABASE_URL" in variables
    assert [name for name in variables if name not in _readme_variables()] == []


def test_every_variable_of_the_environment_file_is_read_by_the_panel():
    code = _read_by_the_code()
    unread = [name for name in _example_variables() if not re.search(rf"environ[^\n]*[\"']{name}[\"']", code)]
    unread = [name for name in unread if f'_bool("{name}"' not in code and f'_int("{name}"' not in code]
    assert unread == []


def test_the_login_limits_are_documented_as_shared_through_redis_url():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    paragraphs = [p for p in deploy.split("\n\n") if "login limits" in p and "LOGIN_RATE_LIMIT" in p]
    assert paragraphs and all("REDIS_URL" in p for p in paragraphs)
    for text in (deploy, (ROOT / "README.md").read_text(), (DEPLOY / "panel.env.example").read_text()):
        assert "RATELIMIT_STORAGE_URI" not in text


def test_the_cron_command_never_carries_the_redis_password_on_its_command_line():
    unit = (DEPLOY / "panel-cron.service").read_text()
    assert 'RQ_REDIS_URL="$$REDIS_URL"' in unit
    for path in (ROOT / "README.md", ROOT / "docs" / "deploy.md", ROOT / "docs" / "jobs.md"):
        commands = re.findall(r"`([^`]*rq cron[^`]*)`", path.read_text())
        assert [c for c in commands if "--url" in c or "-u " in c] == [], path.name
    readme = (ROOT / "README.md").read_text()
    assert '`RQ_REDIS_URL="$REDIS_URL" rq cron app/cron.py`' in readme
