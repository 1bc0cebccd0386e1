-- The email-substring filter of GET /users walks a trigram index instead of scanning every user
-- (a LIKE '%…%' can use no B-tree). The index keys rows by user id, not by SQLite's implicit
-- rowid, which VACUUM may renumber. secure-delete removes a deleted address from the index
-- itself, not only from its content, so no trace of it stays in the file.
create virtual table users_email_search using fts5(email, user_id unindexed, tokenize = 'trigram');
insert into users_email_search (users_email_search, rank) values ('secure-delete', 1);
insert into users_email_search (email, user_id) select email, id from users;

create trigger users_email_search_insert after insert on users begin
    insert into users_email_search (email, user_id) values (new.email, new.id);
end;

-- The full address as a phrase finds its entry through the index itself.
create trigger users_email_search_delete after delete on users begin
    delete from users_email_search where rowid in (
        select rowid from users_email_search
        where users_email_search match '"' || replace(old.email, '"', '""') || '"'
          and user_id = old.id);
end;

create trigger users_email_search_update after update of email on users begin
    delete from users_email_search where rowid in (
        select rowid from users_email_search
        where users_email_search match '"' || replace(old.email, '"', '""') || '"'
          and user_id = old.id);
    insert into users_email_search (email, user_id) values (new.email, new.id);
end;
