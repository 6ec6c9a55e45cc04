-- Lifecycle events (installed when webhooks or the audit trail are on): one outbox row per
-- event, written by triggers in the transaction of the change, whoever makes it. sessiond's
-- own writes set `sessiond.ctx` (transaction-local) to say why, by whom and from where; a
-- change without it was made by another application sharing the database ("external").
-- Never a token, cookie value or password in a row: sessions are named by id and by the
-- SHA-256 of their token (`sid`, as the revocation feed names them).

create table if not exists "sessiond_event" (
    "id" bigserial primary key,
    "eventId" text not null unique,
    "type" text not null,
    "occurredAt" timestamptz not null,
    "userId" text,
    "sessionId" text,
    "data" jsonb not null,
    "pending" boolean not null default true,
    "attempts" integer not null default 0,
    "nextAt" timestamptz not null,
    "leaseUntil" timestamptz,
    "delivered" text not null default ''
);
create index if not exists "sessiond_event_due_idx" on "sessiond_event" ("nextAt") where "pending";
create index if not exists "sessiond_event_user_idx" on "sessiond_event" ("userId", "id");
create index if not exists "sessiond_event_time_idx" on "sessiond_event" ("occurredAt");

create or replace function sessiond_event_time(t timestamptz) returns text
language sql stable set search_path = pg_catalog as $$
    select pg_catalog.to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

create or replace function sessiond_event_add(kind text, at timestamptz, uid text, sid text, body jsonb)
returns void language plpgsql set search_path from current as $$
begin
    insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
    values ('evt_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), kind, at, uid, sid,
            pg_catalog.jsonb_strip_nulls(body), at);
    perform pg_catalog.pg_notify('sessiond_event', '');
end
$$;

-- The write's context (null: another application's change) and what every event says of
-- it: its origin, the acting client and who acted.
create or replace function sessiond_event_ctx() returns jsonb
language sql stable set search_path = pg_catalog as $$
    select nullif(pg_catalog.current_setting('sessiond.ctx', true), '')::jsonb
$$;

create or replace function sessiond_event_about(ctx jsonb) returns jsonb
language sql immutable set search_path = pg_catalog as $$
    select pg_catalog.jsonb_build_object(
        'origin', case when ctx is null then 'external' else 'sessiond' end,
        'request', case when ctx ? 'ip' or ctx ? 'ua'
                        then pg_catalog.jsonb_build_object('ipAddress', ctx ->> 'ip', 'userAgent', ctx ->> 'ua') end,
        'by', ctx ->> 'by')
$$;

create or replace function sessiond_event_session() returns trigger
language plpgsql set search_path from current as $$
declare
    ctx jsonb := sessiond_event_ctx();
    at timestamptz := coalesce((ctx ->> 'at')::timestamptz, pg_catalog.now());
    req jsonb := sessiond_event_about(ctx);
    row_ "session";
    body jsonb;
begin
    if tg_op = 'DELETE' then row_ := old; else row_ := new; end if;
    body := req || pg_catalog.jsonb_build_object(
        'sessionId', row_."id"::text,
        'userId', row_."userId"::text,
        'sid', pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(row_."token"::text, 'UTF8')), 'hex'),
        'ipAddress', row_."ipAddress",
        'userAgent', row_."userAgent",
        'createdAt', sessiond_event_time(row_."createdAt"),
        'expiresAt', sessiond_event_time(row_."expiresAt"));
    if tg_op = 'INSERT' then
        perform sessiond_event_add('session.created', at, new."userId"::text, new."id"::text, body);
        if coalesce((ctx ->> 'sign_in')::boolean, false) then
            perform sessiond_event_add('user.signed_in', at, new."userId"::text, new."id"::text, body);
        end if;
    elsif tg_op = 'DELETE' then
        perform sessiond_event_add('session.revoked', at, old."userId"::text, old."id"::text,
            body || pg_catalog.jsonb_build_object('endedAt', sessiond_event_time(at), 'reason', coalesce(ctx ->> 'reason',
                case when old."expiresAt" <= at then 'expired' else 'external' end)));
    elsif new."expiresAt" <= at and old."expiresAt" > at then
        -- Ended in place (preserved in the database).
        perform sessiond_event_add('session.revoked', at, old."userId"::text, old."id"::text,
            body || pg_catalog.jsonb_build_object('endedAt', sessiond_event_time(at),
                'reason', coalesce(ctx ->> 'reason', 'external')));
    elsif new."expiresAt" > old."expiresAt" and coalesce((ctx ->> 'refreshed')::boolean, false) then
        perform sessiond_event_add('session.refreshed', at, new."userId"::text, new."id"::text, body);
    end if;
    return null;
end
$$;

create or replace function sessiond_event_user() returns trigger
language plpgsql set search_path from current as $$
declare
    ctx jsonb := sessiond_event_ctx();
    at timestamptz := coalesce((ctx ->> 'at')::timestamptz, pg_catalog.now());
begin
    perform sessiond_event_add('user.created', at, new."id"::text, null,
        sessiond_event_about(ctx) || pg_catalog.jsonb_build_object('userId', new."id"::text));
    return null;
end
$$;

create or replace function sessiond_event_password() returns trigger
language plpgsql set search_path from current as $$
declare
    ctx jsonb := sessiond_event_ctx();
    at timestamptz := coalesce((ctx ->> 'at')::timestamptz, pg_catalog.now());
begin
    if new."providerId" = 'credential' and new."password" is distinct from old."password" then
        perform sessiond_event_add('user.password_changed', at, new."userId"::text, null,
            sessiond_event_about(ctx) || pg_catalog.jsonb_build_object('userId', new."userId"::text));
    end if;
    return null;
end
$$;

drop trigger if exists sessiond_event_session on "session";
create trigger sessiond_event_session
    after insert or delete or update of "expiresAt" on "session"
    for each row execute function sessiond_event_session();
drop trigger if exists sessiond_event_user on "user";
create trigger sessiond_event_user
    after insert on "user"
    for each row execute function sessiond_event_user();
drop trigger if exists sessiond_event_password on "account";
create trigger sessiond_event_password
    after update of "password" on "account"
    for each row execute function sessiond_event_password();
