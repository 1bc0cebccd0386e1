-- OAuth 2.1 / OpenID Connect clients. A confidential client's secret is kept only as its
-- SHA-256: it is 256 random bits, so a fast hash is as safe as a slow one and a copy of the
-- database yields no secret. URIs and scopes are JSON arrays, compared exactly.
create table oauth_clients (
    client_id text primary key,
    name text not null,
    confidential boolean not null,
    secret_hash text,
    redirect_uris text not null,
    post_logout_redirect_uris text not null,
    scopes text not null,
    first_party boolean not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index oauth_clients_newest_first on oauth_clients (created_at desc, client_id);
