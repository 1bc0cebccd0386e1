-- The language a user's mails and pages are written in (a BCP 47 tag), when known.
alter table users add column locale text;
