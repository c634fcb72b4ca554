-- A merge batch's last statement (a query: its rows come back with one
-- GetStatementResult): what each table's merge changed.
SELECT mirror_table, replaced, deleted, upserted FROM kinesync_merge_counts;
