-- Lifecycle events on SQLite (see postgres.sql): the same outbox, filled by triggers. The
-- context of sessiond's own writes is the one row of "sessiond_event_ctx", written and
-- cleared inside the write's transaction (SQLite has one writer at a time). SQLite has no
-- SHA-256, so its session events carry no "sid".

create table if not exists "sessiond_event" (
    "id" integer primary key autoincrement,
    "eventId" text not null unique,
    "type" text not null,
    "occurredAt" text not null,
    "userId" text,
    "sessionId" text,
    "data" text not null,
    "pending" integer not null default 1,
    "attempts" integer not null default 0,
    "nextAt" text not null,
    "leaseUntil" text,
    "delivered" text not null default ''
);
create index if not exists "sessiond_event_due_idx" on "sessiond_event" ("pending", "nextAt");
create index if not exists "sessiond_event_user_idx" on "sessiond_event" ("userId", "id");
create index if not exists "sessiond_event_time_idx" on "sessiond_event" ("occurredAt");

create table if not exists "sessiond_event_ctx" (
    "id" integer primary key check ("id" = 1),
    "data" text not null
);

drop view if exists "sessiond_event_now";
create view "sessiond_event_now" as
    select c."ctx",
           coalesce(json_extract(c."ctx", '$.at'), strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')) as "at",
           case when c."ctx" is null then 'external' else 'sessiond' end as "origin",
           case when json_extract(c."ctx", '$.ip') is not null or json_extract(c."ctx", '$.ua') is not null
                then json_object('ipAddress', json_extract(c."ctx", '$.ip'), 'userAgent', json_extract(c."ctx", '$.ua'))
           end as "request"
    from (select (select "data" from "sessiond_event_ctx" where "id" = 1) as "ctx") c;

drop trigger if exists "sessiond_event_session_insert";
create trigger "sessiond_event_session_insert" after insert on "session"
begin
    insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
    select 'evt_' || lower(hex(randomblob(16))), k."type", n."at", new."userId", new."id",
           json_object('origin', n."origin", 'request', json(n."request"),
                       'sessionId', new."id", 'userId', new."userId",
                       'ipAddress', new."ipAddress", 'userAgent', new."userAgent",
                       'createdAt', new."createdAt", 'expiresAt', new."expiresAt"),
           n."at"
    from "sessiond_event_now" n
    join (select 'session.created' as "type", 0 as "o" union all select 'user.signed_in', 1) k
      on k."o" = 0 or coalesce(json_extract(n."ctx", '$.sign_in'), 0) = 1
    order by k."o";
end;

drop trigger if exists "sessiond_event_session_delete";
create trigger "sessiond_event_session_delete" after delete on "session"
begin
    insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
    select 'evt_' || lower(hex(randomblob(16))), 'session.revoked', n."at", old."userId", old."id",
           json_object('origin', n."origin", 'request', json(n."request"),
                       'by', json_extract(n."ctx", '$.by'),
                       'sessionId', old."id", 'userId', old."userId",
                       'ipAddress', old."ipAddress", 'userAgent', old."userAgent",
                       'createdAt', old."createdAt", 'expiresAt', old."expiresAt", 'endedAt', n."at",
                       'reason', coalesce(json_extract(n."ctx", '$.reason'),
                                          case when old."expiresAt" <= n."at" then 'expired' else 'external' end)),
           n."at"
    from "sessiond_event_now" n;
end;

drop trigger if exists "sessiond_event_session_update";
create trigger "sessiond_event_session_update" after update of "expiresAt" on "session"
begin
    insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
    select 'evt_' || lower(hex(randomblob(16))),
           case when new."expiresAt" <= n."at" then 'session.revoked' else 'session.refreshed' end,
           n."at", new."userId", new."id",
           json_object('origin', n."origin", 'request', json(n."request"),
                       'by', json_extract(n."ctx", '$.by'),
                       'sessionId', new."id", 'userId', new."userId",
                       'ipAddress', new."ipAddress", 'userAgent', new."userAgent",
                       'createdAt', new."createdAt", 'expiresAt', new."expiresAt",
                       'endedAt', case when new."expiresAt" <= n."at" then n."at" end,
                       'reason', case when new."expiresAt" <= n."at"
                                      then coalesce(json_extract(n."ctx", '$.reason'), 'external') end),
           n."at"
    from "sessiond_event_now" n
    where (new."expiresAt" <= n."at" and old."expiresAt" > n."at")
       or (new."expiresAt" > old."expiresAt" and coalesce(json_extract(n."ctx", '$.refreshed'), 0) = 1);
end;

drop trigger if exists "sessiond_event_user";
create trigger "sessiond_event_user" after insert on "user"
begin
    insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
    select 'evt_' || lower(hex(randomblob(16))), 'user.created', n."at", new."id", null,
           json_object('origin', n."origin", 'request', json(n."request"),
                       'userId', new."id"),
           n."at"
    from "sessiond_event_now" n;
end;

drop trigger if exists "sessiond_event_password";
create trigger "sessiond_event_password" after update of "password" on "account"
when new."providerId" = 'credential' and new."password" is not old."password"
begin
    insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
    select 'evt_' || lower(hex(randomblob(16))), 'user.password_changed', n."at", new."userId", null,
           json_object('origin', n."origin", 'request', json(n."request"),
                       'userId', new."userId"),
           n."at"
    from "sessiond_event_now" n;
end;
