-- Second factors. A TOTP secret is sealed under the secret key (bound to its user), so a copy
-- of the database yields no authenticator; it is pending until a code confirms it. last_step is
-- the 30-second step of the last code accepted: no code of that step or an earlier one works
-- again.
create table totp_factors (
    user_id text primary key references users (id) on delete cascade,
    secret_sealed blob not null,
    confirmed_at integer,
    last_step integer,
    created_at integer not null,
    updated_at integer not null
);

-- Recovery codes, stored only as keyed hashes; a used code keeps its row (used_at) so that the
-- count left is known and a reuse is told apart from a wrong code.
create table recovery_codes (
    user_id text not null references users (id) on delete cascade,
    code_hash text not null,
    used_at integer,
    created_at integer not null,
    primary key (user_id, code_hash)
);

-- WebAuthn credentials: the credential id (base64url) is unique across users; passkey is
-- webauthn-rs's record of it (public key, sign counter, backup flags) as JSON.
create table webauthn_credentials (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    credential_id text not null unique,
    name text not null,
    passkey text not null,
    created_at integer not null,
    updated_at integer not null,
    last_used_at integer
);
create index webauthn_credentials_by_user on webauthn_credentials (user_id);

-- Ceremonies between two requests: a login waiting for its second factor (its mfa_token's
-- hash), a passkey sign-in, a credential registration or a re-authentication (keyed by the
-- user or session they belong to). state is the WebAuthn challenge state, when there is one.
create table mfa_challenges (
    key_hash text primary key,
    kind text not null,
    user_id text references users (id) on delete cascade,
    session_id text,
    ip text,
    user_agent text,
    auth_time integer,
    auth_methods text,
    password_digest text,
    state text,
    tries integer not null default 0,
    created_at integer not null,
    updated_at integer not null,
    expires_at integer not null
);
create index mfa_challenges_expiry on mfa_challenges (expires_at);
