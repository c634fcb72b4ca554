//! One line per TOML error: where it is (line, section, key) and, for an
//! unknown key or section, the closest known name.

/// One line describing a TOML error: the line and key it is at (when
/// known) and, for an unknown key or section, the closest known name.
pub(super) fn describe_toml_error(
    text: &str,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> String {
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let span = span.filter(|s| s.start <= text.len());
    let mut located = String::new();
    let mut place = String::new();
    let mut section = None;
    let mut on_header = false;
    if let Some(span) = &span {
        let line_number = text[..span.start].matches('\n').count() + 1;
        let line = text.lines().nth(line_number - 1).unwrap_or_default().trim();
        // The section the error is in: the last header above its line.
        section = text
            .lines()
            .take(line_number - 1)
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix('[')?.split(']').next().map(str::trim)
            })
            .last()
            .map(str::to_owned);
        located = format!("line {line_number}: ");
        on_header = line.starts_with('[');
        let key = line.split('=').next().unwrap_or_default().trim();
        place = match &section {
            _ if line.starts_with('[') => format!("{line}: "),
            Some(section) if !key.is_empty() => format!("{section}.{key}: "),
            _ => String::new(),
        };
    }
    let Some((field, expected)) = unknown_field(&message) else {
        return format!("{located}{place}{message}");
    };
    let what = match (&section, span.is_some(), on_header) {
        (_, true, true) => format!("unknown section [{field}]"),
        (Some(section), true, false) => format!("unknown key {section}.{field}"),
        (None, true, false) => format!("unknown top-level key `{field}`"),
        (_, false, _) => format!("unknown key or section `{field}`"),
    };
    let known = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(&field, &expected) {
        Some(best) => format!("{located}{what}: did you mean `{best}`? (known: {known})"),
        None => format!("{located}{what} (known: {known})"),
    }
}

/// `unknown field `x`, expected one of `a`, `b`` -> ("x", ["a", "b"]).
pub(super) fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

/// The known name nearest to `name` by edit distance, if near enough to be
/// a typo (at most a third of its length, and at least 2, edits away).
pub(super) fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(&name.to_ascii_lowercase(), k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance where swapping two neighbours counts as one edit
/// (optimal string alignment), the commonest typo.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
