//! Bad input, end to end: configuration mistakes, missing privileges and
//! objects, values at the edges of what PostgreSQL and Redshift can hold,
//! hostile identifiers and secrets. The standard for every failure is one
//! `kinesync: error: ...` line naming what is wrong and how to fix it, a
//! non-zero exit code, no panic, and nothing lost or confirmed behind the
//! user's back. Every test runs the real binary against the local stack.

mod support;

use support::{assert_one_line_error, run_with_config_text, text_rows, Pipeline};

// ---------------------------------------------------------------- config --

const VALID_SOURCE: &str = r#"
[source]
url = "postgres://kinesync@127.0.0.1:1/app"
tables = ["public.orders"]
"#;

const VALID_REDSHIFT: &str = r#"
[redshift]
workgroup = "analytics"
database = "dev"
stream_role_arn = "arn:aws:iam::000000000000:role/kinesync"
"#;

#[tokio::test]
async fn a_misspelled_key_is_named_with_its_section_and_a_suggestion_and_exits_2() {
    let text = VALID_SOURCE.replace("tables =", "slto = \"x\"\ntables =");
    for command in [
        &["produce"][..],
        &["setup"],
        &["merge", "--once"],
        &["config"],
    ] {
        let out = run_with_config_text("typo", &text, command).await;
        assert_one_line_error(
            &out,
            Some(2),
            &["unknown key", "source.slto", "did you mean `slot`"],
        );
    }
}

#[tokio::test]
async fn flags_override_the_file_and_a_malformed_or_misspelled_set_is_one_line() {
    let (code, stdout, stderr) = run_with_config_text(
        "flags",
        VALID_SOURCE,
        &[
            "--stream",
            "from-flag",
            "--tables",
            "public.a,sales.*",
            "--set",
            "kinesis.max_records_per_request=10",
            "--set",
            "source.slot=flag_slot",
            "config",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "stream = \"from-flag\"  # flag --stream\n",
        "tables = [\"public.a\", \"sales.*\"]  # flag --tables\n",
        "max_records_per_request = 10  # flag --set kinesis.max_records_per_request\n",
        "slot = \"flag_slot\"  # flag --set source.slot\n",
        "url = \"postgres://kinesync@127.0.0.1:1/app\"  # file ",
        "publication = \"kinesync\"  # default\n",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
    let out = run_with_config_text("flags_bad", VALID_SOURCE, &["--set", "stream", "config"]).await;
    assert_one_line_error(&out, Some(2), &["--set \"stream\"", "SECTION.KEY=VALUE"]);
    let out = run_with_config_text(
        "flags_typo",
        VALID_SOURCE,
        &["--set", "kinesis.straem=x", "config"],
    )
    .await;
    assert_one_line_error(&out, Some(2), &["kinesis.straem", "did you mean `stream`"]);
}

#[tokio::test]
async fn a_misspelled_section_is_named_with_a_suggestion() {
    let text = format!("{VALID_SOURCE}\n[redshfit]\ndatabase = \"dev\"\n");
    let out = run_with_config_text("typo_section", &text, &["setup"]).await;
    assert_one_line_error(&out, Some(2), &["redshfit", "did you mean `redshift`"]);
}

#[tokio::test]
async fn a_value_of_the_wrong_type_names_the_key_and_line() {
    let text = format!("{VALID_SOURCE}\n[kinesis]\nmax_records_per_request = \"many\"\n");
    let out = run_with_config_text("wrong_type", &text, &["produce"]).await;
    assert_one_line_error(
        &out,
        Some(2),
        &[
            "kinesis.max_records_per_request",
            "line 7",
            "expected usize",
        ],
    );
}

/// Runs the binary in an empty directory with only `env` (and PATH) set:
/// no config file unless `--config` names one.
async fn run_with_env_only(
    name: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("kinesync-envonly-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kinesync"))
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run kinesync");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn wrongly_typed_variables_and_flags_are_all_named_at_once_not_blamed_on_the_file() {
    let out = run_with_config_text(
        "env_types",
        VALID_SOURCE,
        &[
            "--set",
            "kinesis.max_records_per_request=many",
            "--set",
            "kinesis.straem=x",
            "config",
        ],
    )
    .await;
    assert_one_line_error(
        &out,
        Some(2),
        &[
            "flag --set kinesis.max_records_per_request: kinesis.max_records_per_request: invalid type: string \"many\", expected usize",
            "flag --set kinesis.straem: unknown key kinesis.straem: did you mean `stream`?",
        ],
    );
    let out = run_with_env_only(
        "env_types",
        &[
            ("KINESYNC_SOURCE__URL", "postgres://u@h/db"),
            ("KINESYNC_SOURCE__TABLES", "public.a"),
            ("KINESYNC_SOURCE__SNAPSHOT", "bogus"),
            ("KINESYNC_SOURCE__HEARTBEAT_INTERVAL_SECS", "often"),
        ],
        &["config"],
    )
    .await;
    let line = assert_one_line_error(
        &out,
        Some(2),
        &[
            "variable KINESYNC_SOURCE__SNAPSHOT: source.snapshot: unknown variant `bogus`",
            "variable KINESYNC_SOURCE__HEARTBEAT_INTERVAL_SECS: source.heartbeat_interval_secs: invalid type: string \"often\"",
        ],
    );
    assert!(!line.contains("config file"), "{line}");
}

#[tokio::test]
async fn the_environment_alone_configures_kinesync_lists_split_on_commas_and_stray_variables_warn()
{
    let out = run_with_env_only(
        "env_only",
        &[
            ("KINESYNC_SOURCE__URL", "postgres://u:hunter2@h/db"),
            ("KINESYNC_SOURCE__TABLES", "public.a, sales.*"),
            ("KINESYNC_KINESIS_STREAM", "typo"),
        ],
        &["config", "--json"],
    )
    .await;
    assert_eq!(out.0, 0, "{}", out.2);
    let json: serde_json::Value = serde_json::from_str(&out.1).expect("config --json is JSON");
    assert_eq!(
        json["source"]["tables"]["value"],
        serde_json::json!(["public.a", "sales.*"])
    );
    assert_eq!(json["source"]["tables"]["from"], "KINESYNC_SOURCE__TABLES");
    assert_eq!(json["source"]["url"]["value"], "postgres://u:***@h/db");
    assert_eq!(json["kinesis"]["stream"]["origin"], "default");
    assert!(
        out.2
            .contains("KINESYNC_KINESIS_STREAM names no configuration key")
            && out.2.contains("did you mean KINESYNC_KINESIS__STREAM"),
        "{}",
        out.2
    );
    // Nothing set at all: one line saying what is missing and how to set it.
    let out = run_with_env_only("env_none", &[], &["produce"]).await;
    assert_one_line_error(
        &out,
        Some(2),
        &[
            "missing section [source]",
            "kinesync.toml not found",
            "KINESYNC_SOURCE__",
        ],
    );
}

#[tokio::test]
async fn a_toml_syntax_error_is_one_line_naming_the_line() {
    let text = "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"\n";
    let out = run_with_config_text("syntax", text, &["produce"]).await;
    assert_one_line_error(&out, Some(2), &["line 4", "invalid array"]);
}

#[tokio::test]
async fn a_missing_required_key_is_named() {
    let text = "[source]\nurl = \"postgres://u@h/db\"\n";
    let out = run_with_config_text("missing_key", text, &["produce"]).await;
    assert_one_line_error(&out, Some(2), &["missing field `tables`", "[source]"]);
}

#[tokio::test]
async fn a_bad_cron_expression_in_schedule_merge_exits_2_naming_the_key_and_an_example() {
    let text =
        format!("{VALID_SOURCE}{VALID_REDSHIFT}\n[schedule]\nmerge = \"every five minutes\"\n");
    for command in [&["merge"][..], &["merge", "--once"], &["produce"]] {
        let out = run_with_config_text("cron", &text, command).await;
        assert_one_line_error(
            &out,
            Some(2),
            &["schedule.merge", "every five minutes", "0 */5 * * * *"],
        );
    }
}

#[tokio::test]
async fn a_source_url_that_is_not_a_postgres_url_exits_2_naming_the_key() {
    let text = VALID_SOURCE.replace("postgres://kinesync@127.0.0.1:1/app", "http//db:5432");
    let out = run_with_config_text("bad_url", &text, &["produce"]).await;
    assert_one_line_error(
        &out,
        Some(2),
        &["source.url", "http//db:5432", "postgres://"],
    );
}

#[tokio::test]
async fn workgroup_and_cluster_id_together_exit_2_saying_to_keep_one() {
    let text = format!("{VALID_SOURCE}{VALID_REDSHIFT}cluster_id = \"prod\"\n");
    let out = run_with_config_text("both_targets", &text, &["setup"]).await;
    assert_one_line_error(
        &out,
        Some(2),
        &["redshift.workgroup", "redshift.cluster_id", "keep"],
    );
}

#[tokio::test]
async fn setup_and_merge_without_a_redshift_section_exit_2_naming_the_section() {
    for command in [&["setup"][..], &["merge", "--once"], &["merge"]] {
        let out = run_with_config_text("no_redshift", VALID_SOURCE, command).await;
        assert_one_line_error(&out, Some(2), &["[redshift]"]);
    }
}

#[tokio::test]
async fn several_problems_are_all_reported_on_one_line() {
    let text = format!(
        "{}{VALID_REDSHIFT}cluster_id = \"prod\"\n[schedule]\nmerge = \"often\"\n",
        VALID_SOURCE.replace("[\"public.orders\"]", "[]")
    );
    let out = run_with_config_text("many_problems", &text, &["setup"]).await;
    assert_one_line_error(
        &out,
        Some(2),
        &["source.tables", "redshift.cluster_id", "schedule.merge"],
    );
}

#[tokio::test]
async fn a_missing_config_file_exits_2_with_one_line_naming_the_file() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kinesync"))
        .args(["--config", "/nonexistent/kinesync.toml", "produce"])
        .output()
        .await
        .expect("run kinesync");
    let out = (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_one_line_error(&out, Some(2), &["/nonexistent/kinesync.toml", "--config"]);
}

// ----------------------------------------------- source: roles and objects --

const ORDERS: &str = "
CREATE TABLE public.orders (id int PRIMARY KEY, note text);
INSERT INTO public.orders VALUES (1, 'one'), (2, 'two');
";

/// A failed start leaves no slot behind and puts nothing in the stream.
async fn assert_nothing_confirmed(p: &Pipeline) {
    assert!(
        !p.slot_exists().await,
        "a failed start must not leave replication slot {} behind",
        p.name
    );
    let records = p.read_stream().await;
    assert!(
        records.is_empty(),
        "a failed start must not write to the stream: {records:?}"
    );
}

/// Points `source.url` at `role` (trust auth: no password needed).
fn use_role(p: &Pipeline, role: &str) {
    let url =
        format!("{}/{}_src", p.stack.pg_url, p.name).replacen("postgres@", &format!("{role}@"), 1);
    p.set_config("source", &format!("url = \"{url}\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_may_not_log_in_is_named_and_nothing_is_confirmed() {
    // The local cluster trusts 127.0.0.1, so a wrong password cannot be
    // tested here; a NOLOGIN role is refused by the same authentication step.
    let p = Pipeline::start("bad_nologin", ORDERS, &["public.orders"]).await;
    p.source
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bad_nologin_role') \
             THEN CREATE ROLE bad_nologin_role NOLOGIN; END IF; END $$",
        )
        .await
        .expect("role");
    use_role(&p, "bad_nologin_role");
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(
        &out,
        None,
        &["bad_nologin_role", "not permitted to log in", "source.url"],
    );
    let out = p.run_bounded(&["setup"]).await;
    assert_one_line_error(&out, Some(4), &["bad_nologin_role"]);
    assert_nothing_confirmed(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_database_that_does_not_exist_is_named() {
    let p = Pipeline::start("bad_nodb", ORDERS, &["public.orders"]).await;
    let url = format!("{}/bad_nodb_does_not_exist", p.stack.pg_url);
    p.set_config("source", &format!("url = \"{url}\""));
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(&out, None, &["bad_nodb_does_not_exist", "does not exist"]);
    // The merge reads no source (docs/operations.md); setup does.
    let out = p.run_bounded(&["setup", "--print"]).await;
    assert_one_line_error(&out, Some(4), &["bad_nodb_does_not_exist"]);
    assert_nothing_confirmed(&p).await;
}

/// A non-superuser role set up as docs/security.md says (owning the
/// publication), with or without REPLICATION and SELECT on the table.
async fn limited_role(p: &Pipeline, role: &str, replication: bool, select: bool) {
    let attrs = if replication {
        "LOGIN REPLICATION"
    } else {
        "LOGIN"
    };
    p.source
        .batch_execute(&format!(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
               EXECUTE 'DROP OWNED BY {role}'; EXECUTE 'DROP ROLE {role}'; END IF; END $$;
             CREATE ROLE {role} {attrs};
             GRANT USAGE ON SCHEMA public TO {role};
             {grant}
             CREATE PUBLICATION {publication} FOR TABLE public.orders WITH (publish_via_partition_root = true);
             ALTER PUBLICATION {publication} OWNER TO {role};",
            grant = if select {
                format!("GRANT SELECT ON public.orders TO {role};")
            } else {
                String::new()
            },
            publication = p.name,
        ))
        .await
        .expect("limited role");
    use_role(p, role);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_replication_is_named_with_the_alter_role_fix_and_nothing_is_confirmed() {
    let p = Pipeline::start("bad_norepl", ORDERS, &["public.orders"]).await;
    limited_role(&p, "bad_norepl_role", false, true).await;
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(
        &out,
        None,
        &["bad_norepl_role", "ALTER ROLE bad_norepl_role REPLICATION"],
    );
    assert_nothing_confirmed(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_select_is_named_with_the_grant_before_any_slot_is_created() {
    let p = Pipeline::start("bad_nosel", ORDERS, &["public.orders"]).await;
    limited_role(&p, "bad_nosel_role", true, false).await;
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(
        &out,
        None,
        &[
            "bad_nosel_role",
            "public.orders",
            "GRANT SELECT ON public.orders TO bad_nosel_role",
        ],
    );
    assert_nothing_confirmed(&p).await;

    // Granting it is the whole fix: the next start delivers everything.
    p.source
        .batch_execute("GRANT SELECT ON public.orders TO bad_nosel_role")
        .await
        .expect("grant");
    p.set_config("source", "snapshot = \"initial_only\"");
    p.run_ok(&["produce"]).await;
    p.setup().await;
    p.merge_once().await;
    p.assert_mirror_equals_source("public.orders").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_key_is_refused_by_every_command_with_the_fix() {
    let p = Pipeline::start(
        "bad_nokey",
        "CREATE TABLE public.events (at timestamptz, what text); INSERT INTO events VALUES (now(), 'x');",
        &["public.events"],
    )
    .await;
    let fix = "ALTER TABLE public.events REPLICA IDENTITY USING INDEX";
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(&out, None, &["public.events", fix]);
    for command in [&["setup"][..], &["setup", "--print"]] {
        let out = p.run_bounded(command).await;
        assert_one_line_error(&out, Some(4), &["public.events", fix]);
    }
    // REPLICA IDENTITY FULL alone: equal rows could not be told apart.
    p.source
        .batch_execute("ALTER TABLE events REPLICA IDENTITY FULL")
        .await
        .expect("identity full");
    let fixes = ["public.events", "PRIMARY KEY", "source.keyless_tables"];
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(&out, None, &fixes);
    for command in [&["setup"][..], &["setup", "--print"]] {
        let out = p.run_bounded(command).await;
        assert_one_line_error(&out, Some(4), &fixes);
    }
    assert_nothing_confirmed(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_table_that_does_not_exist_is_named_by_every_command() {
    let p = Pipeline::start("bad_notable", ORDERS, &["public.orders", "public.ordres"]).await;
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(&out, None, &["public.ordres", "source.tables"]);
    for command in [&["setup"][..], &["setup", "--print"]] {
        let out = p.run_bounded(command).await;
        assert_one_line_error(&out, Some(4), &["public.ordres", "source.tables"]);
    }
    assert_nothing_confirmed(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kinesis_stream_that_does_not_exist_is_named_and_nothing_is_confirmed() {
    let p = Pipeline::start("bad_nostream", ORDERS, &["public.orders"]).await;
    p.set_config("kinesis", "stream = \"bad-nostream-missing\"");
    let out = p.run_bounded(&["produce"]).await;
    assert_one_line_error(
        &out,
        None,
        &["bad-nostream-missing", "kinesis.stream", "does not exist"],
    );
    assert_nothing_confirmed(&p).await;
}

// ------------------------------------------------------------------ types --

#[tokio::test(flavor = "multi_thread")]
async fn types_without_a_special_mapping_mirror_as_their_text_and_domains_as_their_base_type() {
    let mut p = Pipeline::start(
        "bad_types",
        "CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TYPE point3 AS (x int, y int, label text);
         CREATE TABLE public.odd (
             id posint PRIMARY KEY,
             m mood,
             p point3,
             r int4range,
             tr tstzrange,
             n inet,
             iv interval,
             money_col money,
             bits bit varying(8)
         );
         INSERT INTO odd VALUES
           (1, 'happy', ROW(1, 2, 'a \"quoted\", label'), '[1,5)', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', '10.0.0.1/8', '1 day 02:03:04', 12.5, B'1010'),
           (2, NULL, ROW(NULL, NULL, NULL), 'empty', NULL, NULL, NULL, NULL, NULL);",
        &["public.odd"],
    )
    .await;
    p.setup().await;
    // The domain key maps to its base type.
    let types = text_rows(
        &p.mirror,
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'mirror' AND table_name = 'odd' AND column_name IN ('id', 'm', 'p', 'r') ORDER BY 1",
    )
    .await;
    assert_eq!(
        types,
        vec![
            vec![Some("id".into()), Some("integer".into())],
            vec![Some("m".into()), Some("character varying".into())],
            vec![Some("p".into()), Some("character varying".into())],
            vec![Some("r".into()), Some("character varying".into())],
        ]
    );
    p.start_producer().await;
    p.source
        .batch_execute(
            "INSERT INTO odd VALUES (3, 'sad', ROW(3, 4, 'b'), '(,10]', 'empty', '::1/64', '-1 mon', -1, B'1');
             UPDATE odd SET m = 'ok', r = '[7,8]' WHERE id = 1;",
        )
        .await
        .expect("changes");
    p.assert_merge_converges(&["public.odd"]).await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_value_over_65535_bytes_is_cut_to_65535_bytes_and_the_refresh_succeeds() {
    let mut p = Pipeline::start(
        "bad_longtext",
        "CREATE TABLE public.docs (id int PRIMARY KEY, body text, tags text[]);",
        &["public.docs"],
    )
    .await;
    p.setup_and_produce().await;
    // Row 2: a two-byte character straddles byte 65,535, so the cut lands
    // one byte earlier, on the character boundary.
    p.source
        .batch_execute(
            "INSERT INTO docs VALUES
               (1, repeat('x', 70000), ARRAY[repeat('y', 70000), 'short']),
               (2, repeat('a', 65534) || 'é' || repeat('b', 10), NULL),
               (3, 'small', NULL);",
        )
        .await
        .expect("long values");
    p.sync_producer().await;
    p.merge_once().await;
    let rows = text_rows(
        &p.mirror,
        "SELECT id::text, octet_length(body)::text, md5(body), tags::text FROM mirror.docs ORDER BY id",
    )
    .await;
    let expected = text_rows(
        &p.source,
        "SELECT id::text, octet_length(b)::text, md5(b), t FROM (
           SELECT id, CASE id WHEN 1 THEN repeat('x', 65535) WHEN 2 THEN repeat('a', 65534) ELSE body END AS b,
                  CASE id WHEN 1 THEN to_jsonb(ARRAY[repeat('y', 65535), 'short'])::text END AS t
           FROM docs) s ORDER BY id",
    )
    .await;
    assert_eq!(rows, expected, "mirror must hold the first 65,535 bytes");
    // The warning names the table, the column and the row key (issue 22).
    let log = p.producer_log();
    let warning = log
        .lines()
        .find(|l| l.contains("truncated"))
        .unwrap_or_else(|| panic!("the producer must warn about the cut: {log}"));
    for part in ["public.docs", "body", "[1]", "string_cut"] {
        assert!(
            warning.contains(part),
            "the warning names {part}: {warning}"
        );
    }
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn numerics_beyond_decimal_38_mirror_exactly_and_special_floats_follow_the_documented_rules()
{
    let mut p = Pipeline::start(
        "bad_numeric",
        "CREATE TABLE public.nums (id int PRIMARY KEY, wide numeric(50,10), free numeric, f8 float8, f4 float4);
         INSERT INTO nums VALUES
           (1, 1234567890123456789012345678901234567890.0123456789, 0.000000000000000000000000000000000000000001, 1.5, 2.5),
           (2, -0.0000000001, 'NaN', 'NaN', 'NaN'),
           (3, NULL, 'Infinity', 'Infinity', '-Infinity'),
           (4, NULL, '-Infinity', '-Infinity', 'Infinity'),
           (5, NULL, 123456789012345678901234567890123456789012345678901234567890, 1e308, 3.4e38);",
        &["public.nums"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("UPDATE nums SET free = free * 10 WHERE id = 1")
        .await
        .expect("update");
    p.sync_producer().await;
    p.merge_once().await;
    // docs/redshift.md, "Edge values": NaN, infinities and floats outside
    // Redshift's documented ranges (REAL above 1E+37) are NULL.
    let mirror = text_rows(
        &p.mirror,
        "SELECT id::text, wide, free, f8::text, f4::text FROM mirror.nums ORDER BY id",
    )
    .await;
    let source = text_rows(
        &p.source,
        "SELECT id::text, wide::text, free::text,
                CASE WHEN f8 = 0 OR abs(f8) BETWEEN 1e-307 AND 1e308 THEN f8::text END,
                CASE WHEN f4 = 0 OR abs(f4::text::float8) BETWEEN 1e-37 AND 1e37 THEN f4::text END
         FROM nums ORDER BY id",
    )
    .await;
    assert_eq!(mirror, source);
    assert_eq!(
        mirror[4][4], None,
        "REAL 3.4e38 is outside Redshift's range"
    );
    let (code, stdout, stderr) = p.run_bounded(&["verify"]).await;
    assert_eq!(code, 0, "verify: {stdout}\n{stderr}");
    let types = text_rows(
        &p.mirror,
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'mirror' AND table_name = 'nums' AND column_name IN ('wide', 'free') ORDER BY 1",
    )
    .await;
    assert_eq!(
        types,
        vec![
            vec![Some("free".into()), Some("character varying".into())],
            vec![Some("wide".into()), Some("character varying".into())],
        ],
        "numerics beyond DECIMAL(38) are VARCHAR holding the exact text"
    );
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn values_redshift_cannot_hold_follow_the_documented_rules_and_the_merge_succeeds() {
    // docs/redshift.md, "Edge values": infinite dates and timestamps, BC
    // values and years past 9999 (no documented Redshift input form) and a
    // NaN in a DECIMAL column become NULL in the mirror.
    let mut p = Pipeline::start(
        "bad_edges",
        "CREATE TABLE public.edges (id int PRIMARY KEY, d date, ts timestamp, tstz timestamptz, dec numeric(10,2));
         INSERT INTO edges VALUES
           (1, 'infinity', 'infinity', 'infinity', 'NaN'),
           (2, '-infinity', '-infinity', '-infinity', 1.25),
           (3, '4713-01-01 BC', '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', NULL),
           (4, '294276-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', NULL),
           (5, '2024-02-29', '2024-02-29 12:00:00', '2024-02-29 12:00:00+05', 0);",
        &["public.edges"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("INSERT INTO edges VALUES (6, 'infinity', '-infinity', 'infinity', 'NaN')")
        .await
        .expect("streamed edge values");
    p.sync_producer().await;
    let summary = p.merge_once().await;
    assert!(summary.contains("merge ok"), "{summary}");
    let mirror = text_rows(
        &p.mirror,
        "SELECT id::text, d::text, ts::text, tstz::text, dec::text FROM mirror.edges ORDER BY id",
    )
    .await;
    let source = text_rows(
        &p.source,
        "SELECT id::text,
                CASE WHEN EXTRACT(YEAR FROM d) BETWEEN 1 AND 9999 THEN d::text END,
                CASE WHEN EXTRACT(YEAR FROM ts) BETWEEN 1 AND 9999 THEN ts::text END,
                CASE WHEN EXTRACT(YEAR FROM tstz AT TIME ZONE 'UTC') BETWEEN 1 AND 9999 THEN tstz::text END,
                CASE WHEN dec <> 'NaN' THEN dec::text END
         FROM edges ORDER BY id",
    )
    .await;
    assert_eq!(mirror, source);
    p.stop_producer().await;
}

// ------------------------------------------------------------ identifiers --

const ODD_NAMES: &str = r#"
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."select" (
    "Mixed Case" int PRIMARY KEY,
    "semi;colon" text,
    "quote""d" text,
    "ünï" text,
    "from" int
);
CREATE TABLE public.canary (id int PRIMARY KEY);
INSERT INTO public.canary VALUES (1);
INSERT INTO "Odd Schema"."select" VALUES
    (1, 'a; DROP TABLE canary; --', 'it''s "quoted"', 'ünïcödé', 1),
    (2, ''');DROP TABLE canary;--', '\', NULL, NULL);
"#;

#[tokio::test(flavor = "multi_thread")]
async fn quotes_spaces_semicolons_case_unicode_and_reserved_words_mirror_and_inject_nothing() {
    let mut p = Pipeline::start(
        "bad_idents",
        ODD_NAMES,
        &["Odd Schema.select", "public.canary"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            r#"INSERT INTO "Odd Schema"."select" VALUES (3, '"; DELETE FROM mirror.canary; --', 'x', 'ÿ', 3);
               UPDATE "Odd Schema"."select" SET "quote""d" = 'changed', "Mixed Case" = 10 WHERE "Mixed Case" = 2;"#,
        )
        .await
        .expect("changes");
    p.sync_producer().await;
    p.merge_once().await;
    // Mirror identifiers fold to lower case (docs/redshift.md).
    let mirror = text_rows(
        &p.mirror,
        r#"SELECT "mixed case"::text, "semi;colon", "quote""d", "ünï", "from"::text
           FROM mirror."odd schema__select" ORDER BY 1::int"#,
    )
    .await;
    let source = text_rows(
        &p.source,
        r#"SELECT "Mixed Case"::text, "semi;colon", "quote""d", "ünï", "from"::text
           FROM "Odd Schema"."select" ORDER BY 1::int"#,
    )
    .await;
    assert_eq!(mirror, source);
    assert_eq!(mirror.len(), 3);
    // Nothing was injected on either side.
    p.assert_mirror_equals_source("public.canary").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_that_differ_only_by_case_are_refused_by_setup_and_merge_naming_both() {
    let p = Pipeline::start(
        "bad_casecollide",
        r#"CREATE TABLE public.twins (id int PRIMARY KEY, "Name" text, name text);"#,
        &["public.twins"],
    )
    .await;
    for command in [&["setup"][..], &["setup", "--print"]] {
        let out = p.run_bounded(command).await;
        assert_one_line_error(&out, None, &["public.twins", "\"Name\"", "\"name\""]);
    }
    let tables = text_rows(
        &p.mirror,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'mirror' AND table_name LIKE '%twins%'",
    )
    .await;
    assert!(
        tables.is_empty(),
        "no mirror table may be created: {tables:?}"
    );
}

// ---------------------------------------------------------------- secrets --

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_debug_logs_or_error_messages() {
    const PASSWORD: &str = "s3cr3t-value";
    const AWS_SECRET: &str = "aws-s3cr3t-key";
    let p = Pipeline::start("bad_secrets", ORDERS, &["public.orders"]).await;
    // Trust authentication ignores the password, so the commands succeed
    // while carrying it everywhere a URL goes.
    let url = format!("{}/bad_secrets_src", p.stack.pg_url).replacen(
        "postgres@",
        &format!("postgres:{PASSWORD}@"),
        1,
    );
    p.set_config(
        "source",
        &format!("url = \"{url}\"\nsnapshot = \"initial_only\""),
    );
    p.set_config(
        "redshift",
        "secret_arn = \"arn:aws:secretsmanager:us-east-1:000000000000:secret:kinesync-local\"",
    );
    let env = [("RUST_LOG", "debug"), ("AWS_SECRET_ACCESS_KEY", AWS_SECRET)];
    let mut outputs = Vec::new();
    for command in [
        &["config"][..],
        &["produce"],
        &["setup"],
        &["merge", "--once"],
    ] {
        let out = p.run_with_env(command, &env).await;
        assert_eq!(out.0, 0, "kinesync {command:?} failed: {}", out.2);
        outputs.push((command, out));
    }
    // The other spellings libpq accepts: a libpq key=value string (bare
    // and quoted) and a ?password= parameter, working and failing.
    let (host, port) = p
        .stack
        .pg_url
        .rsplit_once('@')
        .and_then(|(_, hp)| hp.split_once(':'))
        .expect("host:port in the stack URL");
    let key_value = format!("host={host} port={port} user=postgres dbname=bad_secrets_src");
    for good_url in [
        format!("{key_value} password={PASSWORD}"),
        format!("{key_value} password = '{PASSWORD} x'"),
        format!("postgres://postgres@{host}:{port}/bad_secrets_src?password={PASSWORD}"),
    ] {
        p.set_config("source", &format!("url = \"{good_url}\""));
        for command in [&["config"][..], &["check", "--no-write"], &["status"]] {
            let out = p.run_with_env(command, &env).await;
            outputs.push((command, out));
        }
    }
    // And failures: a bad URL, a wrong database, an unreachable port, in
    // every spelling.
    for bad_url in [
        url.replace("bad_secrets_src", "bad_secrets_nodb"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/db"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:notaport/db"),
        format!("postgres://postgres@127.0.0.1:1/db?password={PASSWORD}"),
        format!("host=127.0.0.1 port=1 user=postgres password={PASSWORD}"),
        format!("host=127.0.0.1 port=notaport password='{PASSWORD}'"),
        format!("host=127.0.0.1 port=1 password='{PASSWORD} unterminated"),
    ] {
        p.set_config("source", &format!("url = \"{bad_url}\""));
        for command in [
            &["produce"][..],
            &["setup", "--print"],
            &["check"],
            &["config"],
        ] {
            let out = p.run_with_env(command, &env).await;
            if command != ["config"] {
                assert_ne!(out.0, 0, "kinesync {command:?} with {bad_url} should fail");
            }
            outputs.push((command, out));
        }
    }
    for (command, (_, stdout, stderr)) in &outputs {
        for secret in [PASSWORD, AWS_SECRET] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "kinesync {command:?} printed the secret {secret:?}:\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
    }
    // The debug logs were really on (otherwise the check proves little).
    assert!(
        outputs.iter().any(|(_, (_, _, e))| e.contains("DEBUG")),
        "RUST_LOG=debug produced no debug lines"
    );
}

// ------------------------------------------------------------------- aws --

/// `check --json`'s Kinesis stream finding, run with only `extra` (and a
/// source that refuses at once) in the environment: no AWS profile, no
/// instance metadata.
async fn kinesis_finding(name: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let home = std::env::temp_dir().join(format!("kinesync-home-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("home");
    let home = home.to_string_lossy().into_owned();
    let mut env = vec![
        ("HOME", home.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("KINESYNC_SOURCE__URL", "postgres://u@127.0.0.1:1/db"),
        ("KINESYNC_SOURCE__TABLES", "public.a"),
        ("KINESYNC_KINESIS__STREAM", "cdc"),
    ];
    env.extend_from_slice(extra);
    let out = run_with_env_only(name, &env, &["check", "--json", "--no-write"]).await;
    assert_eq!(out.0, 6, "check should find problems: {}", out.2);
    let report: serde_json::Value = serde_json::from_str(&out.1).expect("check --json");
    report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["check"] == "stream cdc").cloned())
        .unwrap_or_else(|| panic!("no stream finding in {report}"))
}

#[tokio::test]
async fn aws_failures_are_one_line_each_with_the_fix_the_way_the_aws_cli_words_them() {
    let unreachable = [("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:1")];
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    let region = [("AWS_REGION", "eu-west-1")];
    // (name, environment, the finding's detail, its fix)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: [Case; 3] = [
        (
            "aws_nocreds",
            [&unreachable[..], &region].concat(),
            "Kinesis: unable to locate AWS credentials",
            "AWS_ACCESS_KEY_ID",
        ),
        (
            "aws_noregion",
            [&unreachable[..], &keys].concat(),
            "Kinesis: you must specify a region",
            "set kinesis.region or AWS_REGION",
        ),
        (
            "aws_refused",
            [&unreachable[..], &keys, &region].concat(),
            "Kinesis: could not connect to the endpoint URL \"http://127.0.0.1:1\"",
            "AWS_ENDPOINT_URL_KINESIS",
        ),
    ];
    for (name, env, detail, fix) in cases {
        let finding = kinesis_finding(name, &env).await;
        let (d, f) = (
            finding["detail"].as_str().unwrap_or_default(),
            finding["fix"].as_str().unwrap_or_default(),
        );
        assert!(d.contains(detail), "{name}: {finding}");
        assert!(f.contains(fix), "{name}: {finding}");
        assert!(
            !f.contains("create-stream"),
            "{name}: a stream that may exist is not to be created: {finding}"
        );
        for noise in ["DispatchFailure", "ConnectorError", "\n"] {
            assert!(!d.contains(noise), "{name}: SDK dump in {finding}");
        }
        assert!(d.len() < 300, "{name}: {d}");
    }
    // An empty region is a configuration error, not "no region" at run time.
    let out = run_with_env_only(
        "aws_emptyregion",
        &[
            ("KINESYNC_SOURCE__URL", "postgres://u@127.0.0.1:1/db"),
            ("KINESYNC_SOURCE__TABLES", "public.a"),
            ("KINESYNC_KINESIS__REGION", "\"\""),
        ],
        &["produce"],
    )
    .await;
    assert_one_line_error(
        &out,
        Some(2),
        &["kinesis.region \"\" is not an AWS region", "eu-west-1"],
    );
}

// ------------------------------------------------------------------ logs --

#[tokio::test]
async fn logs_have_no_colours_off_a_terminal_and_the_final_error_is_a_json_record_with_log_format_json(
) {
    let env = [("KINESYNC_SOURCE__URL", "postgres://u@h/db")];
    for (name, extra) in [
        ("logs_plain", None),
        ("logs_nocolor", Some(("NO_COLOR", "1"))),
    ] {
        let mut env = env.to_vec();
        env.extend(extra);
        env.push(("KINESYNC_SOURCE_TABLES", "typo: warns"));
        let out = run_with_env_only(name, &env, &["produce"]).await;
        assert_one_line_error(&out, Some(2), &["missing field `tables`"]);
        assert!(
            out.2.contains("WARN"),
            "the stray variable is warned about: {}",
            out.2
        );
        assert!(
            !out.2.contains('\u{1b}'),
            "ANSI escapes off a terminal: {:?}",
            out.2
        );
    }
    let out = run_with_env_only("logs_json", &env, &["--log-format", "json", "produce"]).await;
    assert_eq!(out.0, 2, "{}", out.2);
    let last = out.2.lines().last().unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"));
    assert_eq!(record["level"], "ERROR", "{record}");
    assert_eq!(record["fields"]["exit_code"], 2, "{record}");
    let message = record["fields"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("kinesync: error: ") && message.contains("missing field `tables`"),
        "{record}"
    );
}

/// The merge daemon, started with nothing reachable and no RUST_LOG: its
/// first line names the schedule and the next run, and no library logs at
/// info (every record is kinesync's own).
#[tokio::test]
async fn the_merge_daemon_logs_its_schedule_and_next_run_and_libraries_stay_quiet_at_info() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let home = std::env::temp_dir().join(format!("kinesync-home-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("home");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kinesync"))
        .args(["--log-format", "json", "merge"])
        .env_clear()
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", "http://127.0.0.1:1")
        .env("KINESYNC_SOURCE__URL", "postgres://u@127.0.0.1:1/db")
        .env("KINESYNC_SOURCE__TABLES", "public.a")
        .env("KINESYNC_REDSHIFT__WORKGROUP", "w")
        .env("KINESYNC_REDSHIFT__DATABASE", "dev")
        .env("KINESYNC_REDSHIFT__STREAM_ROLE_ARN", "default")
        .env("KINESYNC_SCHEDULE__MERGE", "\"0 0 3 * * *\"")
        .current_dir(&home)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the merge daemon");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(support::DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let started = line.contains("merge scheduler started");
            seen.push(line);
            if started {
                break;
            }
        }
    })
    .await;
    child.kill().await.expect("stop the merge daemon");
    assert!(
        read.is_ok(),
        "no 'merge scheduler started' within the deadline: {seen:#?}"
    );
    let records: Vec<serde_json::Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let first = &records[0];
    let message = first["fields"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("schedule.merge \"0 0 3 * * *\" (UTC), next run at ")
            && message.contains("T03:00:00Z"),
        "{first}"
    );
    for record in &records {
        let target = record["target"].as_str().unwrap_or_default();
        assert!(
            target.starts_with("kinesync"),
            "library noise at info: {record}"
        );
    }
}
