-- Times are Unix microseconds (UTC), as on SQLite, so both backends share one representation.
create table users (
    id text primary key,
    email text not null unique,
    email_verified boolean not null default false,
    password_hash text,
    name text,
    phone text,
    role text not null,
    disabled boolean not null default false,
    metadata text not null default '{}',
    created_at bigint not null,
    updated_at bigint not null,
    last_login_at bigint,
    -- Consecutive failed logins, and when the last one was: they slow the account down.
    failed_logins bigint not null default 0,
    last_failed_login_at bigint
);
create index users_newest_first on users (created_at desc, id desc);

-- A session is the chain of refresh tokens from one login.
create table sessions (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    user_agent text,
    ip text,
    created_at bigint not null,
    updated_at bigint not null,
    last_used_at bigint not null,
    expires_at bigint not null,
    revoked_at bigint
);
create index sessions_by_user on sessions (user_id);
create index sessions_expiry on sessions (expires_at);
create index sessions_revoked on sessions (revoked_at);

-- Refresh tokens are stored only as hashes. Once a token is used, its (random) successor is kept
-- sealed under a pad only the presented token can rebuild, for the grace window and no longer.
create table refresh_tokens (
    token_hash text primary key,
    session_id text not null references sessions (id) on delete cascade,
    created_at bigint not null,
    updated_at bigint not null,
    expires_at bigint not null,
    used_at bigint,
    successor_sealed bytea
);
create index refresh_tokens_by_session on refresh_tokens (session_id);
create index refresh_tokens_expiry on refresh_tokens (expires_at);

-- The outbox: one row per event, written in the transaction of the change it describes.
create table events (
    seq bigserial primary key,
    id text not null unique,
    user_id text,
    type text not null,
    envelope text not null,
    created_at bigint not null,
    updated_at bigint not null,
    published_at bigint
);
create index events_unpublished on events (published_at, seq);

-- JWT signing keys, shared by every instance on this database.
create table signing_keys (
    kid text primary key,
    alg text not null,
    private_der bytea not null,
    public_jwk text not null,
    created_at bigint not null,
    updated_at bigint not null,
    retired_at bigint
);

-- Revoked sessions, kept until no access token of theirs can still be alive (24 h at most):
-- every instance reads them to refuse those tokens within a second.
create table revocations (
    seq bigserial primary key,
    session_id text not null,
    user_id text not null,
    created_at bigint not null,
    updated_at bigint not null,
    expires_at bigint not null
);
create index revocations_expiry on revocations (expires_at);

-- The outbound mail queue: rows are written in the transaction of the change that causes them
-- and delivered by a worker with retries. Bodies are erased once sent or given up.
create table mail_queue (
    id text primary key,
    user_id text,
    recipient text not null,
    subject text not null,
    text_body text,
    html_body text,
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    claimed_until bigint,
    last_error text,
    created_at bigint not null,
    updated_at bigint not null,
    sent_at bigint,
    failed_at bigint
);
create index mail_queue_due on mail_queue (sent_at, failed_at, next_attempt_at);

-- Single-use tokens sent by mail, stored hashed (codes with a keyed hash). A reset link and its
-- code share a group: using one kills the other.
create table email_tokens (
    token_hash text primary key,
    user_id text not null references users (id) on delete cascade,
    purpose text not null,
    grp text not null,
    failed_attempts bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null,
    expires_at bigint not null,
    used_at bigint
);
create index email_tokens_by_user on email_tokens (user_id, purpose);
create index email_tokens_expiry on email_tokens (expires_at);

-- Which instance runs a singleton job right now (the event relay, so events leave in order).
create table leases (
    name text primary key,
    holder text not null,
    until_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
