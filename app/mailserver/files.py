"""Writing configuration files safely: an owned, protected directory; each file created
exclusively with its final mode and group, then renamed into place."""

from __future__ import annotations

import contextlib
import os

from flask_babel import gettext as _

from app.services.errors import ValidationError

# Files that hold the database password: written readable by their owner only.
SECRET_FILES = {
    "dovecot-sql.conf.ext",
    "mail_domains.cf",
    "mail_users.cf",
    "mail_aliases.cf",
    "sender_login_maps.cf",
    "mail_lists.cf",
    "our_senders.cf",
    "list_policy.cf",
    # doveadm's HTTP API key: whoever holds it can read and change every mailbox.
    "dovecot-doveadm.conf.ext",
    # rspamd's Redis password (and Redis holds the DKIM private keys).
    "rspamd-modules.conf",
}


def _group_id(group: str) -> int:
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValidationError.one(
            "group", _("Il gruppo %(g)s non esiste su questo sistema.", g=group)
        ) from None


def user_group(user: str) -> str:
    """The primary group of a system user (the list-policy service's, for its settings file)."""
    import grp
    import pwd

    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        raise ValidationError.one(
            "policy_user", _("L'utente %(u)s non esiste su questo sistema.", u=user)
        ) from None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_output_dir(out_dir: str) -> None:
    """The directory must exist, belong to whoever writes (root writes only into its own
    directories too) and be writable by no one else: otherwise another local user could
    swap a file for a symlink, or read the secrets while they are written."""
    import stat

    try:
        st = os.stat(out_dir)
    except FileNotFoundError:
        raise ValidationError.one(
            "out", _("La cartella %(d)s non esiste: creala prima (con i permessi giusti).", d=out_dir)
        ) from None
    except OSError as e:
        raise ValidationError.one(
            "out", _("Cartella %(d)s non accessibile: %(e)s", d=out_dir, e=e.strerror)
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ValidationError.one("out", _("%(d)s non è una cartella.", d=out_dir))
    if st.st_uid != os.geteuid():
        raise ValidationError.one(
            "out", _("La cartella %(d)s appartiene a un altro utente: scrivi in una cartella tua.", d=out_dir)
        )
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0):
        raise ValidationError.one(
            "out",
            _(
                "La cartella %(d)s è scrivibile da altri utenti (permessi %(m)s): usa una cartella protetta.",
                d=out_dir,
                m=oct(stat.S_IMODE(st.st_mode)),
            ),
        )


def _write_one(directory: str, name: str, text: str, mode: int, gid: int) -> str:
    """Write a file atomically: a new file, created exclusively (never through a link)
    with its final mode and group before any content, then renamed over the target.
    An existing symlink at the target is replaced, never followed."""
    import secrets

    path = os.path.join(directory, name)
    if os.path.isdir(path) and not os.path.islink(path):
        raise ValidationError.one("out", _("%(p)s è una cartella, non un file.", p=path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode)
    except OSError as e:
        raise ValidationError.one(
            "out", _("Impossibile scrivere %(p)s: %(e)s", p=path, e=e.strerror)
        ) from None
    try:
        # The umask may have narrowed the mode, never widened it: set it exactly.
        os.fchmod(fd, mode)
        if gid != -1:
            os.fchown(fd, 0, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ValidationError.one(
            "out", _("Impossibile scrivere %(p)s: %(e)s", p=path, e=e.strerror)
        ) from None
    return path


def write_files(
    files: dict[str, str],
    out_dir: str,
    group: str | None = None,
    private: set[str] = SECRET_FILES,
    groups: dict[str, str] | None = None,
) -> list[str]:
    """Write the rendered files into an existing, safe directory. The private ones
    (database password, master user's hash) are readable by root and `group` (the
    daemon's: dovecot or postfix; `groups` names another for some files) only."""
    out_dir = os.path.abspath(out_dir)
    check_output_dir(out_dir)
    for name in files:
        if not name or "/" in name or name in {".", ".."}:
            raise ValidationError.one("out", _("Nome di file non valido: %(n)s", n=name))
    root = os.geteuid() == 0
    gids = {}
    for name in files:
        wanted = (groups or {}).get(name, group)
        gids[name] = _group_id(wanted) if (root and wanted and name in private) else -1
    written = []
    for name, text in files.items():
        mode = 0o640 if name in private else 0o644
        written.append(_write_one(out_dir, name, text, mode, gids[name]))
    with contextlib.suppress(OSError):
        dir_fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return written


def compile_sieve(out_dir: str, name: str) -> str | None:
    """Compile a rendered Sieve script with Pigeonhole's sievec into the binary Dovecot
    looks for beside it (<name without .sieve>.svbin), readable by every delivery process
    (Dovecot's LMTP runs as the mail user and cannot write there). Without sievec (the
    files rendered on another host) nothing is compiled: None."""
    import secrets
    import shutil
    import subprocess

    sievec = shutil.which("sievec") or ("/usr/bin/sievec" if os.path.exists("/usr/bin/sievec") else None)
    if sievec is None:
        return None
    out_dir = os.path.abspath(out_dir)
    script = os.path.join(out_dir, name)
    binary = os.path.join(out_dir, name.removesuffix(".sieve") + ".svbin")
    tmp = os.path.join(out_dir, f".{secrets.token_hex(6)}.svbin")
    # No configuration of its own (-c /dev/null): the script uses only Pigeonhole's defaults.
    result = subprocess.run(
        [sievec, "-c", "/dev/null", script, tmp],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        if result.returncode != 0 or not os.path.isfile(tmp):
            raise ValidationError.one(
                "out",
                _(
                    "Compilazione di %(p)s non riuscita: %(e)s",
                    p=script,
                    e=(result.stderr or result.stdout).strip(),
                ),
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, binary)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return binary
