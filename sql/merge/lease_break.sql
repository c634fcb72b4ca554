-- Drop the lease of a scheduler that is known to be gone (same host, its
-- process no longer exists), so that a run killed mid-merge does not block
-- the next one until the lease expires.
DELETE FROM {{lease}} WHERE name = 'merge' AND holder = {{stale_holder}};
