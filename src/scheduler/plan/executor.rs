//! The merge's statement executor: one stored procedure in the mirror
//! schema (`sql/setup/executor.sql`) that runs the statements it is given,
//! so that one `CALL` of a merge batch stands for up to
//! [`MAX_ARGUMENTS`] statements.
//!
//! Why: the Data API takes at most 40 statements per batch, and one table's
//! merge is 13 to 20 statements, so batches of plain statements held two
//! tables, and a run took a transaction and about four requests per two
//! tables. Packed into CALLs ([`pack`]), a batch holds up to 40 tables (the
//! batch's own limit, [`MAX_TABLES_PER_BATCH`]), as one transaction: requests
//! and transactions nearly flat in the number of tables.
//!
//! Rules (Redshift's, docs/redshift.md "Statements per table, one CALL per
//! many"): at most 32 input arguments (r_CREATE_PROCEDURE), each a
//! `VARCHAR(65535)` (the longest VARCHAR), the CALL itself at most the Data
//! API's 100 KB; a statement that does not fit an argument runs as a plain
//! statement of the batch instead, as does one holding a raw CHR(1) (the
//! stand-in for a backslash in transit). Session settings (`SET`) and the
//! lease fence stay plain statements ([`super::MergeBatch`]'s head).

use crate::redshift::MAX_STATEMENT_BYTES;
use crate::sql::{self, SqlError};

use super::Objects;

/// The executor procedure's name in the mirror schema (Redshift reserves
/// the `sp_` prefix for stored procedures: no built-in will take it).
pub const EXECUTOR_NAME: &str = "sp_kinesync_execute";

/// Input arguments of a Redshift procedure, at most (r_CREATE_PROCEDURE).
pub const MAX_ARGUMENTS: usize = 32;

/// The longest VARCHAR, in bytes: each statement argument's type.
pub const MAX_ARGUMENT_BYTES: usize = 65_535;

/// Tables merged in one batch (one transaction), at most.
pub const MAX_TABLES_PER_BATCH: usize = 40;

/// What stands for a backslash inside an argument (turned back by the
/// procedure): a literal without backslashes reads the same under either
/// reading of backslashes in Redshift string literals.
const BACKSLASH_IN_TRANSIT: char = '\u{1}';

/// `CREATE OR REPLACE PROCEDURE` of the executor (`setup`, and a merge
/// that finds it missing).
pub fn executor_statement(objects: &Objects) -> Result<String, SqlError> {
    let arguments: Vec<String> = (1..=MAX_ARGUMENTS)
        .map(|i| format!("s{i} VARCHAR({MAX_ARGUMENT_BYTES})"))
        .collect();
    let steps: String = (1..=MAX_ARGUMENTS)
        .map(|i| {
            format!(
                "    IF s{i} IS NOT NULL THEN\n        EXECUTE REPLACE(s{i}, CHR(1), CHR(92));\n    END IF;\n"
            )
        })
        .collect();
    let mut values = objects.values();
    values.insert("executor_arguments", arguments.join(", "));
    values.insert("executor_arguments_count", MAX_ARGUMENTS.to_string());
    values.insert("executor_steps", steps.trim_end().to_owned());
    sql::SETUP_EXECUTOR.render_whole(&values)
}

/// `error` (a Redshift error's text) says the executor procedure does not
/// exist ("... sp_kinesync_execute(<argument types>) does not exist"; not
/// an error raised inside it, "... (in procedure mirror.sp_kinesync_execute)").
pub fn executor_missing(error: &str) -> bool {
    error
        .split(&format!("{EXECUTOR_NAME}("))
        .nth(1)
        .is_some_and(|after| {
            after
                .split(')')
                .nth(1)
                .is_some_and(|rest| rest.trim_start().starts_with("does not exist"))
        })
}

/// `DROP PROCEDURE` of the executor (`teardown --redshift`).
pub fn drop_executor_statement(objects: &Objects) -> Result<String, SqlError> {
    let types = vec![format!("VARCHAR({MAX_ARGUMENT_BYTES})"); MAX_ARGUMENTS];
    let mut values = objects.values();
    values.insert("executor_argument_types", types.join(", "));
    sql::TEARDOWN_REDSHIFT_EXECUTOR.render_one(&values)
}

/// `statements` as the batch sends them: runs of statements packed into
/// CALLs of the executor, each at most [`MAX_ARGUMENTS`] statements and
/// [`MAX_STATEMENT_BYTES`]; a statement that cannot be an argument stays
/// as it is, between CALLs, so the order is kept.
pub fn pack(objects: &Objects, statements: &[String]) -> Vec<String> {
    let mut wire = Vec::new();
    let mut call = Call::new(&objects.executor);
    for statement in statements {
        let Some(argument) = argument(statement) else {
            wire.extend(call.take());
            wire.push(statement.clone());
            continue;
        };
        if !call.fits(&argument) {
            wire.extend(call.take());
        }
        call.push(argument);
    }
    wire.extend(call.take());
    wire
}

/// How many statements [`pack`] makes of `statements`.
pub fn packed_len(objects: &Objects, statements: &[String]) -> usize {
    pack(objects, statements).len()
}

/// `statement` as a string literal argument, unless it is too long for a
/// `VARCHAR(65535)` or holds the character that stands for a backslash.
fn argument(statement: &str) -> Option<String> {
    if statement.len() > MAX_ARGUMENT_BYTES || statement.contains(BACKSLASH_IN_TRANSIT) {
        return None;
    }
    let text = statement
        .replace('\\', &BACKSLASH_IN_TRANSIT.to_string())
        .replace('\'', "''");
    Some(format!("'{text}'"))
}

/// One CALL being filled.
struct Call<'a> {
    executor: &'a str,
    arguments: Vec<String>,
    bytes: usize,
}

impl<'a> Call<'a> {
    fn new(executor: &'a str) -> Call<'a> {
        Call {
            executor,
            arguments: Vec::new(),
            bytes: 0,
        }
    }

    /// The CALL's length with `argument` added, the unused arguments
    /// written as NULL, within the Data API's limit.
    fn fits(&self, argument: &str) -> bool {
        let unused = MAX_ARGUMENTS.saturating_sub(self.arguments.len() + 1);
        let total = "CALL ".len()
            + self.executor.len()
            + "()".len()
            + self.bytes
            + argument.len()
            + ",\n".len() * MAX_ARGUMENTS
            + "NULL".len() * unused;
        self.arguments.len() < MAX_ARGUMENTS && total <= MAX_STATEMENT_BYTES
    }

    fn push(&mut self, argument: String) {
        self.bytes += argument.len();
        self.arguments.push(argument);
    }

    /// The CALL statement, if it has arguments; empties it.
    fn take(&mut self) -> Option<String> {
        if self.arguments.is_empty() {
            return None;
        }
        let mut arguments = std::mem::take(&mut self.arguments);
        self.bytes = 0;
        arguments.resize(MAX_ARGUMENTS, "NULL".to_owned());
        Some(format!("CALL {}({})", self.executor, arguments.join(",\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> Objects {
        let text = r#"
            [source]
            url = "postgres://u@h/db"
            tables = ["public.orders"]
            [kinesis]
            stream = "s"
            [redshift]
            workgroup = "w"
            database = "dev"
            stream_role_arn = "arn:aws:iam::123456789012:role/r"
        "#;
        let config = crate::config::Config::from_toml_with_env(text, &Default::default()).unwrap();
        Objects::new(&config, config.redshift.as_ref().unwrap())
    }

    #[test]
    fn statements_are_packed_into_calls_of_at_most_32_in_order() {
        let objects = objects();
        let statements: Vec<String> = (0..70).map(|i| format!("DELETE FROM t{i}")).collect();
        let wire = pack(&objects, &statements);
        assert_eq!(wire.len(), 3);
        assert!(wire
            .iter()
            .all(|s| s.starts_with("CALL \"mirror\".\"sp_kinesync_execute\"(")));
        assert_eq!(wire[0].matches("DELETE FROM").count(), 32);
        assert_eq!(wire[2].matches("DELETE FROM").count(), 6);
        assert_eq!(wire[2].matches("NULL").count(), 26);
        let first = wire[0].find("'DELETE FROM t0'").unwrap();
        assert!(first < wire[0].find("'DELETE FROM t31'").unwrap());
    }

    #[test]
    fn calls_stay_under_100_kb_and_long_statements_go_plain() {
        let objects = objects();
        let long = format!("SELECT '{}'", "x".repeat(MAX_ARGUMENT_BYTES));
        let mid = format!("SELECT '{}'", "y".repeat(40_000));
        let statements = vec![mid.clone(), mid.clone(), mid.clone(), long.clone(), mid];
        let wire = pack(&objects, &statements);
        assert!(wire.iter().all(|s| s.len() <= MAX_STATEMENT_BYTES));
        // Two 40 KB statements per CALL, the long one between CALLs.
        assert_eq!(wire.len(), 4);
        assert_eq!(wire[2], long);
        assert_eq!(packed_len(&objects, &statements), 4);
    }

    #[test]
    fn quotes_double_and_backslashes_travel_as_chr_1() {
        let objects = objects();
        let wire = pack(&objects, &[r"SELECT 'it''s a \ here'".to_owned()]);
        assert!(wire[0].contains("'SELECT ''it''''s a \u{1} here'''"));
        assert!(!wire[0].contains('\\'));
        let raw = "SELECT '\u{1}'".to_owned();
        assert_eq!(pack(&objects, std::slice::from_ref(&raw)), vec![raw]);
    }

    #[test]
    fn only_a_missing_executor_is_taken_for_one() {
        assert!(executor_missing(
            "ERROR: procedure mirror.sp_kinesync_execute(unknown, unknown) does not exist (sub-statement 4 of 5; the batch was rolled back)"
        ));
        assert!(!executor_missing(
            "ERROR: column m.id does not exist (in procedure mirror.sp_kinesync_execute) (sub-statement 4 of 5)"
        ));
    }

    #[test]
    fn the_executor_takes_32_statements_and_turns_chr_1_back() {
        let statement = executor_statement(&objects()).unwrap();
        assert!(statement.starts_with(
            "CREATE OR REPLACE PROCEDURE \"mirror\".\"sp_kinesync_execute\"(s1 VARCHAR(65535)"
        ));
        assert!(statement.contains("s32 VARCHAR(65535))"));
        assert_eq!(statement.matches("EXECUTE REPLACE(").count(), 32);
        assert!(statement.ends_with("$$ LANGUAGE plpgsql"));
        assert!(!statement.contains("--"));
    }
}
