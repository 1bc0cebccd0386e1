-- Password checks, counted when they start, per subject (a keyed hash of the address, so an
-- unknown address costs the same writes as a known one) and client network: the slow-down is
-- keyed by both, so a guesser slows himself and not the owner. The row with network '*' counts
-- one subject's failures across all networks in a day (window_start); reaching the daily cap
-- suspends password-only login until suspended_until (the owner is mailed a reset link).
create table password_attempts (
    subject text not null,
    network text not null,
    failures integer not null default 0,
    window_start integer not null,
    last_failed_at integer,
    suspended_until integer,
    created_at integer not null,
    updated_at integer not null,
    primary key (subject, network)
);
create index password_attempts_age on password_attempts (updated_at);

-- Accounts a visitor registered: their first confirmation also needs the password (a
-- confirmation link proves the mailbox, not who created the account), and they are deleted
-- when still unverified after LATCHKEY_UNVERIFIED_ACCOUNT_TTL.
alter table users add column self_registered integer not null default 0;
-- Accounts registered by a visitor before this version: those the outbox still remembers.
update users set self_registered = 1
where email_verified = 0 and password_hash is not null and id in (
    select user_id from events
    where type = 'USER_REGISTERED' and envelope like '%"origin":"self_service"%');
create index users_unverified on users (email_verified, created_at);
-- Admins are counted on every change that could remove the last one.
create index users_by_role on users (role);

-- Mail that one address may trigger at most so often (e.g. the conceal-mode notice), and the
-- one row every forgot-password and resend request writes, whether or not the address has an
-- account, so that both answers cost the same database work: the request waits here (the
-- address sealed under the secret key) until a worker, after the answer, claims it for a while,
-- looks the account up and mails it (a worker that dies leaves it to the next one). Keyed by a keyed hash of the address.
create table mail_throttle (
    subject text not null,
    purpose text not null,
    last_requested_at integer not null,
    last_sent_at integer,
    pending integer not null default 0,
    email_sealed blob,
    claimed_until integer,
    created_at integer not null,
    updated_at integer not null,
    primary key (subject, purpose)
);
create index mail_throttle_age on mail_throttle (updated_at);
create index mail_throttle_pending on mail_throttle (pending, last_requested_at);
