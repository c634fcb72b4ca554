//! `kinesync.example.toml` and the configuration embedded in deploy/ stay in
//! step with `src/config.rs`: the example holds every key the config structs
//! have, shows each default correctly, and everything parses with the real
//! loader. Pure: needs no database, no Kinesis, no Redshift.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kinesync::config::Config;

const EXAMPLE: &str = include_str!("../kinesync.example.toml");
/// src/config.rs and its section files (src/config/<section>.rs).
const CONFIG_RS: &str = concat!(
    include_str!("../src/config.rs"),
    include_str!("../src/config/source.rs"),
    include_str!("../src/config/kinesis.rs"),
    include_str!("../src/config/redshift.rs"),
    include_str!("../src/config/schedule.rs"),
    include_str!("../src/config/telemetry.rs"),
);

/// Section of the file each config struct is deserialized into.
const SECTIONS: &[(&str, &str)] = &[
    ("SourceConfig", "source"),
    ("KinesisConfig", "kinesis"),
    ("RedshiftConfig", "redshift"),
    ("ScheduleConfig", "schedule"),
    ("TelemetryConfig", "telemetry"),
];

/// Keys the example sets to a value other than the default on purpose:
/// the required ones and a representative choice among optional ones.
const NOT_DEFAULTS: &[&str] = &[
    "source.url",
    "source.tables",
    "redshift.workgroup",
    "redshift.database",
    "redshift.secret_arn",
    "redshift.stream_role_arn",
];

fn env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// `pub <field>:` lines of `pub struct <name> { ... }` in src/config.rs.
fn struct_fields(name: &str) -> Vec<String> {
    let start = format!("pub struct {name} {{");
    let mut lines = CONFIG_RS.lines().skip_while(|l| !l.contains(&start));
    assert!(
        lines.next().is_some(),
        "src/config.rs has no `{start}`: update SECTIONS in this test"
    );
    lines
        .take_while(|l| l.trim() != "}")
        .filter_map(|l| {
            let field = l.trim().strip_prefix("pub ")?.split(':').next()?.trim();
            Some(field.to_owned())
        })
        .collect()
}

/// Every `section.key` of the config structs, read from src/config.rs.
fn keys_in_code() -> BTreeSet<String> {
    let top = struct_fields("Config");
    let sections: BTreeSet<&str> = SECTIONS.iter().map(|(_, s)| *s).collect();
    let top: BTreeSet<&str> = top.iter().map(String::as_str).collect();
    assert_eq!(
        top, sections,
        "Config's sections changed: update SECTIONS in this test"
    );
    SECTIONS
        .iter()
        .flat_map(|(ty, section)| {
            struct_fields(ty)
                .into_iter()
                .map(move |f| format!("{section}.{f}"))
        })
        .collect()
}

/// The example with every commented-out `# key = value` line switched on,
/// minus the keys that exclude them (`workgroup`/`cluster_id`,
/// `secret_arn`/`db_user`).
fn example_with_optional_keys_on() -> String {
    let mut out = String::new();
    for line in EXAMPLE.lines() {
        let uncommented = line
            .strip_prefix("# ")
            .filter(|rest| is_key_line(rest))
            .unwrap_or(line);
        out.push_str(uncommented);
        out.push('\n');
    }
    out.lines()
        .filter(|l| !l.starts_with("workgroup =") && !l.starts_with("secret_arn ="))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = value` where key is a bare lower-case TOML key.
fn is_key_line(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(k, v)| {
        !k.is_empty()
            && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && format!("x = {v}").parse::<toml::Table>().is_ok()
    })
}

/// `section.key` of every key set in `text`.
fn keys_in(text: &str) -> BTreeSet<String> {
    let doc: toml::Table = text.parse().expect("valid TOML");
    doc.iter()
        .flat_map(|(section, value)| {
            let table = value.as_table().expect("only sections at the top level");
            table.keys().map(move |k| format!("{section}.{k}"))
        })
        .collect()
}

#[test]
fn example_parses_with_the_real_loader() {
    let config = Config::from_toml_with_env(EXAMPLE, &env())
        .unwrap_or_else(|e| panic!("kinesync.example.toml: {e}"));
    assert!(config.redshift.is_some(), "the example shows [redshift]");
}

#[test]
fn example_with_commented_keys_switched_on_parses() {
    let text = example_with_optional_keys_on();
    Config::from_toml_with_env(&text, &env())
        .unwrap_or_else(|e| panic!("example with optional keys on: {e}\n{text}"));
}

#[test]
fn example_names_every_key_of_the_config_structs() {
    let in_code = keys_in_code();
    assert!(in_code.len() > 20, "parsed too few fields: {in_code:?}");
    let in_example = keys_in(&example_with_optional_keys_on())
        .union(&keys_in(EXAMPLE))
        .cloned()
        .collect::<BTreeSet<_>>();
    let missing: Vec<_> = in_code.difference(&in_example).collect();
    assert!(
        missing.is_empty(),
        "kinesync.example.toml lacks {missing:?} (add them, commented if optional, and document them in docs/configuration.md)"
    );
    // deny_unknown_fields already rejects extra keys; this names them.
    let extra: Vec<_> = in_example.difference(&in_code).collect();
    assert!(
        extra.is_empty(),
        "kinesync.example.toml has unknown keys {extra:?}"
    );
}

#[test]
fn example_shows_the_defaults() {
    // Removing a key that shows its default must not change the result.
    let full = format!(
        "{:?}",
        Config::from_toml_with_env(EXAMPLE, &env()).expect("example parses")
    );
    let doc: toml::Table = EXAMPLE.parse().expect("valid TOML");
    for key in keys_in(EXAMPLE) {
        if NOT_DEFAULTS.contains(&key.as_str()) {
            continue;
        }
        let (section, name) = key.split_once('.').expect("section.key");
        let mut without = doc.clone();
        without[section]
            .as_table_mut()
            .expect("section table")
            .remove(name);
        let text = toml::to_string(&without).expect("serializes");
        let reduced = format!(
            "{:?}",
            Config::from_toml_with_env(&text, &env())
                .unwrap_or_else(|e| panic!("example without {key}: {e}"))
        );
        assert_eq!(
            full, reduced,
            "kinesync.example.toml sets {key} to something other than its default"
        );
    }
}

#[test]
fn environment_overrides_reach_every_section() {
    let env = BTreeMap::from([
        (
            "KINESYNC_SOURCE__URL".to_owned(),
            "postgres://other:pw@other-host:5433/db2".to_owned(),
        ),
        (
            "KINESYNC_KINESIS__MAX_RECORDS_PER_REQUEST".to_owned(),
            "100".to_owned(),
        ),
        (
            "KINESYNC_REDSHIFT__MIRROR_SCHEMA".to_owned(),
            "replica".to_owned(),
        ),
        (
            "KINESYNC_SCHEDULE__MERGE".to_owned(),
            "0 0 * * * *".to_owned(),
        ),
    ]);
    let config = Config::from_toml_with_env(EXAMPLE, &env).expect("parses");
    assert_eq!(config.source.url, "postgres://other:pw@other-host:5433/db2");
    assert_eq!(config.kinesis.max_records_per_request, 100);
    assert_eq!(config.redshift.expect("redshift").mirror_schema, "replica");
    assert_eq!(config.schedule.merge, "0 0 * * * *");
}

/// The `kinesync.toml: |` block of the Kubernetes ConfigMap.
fn configmap_toml() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/configmap.yaml");
    let yaml = std::fs::read_to_string(&path).expect("deploy/kubernetes/configmap.yaml");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "kinesync.toml: |");
    let header = lines.next().expect("the ConfigMap holds kinesync.toml: |");
    let key_indent = header.len() - header.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .map(|l| l.get(key_indent + 2..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kubernetes_configmap_parses_with_the_secret_url() {
    let text = configmap_toml();
    assert!(
        text.contains("[source]"),
        "ConfigMap TOML not found:\n{text}"
    );
    let env = BTreeMap::from([(
        "KINESYNC_SOURCE__URL".to_owned(),
        "postgres://kinesync:pw@db.internal:5432/app".to_owned(),
    )]);
    Config::from_toml_with_env(&text, &env)
        .unwrap_or_else(|e| panic!("deploy/kubernetes/configmap.yaml: {e}\n{text}"));
}

#[test]
fn ecs_task_definitions_configure_kinesync_by_environment_alone() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/ecs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/ecs") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let td: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
        for container in td["containerDefinitions"].as_array().expect("containers") {
            let mut env: BTreeMap<String, String> = container["environment"]
                .as_array()
                .expect("environment")
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().expect("name").to_owned(),
                        e["value"].as_str().expect("value").to_owned(),
                    )
                })
                .collect();
            // The secret's value at run time.
            env.insert(
                "KINESYNC_SOURCE__URL".to_owned(),
                "postgres://kinesync:pw@db.internal:5432/app".to_owned(),
            );
            // The image's /etc/kinesync/kinesync.toml is empty.
            Config::from_toml_with_env("", &env)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected the producer and merge task definitions"
    );
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The containers health-check themselves with `kinesync health` (the image
/// has no HTTP client), and Kubernetes gets the metrics Service and the
/// NetworkPolicy that keeps the unauthenticated port to Prometheus.
#[test]
fn containers_health_check_with_kinesync_health_and_kubernetes_guards_the_metrics_port() {
    let dockerfile = repo_file("deploy/docker/Dockerfile");
    assert!(
        dockerfile.contains("HEALTHCHECK") && dockerfile.contains("CMD [\"kinesync\", \"health\"]"),
        "Dockerfile needs HEALTHCHECK CMD [\"kinesync\", \"health\"]"
    );
    assert!(
        !dockerfile.contains("RUST_LOG=info"),
        "the image must not turn library logs on"
    );
    for ecs in [
        "deploy/ecs/producer-task-definition.json",
        "deploy/ecs/merge-task-definition.json",
    ] {
        let td: serde_json::Value = serde_json::from_str(&repo_file(ecs)).expect("JSON");
        for container in td["containerDefinitions"].as_array().expect("containers") {
            assert_eq!(
                container["healthCheck"]["command"],
                serde_json::json!(["CMD", "kinesync", "health"]),
                "{ecs}"
            );
        }
    }
    let kustomization = repo_file("deploy/kubernetes/kustomization.yaml");
    for resource in ["metrics-service.yaml", "networkpolicy.yaml"] {
        assert!(
            kustomization.contains(resource),
            "kustomization.yaml must list {resource}"
        );
    }
    let policy = repo_file("deploy/kubernetes/networkpolicy.yaml");
    assert!(
        policy.contains("kind: NetworkPolicy") && policy.contains("port: metrics"),
        "{policy}"
    );
    let cargo = repo_file("Cargo.toml");
    assert!(
        cargo.contains("[profile.release]\n") && cargo.contains("strip = true"),
        "release binaries are stripped"
    );
}

/// LICENSE is the license Cargo.toml declares, and the CHANGELOG has an
/// entry with upgrade notes for the package's version.
#[test]
fn the_license_matches_cargo_toml_and_the_changelog_covers_this_version() {
    let cargo = repo_file("Cargo.toml");
    assert!(
        cargo.contains("license = \"Apache-2.0\""),
        "Cargo.toml declares Apache-2.0"
    );
    let license = repo_file("LICENSE");
    assert!(
        license.contains("Apache License") && license.contains("Version 2.0, January 2004"),
        "LICENSE must be the Apache License 2.0 text"
    );
    assert!(
        license.contains("END OF TERMS AND CONDITIONS"),
        "LICENSE is the whole text"
    );
    let changelog = repo_file("CHANGELOG.md");
    let version = env!("CARGO_PKG_VERSION");
    let entry = changelog
        .split("\n## ")
        .find(|section| section.starts_with(version))
        .unwrap_or_else(|| panic!("CHANGELOG.md has no \"## {version}\" entry"));
    assert!(
        entry.contains("### Upgrade notes"),
        "the {version} entry needs upgrade notes"
    );
    let unreleased = changelog
        .split("\n## ")
        .find(|s| s.starts_with("Unreleased"));
    if let Some(unreleased) = unreleased {
        assert!(
            unreleased.contains("### Upgrade notes"),
            "Unreleased needs upgrade notes too"
        );
    }
}

/// Every `arn:...` in `text` (up to the first character an ARN cannot hold).
fn arns_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("arn:aws:") {
        let arn: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ":/_.+=,@-*".contains(*c))
            .collect();
        rest = &rest[at + arn.len()..];
        found.push(arn);
    }
    found
}

/// The role names the template creates: `RoleName: !Sub "${RoleNamePrefix}-x"`
/// under a resource of type `AWS::IAM::Role`, spelled with the default prefix
/// `kinesync`, mapped to the resource's logical id.
fn template_roles(template: &str) -> BTreeMap<String, String> {
    let resources = template
        .split("\nResources:\n")
        .nth(1)
        .expect("the template has Resources")
        .split("\nOutputs:\n")
        .next()
        .unwrap_or_default();
    let mut roles = BTreeMap::new();
    let mut logical = String::new();
    let mut is_role = false;
    for line in resources.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            logical = line.trim().trim_end_matches(':').to_owned();
            is_role = false;
        } else if line.trim() == "Type: AWS::IAM::Role" {
            is_role = true;
        } else if let Some(name) = line.trim().strip_prefix("RoleName: ") {
            assert!(is_role, "{logical}: RoleName outside an AWS::IAM::Role");
            let name = name
                .trim_start_matches("!Sub ")
                .trim_matches('"')
                .replace("${RoleNamePrefix}", "kinesync");
            roles.insert(name, logical.clone());
        }
    }
    roles
}

/// The body of one resource of the template (up to the next resource).
fn template_resource<'a>(template: &'a str, logical: &str) -> &'a str {
    let start = template
        .find(&format!("\n  {logical}:\n"))
        .unwrap_or_else(|| panic!("the template defines no {logical}"));
    let body = &template[start + logical.len() + 5..];
    // Up to the next line indented by at most two spaces that is not a comment.
    let end = body
        .match_indices('\n')
        .find(|(i, _)| {
            let next = body[i + 1..].trim_start_matches('\n');
            let indent = next.len() - next.trim_start_matches(' ').len();
            indent <= 2 && !next.trim_start().starts_with('#')
        })
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// docs/quickstart.md, followed by hand, must leave behind every IAM role
/// and secret that deploy/kubernetes and deploy/ecs name: each one is
/// created by the CloudFormation template (role names) or by a command in
/// the quickstart (secrets), the quickstart looks the namespace's roles up
/// before replacing them, and the template defines the IRSA, task and
/// execution roles with the trust and policies docs/security.md describes.
#[test]
fn the_quickstart_creates_every_role_and_secret_the_deploy_files_refer_to() {
    let quickstart = repo_file("docs/quickstart.md");
    let template = repo_file("deploy/cloudformation/kinesync.yaml");
    let security = repo_file("docs/security.md");
    let roles = template_roles(&template);

    let mut deploy_files = Vec::new();
    for dir in ["deploy/kubernetes", "deploy/ecs"] {
        let mut paths: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .expect(dir)
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "json")
                )
            })
            .collect();
        paths.sort();
        for path in paths {
            let name = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            deploy_files.push((name.clone(), repo_file(&name)));
        }
    }

    let mut problems = Vec::new();
    let (mut seen_roles, mut seen_secrets) = (0, 0);
    for (file, text) in &deploy_files {
        for arn in arns_in(text) {
            if let Some(role) = arn.split(":role/").nth(1) {
                seen_roles += 1;
                if !roles.contains_key(role) {
                    problems.push(format!(
                        "{file} names role {role}, which the template does not create (roles: {:?})",
                        roles.keys().collect::<Vec<_>>()
                    ));
                }
                if !quickstart.contains(role) {
                    problems.push(format!(
                        "{file} names role {role}; docs/quickstart.md never mentions it"
                    ));
                }
                if !security.contains(&format!("`{role}`")) {
                    problems.push(format!(
                        "{file} names role {role}; docs/security.md does not describe it"
                    ));
                }
            } else if let Some(secret) = arn.split(":secret:").nth(1) {
                seen_secrets += 1;
                let name = format!("--name {secret} ");
                if !quickstart
                    .split("aws secretsmanager create-secret")
                    .skip(1)
                    .any(|cmd| cmd.split(")\n").next().unwrap_or_default().contains(&name))
                {
                    problems.push(format!(
                        "{file} names secret {secret}; docs/quickstart.md has no `aws secretsmanager create-secret --name {secret}`"
                    ));
                }
            }
        }
        // Kubernetes Secrets referenced by name (secretKeyRef: name: ...).
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2).filter(|w| w[0].trim() == "secretKeyRef:") {
            let name = pair[1].trim().trim_start_matches("name: ");
            if !quickstart.contains(&format!("create secret generic {name} ")) {
                problems.push(format!(
                    "{file} uses the Kubernetes Secret {name}; docs/quickstart.md does not create it"
                ));
            }
        }
    }
    assert!(
        seen_roles >= 6 && seen_secrets >= 2,
        "found too few ARNs in deploy/"
    );

    // The Redshift secret, the way the Data API reads it.
    let redshift_secret = quickstart
        .split("aws secretsmanager create-secret")
        .skip(1)
        .find(|cmd| cmd.contains("--name kinesync-redshift "))
        .unwrap_or_default();
    for needed in [
        "\"username\":\"kinesync\"",
        "\"password\":",
        "--tags Key=RedshiftDataFullAccess",
        "--query ARN --output text",
    ] {
        if !redshift_secret.contains(needed) {
            problems.push(format!(
                "the Redshift secret's create-secret lacks {needed}"
            ));
        }
    }
    // The namespace and its existing roles, looked up before the list that replaces them.
    let lookups = [
        "aws redshift-serverless get-workgroup --workgroup-name analytics \\\n  --query workgroup.namespaceName",
        "aws redshift-serverless get-namespace --namespace-name \"$NAMESPACE\"",
        "--query 'namespace.iamRoles'",
        "aws redshift-serverless update-namespace --namespace-name \"$NAMESPACE\"",
        "aws redshift describe-clusters --cluster-identifier analytics-cluster \\\n  --query 'Clusters[0].IamRoles",
        "aws redshift modify-cluster-iam-roles",
    ];
    let mut last = 0;
    for lookup in lookups {
        match quickstart[last..].find(lookup) {
            Some(at) => last += at,
            None => problems.push(format!(
                "docs/quickstart.md lacks (in this order) {lookup:?}"
            )),
        }
    }
    if !quickstart.contains("$EXISTING_ROLES") {
        problems.push("update-namespace must pass the existing roles ($EXISTING_ROLES)".into());
    }
    // Named roles need CAPABILITY_NAMED_IAM, and the runtime roles their parameters.
    for needed in [
        "--capabilities CAPABILITY_NAMED_IAM",
        "EksOidcProviderUrl=",
        "CreateEcsRoles=true",
        "SourceUrlSecretArn=",
        "GRANT rds_replication TO kinesync",
        "GRANT CREATE ON DATABASE app TO kinesync",
        "ALTER PUBLICATION kinesync OWNER TO kinesync",
    ] {
        if !quickstart.contains(needed) {
            problems.push(format!("docs/quickstart.md lacks {needed}"));
        }
    }

    // The template's runtime roles: trust and policy as docs/security.md says.
    let expect_role =
        |problems: &mut Vec<String>, name: &str, condition: &str, needles: &[&str]| {
            let Some(logical) = roles.get(name) else {
                problems.push(format!("the template defines no role {name}"));
                return;
            };
            let body = template_resource(&template, logical);
            if !body.contains(&format!("Condition: {condition}\n")) {
                problems.push(format!(
                    "{logical} must be optional (Condition: {condition})"
                ));
            }
            for needle in needles {
                if !body.contains(needle) {
                    problems.push(format!("{logical} ({name}) lacks {needle:?}"));
                }
            }
        };
    for (sa, policy) in [
        ("kinesync-producer", "ProducerPolicy"),
        ("kinesync-merge", "SchedulerPolicy"),
    ] {
        let subject = format!("system:serviceaccount:${{KubernetesNamespace}}:{sa}\"");
        let policy = format!("ManagedPolicyArns: [!Ref {policy}]");
        expect_role(
            &mut problems,
            sa,
            "CreateIrsaRoles",
            &[
                "sts:AssumeRoleWithWebIdentity",
                "oidc-provider/${EksOidcProviderUrl}",
                &subject,
                "\"${EksOidcProviderUrl}:aud\": \"sts.amazonaws.com\"",
                &policy,
            ],
        );
        let serviceaccounts = repo_file("deploy/kubernetes/serviceaccount.yaml");
        if !serviceaccounts.contains(&format!("name: {sa}\n")) {
            problems.push(format!("serviceaccount.yaml has no service account {sa}"));
        }
    }
    for (role, policy) in [
        ("kinesync-producer-task", "ProducerPolicy"),
        ("kinesync-merge-task", "SchedulerPolicy"),
    ] {
        let policy = format!("ManagedPolicyArns: [!Ref {policy}]");
        expect_role(
            &mut problems,
            role,
            "CreateEcsRoles",
            &[
                "Service: ecs-tasks.amazonaws.com",
                "aws:SourceAccount",
                "aws:SourceArn",
                &policy,
            ],
        );
    }
    expect_role(
        &mut problems,
        "kinesync-ecs-execution",
        "CreateEcsRoles",
        &[
            "Service: ecs-tasks.amazonaws.com",
            "service-role/AmazonECSTaskExecutionRolePolicy",
            "Action: secretsmanager:GetSecretValue",
            "Resource: !Ref SourceUrlSecretArn",
            "Action: logs:CreateLogGroup",
        ],
    );
    if !roles.contains_key("kinesync-redshift-stream") {
        problems.push(
            "the stream role must be named kinesync-redshift-stream, as in the deploy files".into(),
        );
    }
    for condition in ["CreateIrsaRoles:", "CreateEcsRoles:"] {
        if !template.contains(&format!("\n  {condition} ")) {
            problems.push(format!("the template needs the condition {condition}"));
        }
    }
    for parameter in [
        "EksOidcProviderUrl",
        "KubernetesNamespace",
        "CreateEcsRoles",
        "SourceUrlSecretArn",
    ] {
        if !template.contains(&format!("\n  {parameter}:\n    Type: String")) {
            problems.push(format!("the template needs the parameter {parameter}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
