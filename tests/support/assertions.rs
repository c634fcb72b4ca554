//! What a test asserts: the mirror equals the source, row for row; a failure
//! is one line on stderr.

use super::pipeline::Pipeline;
use super::stack::text_rows;

impl Pipeline {
    /// Once the producer has confirmed everything committed so far and one
    /// merge has run, each of `tables` in the mirror equals the source.
    pub async fn assert_merge_converges(&mut self, tables: &[&str]) {
        self.sync_producer().await;
        self.merge_once().await;
        for table in tables {
            self.assert_mirror_equals_source(table).await;
        }
    }

    /// [`Self::assert_merge_converges`], merged again until it holds or the
    /// deadline passed: for what reaches the stream a while after its
    /// commit (a shape probe's record, every check interval).
    pub async fn assert_merge_converges_eventually(&mut self, tables: &[&str]) {
        let deadline = tokio::time::Instant::now() + super::DEADLINE;
        loop {
            self.sync_producer().await;
            self.merge_once().await;
            let mut equal = true;
            for table in tables {
                // A column the mirror lacks yet fails the comparison query.
                if !self.mirror_has_columns(table).await {
                    equal = false;
                    continue;
                }
                let (source_rows, mirror_rows) = self.rows_both(table).await;
                equal &= source_rows == mirror_rows;
            }
            if equal || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        for table in tables {
            self.assert_mirror_equals_source(table).await;
        }
    }

    /// Every row of `table` in source and mirror, each column as text,
    /// ordered by the key columns, must be equal.
    pub async fn assert_mirror_equals_source(&self, table: &str) {
        let (source_rows, mirror_rows) = self.rows_both(table).await;
        if source_rows != mirror_rows {
            let only_source: Vec<_> = source_rows
                .iter()
                .filter(|r| !mirror_rows.contains(r))
                .take(10)
                .collect();
            let only_mirror: Vec<_> = mirror_rows
                .iter()
                .filter(|r| !source_rows.contains(r))
                .take(10)
                .collect();
            panic!(
                "mirror of {table} differs from source ({} vs {} rows)\nonly in source: {only_source:#?}\nonly in mirror: {only_mirror:#?}",
                source_rows.len(),
                mirror_rows.len()
            );
        }
    }

    /// (source rows, mirror rows) of `table`, as text, ordered alike.
    pub async fn rows_both(
        &self,
        table: &str,
    ) -> (Vec<Vec<Option<String>>>, Vec<Vec<Option<String>>>) {
        let (source_sql, mirror_sql) = self.comparison(table).await;
        let source_rows = text_rows(&self.source, &source_sql).await;
        let mirror_rows = text_rows(&self.mirror, &mirror_sql).await;
        (source_rows, mirror_rows)
    }

    /// The queries [`Self::rows_both`] compares: (source, mirror).
    async fn comparison(&self, table: &str) -> (String, String) {
        let (schema, name) = table.split_once('.').expect("schema.table");
        // Generated columns are compared where pgoutput sends them (stored
        // ones on 18 and later: docs/postgres-versions.md), and the mirror
        // has no others. The source side applies the documented type mapping: json, jsonb
        // and arrays land in SUPER, compared as jsonb text; NaN, infinities
        // and floats outside Redshift's ranges, BC and 5-digit-year dates
        // and timestamps are NULL; TIMETZ is in UTC (docs/redshift.md).
        let columns: Vec<(String, String)> = self
            .source
            .query(
                "SELECT a.attname, CASE WHEN t.typcategory = 'A' OR t.typname IN ('json', 'jsonb') \
                   THEN 'to_jsonb(' || quote_ident(a.attname) || ')::text' \
                   WHEN t.typname = 'float8' THEN 'CASE WHEN ' || quote_ident(a.attname) || ' = 0 OR abs(' || quote_ident(a.attname) \
                     || ') BETWEEN 1e-307 AND 1e308 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname = 'float4' THEN 'CASE WHEN ' || quote_ident(a.attname) || ' = 0 OR abs(' || quote_ident(a.attname) \
                     || '::text::float8) BETWEEN 1e-37 AND 1e37 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname IN ('date', 'timestamp') THEN 'CASE WHEN EXTRACT(YEAR FROM ' || quote_ident(a.attname) \
                     || ') BETWEEN 1 AND 9999 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname = 'timestamptz' THEN 'CASE WHEN EXTRACT(YEAR FROM ' || quote_ident(a.attname) \
                     || ' AT TIME ZONE ''UTC'') BETWEEN 1 AND 9999 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname = 'timetz' THEN '(' || quote_ident(a.attname) || ' AT TIME ZONE ''UTC'')::text' \
                   ELSE quote_ident(a.attname) || '::text' END \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
                 AND a.attnum > 0 AND NOT a.attisdropped \
                 AND (a.attgenerated = '' OR (a.attgenerated = 's' AND current_setting('server_version_num')::int >= 180000)) \
                 ORDER BY a.attnum",
                &[&schema, &name],
            )
            .await
            .expect("columns")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let source_list = columns
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let mirror_list = columns
            .iter()
            // Mirror names as Redshift stores them (ASCII letters folded).
            .map(|(c, _)| format!("\"{}\"::text", c.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(", ");
        let order = (1..=columns.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mirror_name = if schema == "public" {
            name.to_ascii_lowercase()
        } else {
            format!("{schema}__{name}").to_ascii_lowercase()
        };
        let source_sql =
            format!("SELECT {source_list} FROM \"{schema}\".\"{name}\" ORDER BY {order}");
        let mirror_sql =
            format!("SELECT {mirror_list} FROM \"mirror\".\"{mirror_name}\" ORDER BY {order}");
        (source_sql, mirror_sql)
    }

    /// Whether `table`'s mirror has every column of the source yet.
    async fn mirror_has_columns(&self, table: &str) -> bool {
        let (_, mirror_sql) = self.comparison(table).await;
        self.mirror.query(&mirror_sql, &[]).await.is_ok()
    }
}

/// The user-facing failure standard: a non-zero exit (`expected_code` when
/// given), exactly one `kinesync: error: ...` line on stderr, which is its
/// last line and contains every one of `needles`; no panic, no backtrace.
/// Returns the error line.
pub fn assert_one_line_error(
    (code, stdout, stderr): &(i32, String, String),
    expected_code: Option<i32>,
    needles: &[&str],
) -> String {
    let context = format!("exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_ne!(*code, 0, "expected a failure; {context}");
    if let Some(expected) = expected_code {
        assert_eq!(*code, expected, "wrong exit code; {context}");
    }
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(
            !stderr.contains(bad),
            "stderr shows a panic ({bad}); {context}"
        );
    }
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kinesync: error:"))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "expected exactly one error line; {context}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last, error_lines[0],
        "the error line must be the last line of stderr; {context}"
    );
    for needle in needles {
        assert!(
            last.contains(needle),
            "the error line does not mention {needle:?}: {last}\n{context}"
        );
    }
    last.to_owned()
}
