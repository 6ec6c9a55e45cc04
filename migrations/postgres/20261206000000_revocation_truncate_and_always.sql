-- Immediate revocation, completed:
-- - a session whose token (or owner) is rewritten, or that is ended in place, is announced
--   as ended (the SHA-256 hex of its token); one whose expiry is only moved earlier is
--   announced as changed ('~' and the hash): its cached copies are checked against the row;
-- - TRUNCATE (also through TRUNCATE "user" CASCADE) is announced with the payload '*', which
--   makes every replica revalidate every cached session;
-- - both triggers fire in every replication role (ENABLE ALWAYS), so that rows removed by
--   pg_restore or a logical-replication apply worker are announced as well;
-- - the functions name pg_catalog's functions and fix their search_path, so that a function
--   of the same name earlier in a caller's search_path cannot swallow the announcement.

create or replace function sessiond_notify_session_revoked() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
    if tg_op = 'DELETE' then
        perform pg_catalog.pg_notify('sessiond_revoked',
            pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(old."token", 'UTF8')), 'hex'));
        return old;
    end if;
    if new."token" is distinct from old."token"
       or new."userId" is distinct from old."userId"
       or (new."expiresAt" < old."expiresAt" and new."expiresAt" <= pg_catalog.now()) then
        perform pg_catalog.pg_notify('sessiond_revoked',
            pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(old."token", 'UTF8')), 'hex'));
    elsif new."expiresAt" < old."expiresAt" then
        perform pg_catalog.pg_notify('sessiond_revoked',
            '~' || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(old."token", 'UTF8')), 'hex'));
    end if;
    return new;
end
$$;

create or replace function sessiond_notify_session_truncated() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
    perform pg_catalog.pg_notify('sessiond_revoked', '*');
    return null;
end
$$;

drop trigger if exists sessiond_session_revoked on "session";
create trigger sessiond_session_revoked
    after delete or update of "expiresAt", "token", "userId" on "session"
    for each row execute function sessiond_notify_session_revoked();

drop trigger if exists sessiond_session_truncated on "session";
create trigger sessiond_session_truncated
    after truncate on "session"
    for each statement execute function sessiond_notify_session_truncated();

alter table "session" enable always trigger sessiond_session_revoked;
alter table "session" enable always trigger sessiond_session_truncated;
