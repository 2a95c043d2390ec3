"""Adapters to the systems outside the panel: how we talk to them, never what the rules are.

Here live the Dovecot 2.3 and Postfix 3.7 configuration (rendered from the
Jinja templates in templates/, files that look like the configuration they
make), the safe writing of those files, the list-policy script Postfix spawns
(mail_list_policy.py) and the client of doveadm's HTTP API (doveadm.py). The
DNS and IMAP clients (domain checks, mailbox migration) belong here too.

The rules (which values are valid, what to store and when) stay in
app/services/, which call these modules; nothing here touches the panel's
database through the models.
"""
