-- A confidential client may hold tokens of its own (client_credentials, no user). They all
-- carry one session id, so revoking them, or removing the client, is one revocation like any
-- session's; a fresh id is drawn on the next grant after that.
alter table oauth_clients add column service_session_id text;
