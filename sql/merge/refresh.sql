-- Its own transaction in Redshift: never part of the merge batch.
REFRESH MATERIALIZED VIEW {{events_view}};
