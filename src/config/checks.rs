//! Checks shared by several sections: AWS regions, assumed roles, and
//! simple lower-case names (schemas, publication, slot).

/// A region, when set, is a region name like `eu-west-1` (an empty one
/// would reach the SDK as "no region").
pub(super) fn check_region(key: &str, region: &Option<String>, problems: &mut Vec<String>) {
    let Some(region) = region else {
        return;
    };
    let valid = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if !valid {
        problems.push(format!(
            "{key} {region:?} is not an AWS region: set it like \"eu-west-1\", or remove it to use AWS_REGION"
        ));
    }
}

/// `<section>.assume_role_arn` is an IAM role ARN; an external ID needs it.
pub(super) fn check_assume_role(
    section: &str,
    arn: &Option<String>,
    external_id: &Option<String>,
    problems: &mut Vec<String>,
) {
    if let Some(arn) = arn {
        if !is_role_arn(arn) {
            problems.push(format!(
                "{section}.assume_role_arn {arn:?} must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"
            ));
        }
    }
    match external_id {
        Some(_) if arn.is_none() => problems.push(format!(
            "{section}.assume_role_external_id is set without {section}.assume_role_arn: set the role, or remove the external ID"
        )),
        Some(id) if !(2..=1224).contains(&id.len()) => problems.push(format!(
            "{section}.assume_role_external_id must be 2 to 1224 characters"
        )),
        _ => {}
    }
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub(super) fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

/// Lower-case letters, digits and `_`, not starting with a digit, at most 63 characters.
pub(super) fn is_simple_lowercase_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !value.starts_with(|c: char| c.is_ascii_digit())
}
