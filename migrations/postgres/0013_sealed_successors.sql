-- A refresh erases the sealed successors of its session that are past the grace window. Only
-- the few tokens still holding one are worth looking at: indexed by session alone, the 3,000th
-- refresh of a session read all 2,999 spent tokens before it.
create index refresh_tokens_sealed on refresh_tokens (session_id, used_at)
    where successor_sealed is not null;
