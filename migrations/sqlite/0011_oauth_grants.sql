-- The authorization code flow. A session may now belong to an OAuth client: its tokens carry the
-- client and the granted scope, and it is listed, refreshed and revoked like any other session.
-- A client's sessions go with the client.
alter table sessions add column client_id text references oauth_clients (client_id) on delete cascade;
alter table sessions add column scope text;
alter table sessions add column resource text;
create index sessions_by_client on sessions (client_id);

-- What a user allowed a client, so consent is asked once per client and scope.
create table oauth_consents (
    user_id text not null references users (id) on delete cascade,
    client_id text not null references oauth_clients (client_id) on delete cascade,
    scopes text not null,
    created_at integer not null,
    updated_at integer not null,
    primary key (user_id, client_id)
);
create index oauth_consents_by_client on oauth_consents (client_id);

-- Authorization codes, stored only as hashes: single use, short-lived, bound to the client, the
-- redirect URI and the PKCE challenge. A code presented twice revokes the session it opened.
create table oauth_codes (
    code_hash text primary key,
    client_id text not null references oauth_clients (client_id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    redirect_uri text not null,
    code_challenge text not null,
    scope text not null,
    nonce text,
    resource text,
    auth_time integer not null,
    auth_methods text not null,
    created_at integer not null,
    expires_at integer not null,
    used_at integer,
    session_id text
);
create index oauth_codes_expiry on oauth_codes (expires_at);
