//! Redshift SQL -> PostgreSQL SQL rewriting.
//!
//! Pure functions: [`rewrite_statement`] takes one lexed statement, the
//! per-session Redshift settings and a [`Context`] (facts about the target
//! database the executor loaded: Kinesis external schemas, SUPER column
//! names, streaming views) and returns an [`Action`]: SQL text to run on
//! PostgreSQL, or a typed request the executor carries out itself (external
//! schema, streaming view creation/refresh/drop, stored procedures, session
//! settings). SQL that Redshift would reject in the emulated subset gives a
//! [`RedshiftError`].
//!
//! The rewriting works on tokens (see [`lexer`]), never with regular
//! expressions over raw text, so string literals, quoted identifiers and
//! comments are never altered by accident.

pub mod lexer;
pub mod long_names;
pub mod plpgsql;
pub mod procedure;
pub mod rules;

use std::collections::{HashMap, HashSet};

pub use lexer::{lex, split, Tok, TokKind};

/// Schema holding the stand-in's catalog and helper functions.
pub const STANDIN_SCHEMA: &str = "kinesync_standin";
/// Staging table a streaming view's translated SELECT reads from.
pub const STAGING_TABLE: &str = "kinesync_standin_staging";

/// An error Redshift would raise for this SQL (or SQL outside the subset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedshiftError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// Redshift session settings the stand-in tracks (one Data API statement or
/// batch is one session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub case_sensitive_super_attribute: bool,
    pub case_sensitive_identifier: bool,
    pub json_parse_truncate_strings: bool,
    /// Other accepted Redshift-only settings (tracked, no effect).
    pub other: HashMap<String, String>,
}

/// Facts about the database the statement runs in.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Names of Kinesis external schemas (lower case).
    pub kinesis_schemas: HashSet<String>,
    /// Lower-cased names of every SUPER (jsonb) column visible.
    pub super_columns: HashSet<String>,
    /// Names of existing schemas (to tell `schema.table.col` from navigation).
    pub schemas: HashSet<String>,
    /// Streaming views as (schema, name).
    pub streaming_views: HashSet<(String, String)>,
    /// Schemas holding stored procedures (the stand-in's catalog).
    pub procedure_schemas: HashSet<String>,
    /// Schema unqualified names resolve to.
    pub current_schema: String,
    /// Data API `Parameters` (`:name` -> value), if the request had any.
    pub params: Option<HashMap<String, String>>,
    /// True inside BatchExecuteStatement (one transaction).
    pub in_batch: bool,
}

/// A possibly schema-qualified relation name (already case-folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QName {
    pub schema: Option<String>,
    pub name: String,
}

impl QName {
    /// Quoted SQL form.
    pub fn sql(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }

    fn resolved(&self, ctx: &Context) -> (String, String) {
        (
            self.schema
                .clone()
                .unwrap_or_else(|| ctx.current_schema.clone()),
            self.name.clone(),
        )
    }
}

/// What the executor must do for one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run this PostgreSQL SQL.
    Sql(String),
    /// A Redshift-only `SET`/`RESET` (already applied to the session).
    Set {
        name: String,
        value: String,
    },
    /// Accepted but nothing to do on PostgreSQL (e.g. `ALTER TABLE .. ALTER DISTKEY`).
    Noop {
        reason: String,
    },
    CreateExternalSchema {
        schema: String,
        if_not_exists: bool,
        iam_role: String,
    },
    /// `DROP SCHEMA` of external schemas or schemas holding stored
    /// procedures: run `sql`, then forget what the catalog knew of them.
    DropSchema {
        schemas: Vec<String>,
        sql: String,
    },
    CreateStreamingView {
        schema: String,
        name: String,
        external_schema: String,
        stream: String,
        /// Translated SELECT reading `pg_temp.kinesync_standin_staging`.
        select_sql: String,
        auto_refresh: bool,
        /// SORTKEY columns: the stand-in indexes them, standing in for
        /// Redshift's zone maps (so a filter on them skips the history).
        sort_key: Vec<String>,
    },
    RefreshStreamingView {
        schema: String,
        name: String,
    },
    DropStreamingView {
        schema: String,
        name: String,
        if_exists: bool,
    },
    /// `CREATE [OR REPLACE] PROCEDURE` (kept in the stand-in's catalog).
    CreateProcedure(Box<procedure::ProcedureDef>),
    DropProcedure(Box<procedure::DropProcedure>),
    /// `CALL`: the executor interprets the procedure's body.
    Call(Box<procedure::CallSpec>),
}

/// Quotes an identifier for PostgreSQL (a name over 63 bytes as its
/// [`long_names::pg_name`]).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", long_names::pg_name(s).replace('"', "\"\""))
}

/// Quotes a string literal for PostgreSQL (standard_conforming_strings on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Lexes and splits SQL text into statements.
pub fn split_statements(sql: &str) -> Result<Vec<Vec<Tok>>, RedshiftError> {
    Ok(split(lex(sql)?))
}

/// Redshift-only settings accepted by SET/RESET (tracked per session).
const REDSHIFT_SETTINGS: &[&str] = &[
    "enable_case_sensitive_super_attribute",
    "enable_case_sensitive_identifier",
    "downcase_delimited_identifier",
    "json_parse_truncate_strings",
    "enable_result_cache_for_session",
    "query_group",
    "wlm_query_slot_count",
    "analyze_threshold_percent",
    "auto_analyze",
    "describe_field_name_in_uppercase",
    "enable_numeric_rounding",
    "mv_enable_aqmv_for_session",
    "navigate_super_null_on_error",
    "parse_super_null_on_error",
    "cast_super_null_on_error",
    "spectrum_query_maxerror",
];

/// Functions that are rewritten to `kinesync_standin.<name>`.
const STANDIN_FUNCTIONS: &[&str] = &[
    "json_parse",
    "can_json_parse",
    "is_varchar",
    "is_char",
    "is_bigint",
    "is_integer",
    "is_smallint",
    "is_decimal",
    "is_float",
    "is_boolean",
    "is_object",
    "is_array",
    "is_scalar",
    "json_serialize",
    "json_typeof",
    "from_hex",
    "to_hex",
    "to_varbyte",
    "strtol",
    "json_extract_path_text",
];

/// Catalog relations that are rewritten to `kinesync_standin.<name>`.
const STANDIN_RELATIONS: &[&str] = &[
    "svv_mv_info",
    "svv_external_schemas",
    "sys_stream_scan_errors",
];

/// Date-time functions that make a view not incrementally refreshable.
const DATETIME_WORDS: &[&str] = &[
    "getdate",
    "sysdate",
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "random",
];

/// Words that cannot be a FROM alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "group",
    "having",
    "order",
    "limit",
    "union",
    "except",
    "intersect",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "on",
    "using",
    "window",
    "qualify",
    "offset",
    "fetch",
    "lateral",
];

const JOIN_WORDS: &[&str] = &[
    "join", "inner", "left", "right", "full", "cross", "natural", "lateral",
];

fn next_sig(toks: &[Tok], mut i: usize) -> Option<usize> {
    while i < toks.len() {
        if toks[i].is_significant() {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn prev_sig(toks: &[Tok], i: usize) -> Option<usize> {
    (0..i).rev().find(|&j| toks[j].is_significant())
}

/// Index of the `)` matching the `(` at `open`.
fn matching_close(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (j, t) in toks.iter().enumerate().skip(open) {
        if t.is_punct("(") || t.is_punct("[") {
            depth += 1;
        } else if t.is_punct(")") || t.is_punct("]") {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// Paren depth of every token (depth before the token itself).
fn depths(toks: &[Tok]) -> Vec<i32> {
    let mut d = 0;
    toks.iter()
        .map(|t| {
            if t.is_punct(")") {
                d -= 1;
            }
            let cur = d;
            if t.is_punct("(") {
                d += 1;
            }
            cur
        })
        .collect()
}

fn near(toks: &[Tok], i: usize) -> String {
    toks.get(i)
        .map(|t| format!("syntax error at or near \"{}\"", t.text))
        .unwrap_or_else(|| "syntax error at end of input".to_string())
}

#[derive(Debug, Clone)]
enum PartKind {
    Ident,
    Index,
}

#[derive(Debug, Clone)]
struct Part {
    idx: usize,
    kind: PartKind,
}

/// Collects `ident(.ident | [n])*` starting at `i` (tokens must be adjacent).
fn collect_chain(toks: &[Tok], i: usize) -> (Vec<Part>, usize) {
    let mut parts = vec![Part {
        idx: i,
        kind: PartKind::Ident,
    }];
    let mut j = i + 1;
    loop {
        if j + 1 < toks.len() && toks[j].is_punct(".") && toks[j + 1].is_ident() {
            parts.push(Part {
                idx: j + 1,
                kind: PartKind::Ident,
            });
            j += 2;
        } else if j + 2 < toks.len()
            && toks[j].is_punct("[")
            && toks[j + 1].kind == TokKind::Num
            && toks[j + 2].is_punct("]")
        {
            parts.push(Part {
                idx: j + 1,
                kind: PartKind::Index,
            });
            j += 3;
        } else {
            break;
        }
    }
    (parts, j)
}

/// A parsed type name (`base` lower case, multi-word joined by one space).
#[derive(Debug, Clone)]
struct TypeSpec {
    base: String,
    args: Vec<String>,
    /// Token range of the type in the source.
    start: usize,
    end: usize,
}

fn parse_type(toks: &[Tok], start: usize) -> Option<TypeSpec> {
    let w1 = toks.get(start)?.word_lower()?;
    let mut end = start + 1;
    let mut base = w1.clone();
    let follow = |end: usize, words: &[&str]| -> Option<usize> {
        let mut e = end;
        for w in words {
            let n = next_sig(toks, e)?;
            if !toks[n].is_word(w) {
                return None;
            }
            e = n + 1;
        }
        Some(e)
    };
    match w1.as_str() {
        "double" => {
            if let Some(e) = follow(end, &["precision"]) {
                end = e;
                base = "double precision".into();
            }
        }
        "character" | "char" | "binary" => {
            if let Some(e) = follow(end, &["varying"]) {
                end = e;
                base = format!("{w1} varying");
            }
        }
        "timestamp" | "time" => {
            if let Some(e) = follow(end, &["with", "time", "zone"]) {
                end = e;
                base = format!("{w1} with time zone");
            } else if let Some(e) = follow(end, &["without", "time", "zone"]) {
                end = e;
                base = format!("{w1} without time zone");
            }
        }
        _ => {}
    }
    let mut args = Vec::new();
    if let Some(p) = next_sig(toks, end) {
        if toks[p].is_punct("(") {
            let close = matching_close(toks, p)?;
            let mut cur = String::new();
            for t in &toks[p + 1..close] {
                if t.is_punct(",") {
                    args.push(cur.trim().to_string());
                    cur.clear();
                } else if t.is_significant() {
                    cur.push_str(&t.text);
                }
            }
            args.push(cur.trim().to_string());
            end = close + 1;
        }
    }
    Some(TypeSpec {
        base,
        args,
        start,
        end,
    })
}

fn is_varchar_base(b: &str) -> bool {
    matches!(
        b,
        "varchar" | "character varying" | "char varying" | "nvarchar" | "text"
    )
}

fn is_char_base(b: &str) -> bool {
    matches!(b, "char" | "character" | "nchar" | "bpchar")
}

/// Checks Redshift limits of a type's arguments; returns the PG argument list
/// (MAX replaced by the limit).
fn check_type_args(base: &str, args: &[String]) -> Result<Vec<String>, RedshiftError> {
    if is_varchar_base(base) || is_char_base(base) {
        let (limit, tname) = if is_varchar_base(base) {
            (65535u64, "varchar")
        } else {
            (4096u64, "char")
        };
        if let Some(a) = args.first() {
            if a.eq_ignore_ascii_case("max") {
                return Ok(vec![limit.to_string()]);
            }
            if let Ok(n) = a.parse::<u64>() {
                if n > limit {
                    return Err(RedshiftError::Invalid(format!(
                        "length for type {tname} cannot exceed {limit}"
                    )));
                }
                if n == 0 {
                    return Err(RedshiftError::Invalid(format!(
                        "length for type {tname} must be at least 1"
                    )));
                }
            }
        }
    } else if matches!(base, "decimal" | "numeric") {
        // r_Numeric_types201: precision 1..38, scale <= precision, scale <= 37.
        let number = |k: usize| args.get(k).and_then(|a| a.parse::<i64>().ok());
        if let Some(p) = number(0) {
            if !(1..=38).contains(&p) {
                return Err(RedshiftError::Invalid(format!(
                    "numeric precision {p} must be between 1 and 38"
                )));
            }
            if let Some(s) = number(1) {
                if s < 0 || s > p || s > 37 {
                    return Err(RedshiftError::Invalid(format!(
                        "numeric scale {s} must be between 0 and the precision ({p}), at most 37"
                    )));
                }
            }
        }
    }
    Ok(args.to_vec())
}

/// PG spelling of a (Redshift) type spec.
fn pg_type(spec: &TypeSpec) -> Result<String, RedshiftError> {
    let args = check_type_args(&spec.base, &spec.args)?;
    let base = match spec.base.as_str() {
        "super" => return Ok("jsonb".into()),
        "varbyte" | "varbinary" | "binary varying" => return Ok("bytea".into()),
        "nvarchar" | "character varying" | "char varying" => "varchar",
        "nchar" | "bpchar" => "char",
        b => b,
    };
    if args.is_empty() {
        Ok(base.to_string())
    } else {
        Ok(format!("{base}({})", args.join(",")))
    }
}

/// The PostgreSQL type a cast to a date-time or float type becomes: a
/// domain checking Redshift's documented range (NaN, infinities, BC and
/// 5-digit years fail); TIMETZ values normalized to UTC, as Redshift stores
/// them (r_Datetime_types). None for other types.
fn checked_type(spec: &TypeSpec) -> Option<String> {
    let domain = match spec.base.as_str() {
        "date" => "rs_date",
        "timestamp" | "timestamp without time zone" => "rs_timestamp",
        "timestamptz" | "timestamp with time zone" => "rs_timestamptz",
        "real" | "float4" => "rs_real",
        "double precision" | "float8" | "float" => "rs_double",
        "timetz" | "time with time zone" => return Some("timetz AT TIME ZONE 'UTC'".into()),
        _ => return None,
    };
    spec.args
        .is_empty()
        .then(|| format!("{STANDIN_SCHEMA}.{domain}"))
}

struct Translator<'a> {
    toks: &'a [Tok],
    session: &'a Session,
    ctx: &'a Context,
    skip: Vec<bool>,
    /// Token indices where a column type starts (CREATE TABLE column list).
    type_positions: HashSet<usize>,
    /// (start, end_exclusive, replacement)
    splices: Vec<(usize, usize, String)>,
}

impl<'a> Translator<'a> {
    fn new(toks: &'a [Tok], session: &'a Session, ctx: &'a Context) -> Self {
        Translator {
            toks,
            session,
            ctx,
            skip: vec![false; toks.len()],
            type_positions: HashSet::new(),
            splices: Vec::new(),
        }
    }

    /// Folded identifier value.
    fn fold(&self, t: &Tok) -> String {
        match t.kind {
            TokKind::QIdent if self.session.case_sensitive_identifier => {
                t.ident_raw().unwrap_or_default()
            }
            // Only ASCII letters fold (r_names).
            _ => t.ident_raw().unwrap_or_default().to_ascii_lowercase(),
        }
    }

    fn emit_ident(&self, t: &Tok) -> String {
        let long = t.text.len() > long_names::PG_MAX_IDENTIFIER_BYTES;
        match t.kind {
            TokKind::QIdent if !self.session.case_sensitive_identifier => {
                quote_ident(&t.ident_raw().unwrap_or_default().to_ascii_lowercase())
            }
            TokKind::QIdent if long => quote_ident(&t.ident_raw().unwrap_or_default()),
            TokKind::Word if long => quote_ident(&t.text.to_ascii_lowercase()),
            _ => t.text.clone(),
        }
    }

    /// Marks Redshift-only table attributes in `[from, to)` to be dropped.
    fn strip_table_attrs(&mut self, from: usize, to: usize) {
        let toks = self.toks;
        let mut i = from;
        while i < to {
            let t = &toks[i];
            let Some(w) = t.word_lower() else {
                i += 1;
                continue;
            };
            let n1 = next_sig(toks, i + 1).filter(|&n| n < to);
            let mark_to = |end: usize, skip: &mut Vec<bool>| {
                for s in skip.iter_mut().take(end).skip(i) {
                    *s = true;
                }
            };
            match w.as_str() {
                "diststyle" | "encode" => {
                    if let Some(n) = n1.filter(|&n| toks[n].kind == TokKind::Word) {
                        mark_to(n + 1, &mut self.skip);
                        i = n + 1;
                        continue;
                    }
                }
                "backup" => {
                    if let Some(n) = n1.filter(|&n| toks[n].is_word("yes") || toks[n].is_word("no"))
                    {
                        mark_to(n + 1, &mut self.skip);
                        i = n + 1;
                        continue;
                    }
                }
                "distkey" | "sortkey" | "compound" | "interleaved" => {
                    let mut k = i;
                    if w == "compound" || w == "interleaved" {
                        match n1 {
                            Some(n) if toks[n].is_word("sortkey") => k = n,
                            _ => {
                                i += 1;
                                continue;
                            }
                        }
                    }
                    let after = next_sig(toks, k + 1).filter(|&n| n < to);
                    let end = match after {
                        Some(n) if toks[n].is_punct("(") => {
                            matching_close(toks, n).map(|c| c + 1).unwrap_or(k + 1)
                        }
                        Some(n) if toks[n].is_word("auto") => n + 1,
                        _ => k + 1,
                    };
                    mark_to(end, &mut self.skip);
                    i = end;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }

    fn super_name(&self, p: &Part) -> Option<String> {
        match p.kind {
            PartKind::Ident => self.toks[p.idx]
                .ident_raw()
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| self.ctx.super_columns.contains(s)),
            PartKind::Index => None,
        }
    }

    /// Index (in `parts`) of the SUPER column a navigation chain starts at.
    fn nav_root(&self, parts: &[Part]) -> Option<usize> {
        let is_super = |k: usize| parts.get(k).and_then(|p| self.super_name(p)).is_some();
        let has_after = |k: usize| parts.len() > k + 1;
        let idents_upto = |k: usize| {
            parts[..=k]
                .iter()
                .all(|p| matches!(p.kind, PartKind::Ident))
        };
        let part0 = self.toks[parts[0].idx]
            .ident_raw()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        if parts.len() >= 3 && is_super(1) && idents_upto(1) && !self.ctx.schemas.contains(&part0) {
            return Some(1);
        }
        if is_super(0) && has_after(0) {
            return Some(0);
        }
        if parts.len() >= 4 && is_super(2) && idents_upto(2) {
            return Some(2);
        }
        if parts.len() >= 3 && is_super(1) && idents_upto(1) {
            return Some(1);
        }
        None
    }

    /// `kinesync_standin.super_nav(root, ARRAY[...])` for a navigation chain.
    fn nav_expr(&self, parts: &[Part], root: usize) -> String {
        let root_sql: Vec<String> = parts[..=root]
            .iter()
            .map(|p| self.emit_ident(&self.toks[p.idx]))
            .collect();
        // enable_case_sensitive_super_attribute keeps the case of
        // non-delimited attribute names; a delimited ("quoted") name keeps
        // its case only under enable_case_sensitive_identifier
        // (super-configurations, r_names). Only ASCII letters fold.
        let path: Vec<String> = parts[root + 1..]
            .iter()
            .map(|p| {
                let t = &self.toks[p.idx];
                let keep = match t.kind {
                    TokKind::QIdent => self.session.case_sensitive_identifier,
                    _ => self.session.case_sensitive_super_attribute,
                };
                let name = match &p.kind {
                    PartKind::Index => t.text.clone(),
                    _ if keep => t.ident_raw().unwrap_or_default(),
                    _ => t.ident_raw().unwrap_or_default().to_ascii_lowercase(),
                };
                quote_literal(&name)
            })
            .collect();
        format!(
            "{STANDIN_SCHEMA}.super_nav({}, ARRAY[{}]::text[])",
            root_sql.join("."),
            path.join(", ")
        )
    }

    /// Applies Redshift's lax SUPER cast of `expr` to `spec`.
    fn lax_cast(&self, expr: &str, spec: &TypeSpec) -> Result<String, RedshiftError> {
        let args = check_type_args(&spec.base, &spec.args)?;
        let b = spec.base.as_str();
        let f = |name: &str| format!("{STANDIN_SCHEMA}.{name}({expr})");
        let with_args = |inner: String, pg: &str| {
            if args.is_empty() {
                format!("({inner})")
            } else {
                format!("({inner}::{pg}({}))", args.join(","))
            }
        };
        Ok(match b {
            _ if is_varchar_base(b) => with_args(f("super_to_varchar"), "varchar"),
            _ if is_char_base(b) => with_args(f("super_to_varchar"), "char"),
            "bigint" | "int8" => format!("({})", f("super_to_int8")),
            "integer" | "int" | "int4" => format!("({})", f("super_to_int4")),
            "smallint" | "int2" => format!("({})", f("super_to_int2")),
            // A SUPER number is already a number (JSON_PARSE read it): no
            // input-form check, unlike a cast of text.
            "double precision" | "float8" | "float" => format!("({})", f("super_to_float8")),
            "real" | "float4" => format!("({}::real)", f("super_to_float8")),
            "decimal" | "numeric" => with_args(f("super_to_numeric"), "numeric"),
            "boolean" | "bool" => format!("({})", f("super_to_bool")),
            "super" | "jsonb" => format!("({expr})"),
            _ => match checked_type(spec) {
                Some(t) => format!("({}::{t})", f("super_to_varchar")),
                None => format!("({}::{})", f("super_to_varchar"), pg_type(spec)?),
            },
        })
    }

    fn run(&self) -> Result<String, RedshiftError> {
        let toks = self.toks;
        let mut out = String::new();
        let mut i = 0;
        while i < toks.len() {
            if let Some((_, end, text)) = self.splices.iter().find(|(s, _, _)| *s == i) {
                out.push_str(text);
                i = *end;
                continue;
            }
            if self.skip[i] {
                i += 1;
                continue;
            }
            let t = &toks[i];
            match t.kind {
                TokKind::Param => {
                    let name = &t.text[1..];
                    match &self.ctx.params {
                        Some(p) => match p.get(name) {
                            Some(v) => out.push_str(&quote_literal(v)),
                            None => {
                                return Err(RedshiftError::Invalid(format!(
                                    "No value specified for parameter: {name}"
                                )))
                            }
                        },
                        None => out.push_str(&t.text),
                    }
                    i += 1;
                }
                TokKind::Word | TokKind::QIdent => {
                    let (text, next) = self.ident_or_word(i)?;
                    out.push_str(&text);
                    i = next;
                }
                _ => {
                    out.push_str(&t.text);
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// Handles the identifier chain or word at `i`; returns output and next index.
    fn ident_or_word(&self, i: usize) -> Result<(String, usize), RedshiftError> {
        let toks = self.toks;
        let (parts, end) = collect_chain(toks, i);
        let after = next_sig(toks, end);
        let call = after.is_some_and(|a| toks[a].is_punct("("));
        let ident_parts = parts
            .iter()
            .filter(|p| matches!(p.kind, PartKind::Ident))
            .count();

        if parts.len() >= 2 && !call {
            if let Some(root) = self.nav_root(&parts) {
                let expr = self.nav_expr(&parts, root);
                // cast right after the chain?
                if let Some(c) = after.filter(|&c| toks[c].is_punct("::")) {
                    if let Some(spec) = next_sig(toks, c + 1).and_then(|s| parse_type(toks, s)) {
                        return Ok((self.lax_cast(&expr, &spec)?, spec.end));
                    }
                }
                return Ok((expr, end));
            }
            if let Some(cast) = self.super_column_cast(&parts, end)? {
                return Ok(cast);
            }
            let schema = self.fold(&toks[parts[0].idx]);
            if ident_parts >= 2
                && matches!(parts[1].kind, PartKind::Ident)
                && self.ctx.kinesis_schemas.contains(&schema)
            {
                return Err(RedshiftError::Unsupported(format!(
                    "Kinesis stream {schema}.{} can only be read by a streaming materialized view (CREATE MATERIALIZED VIEW ... AS SELECT ... FROM {schema}.<stream>)",
                    self.fold(&toks[parts[1].idx])
                )));
            }
        }
        if parts.len() == 1 && toks[i].kind == TokKind::Word {
            return self.word(i);
        }
        let mut s = String::new();
        for (k, p) in parts.iter().enumerate() {
            match p.kind {
                PartKind::Ident => {
                    if k > 0 {
                        s.push('.');
                    }
                    s.push_str(&self.emit_ident(&toks[p.idx]));
                }
                PartKind::Index => {
                    s.push('[');
                    s.push_str(&toks[p.idx].text);
                    s.push(']');
                }
            }
        }
        Ok((s, end))
    }

    /// `alias.column::varchar` where `column` is a SUPER column: Redshift's
    /// lax cast (a string's content, NULL for any other value), not
    /// PostgreSQL's JSON text. None if not that shape.
    fn super_column_cast(
        &self,
        parts: &[Part],
        end: usize,
    ) -> Result<Option<(String, usize)>, RedshiftError> {
        let toks = self.toks;
        if parts.last().is_none_or(|p| self.super_name(p).is_none()) {
            return Ok(None);
        }
        if parts.iter().any(|p| matches!(p.kind, PartKind::Index)) {
            return Ok(None);
        }
        let Some(c) = next_sig(toks, end).filter(|&c| toks[c].is_punct("::")) else {
            return Ok(None);
        };
        let Some(spec) = next_sig(toks, c + 1).and_then(|s| parse_type(toks, s)) else {
            return Ok(None);
        };
        if !is_varchar_base(&spec.base) {
            return Ok(None);
        }
        let column: Vec<String> = parts
            .iter()
            .map(|p| self.emit_ident(&toks[p.idx]))
            .collect();
        Ok(Some((self.lax_cast(&column.join("."), &spec)?, spec.end)))
    }

    /// A cast (`::type`) at `i`, when [`checked_type`] has a form for it.
    fn checked_cast(&self, i: usize) -> Option<(String, usize)> {
        let spec = parse_type(self.toks, i)?;
        Some((checked_type(&spec)?, spec.end))
    }

    /// Handles a single unquoted word at `i`.
    fn word(&self, i: usize) -> Result<(String, usize), RedshiftError> {
        let toks = self.toks;
        let t = &toks[i];
        let w = t.text.to_ascii_lowercase();
        let after = next_sig(toks, i + 1);
        let call = after.is_some_and(|a| toks[a].is_punct("("));
        let prev_cast = prev_sig(toks, i).is_some_and(|p| toks[p].is_punct("::"));
        let in_type_pos = self.type_positions.contains(&i);
        if prev_cast {
            if let Some(cast) = self.checked_cast(i) {
                return Ok(cast);
            }
        }

        match w.as_str() {
            "cast" if call => {
                if let Some(r) = self.lax_cast_call(i)? {
                    return Ok(r);
                }
            }
            "getdate" if call => {
                if let Some(close) = after.and_then(|a| matching_close(toks, a)) {
                    return Ok((
                        "(date_trunc('second', clock_timestamp())::timestamp)".into(),
                        close + 1,
                    ));
                }
            }
            "sysdate" if !call => return Ok(("(now()::timestamp)".into(), i + 1)),
            "len" if call => return Ok(("length".into(), i + 1)),
            "nvl" if call => return Ok(("coalesce".into(), i + 1)),
            "qualify" => {
                return Err(RedshiftError::Unsupported(
                    "QUALIFY is not supported by the Redshift stand-in; filter a window function in a subquery instead".into(),
                ))
            }
            _ => {}
        }
        if call && STANDIN_FUNCTIONS.contains(&w.as_str()) {
            return Ok((format!("{STANDIN_SCHEMA}.{w}"), i + 1));
        }
        if !call && STANDIN_RELATIONS.contains(&w.as_str()) {
            return Ok((format!("{STANDIN_SCHEMA}.{w}"), i + 1));
        }
        // types
        let typeish = matches!(
            w.as_str(),
            "super"
                | "varbyte"
                | "varbinary"
                | "binary"
                | "varchar"
                | "nvarchar"
                | "character"
                | "char"
                | "nchar"
                | "bpchar"
                | "text"
                | "decimal"
                | "numeric"
        );
        if typeish {
            if let Some(spec) = parse_type(toks, i) {
                let bare = spec.args.is_empty();
                if in_type_pos && is_varchar_base(&spec.base) {
                    // Redshift counts VARCHAR lengths in bytes: add a byte check
                    let n = if bare {
                        "256".to_string()
                    } else {
                        check_type_args(&spec.base, &spec.args)?
                            .first()
                            .cloned()
                            .unwrap_or_else(|| "256".to_string())
                    };
                    let col = prev_sig(toks, i)
                        .map(|c| self.emit_ident(&toks[c]))
                        .unwrap_or_default();
                    return Ok((
                        format!("varchar({n}) CHECK (octet_length({col}) <= {n})"),
                        spec.end,
                    ));
                }
                match spec.base.as_str() {
                    "super" if !call || prev_cast || in_type_pos => {
                        return Ok(("jsonb".into(), spec.end));
                    }
                    "varbyte" | "varbinary" | "binary varying" => {
                        return Ok(("bytea".into(), spec.end));
                    }
                    b if bare && in_type_pos && is_varchar_base(b) => {
                        // Redshift: VARCHAR / TEXT without length is VARCHAR(256)
                        return Ok(("varchar(256)".into(), spec.end));
                    }
                    b if !bare
                        && (is_varchar_base(b)
                            || is_char_base(b)
                            || b == "decimal"
                            || b == "numeric") =>
                    {
                        return Ok((pg_type(&spec)?, spec.end));
                    }
                    "nvarchar" => return Ok(("varchar".into(), spec.end)),
                    _ => {}
                }
            }
        }
        Ok((t.text.clone(), i + 1))
    }

    /// `CAST(<super navigation> AS type)` -> lax cast. None if not that shape.
    fn lax_cast_call(&self, i: usize) -> Result<Option<(String, usize)>, RedshiftError> {
        let toks = self.toks;
        let Some(open) = next_sig(toks, i + 1) else {
            return Ok(None);
        };
        let Some(q) = next_sig(toks, open + 1).filter(|&q| toks[q].is_ident()) else {
            return Ok(None);
        };
        let (parts, end) = collect_chain(toks, q);
        if parts.len() < 2 {
            return Ok(None);
        }
        let Some(root) = self.nav_root(&parts) else {
            return Ok(None);
        };
        let Some(r) = next_sig(toks, end).filter(|&r| toks[r].is_word("as")) else {
            return Ok(None);
        };
        let Some(spec) = next_sig(toks, r + 1).and_then(|s| parse_type(toks, s)) else {
            return Ok(None);
        };
        let Some(close) = next_sig(toks, spec.end).filter(|&c| toks[c].is_punct(")")) else {
            return Ok(None);
        };
        let expr = self.nav_expr(&parts, root);
        let _ = spec.start;
        Ok(Some((self.lax_cast(&expr, &spec)?, close + 1)))
    }
}

/// Translates a token slice with the generic rules (no statement-level handling).
pub fn translate(toks: &[Tok], session: &Session, ctx: &Context) -> Result<String, RedshiftError> {
    Translator::new(toks, session, ctx).run()
}

fn parse_bool_setting(name: &str, v: &str) -> Result<bool, RedshiftError> {
    match v {
        "true" | "on" | "1" | "yes" | "t" => Ok(true),
        "false" | "off" | "0" | "no" | "f" | "default" => Ok(false),
        _ => Err(RedshiftError::Invalid(format!(
            "invalid value for parameter \"{name}\": \"{v}\""
        ))),
    }
}

fn apply_setting(session: &mut Session, name: &str, value: &str) -> Result<(), RedshiftError> {
    match name {
        "enable_case_sensitive_super_attribute" => {
            session.case_sensitive_super_attribute = parse_bool_setting(name, value)?
        }
        "enable_case_sensitive_identifier" => {
            session.case_sensitive_identifier = parse_bool_setting(name, value)?
        }
        "downcase_delimited_identifier" => {
            session.case_sensitive_identifier = !parse_bool_setting(name, value)?
        }
        "json_parse_truncate_strings" => {
            session.json_parse_truncate_strings = parse_bool_setting(name, value)?
        }
        _ => {
            session.other.insert(name.to_string(), value.to_string());
        }
    }
    Ok(())
}

/// Parses a relation name at significant position `pos`; returns it and the
/// next significant position.
fn parse_qname(
    tr: &Translator<'_>,
    sig: &[usize],
    pos: usize,
) -> Result<(QName, usize), RedshiftError> {
    let toks = tr.toks;
    let first = sig
        .get(pos)
        .map(|&i| &toks[i])
        .filter(|t| t.is_ident())
        .ok_or_else(|| {
            RedshiftError::Syntax(near(toks, sig.get(pos).copied().unwrap_or(toks.len())))
        })?;
    let dot = sig.get(pos + 1).map(|&i| &toks[i]);
    let second = sig.get(pos + 2).map(|&i| &toks[i]);
    if dot.is_some_and(|d| d.is_punct(".")) {
        if let Some(s) = second.filter(|s| s.is_ident()) {
            return Ok((
                QName {
                    schema: Some(tr.fold(first)),
                    name: tr.fold(s),
                },
                pos + 3,
            ));
        }
        return Err(RedshiftError::Syntax(near(
            toks,
            sig.get(pos + 2).copied().unwrap_or(toks.len()),
        )));
    }
    Ok((
        QName {
            schema: None,
            name: tr.fold(first),
        },
        pos + 1,
    ))
}

fn sig_word(toks: &[Tok], sig: &[usize], k: usize) -> Option<String> {
    sig.get(k).and_then(|&i| toks[i].word_lower())
}

/// Rewrites one statement (tokens from [`split_statements`]).
pub fn rewrite_statement(
    toks: &[Tok],
    session: &mut Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let sig: Vec<usize> = (0..toks.len())
        .filter(|&i| toks[i].is_significant())
        .collect();
    rules::check(toks)?;
    let w = |k: usize| sig_word(toks, &sig, k);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    let generic = |session: &Session| -> Result<Action, RedshiftError> {
        Ok(Action::Sql(translate(toks, session, ctx)?))
    };
    match (w0.as_deref(), w1.as_deref(), w2.as_deref()) {
        (Some("set"), _, _) | (Some("reset"), _, _) => set_statement(toks, &sig, session, ctx),
        (Some("create"), Some("external"), Some("schema")) => {
            create_external_schema(toks, &sig, session, ctx)
        }
        (Some("create"), Some("materialized"), Some("view")) => {
            create_materialized_view(toks, &sig, session, ctx)
        }
        (Some("refresh"), Some("materialized"), Some("view")) => {
            refresh_materialized_view(toks, &sig, session, ctx)
        }
        (Some("drop"), Some("materialized"), Some("view")) => {
            drop_materialized_view(toks, &sig, session, ctx)
        }
        (Some("drop"), Some("schema"), _) => drop_schema(toks, &sig, session, ctx),
        (Some("drop"), Some("procedure"), _) => procedure::drop(toks, &sig, session, ctx),
        (Some("create"), _, _) if procedure::is_create(toks, &sig) => {
            procedure::create(toks, &sig, session, ctx)
        }
        (Some("call"), _, _) => procedure::call(toks, &sig, session, ctx),
        (Some("truncate"), _, _) if ctx.in_batch => Err(RedshiftError::Unsupported(
            "TRUNCATE cannot run inside a transaction block on this stand-in (Redshift commits the open transaction, so it cannot be rolled back); use DELETE FROM inside BatchExecuteStatement".into(),
        )),
        (Some("merge"), _, _) => {
            check_merge_source(toks, &sig)?;
            generic(session)
        }
        (Some("with"), _, _) => {
            let d = depths(toks);
            if sig.iter().any(|&i| d[i] == 0 && toks[i].is_word("merge")) {
                return Err(RedshiftError::Unsupported(
                    "MERGE source must be a table: a WITH clause (CTE) is not supported with MERGE".into(),
                ));
            }
            generic(session)
        }
        (Some("create"), _, _) => create_other(toks, &sig, session, ctx),
        (Some("alter"), Some("table"), _) => {
            let d = depths(toks);
            let redshift_only = sig.iter().any(|&i| {
                d[i] == 0
                    && ["distkey", "sortkey", "diststyle", "encode"]
                        .iter()
                        .any(|k| toks[i].is_word(k))
            });
            if redshift_only {
                return Ok(Action::Noop {
                    reason: "ALTER TABLE of Redshift distribution/sort/encoding attributes has no PostgreSQL equivalent".into(),
                });
            }
            generic(session)
        }
        _ => generic(session),
    }
}

/// `SET` / `RESET` of a Redshift-only setting: applied to the session.
fn set_statement(
    toks: &[Tok],
    sig: &[usize],
    session: &mut Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let w = |k: usize| sig_word(toks, sig, k);
    let w0 = w(0);
    let generic = |session: &Session| -> Result<Action, RedshiftError> {
        Ok(Action::Sql(translate(toks, session, ctx)?))
    };
    let mut pos = 1;
    if matches!(w(1).as_deref(), Some("session") | Some("local")) {
        pos = 2;
    }
    let Some(name) = w(pos) else {
        return generic(session);
    };
    if name == "all" && w0.as_deref() == Some("reset") {
        *session = Session::default();
        return generic(session);
    }
    if !REDSHIFT_SETTINGS.contains(&name.as_str()) {
        return generic(session);
    }
    let value = if w0.as_deref() == Some("reset") {
        "default".to_string()
    } else {
        let sep = sig.get(pos + 1).map(|&i| &toks[i]);
        if !sep.is_some_and(|t| t.is_word("to") || t.is_punct("=")) {
            return Err(RedshiftError::Syntax(near(
                toks,
                sig.get(pos + 1).copied().unwrap_or(toks.len()),
            )));
        }
        let vals: Vec<String> = sig[pos + 2..]
            .iter()
            .map(|&i| {
                let t = &toks[i];
                match t.kind {
                    TokKind::Str => t.text.trim_matches('\'').to_string(),
                    _ => t.text.clone(),
                }
            })
            .collect();
        if vals.is_empty() {
            return Err(RedshiftError::Syntax(near(toks, toks.len())));
        }
        vals.join(" ").to_ascii_lowercase()
    };
    apply_setting(session, &name, &value)?;
    Ok(Action::Set { name, value })
}

/// `REFRESH MATERIALIZED VIEW`: a streaming view's refresh is the stand-in's.
fn refresh_materialized_view(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let generic = |session: &Session| -> Result<Action, RedshiftError> {
        Ok(Action::Sql(translate(toks, session, ctx)?))
    };
    let tr = Translator::new(toks, session, ctx);
    let (q, _) = parse_qname(&tr, sig, 3)?;
    let (schema, name) = q.resolved(ctx);
    if ctx
        .streaming_views
        .contains(&(schema.clone(), name.clone()))
    {
        if ctx.in_batch {
            return Err(RedshiftError::Unsupported(format!(
                "REFRESH MATERIALIZED VIEW {schema}.{name}: a streaming materialized view refresh runs as a transaction of its own and cannot run inside a transaction block (BatchExecuteStatement, or a stored procedure's CALL); run it as its own statement"
            )));
        }
        return Ok(Action::RefreshStreamingView { schema, name });
    }
    generic(session)
}

/// `DROP MATERIALIZED VIEW`: a streaming view's drop is the stand-in's.
fn drop_materialized_view(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let w = |k: usize| sig_word(toks, sig, k);
    let generic = |session: &Session| -> Result<Action, RedshiftError> {
        Ok(Action::Sql(translate(toks, session, ctx)?))
    };
    let tr = Translator::new(toks, session, ctx);
    let mut pos = 3;
    let mut if_exists = false;
    if w(3).as_deref() == Some("if") && w(4).as_deref() == Some("exists") {
        pos = 5;
        if_exists = true;
    }
    let (q, _) = parse_qname(&tr, sig, pos)?;
    let (schema, name) = q.resolved(ctx);
    if ctx
        .streaming_views
        .contains(&(schema.clone(), name.clone()))
    {
        return Ok(Action::DropStreamingView {
            schema,
            name,
            if_exists,
        });
    }
    generic(session)
}

/// `DROP SCHEMA [IF EXISTS] s [, ...] [CASCADE | RESTRICT]`. A schema
/// holding stored procedures cannot be dropped without CASCADE (like one
/// holding tables); with CASCADE its procedures are forgotten.
fn drop_schema(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let w = |k: usize| sig_word(toks, sig, k);
    let tr = Translator::new(toks, session, ctx);
    let mut pos = 2;
    if w(2).as_deref() == Some("if") && w(3).as_deref() == Some("exists") {
        pos = 4;
    }
    let mut schemas = Vec::new();
    loop {
        let (q, next) = parse_qname(&tr, sig, pos)?;
        if q.schema.is_none() {
            schemas.push(q.name);
        }
        pos = next;
        if !sig.get(pos).is_some_and(|&i| toks[i].is_punct(",")) {
            break;
        }
        pos += 1;
    }
    // [DROP EXTERNAL DATABASE] [CASCADE | RESTRICT] follow the names.
    let cascade = sig[pos.min(sig.len())..]
        .iter()
        .any(|&i| toks[i].is_word("cascade"));
    let sql = translate(toks, session, ctx)?;
    let with_procedures = schemas.iter().find(|s| ctx.procedure_schemas.contains(*s));
    if let (Some(s), false) = (with_procedures, cascade) {
        return Err(RedshiftError::Invalid(format!(
            "cannot drop schema {s} because other objects depend on it (stored procedures); use DROP SCHEMA ... CASCADE to drop them too"
        )));
    }
    if with_procedures.is_some() || schemas.iter().any(|s| ctx.kinesis_schemas.contains(s)) {
        return Ok(Action::DropSchema { schemas, sql });
    }
    Ok(Action::Sql(sql))
}

fn check_merge_source(toks: &[Tok], sig: &[usize]) -> Result<(), RedshiftError> {
    let d = depths(toks);
    let Some(pos) = sig
        .iter()
        .position(|&i| d[i] == 0 && toks[i].is_word("using"))
    else {
        return Err(RedshiftError::Syntax(
            "MERGE requires USING <source table>".into(),
        ));
    };
    match sig.get(pos + 1).map(|&i| &toks[i]) {
        Some(t) if t.is_punct("(") => Err(RedshiftError::Unsupported(
            "MERGE source must be a table: a subquery is not supported as the MERGE source".into(),
        )),
        Some(t) if t.is_word("values") || t.is_word("select") => Err(RedshiftError::Unsupported(
            "MERGE source must be a table: VALUES or a query is not supported as the MERGE source"
                .into(),
        )),
        Some(t) if t.is_ident() => Ok(()),
        _ => Err(RedshiftError::Syntax(near(
            toks,
            sig.get(pos + 1).copied().unwrap_or(toks.len()),
        ))),
    }
}

fn create_external_schema(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let tr = Translator::new(toks, session, ctx);
    let w = |k: usize| sig_word(toks, sig, k);
    let mut pos = 3;
    let mut if_not_exists = false;
    if w(3).as_deref() == Some("if")
        && w(4).as_deref() == Some("not")
        && w(5).as_deref() == Some("exists")
    {
        pos = 6;
        if_not_exists = true;
    }
    let (q, next) = parse_qname(&tr, sig, pos)?;
    if q.schema.is_some() {
        return Err(RedshiftError::Syntax(near(toks, sig[pos + 1])));
    }
    if w(next).as_deref() != Some("from") {
        return Err(RedshiftError::Syntax(near(
            toks,
            sig.get(next).copied().unwrap_or(toks.len()),
        )));
    }
    let source = w(next + 1).unwrap_or_default();
    if source != "kinesis" {
        return Err(RedshiftError::Unsupported(format!(
            "CREATE EXTERNAL SCHEMA ... FROM {} is not emulated by the stand-in; only FROM KINESIS",
            source.to_uppercase()
        )));
    }
    if w(next + 2).as_deref() != Some("iam_role") {
        return Err(RedshiftError::Syntax(
            "CREATE EXTERNAL SCHEMA ... FROM KINESIS requires IAM_ROLE { '<role arn>' | default }"
                .into(),
        ));
    }
    let role_tok = sig.get(next + 3).map(|&i| &toks[i]);
    let iam_role = match role_tok {
        Some(t) if t.kind == TokKind::Str && t.text.starts_with('\'') => {
            t.text[1..t.text.len() - 1].replace("''", "'")
        }
        Some(t) if t.is_word("default") => "default".to_string(),
        _ => {
            return Err(RedshiftError::Syntax(
                "IAM_ROLE must be a quoted role ARN or default".into(),
            ))
        }
    };
    Ok(Action::CreateExternalSchema {
        schema: q.name,
        if_not_exists,
        iam_role,
    })
}

fn create_materialized_view(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let tr = Translator::new(toks, session, ctx);
    let (view, mut pos) = parse_qname(&tr, sig, 3)?;
    let mut auto_refresh = false;
    let mut sort_key: Vec<String> = Vec::new();
    // Redshift view attributes before AS
    loop {
        let Some(&i) = sig.get(pos) else {
            return Err(RedshiftError::Syntax(near(toks, toks.len())));
        };
        let t = &toks[i];
        let w = t.word_lower().unwrap_or_default();
        match w.as_str() {
            "as" => break,
            "backup" | "diststyle" => pos += 2,
            "auto" => {
                if sig_word(toks, sig, pos + 1).as_deref() != Some("refresh") {
                    return Err(RedshiftError::Syntax(near(toks, i)));
                }
                match sig_word(toks, sig, pos + 2).as_deref() {
                    Some("yes") => auto_refresh = true,
                    Some("no") => auto_refresh = false,
                    _ => {
                        return Err(RedshiftError::Syntax(near(
                            toks,
                            sig.get(pos + 2).copied().unwrap_or(toks.len()),
                        )))
                    }
                }
                pos += 3;
            }
            "distkey" | "sortkey" | "compound" | "interleaved" => {
                let mut k = pos + 1;
                if w == "compound" || w == "interleaved" {
                    k += 1;
                }
                match sig.get(k) {
                    Some(&o) if toks[o].is_punct("(") => {
                        let close = matching_close(toks, o)
                            .ok_or_else(|| RedshiftError::Syntax(near(toks, o)))?;
                        if w != "distkey" {
                            sort_key.extend(
                                sig.iter()
                                    .filter(|&&s| s > o && s < close && !toks[s].is_punct(","))
                                    .map(|&s| toks[s].text.to_lowercase()),
                            );
                        }
                        pos = sig.iter().position(|&s| s > close).unwrap_or(sig.len());
                    }
                    Some(&o) if toks[o].is_word("auto") => pos = k + 1,
                    _ => return Err(RedshiftError::Syntax(near(toks, i))),
                }
            }
            _ => return Err(RedshiftError::Syntax(near(toks, i))),
        }
    }
    let as_idx = sig[pos];
    let sel = &toks[as_idx + 1..];

    // Does the SELECT read a Kinesis stream?
    let mut streams: Vec<(usize, usize, String, String)> = Vec::new();
    let mut i = 0;
    while i < sel.len() {
        if sel[i].is_ident() && !(i > 0 && sel[i - 1].is_punct(".")) {
            let (parts, end) = collect_chain(sel, i);
            if parts.len() >= 2 && matches!(parts[1].kind, PartKind::Ident) {
                let schema = tr.fold(&sel[parts[0].idx]);
                if ctx.kinesis_schemas.contains(&schema) {
                    let stream = tr.fold(&sel[parts[1].idx]);
                    streams.push((i, end, schema, stream));
                }
            }
            i = end;
        } else {
            i += 1;
        }
    }
    if streams.is_empty() {
        let sel_sql = translate(sel, session, ctx)?;
        return Ok(Action::Sql(format!(
            "CREATE MATERIALIZED VIEW {} AS{}",
            view.sql(),
            sel_sql
        )));
    }
    let vname = format!(
        "{}.{}",
        view.schema
            .clone()
            .unwrap_or_else(|| ctx.current_schema.clone()),
        view.name
    );
    let reject = |why: &str| {
        Err(RedshiftError::Unsupported(format!(
            "cannot create streaming materialized view {vname}: {why}"
        )))
    };
    let distinct: HashSet<(&String, &String)> = streams.iter().map(|(_, _, s, n)| (s, n)).collect();
    if distinct.len() > 1 {
        return reject("a streaming materialized view can read only one Kinesis stream");
    }
    let ssig: Vec<usize> = (0..sel.len())
        .filter(|&k| sel[k].is_significant())
        .collect();
    let d = depths(sel);
    if !ssig.first().is_some_and(|&k| sel[k].is_word("select")) {
        return reject("the definition must be a plain SELECT (WITH clauses are not supported)");
    }
    for (n, &k) in ssig.iter().enumerate() {
        let t = &sel[k];
        let Some(lw) = t.word_lower() else { continue };
        if n > 0 && lw == "select" {
            return reject("subqueries are not supported in a streaming materialized view");
        }
        if lw == "join" {
            return reject(
                "JOIN is not supported in a streaming materialized view (one stream, no joins)",
            );
        }
        if matches!(lw.as_str(), "union" | "except" | "intersect") && d[k] == 0 {
            return reject("set operations (UNION/EXCEPT/INTERSECT) are not supported");
        }
        if lw == "over" {
            return reject(
                "window functions are not supported; the view is not incrementally refreshable",
            );
        }
        if DATETIME_WORDS.contains(&lw.as_str()) {
            return reject(&format!(
                "{} is not supported; date-time functions make the view not incrementally refreshable",
                lw.to_uppercase()
            ));
        }
    }
    // FROM <schema>.<stream> [[AS] alias]
    let Some(fpos) = ssig
        .iter()
        .position(|&k| d[k] == 0 && sel[k].is_word("from"))
    else {
        return reject("the stream must be the FROM relation");
    };
    let Some(&first) = ssig.get(fpos + 1) else {
        return Err(RedshiftError::Syntax(near(sel, sel.len())));
    };
    if sel[first].is_punct("(") {
        return reject("subqueries in FROM are not supported");
    }
    let Some((_, chain_end, ext_schema, stream)) =
        streams.iter().find(|(s, _, _, _)| *s == first).cloned()
    else {
        return reject("the Kinesis stream must be the FROM relation");
    };
    let mut end = chain_end;
    let mut alias_sql = tr.emit_ident(&sel[collect_chain(sel, first).0[1].idx]);
    if let Some(a) = next_sig(sel, chain_end) {
        let t = &sel[a];
        if t.is_word("as") {
            let Some(n) = next_sig(sel, a + 1).filter(|&n| sel[n].is_ident()) else {
                return Err(RedshiftError::Syntax(near(sel, a + 1)));
            };
            alias_sql = tr.emit_ident(&sel[n]);
            end = n + 1;
        } else if t.kind == TokKind::QIdent
            || (t.kind == TokKind::Word
                && !NOT_ALIAS.contains(&t.text.to_ascii_lowercase().as_str()))
        {
            alias_sql = tr.emit_ident(t);
            end = a + 1;
        }
    }
    if let Some(a) = next_sig(sel, end) {
        let t = &sel[a];
        if t.is_punct(",") || JOIN_WORDS.iter().any(|j| t.is_word(j)) {
            return reject(
                "JOIN is not supported in a streaming materialized view (one stream, no joins)",
            );
        }
    }
    if streams.len() > 1 {
        return reject("the stream may appear only once, as the FROM relation");
    }
    let mut t2 = Translator::new(sel, session, ctx);
    t2.splices.push((
        first,
        end,
        format!("pg_temp.{STAGING_TABLE} AS {alias_sql}"),
    ));
    let select_sql = t2.run()?;
    Ok(Action::CreateStreamingView {
        schema: view.schema.unwrap_or_else(|| ctx.current_schema.clone()),
        name: view.name,
        external_schema: ext_schema,
        stream,
        select_sql: select_sql.trim().to_string(),
        auto_refresh,
        sort_key,
    })
}

/// CREATE TABLE (column types, Redshift attributes) and other CREATEs.
fn create_other(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let w = |k: usize| sig_word(toks, sig, k);
    let mut pos = 1;
    while matches!(
        w(pos).as_deref(),
        Some("temp") | Some("temporary") | Some("local") | Some("global") | Some("unlogged")
    ) {
        pos += 1;
    }
    let mut tr = Translator::new(toks, session, ctx);
    if w(pos).as_deref() != Some("table") {
        return Ok(Action::Sql(tr.run()?));
    }
    pos += 1;
    if w(pos).as_deref() == Some("if") {
        pos += 3;
    }
    let (_, next) = parse_qname(&tr, sig, pos)?;
    let d = depths(toks);
    // strip attributes before a top-level AS (CTAS) or everywhere
    let strip_to = sig
        .iter()
        .copied()
        .find(|&i| d[i] == 0 && toks[i].is_word("as"))
        .unwrap_or(toks.len());
    tr.strip_table_attrs(0, strip_to);
    if let Some(&open) = sig.get(next).filter(|&&o| toks[o].is_punct("(")) {
        let close =
            matching_close(toks, open).ok_or_else(|| RedshiftError::Syntax(near(toks, open)))?;
        // column definitions: the token after each column name is the type
        let mut elem_start = true;
        let mut k = open + 1;
        while k < close {
            let t = &toks[k];
            if !t.is_significant() || tr.skip[k] {
                k += 1;
                continue;
            }
            if d[k] == 1 && t.is_punct(",") {
                elem_start = true;
                k += 1;
                continue;
            }
            if elem_start && d[k] == 1 {
                elem_start = false;
                let constraint = [
                    "constraint",
                    "primary",
                    "unique",
                    "foreign",
                    "check",
                    "like",
                ]
                .iter()
                .any(|c| t.is_word(c));
                if !constraint {
                    if let Some(tp) = next_sig(toks, k + 1) {
                        tr.type_positions.insert(tp);
                    }
                }
            }
            k += 1;
        }
    }
    check_super_keys(toks, &d)?;
    Ok(Action::Sql(tr.run()?))
}

/// Redshift: "You can't define SUPER columns as either a distribution or
/// sort key" (limitations-super.html). PostgreSQL has no such keys, so the
/// stand-in checks CREATE TABLE's column list against its DISTKEY(...) and
/// SORTKEY(...) attributes and column attributes.
fn check_super_keys(toks: &[Tok], d: &[i32]) -> Result<(), RedshiftError> {
    let sig: Vec<usize> = (0..toks.len())
        .filter(|&i| toks[i].is_significant())
        .collect();
    let name = |i: usize| {
        toks[i]
            .ident_raw()
            .unwrap_or_else(|| toks[i].text.clone())
            .to_ascii_lowercase()
    };
    let mut supers = HashSet::new();
    let mut keys = Vec::new();
    for (n, &i) in sig.iter().enumerate() {
        let next = sig.get(n + 1).copied();
        let prev = n.checked_sub(1).map(|p| sig[p]);
        let starts_element = prev.is_some_and(|p| {
            d[p] == 0 && toks[p].is_punct("(") || d[p] == 1 && toks[p].is_punct(",")
        });
        if d[i] == 1 && starts_element && next.is_some_and(|t| toks[t].is_word("super")) {
            supers.insert(name(i));
        }
        let is_key = toks[i].is_word("distkey") || toks[i].is_word("sortkey");
        match next {
            Some(o) if is_key && d[i] == 0 && toks[o].is_punct("(") => {
                let close = matching_close(toks, o).unwrap_or(o);
                keys.extend(
                    sig.iter()
                        .filter(|&&k| k > o && k < close && !toks[k].is_punct(","))
                        .map(|&k| name(k)),
                );
            }
            _ if is_key && d[i] == 1 => {
                // A column attribute: the element's first token is its name.
                let start = sig[..n]
                    .iter()
                    .rev()
                    .find(|&&k| {
                        d[k] == 1 && toks[k].is_punct(",") || d[k] == 0 && toks[k].is_punct("(")
                    })
                    .and_then(|&k| sig.iter().find(|&&s| s > k).copied());
                keys.extend(start.map(name));
            }
            _ => {}
        }
    }
    match keys.iter().find(|k| supers.contains(*k)) {
        Some(column) => Err(RedshiftError::Invalid(format!(
            "column \"{column}\" has type SUPER: SUPER columns cannot be a distribution or sort key"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
