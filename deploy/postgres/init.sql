-- A database and a role per service; each role may connect to its own database only.
--
-- Run once per PostgreSQL server (or cluster) as a superuser, with psql (it uses \gexec, \connect
-- and \if). Idempotent: running it again changes nothing that exists. Passwords never live here:
--
--   psql "host=... user=postgres dbname=postgres" -v ON_ERROR_STOP=1 \
--        -v leads_password="$LEADS_DB_PASSWORD" -v sales_password="$SALES_DB_PASSWORD" \
--        -v service_desk_password="$SERVICE_DESK_DB_PASSWORD" -v notify_password="$NOTIFY_DB_PASSWORD" \
--        -f deploy/postgres/init.sql
--
-- A variable left out leaves that role's password as it is (a new role then has none and cannot
-- log in with a password until `ALTER ROLE ... PASSWORD` is run). With one server per service
-- (docker-compose.yml, or one managed instance each) the script still works: it creates all four
-- and the unused ones can be dropped, or keep only that service's block.
--
-- Each service's DATABASE_URL: postgresql+psycopg://<role>:<password>@<host>:5432/<database>
-- The role owns its database, so `crm migrate` (alembic) can create and alter its tables.
-- Connection limits per role: see docs/OPERATIONS.md, "Connection pooling".

\set ON_ERROR_STOP on

-- Nobody but a database's owner (and superusers) may connect to it. template1 and postgres keep
-- their defaults; new databases are created from template0 with PUBLIC's CONNECT revoked below.
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;

-- ---- roles ---------------------------------------------------------------------------------------
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION CONNECTION LIMIT 250', r)
  FROM unnest(ARRAY['leads', 'sales', 'service_desk', 'notify']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
\gexec

\if :{?leads_password}
ALTER ROLE leads PASSWORD :'leads_password';
\endif
\if :{?sales_password}
ALTER ROLE sales PASSWORD :'sales_password';
\endif
\if :{?service_desk_password}
ALTER ROLE service_desk PASSWORD :'service_desk_password';
\endif
\if :{?notify_password}
ALTER ROLE notify PASSWORD :'notify_password';
\endif

-- ---- databases, each owned by its role ------------------------------------------------------------
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', d, d, 'UTF8', 'C.UTF-8', 'C.UTF-8')
  FROM unnest(ARRAY['leads', 'sales', 'service_desk', 'notify']) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec

-- Only the owner connects: no CONNECT (nor TEMP) for PUBLIC, i.e. for the other services' roles.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', d)
  FROM unnest(ARRAY['leads', 'sales', 'service_desk', 'notify']) AS d
\gexec
SELECT format('GRANT CONNECT, TEMPORARY, CREATE ON DATABASE %I TO %I', d, d)
  FROM unnest(ARRAY['leads', 'sales', 'service_desk', 'notify']) AS d
\gexec

-- Inside each database: the public schema belongs to the service's role and nobody else may
-- create in it (PostgreSQL 15+ already revokes CREATE from PUBLIC; this also covers 14 and older).
\connect leads
ALTER SCHEMA public OWNER TO leads;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect sales
ALTER SCHEMA public OWNER TO sales;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect service_desk
ALTER SCHEMA public OWNER TO service_desk;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect notify
ALTER SCHEMA public OWNER TO notify;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
