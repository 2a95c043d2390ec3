-- The role Dovecot and Postfix log in as: it reads the mail_* views and nothing else.
--
-- Run as a PostgreSQL superuser, connected to the panel's database, once at setup
-- and again after every `flask db upgrade` (a migration that recreates a view drops
-- its grants; a new mail_* view needs one). Running it again changes nothing else.
--
--   PANEL_MAIL_PASSWORD='...' sudo -E -u postgres psql -d panel \
--       -v mail_role=panel_mail -f deploy/postgresql-mail-role.sql
--
-- mail_role defaults to panel_mail. The password is read from the environment
-- (PANEL_MAIL_PASSWORD), never from the command line; when it is unset the role
-- keeps the password it has (set one with \password panel_mail).
\set ON_ERROR_STOP on
\if :{?mail_role}
\else
\set mail_role panel_mail
\endif
\getenv mail_password PANEL_MAIL_PASSWORD

SELECT format('CREATE ROLE %I LOGIN', :'mail_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'mail_role')
\gexec

-- A login and nothing more: no inherited rights, no writes even if a grant slipped in.
SELECT format(
    'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS',
    :'mail_role')
\gexec
SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', :'mail_role')
\gexec
\if :{?mail_password}
SELECT format('ALTER ROLE %I PASSWORD %L', :'mail_role', :'mail_password')
\gexec
\endif

-- Membership in another role (the panel's owner, say) would lend it that role's rights.
SELECT format('REVOKE %I FROM %I', g.rolname, :'mail_role')
FROM pg_auth_members m
JOIN pg_roles g ON g.oid = m.roleid
JOIN pg_roles r ON r.oid = m.member
WHERE r.rolname = :'mail_role'
\gexec

-- Whatever it was granted before on tables and sequences goes; then exactly the views.
SELECT format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', current_schema(), :'mail_role')
\gexec
SELECT format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', current_schema(), :'mail_role')
\gexec
-- PostgreSQL 14 and older let every role (PUBLIC) create objects in the public schema: a
-- role that creates a table could shadow a table or function the servers look up. Only the
-- database's owner (the panel's migrations) keeps that right; revoking twice is harmless.
SELECT format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema())
\gexec
SELECT format('REVOKE CREATE ON SCHEMA %I FROM %I', current_schema(), :'mail_role')
\gexec
SELECT format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', current_schema(), pg_get_userbyid(datdba))
FROM pg_database
WHERE datname = current_database() AND pg_get_userbyid(datdba) <> :'mail_role'
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'mail_role')
\gexec
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), :'mail_role')
\gexec
-- Every view whose name starts with mail_ (the servers' contract: docs/mailserver.md).
SELECT format('GRANT SELECT ON %I.%I TO %I', schemaname, viewname, :'mail_role')
FROM pg_views
WHERE schemaname = current_schema() AND viewname LIKE 'mail\_%'
ORDER BY viewname
\gexec
