-- Immediate revocation across replicas: every session that ends — deleted (by sessiond,
-- by a Better Auth app sharing the database, or by a cascade from "user"), or ended in
-- place by moving "expiresAt" into the past — is announced on the channel
-- "sessiond_revoked" as the SHA-256 hex of its token. Replicas that answer from a cookie
-- cache refuse those tokens at once instead of after the cache's max age.

create or replace function sessiond_notify_session_revoked() returns trigger
language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        perform pg_notify('sessiond_revoked', encode(sha256(convert_to(old."token", 'UTF8')), 'hex'));
        return old;
    end if;
    if new."expiresAt" < old."expiresAt" and new."expiresAt" <= now() then
        perform pg_notify('sessiond_revoked', encode(sha256(convert_to(new."token", 'UTF8')), 'hex'));
    end if;
    return new;
end
$$;

drop trigger if exists sessiond_session_revoked on "session";
create trigger sessiond_session_revoked
    after delete or update of "expiresAt" on "session"
    for each row execute function sessiond_notify_session_revoked();
