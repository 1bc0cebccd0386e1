-- How each session's holder authenticated and when, so that refreshed access tokens keep
-- auth_time, amr and acr. Sessions from before were opened by a password at their start.
alter table sessions add column auth_time integer;
alter table sessions add column auth_methods text not null default 'pwd';
update sessions set auth_time = created_at;
