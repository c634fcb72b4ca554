//! Documented Redshift rules checked on a statement's tokens before it is
//! translated: SQL PostgreSQL would run but Redshift rejects (or silently
//! changes) fails here, so the suite catches it. Each rule names the page
//! of the Amazon Redshift Database Developer Guide it follows
//! (docs/redshift-standin.md lists them).

use super::{depths, matching_close, next_sig, RedshiftError, Tok, TokKind};

/// Redshift truncates longer identifiers (r_names, r_CREATE_TABLE_NEW); the
/// stand-in refuses them, so a truncation can never go unnoticed.
pub const MAX_IDENTIFIER_BYTES: usize = 127;

/// Catalog views that run on the leader node only and cannot be combined
/// with other relations in one query.
const LEADER_NODE_ONLY: &[&str] = &["svv_external_schemas", "svv_mv_info"];

/// Runs every rule on one statement.
pub fn check(toks: &[Tok]) -> Result<(), RedshiftError> {
    identifier_lengths(toks)?;
    from_hex_literal(toks)?;
    leader_node_only_alone(toks)?;
    update_from_without_outer_join(toks)
}

/// UPDATE's FROM may not outer-join the target (r_UPDATE); whether an outer
/// join inside a derived table there is allowed is not documented, so the
/// stand-in refuses any LEFT/RIGHT/FULL join in an UPDATE's FROM (stricter).
fn update_from_without_outer_join(toks: &[Tok]) -> Result<(), RedshiftError> {
    let first = toks.iter().find(|t| t.is_significant());
    if !first.is_some_and(|t| t.is_word("update")) {
        return Ok(());
    }
    let d = depths(toks);
    let Some(from) = (0..toks.len()).find(|&i| d[i] == 0 && toks[i].is_word("from")) else {
        return Ok(());
    };
    let outer = (from..toks.len()).any(|i| {
        let t = &toks[i];
        (t.is_word("left") || t.is_word("right") || t.is_word("full"))
            && next_sig(toks, i + 1)
                .is_some_and(|n| toks[n].is_word("join") || toks[n].is_word("outer"))
    });
    if outer {
        return Err(RedshiftError::Unsupported(
            "UPDATE ... FROM with an outer join (LEFT/RIGHT/FULL JOIN, also inside a subquery) is not allowed on this stand-in (r_UPDATE: the target may not be outer-joined); build the joined rows in a temp table first".into(),
        ));
    }
    Ok(())
}

fn identifier_lengths(toks: &[Tok]) -> Result<(), RedshiftError> {
    for t in toks.iter().filter(|t| t.is_ident()) {
        let name = t.ident_raw().unwrap_or_default();
        if name.len() > MAX_IDENTIFIER_BYTES {
            return Err(RedshiftError::Invalid(format!(
                "identifier of {} bytes is longer than Redshift's {MAX_IDENTIFIER_BYTES} (Redshift would truncate it): {}",
                name.len(),
                t.text
            )));
        }
    }
    Ok(())
}

/// FROM_HEX: "The format must be a literal value" (r_FROM_HEX).
fn from_hex_literal(toks: &[Tok]) -> Result<(), RedshiftError> {
    for (i, t) in toks.iter().enumerate() {
        if !t.is_word("from_hex") {
            continue;
        }
        let Some(open) = next_sig(toks, i + 1).filter(|&o| toks[o].is_punct("(")) else {
            continue;
        };
        let close = matching_close(toks, open).unwrap_or(toks.len());
        let args: Vec<&Tok> = toks[open + 1..close]
            .iter()
            .filter(|t| t.is_significant())
            .collect();
        if !matches!(args.as_slice(), [arg] if arg.kind == TokKind::Str) {
            return Err(RedshiftError::Invalid(
                "FROM_HEX: the argument must be a literal value (r_FROM_HEX); use TO_VARBYTE(expr, 'hex') for an expression".into(),
            ));
        }
    }
    Ok(())
}

/// A leader-node-only catalog view must be the only relation of its query.
fn leader_node_only_alone(toks: &[Tok]) -> Result<(), RedshiftError> {
    let mut relations: Vec<String> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if !(t.is_word("from") || t.is_word("join")) {
            continue;
        }
        if let Some(n) = next_sig(toks, i + 1).filter(|&n| toks[n].is_ident()) {
            let mut name = toks[n].ident_raw().unwrap_or_default().to_ascii_lowercase();
            // schema.relation: the relation's name decides.
            if let Some(r) = next_sig(toks, n + 1)
                .filter(|&d| toks[d].is_punct("."))
                .and_then(|d| next_sig(toks, d + 1))
                .filter(|&r| toks[r].is_ident())
            {
                name = toks[r].ident_raw().unwrap_or_default().to_ascii_lowercase();
            }
            relations.push(name);
        }
    }
    let leader = relations
        .iter()
        .find(|r| LEADER_NODE_ONLY.contains(&r.as_str()));
    match leader {
        Some(view) if relations.len() > 1 => Err(RedshiftError::Unsupported(format!(
            "{view} is a leader-node-only catalog view: it cannot be combined with other relations in one query; query it alone"
        ))),
        _ => Ok(()),
    }
}
