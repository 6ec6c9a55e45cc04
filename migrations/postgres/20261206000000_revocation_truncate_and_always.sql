-- Immediate revocation, completed: a session whose token (or owner) is rewritten, or whose
-- expiry is moved earlier, ends for its cached copies too (they are checked against the row
-- again); TRUNCATE (also through TRUNCATE "user" CASCADE) is announced with
-- the payload '*', which makes every replica revalidate every cached session; and both
-- triggers fire in every replication role (ENABLE ALWAYS), so that rows removed by
-- pg_restore or a logical-replication apply worker are announced as well.

create or replace function sessiond_notify_session_revoked() returns trigger
language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        perform pg_notify('sessiond_revoked', encode(sha256(convert_to(old."token", 'UTF8')), 'hex'));
        return old;
    end if;
    if new."token" is distinct from old."token"
       or new."userId" is distinct from old."userId"
       or new."expiresAt" < old."expiresAt" then
        perform pg_notify('sessiond_revoked', encode(sha256(convert_to(old."token", 'UTF8')), 'hex'));
    end if;
    return new;
end
$$;

create or replace function sessiond_notify_session_truncated() returns trigger
language plpgsql as $$
begin
    perform pg_notify('sessiond_revoked', '*');
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
