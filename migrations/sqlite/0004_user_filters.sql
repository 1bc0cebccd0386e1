-- Every filter of GET /users walks its own index newest first, so a page costs the same on a
-- thousand users as on a million (the role-only index is superseded by the first).
create index users_by_role_newest on users (role, created_at desc, id desc);
create index users_by_verified_newest on users (email_verified, created_at desc, id desc);
create index users_by_disabled_newest on users (disabled, created_at desc, id desc);
drop index users_by_role;
