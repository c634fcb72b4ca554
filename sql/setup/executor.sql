-- The merge's statement executor: runs up to {{executor_arguments_count}}
-- statements, in order, in the caller's transaction, so that one CALL in a
-- merge batch stands for many statements and a batch of the Data API's 40
-- statements merges up to 40 tables (docs/redshift.md, "Statements per
-- table, one CALL per many"). SECURITY INVOKER (the default): the caller's
-- privileges, nothing more. The statements travel as VARCHAR arguments
-- with each backslash written as CHR(1) (the literal then holds no
-- backslash, so it reads the same whether or not backslashes escape in
-- string literals) and turned back here. Dynamic SQL (EXECUTE), IF and
-- NULL are the PL/pgSQL statements of c_PLpgSQL-statements; no COMMIT,
-- ROLLBACK or TRUNCATE, which a procedure called in a transaction block
-- may not run. A single statement: rendered whole, never split.
CREATE OR REPLACE PROCEDURE {{executor}}({{executor_arguments}})
AS $$
BEGIN
{{executor_steps}}
END;
$$ LANGUAGE plpgsql
