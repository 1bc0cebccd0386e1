-- An email change asked for: kept while its confirmation link or its revert link lives (the
-- links are email_tokens whose grp is the change's id). Once confirmed, old_email stays reserved
-- for its user while the revert link lives, so that nobody can register the vacated address and
-- keep its owner from taking the account back.
create table email_changes (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    old_email text not null,
    new_email text not null,
    -- The session that asked: confirming revokes every other one (none for an admin's change).
    session_id text,
    created_at bigint not null,
    confirmed_at bigint
);
create index email_changes_by_user on email_changes (user_id, created_at);
create index email_changes_by_old_email on email_changes (old_email);
create index email_tokens_by_group on email_tokens (grp);
