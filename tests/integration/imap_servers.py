"""Two small standalone Dovecots on loopback for the IMAP copy tests.

"old": an old provider's server, `.` separator and `INBOX.` prefix, no
SPECIAL-USE flags. "ours": `/` separator, SPECIAL-USE on the usual folders,
a master user (`mailbox*master`) as the panel's Dovecot has, STARTTLS with
a certificate for 127.0.0.1 (`cert`), and a 1,500 kB per-message limit
(quota_max_mail_size). Users live in a static passwd-file; no database.
"""

from __future__ import annotations

import contextlib
import imaplib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.mailservers import HOST, MAIL_GROUP, MAIL_USER, _alive, _run, _wait_port, free_port

MASTER = "assistenza"
MASTER_PASSWORD = "Master-copia-42"

_COMMON = """
instance_name = imapcopy-{name}-{tag}
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot-info.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
auth_failure_delay = 0 secs
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:{root}/vmail/%u
passdb {{
  driver = passwd-file
  args = {root}/conf/master-users
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/conf/users
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={root}/vmail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

_OLD_NAMESPACE = """
namespace inbox {
  inbox = yes
  separator = .
  prefix = INBOX.
}
"""

_OUR_NAMESPACE = """
# Quota only for its per-message limit: a bigger APPEND is refused with NO.
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_rule = *:storage=1G
  quota_vsizes = yes
  quota_max_mail_size = 1500k
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Archive {
    special_use = \\Archive
  }
}
"""


@dataclass
class ImapServer:
    name: str
    root: Path
    port: int

    def add_user(self, user: str, password: str) -> None:
        """Add a user, and wait until Dovecot sees it (it re-reads the file at most once a second)."""
        with open(self.root / "conf" / "users", "a") as f:
            f.write(f"{user}:{{PLAIN}}{password}::::::\n")
        deadline = time.monotonic() + 5
        while True:
            client = imaplib.IMAP4(HOST, self.port, timeout=10)
            try:
                client.login(user, password)
                return
            except imaplib.IMAP4.error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    client.logout()

    @property
    def cert(self) -> str:
        return str(self.root / "conf" / "cert.pem")

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        pid = int(pid_file.read_text().strip()) if pid_file.exists() else None
        subprocess.run(
            ["dovecot", "-c", str(self.root / "conf" / "dovecot.conf"), "stop"], capture_output=True
        )
        deadline = time.monotonic() + 15
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    # for _wait_port's error message
    def log_tail(self) -> str:
        path = self.root / "log" / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def start_imap_server(name: str) -> ImapServer:
    root = Path(tempfile.mkdtemp(prefix=f"panel-imapcopy-{name}-"))
    root.chmod(0o755)
    for sub in ("conf", "run", "state", "log", "vmail"):
        (root / sub).mkdir()
    shutil.chown(root / "vmail", MAIL_USER, MAIL_GROUP)
    port = free_port()
    tls = "ssl = no"
    if name == "ours":
        # STARTTLS with a certificate for 127.0.0.1 (plain text stays allowed on loopback).
        _run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ours.test",
                "-addext", f"subjectAltName=IP:{HOST}",
                "-keyout", str(root / "conf" / "key.pem"), "-out", str(root / "conf" / "cert.pem"),
            ]
        )  # fmt: skip
        tls = f"ssl = yes\nssl_cert = <{root}/conf/cert.pem\nssl_key = <{root}/conf/key.pem"
    conf = _COMMON.format(
        ssl=tls,
        name=name,
        tag=root.name,
        host=HOST,
        root=root,
        port=port,
        mail_user=MAIL_USER,
        mail_group=MAIL_GROUP,
    ) + (_OLD_NAMESPACE if name == "old" else _OUR_NAMESPACE)
    (root / "conf" / "dovecot.conf").write_text(conf)
    (root / "conf" / "users").write_text("")
    (root / "conf" / "master-users").write_text(f"{MASTER}:{{PLAIN}}{MASTER_PASSWORD}\n")
    server = ImapServer(name=name, root=root, port=port)
    try:
        # The daemon keeps the command's stdout: a file, not a pipe.
        _run(["dovecot", "-c", str(root / "conf" / "dovecot.conf")], output=root / "log" / "start.log")
        _wait_port(port, f"Dovecot ({name})", server)  # type: ignore[arg-type]
    except Exception:
        server.stop()
        raise
    return server
