-- Secrets at rest are sealed (AEAD) under the secret key, which never enters the database.
-- Rows an earlier version wrote in clear are sealed in place at start-up, by the service: SQL
-- has no key. A sealed signing key has `sealed` set and its sealed bytes in `private_der`.
alter table signing_keys add column sealed integer not null default 0;

-- A queued mail's bodies, sealed until sent; `text_body`/`html_body` stay null for new rows
-- (an earlier version filled them). Erased once the mail is sent or given up, as before.
alter table mail_queue add column sealed_body blob;

-- One row: a value sealed under the secret key at the first start, so that a wrong key stops
-- start-up before it seals or opens anything, even when nothing else is sealed yet.
create table sealing (
    id integer primary key check (id = 1),
    canary blob not null,
    created_at integer not null,
    updated_at integer not null
);
