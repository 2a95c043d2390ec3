"""Throwaway Dovecot and Postfix on loopback, configured by `flask mailserver config`.

One instance pair per database backend (the servers read the database live,
so data changes need no restart). Asked for (start_mail_servers(rspamd=...)),
an rspamd from the same render sits in front of Postfix as its milter, on
loopback ports of its own, reading the test Redis and the test DNS server. Everything lives in a private directory:
Dovecot's base/state dirs, Postfix's queue and data dirs, the mail root, the
logs, a self-signed certificate for STARTTLS. An SMTP sink on loopback is
Postfix's relayhost: it stands in for the outside world.
"""

from __future__ import annotations

import contextlib
import email
import imaplib
import os
import shutil
import socket
import socketserver
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

HOST = "127.0.0.1"
HOSTNAME = "mail.test"
# A loopback address outside mynetworks: mail from it is mail from the Internet.
OUTSIDE_HOST = "127.0.0.2"
MASTER_USER = "assistenza"
MASTER_PASSWORD = "Master-pass-42-assistenza"
# doveadm's HTTP API, where the panel reads quota usage.
DOVEADM_API_KEY = "chiave-di-prova-doveadm"
# Mail is stored as this unprivileged system user (Dovecot refuses root).
MAIL_USER, MAIL_GROUP = "nobody", "nogroup"
BINARIES = ("dovecot", "doveadm", "sievec", "postfix", "postconf")
RSPAMD_BINARIES = ("rspamd", "rspamadm")
RSPAMD_USER = "_rspamd"


def missing_binaries(rspamd: bool = False) -> list[str]:
    wanted = BINARIES + (RSPAMD_BINARIES if rspamd else ())
    return [b for b in wanted if shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}")]


def missing_reason(rspamd: bool = False) -> str | None:
    """Why the servers cannot run here, or None."""
    gone = missing_binaries(rspamd)
    if gone:
        return f"missing {', '.join(gone)}: run scripts/install-mailservers.sh as root on Debian"
    if os.geteuid() != 0:
        return "Dovecot and Postfix test instances need root (they switch to their own users)"
    return None


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: every socket stays bound until all are drawn, so the kernel
    cannot hand the same port out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]


# --- the outside world: an SMTP sink ------------------------------------------


@dataclass
class SunkMessage:
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    @property
    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.data)


class _SinkHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Postfix's smtp client: EHLO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]
        self.reply("220 sink.test ESMTP")
        mail_from, rcpts = "", []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-sink.test\r\n250-8BITMIME\r\n250 SIZE 100000000")
            elif verb == "MAIL":
                mail_from, rcpts = line.split(":", 1)[1].split()[0].strip("<>"), []
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].split()[0].strip("<>"))
                self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                sink.received(SunkMessage(mail_from, rcpts, b"".join(chunks)))
                self.reply("250 2.0.0 Ok: queued")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            elif verb in ("RSET", "NOOP"):
                self.reply("250 2.0.0 Ok")
            else:
                self.reply("502 5.5.2 Not implemented")


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[SunkMessage] = []
        self._cond = threading.Condition()
        self.server = socketserver.ThreadingTCPServer((HOST, 0), _SinkHandler)
        self.server.daemon_threads = True
        self.server.sink = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def received(self, message: SunkMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, rcpt: str, subject: str, timeout: float = 15) -> SunkMessage:
        def found():
            for m in self.messages:
                if rcpt in m.rcpt_to and m.message["Subject"] == subject:
                    return m
            return None

        with self._cond:
            self._cond.wait_for(found, timeout=timeout)
            result = found()
        assert result, f"the outside world never got {subject!r} for {rcpt}"
        return result

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the servers --------------------------------------------------------------


@dataclass
class MailServers:
    root: Path
    ports: dict[str, int]
    sink: SmtpSink
    started: list[str] = field(default_factory=list)

    @property
    def milter_socket(self) -> Path:
        """rspamd's milter as rendered by default: a Unix socket in <base-dir>/rspamd/milter/."""
        return self.root / "run" / "rspamd" / "milter" / "milter.sock"

    @property
    def rspamd_controller_url(self) -> str:
        return f"http://{HOST}:{self.ports['rspamd_controller']}"

    @property
    def doveadm_url(self) -> str:
        return f"http://{HOST}:{self.ports['doveadm']}/doveadm/v1"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def mail_root(self) -> Path:
        return self.root / "vmail"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    # clients

    def imap(self, user: str, password: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4(HOST, self.ports["imap"], timeout=20)
        try:
            client.login(user, password)
        except Exception:
            with contextlib.suppress(Exception):
                client.logout()
            raise
        return client

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.conf / "cert.pem"))
        context.check_hostname = False
        return context

    def maildir(self, address: str, folder: str = "INBOX") -> Path:
        """A folder's Maildir on disk (Maildir++: INBOX is the root, Junk is .Junk)."""
        local, domain = address.split("@")
        root = self.mail_root / domain / local / "Maildir"
        return root if folder == "INBOX" else root / f".{folder}"

    def maildir_count(self, address: str, folder: str = "INBOX") -> int:
        maildir = self.maildir(address, folder)
        return sum(len(list((maildir / sub).glob("*"))) for sub in ("new", "cur") if (maildir / sub).exists())

    def wait_stored(self, address: str, count: int, timeout: float = 15, folder: str = "INBOX") -> None:
        """Wait until the folder's Maildir on disk holds `count` messages (no login needed)."""
        deadline = time.monotonic() + timeout
        while self.maildir_count(address, folder) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{address} has {self.maildir_count(address, folder)} message(s) in {folder}, "
                    f"expected {count}\n" + self.log_tail()
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in (
            "rspamd-start.log",
            "rspamd.log",
            "postfix-start.log",
            "postfix.log",
            "dovecot-start.log",
            "dovecot.log",
            "dovecot-info.log",
        ):
            path = self.logs / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(out)

    def _master_pids(self) -> list[int]:
        pids = []
        for pidfile in (
            self.root / "run" / "master.pid",
            self.root / "spool" / "pid" / "master.pid",
            self.root / "run" / "rspamd" / "rspamd.pid",
        ):
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(pidfile.read_text().strip()))
        return pids

    def stop(self) -> None:
        pids = self._master_pids()
        if "postfix" in self.started:
            subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True, timeout=30)
        if "dovecot" in self.started:
            subprocess.run(
                ["dovecot", "-c", str(self.conf / "dovecot.conf"), "stop"], capture_output=True, timeout=30
            )
        if "rspamd" in self.started:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((self.root / "run" / "rspamd" / "rspamd.pid").read_text().strip()), 15)
        self.sink.close()
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie (no init to reap it in a container) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _open_path_for(path: Path) -> None:
    """Let the servers' unprivileged processes read a SQLite file under a private tmp dir.

    pytest's tmp dirs are 0700; Postfix's lookups run as `postfix` and check
    the file's journal by path, so each parent must be traversable.
    """
    path.chmod(path.stat().st_mode | stat.S_IROTH | stat.S_IRGRP)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _run(cmd: list[str], output: Path | None = None) -> None:
    """Run a command; the daemons it starts keep its stdout, so that goes to a file, not a pipe."""
    out_path = output or Path(tempfile.mktemp(prefix="panel-mail-cmd-"))
    with open(out_path, "ab") as out:
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{out_path.read_text(errors='replace')}"
        )
    if output is None:
        out_path.unlink()


def _wait_port(port: int, what: str, servers: MailServers, timeout: float = 20, banner: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.settimeout(0.5)
            try:
                s.connect((HOST, port))
                # A banner means a daemon answers, not just a socket in the master.
                # (HTTP speaks only when spoken to.)
                if banner:
                    s.recv(100)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not answer on {port}\n{servers.log_tail()}") from None
                time.sleep(0.05)


def _wait_unix(path: Path, what: str, servers: MailServers, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            try:
                s.connect(str(path))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not answer on {path}\n{servers.log_tail()}") from None
                time.sleep(0.05)


def _wait_ping(url: str, servers: MailServers, timeout: float = 90) -> None:
    """rspamd's controller answers "pong" once the workers run (the first start compiles
    its regular expressions: some seconds)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.read().strip() == b"pong":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"rspamd did not answer on {url}/ping\n{servers.log_tail()}")
        time.sleep(0.2)


# Recipients an hour a logged-in mailbox of the test instance may send to (production: 500).
TEST_OUTBOUND_LIMIT = 40
# rspamd's scanning processes in a test instance, whatever the host's cores.
TEST_RSPAMD_WORKERS = 2


def start_mail_servers(
    app,
    database_url: str,
    rspamd_redis_url: str | None = None,
    rspamd_dns: str = "",
    milter_tcp: bool = False,
    outbound_limit: int = TEST_OUTBOUND_LIMIT,
) -> MailServers:
    """Render the configuration with the CLI, then start Dovecot and Postfix from it.

    With rspamd_redis_url, rspamd too (Postfix's milter), reading that Redis and asking
    the resolver rspamd_dns (host:port). Its milter is on a Unix socket, as rendered by
    default (servers.milter_socket), or with milter_tcp on 127.0.0.1 (ports["milter"])."""
    with_rspamd = rspamd_redis_url is not None
    root = Path(tempfile.mkdtemp(prefix="panel-mail-"))
    # Dovecot's and Postfix's own users must reach their files under it.
    root.chmod(0o755)
    url = make_url(database_url)
    servers_database_url = database_url
    if url.get_backend_name() == "sqlite":
        database = Path(url.database).resolve()
        _open_path_for(database)
        # The servers read the same file through a hard link in their own directory: pytest
        # makes /tmp/pytest-of-<user> private again whenever another session starts, and
        # processes the servers start later (smtpd, the list-policy service) must still reach it.
        link = root / "panel.sqlite3"
        try:
            os.link(database, link)
            servers_database_url = f"sqlite:///{link}"
        except OSError:
            pass

    # Every listener on a free port, the SSL ones too: two instances (xdist workers) run side by side.
    names = ("imap", "pop3", "imaps", "pop3s", "lmtp", "smtp", "submission", "doveadm")
    if with_rspamd:
        names += ("rspamd_normal", "rspamd_controller") + (("milter",) if milter_tcp else ())
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    sink = SmtpSink()
    servers = MailServers(root=root, ports=ports, sink=sink)
    for sub in ("conf", "run", "state", "log", "spool", "data"):
        (root / sub).mkdir()
    servers.mail_root.mkdir()
    shutil.chown(servers.mail_root, MAIL_USER, MAIL_GROUP)
    # Postfix's master keeps its lock and caches here as the postfix user.
    shutil.chown(root / "data", "postfix")
    if with_rspamd:
        # rspamd's run and state directories (<base-dir>/rspamd, <state-dir>/rspamd) and log are its own.
        for sub in (root / "run" / "rspamd", root / "state" / "rspamd"):
            sub.mkdir()
            shutil.chown(sub, RSPAMD_USER, RSPAMD_USER)
        # The milter's socket directory, as docs/deploy.md makes it: rspamd writes there, only
        # Postfix's group may enter, and the socket takes that group (setgid).
        milter_dir = root / "run" / "rspamd" / "milter"
        milter_dir.mkdir()
        shutil.chown(milter_dir, RSPAMD_USER, "postfix")
        milter_dir.chmod(0o2750)
        (servers.logs / "rspamd.log").touch()
        shutil.chown(servers.logs / "rspamd.log", RSPAMD_USER, RSPAMD_USER)

    conf = servers.conf
    _run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={HOSTNAME}", "-keyout", str(conf / "key.pem"), "-out", str(conf / "cert.pem"),
        ]
    )  # fmt: skip
    runner = app.test_cli_runner()
    args = [
        "mailserver", "config", "--dovecot", "--postfix",
        "--database-url", servers_database_url,
        "--out", str(conf),
        "--mail-root", str(servers.mail_root),
        "--mail-user", MAIL_USER, "--mail-group", MAIL_GROUP,
        "--base-dir", str(root / "run"),
        "--state-dir", str(root / "state"),
        "--log-dir", str(servers.logs),
        "--listen", HOST,
        "--hostname", HOSTNAME,
        "--imap-port", str(ports["imap"]), "--pop3-port", str(ports["pop3"]),
        "--imaps-port", str(ports["imaps"]), "--pop3s-port", str(ports["pop3s"]),
        "--lmtp-port", str(ports["lmtp"]), "--smtp-port", str(ports["smtp"]),
        "--submission-port", str(ports["submission"]),
        "--doveadm-port", str(ports["doveadm"]),
        "--master-user-file", str(conf / "master-users"),
        "--relayhost", f"[{HOST}]:{sink.port}",
        # Only 127.0.0.1 is trusted to relay: a client on OUTSIDE_HOST stands for the Internet.
        "--mynetworks", f"{HOST}/32",
        "--tls-cert", str(conf / "cert.pem"), "--tls-key", str(conf / "key.pem"),
        "--queue-dir", str(root / "spool"), "--data-dir", str(root / "data"),
        "--instance-name", f"panel-test-{root.name}",
        # Every test client is 127.0.0.1: brakes on failed logins would only add waiting.
        "--auth-failure-delay", "0", "--no-auth-penalty",
    ]  # fmt: skip
    if with_rspamd:
        args += [
            "--rspamd",
            "--rspamd-normal-port", str(ports["rspamd_normal"]),
            "--rspamd-controller-port", str(ports["rspamd_controller"]),
            "--rspamd-redis-url", rspamd_redis_url,
            # Every test client is on loopback, which rspamd takes for a local network.
            "--rspamd-check-local",
            # GTUBE variants that force an action (YJS...: add header, so Junk).
            "--rspamd-test-patterns",
            "--outbound-limit", str(outbound_limit),
            "--rspamd-workers", str(TEST_RSPAMD_WORKERS),
        ]  # fmt: skip
        if milter_tcp:
            args += ["--milter-port", str(ports["milter"])]
        if rspamd_dns:
            args += ["--rspamd-dns", rspamd_dns]
    result = runner.invoke(args=args, env={"DOVEADM_API_KEY": DOVEADM_API_KEY})
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=["mailserver", "master-user", str(conf / "master-users")],
        env={"DOVECOT_MASTER_USER": MASTER_USER, "DOVECOT_MASTER_PASSWORD": MASTER_PASSWORD},
    )
    assert result.exit_code == 0, result.output

    try:
        if with_rspamd:
            # First, so that Postfix never hands a message to a milter that is not there yet.
            servers.started.append("rspamd")
            _run(
                ["rspamd", "-c", str(conf / "rspamd.conf"), "-u", RSPAMD_USER, "-g", RSPAMD_USER],
                output=servers.logs / "rspamd-start.log",
            )
            _wait_ping(servers.rspamd_controller_url, servers)
            if milter_tcp:
                _wait_port(ports["milter"], "rspamd milter", servers, banner=False)
            else:
                _wait_unix(servers.milter_socket, "rspamd milter", servers)
        # Marked as started first: a failed start may still leave processes to stop.
        servers.started.append("dovecot")
        _run(["dovecot", "-c", str(conf / "dovecot.conf")], output=servers.logs / "dovecot-start.log")
        servers.started.append("postfix")
        _run(["postfix", "-c", str(conf), "start"], output=servers.logs / "postfix-start.log")
        _wait_port(ports["imap"], "Dovecot IMAP", servers)
        _wait_port(ports["lmtp"], "Dovecot LMTP", servers)
        _wait_port(ports["smtp"], "Postfix SMTP", servers)
        _wait_port(ports["doveadm"], "doveadm HTTP API", servers, banner=False)
    except Exception:
        servers.stop()
        raise
    return servers
