-- PostgreSQL answers the email-substring filter from the pg_trgm index of 0004; SQLite's
-- migration of this number adds its trigram index. Kept so both databases count the same.
select 1;
