//! The `onramp` binary: audit verification against tampering, product checks, tokens, the
//! server process, and exit codes.

use crate::common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::cli::onramp;
use crate::common::{Backend, TestDb};

fn seed_history(db: &TestDb) {
    onramp(
        db,
        None,
        &[
            "customers",
            "onboard",
            "acme_corp",
            "Acme",
            "--industry",
            "retail",
        ],
    )
    .ok();
    onramp(
        db,
        None,
        &[
            "customers",
            "onboard",
            "topgolf",
            "Topgolf",
            "--industry",
            "golf",
        ],
    )
    .ok();
    onramp(
        db,
        None,
        &["customers", "update", "acme_corp", "--status", "paused"],
    )
    .ok();
    onramp(
        db,
        None,
        &["customers", "update", "acme_corp", "--status", "active"],
    )
    .ok();
    onramp(db, None, &["admin", "token", "create", "--role", "viewer"]).ok();
}

/// Runs SQL as someone with direct database access would, bypassing the append-only triggers.
async fn tamper(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!(
                "sqlite://{}/onramp.db",
                db.data_dir().display()
            ))
            .await
            .unwrap();
            sqlx::query("DROP TRIGGER IF EXISTS events_are_append_only_update")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("DROP TRIGGER IF EXISTS events_are_append_only_delete")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(db.database_url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query("ALTER TABLE onramp.events DISABLE TRIGGER events_are_append_only")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                &sql.replace("FROM events", "FROM onramp.events")
                    .replace("UPDATE events", "UPDATE onramp.events"),
            )
            .execute(&pool)
            .await
            .unwrap();
        }
    }
}

async fn audit_verify_passes_then_names_an_edited_event(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed_history(&db);
    let ok = onramp(&db, None, &["audit", "verify"]).ok();
    assert!(
        ok.stdout.contains("verified: 9 events in 3 chains"),
        "{}",
        ok.stdout
    );

    // Edit acme_corp's second event (its pause).
    tamper(&db, "UPDATE events SET payload = '{\"changes\":{}}' WHERE chain = 'acme_corp' AND chain_seq = 2").await;
    let broken = onramp(&db, None, &["audit", "verify"]);
    assert_eq!(broken.code, 6, "{}", broken.stdout);
    assert!(
        broken.stdout.contains("chain 'acme_corp' at position 2"),
        "{}",
        broken.stdout
    );
    assert!(broken.stdout.contains("edited"), "{}", broken.stdout);
    let report = onramp(&db, None, &["audit", "verify", "--format", "json"]).json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken"]["chain"], "acme_corp");
    assert_eq!(report["broken"]["chain_seq"], 2);
}

async fn audit_verify_catches_a_deleted_last_event(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed_history(&db);
    tamper(
        &db,
        "DELETE FROM events WHERE chain = 'acme_corp' AND chain_seq = 3",
    )
    .await;
    let broken = onramp(&db, None, &["audit", "verify"]);
    assert_eq!(broken.code, 6);
    assert!(
        broken.stdout.contains("chain 'acme_corp'"),
        "{}",
        broken.stdout
    );
}

async fn offboarding_with_data_needs_yes_and_refusals_change_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed_history(&db);
    let before = onramp(&db, None, &["audit", "list", "--format", "json"])
        .ok()
        .stdout;
    let run = onramp(
        &db,
        None,
        &["customers", "offboard", "acme_corp", "--delete-data"],
    );
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("--yes"));
    assert_eq!(
        onramp(&db, None, &["customers", "offboard", "ghost"]).code,
        4
    );
    assert_eq!(
        onramp(
            &db,
            None,
            &[
                "customers",
                "update",
                "acme_corp",
                "--if-version",
                "1",
                "--name",
                "X"
            ]
        )
        .code,
        5
    );
    assert_eq!(
        onramp(
            &db,
            None,
            &["customers", "update", "acme_corp", "--attr", "broken"]
        )
        .code,
        3
    );
    assert_eq!(
        onramp(&db, None, &["audit", "list", "--format", "json"])
            .ok()
            .stdout,
        before
    );

    let done = onramp(
        &db,
        None,
        &[
            "customers",
            "offboard",
            "acme_corp",
            "--delete-data",
            "--yes",
            "--format",
            "json",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        (
            done["customer"]["status"].as_str(),
            done["data_deleted"].as_bool()
        ),
        (Some("deleted"), Some(true))
    );
}

on_both_backends!(
    audit_verify_passes_then_names_an_edited_event,
    audit_verify_catches_a_deleted_last_event,
    offboarding_with_data_needs_yes_and_refusals_change_nothing,
    the_cli_shows_runs_queries_and_offboards_with_an_export,
);

#[tokio::test]
async fn product_check_reports_every_problem_with_its_line() {
    let db = TestDb::new(Backend::Sqlite).await;
    let file = db.data_dir().join("bad.toml");
    std::fs::write(
        &file,
        "[product]\nname = \"Bad\"\n\n[[industries]]\nid = \"Golf\"\nname = \"Golf\"\n\n[attributes.ids]\nformat = \"phone\"\n",
    )
    .unwrap();
    let run = onramp(&db, None, &["product", "check", file.to_str().unwrap()]);
    assert_eq!(run.code, 7);
    assert!(run.stderr.contains("2 problem(s)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("line 5: industry id 'Golf'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line 9: attributes.ids.format 'phone'"),
        "{}",
        run.stderr
    );

    for example in ["growthnav", "paidsocialnav"] {
        let path = common::repo_path(&format!("examples/{example}/onramp.toml"));
        let run = onramp(&db, None, &["product", "check", path.to_str().unwrap()]).ok();
        assert!(run.stdout.contains(": ok"), "{}", run.stdout);
    }
    // A bad product file stops every other command too.
    let run = onramp(
        &db,
        None,
        &["--product", file.to_str().unwrap(), "customers", "list"],
    );
    assert_eq!(run.code, 7);
    assert!(run.stderr.contains("line 5"));
}

#[tokio::test]
async fn a_token_is_printed_once_and_only_its_hash_is_stored() {
    let db = TestDb::new(Backend::Sqlite).await;
    let created = onramp(
        &db,
        None,
        &[
            "admin", "token", "create", "--role", "operator", "--name", "ci", "--format", "json",
        ],
    )
    .ok()
    .json();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("onr_at_"));
    assert_eq!(created["role"], "operator");
    let raw = std::fs::read(db.data_dir().join("onramp.db")).unwrap();
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not stored"
    );
    let events = onramp(&db, None, &["audit", "list", "--format", "json"])
        .ok()
        .stdout;
    assert!(!events.contains(secret));
    assert_eq!(
        onramp(&db, None, &["admin", "token", "create", "--role", "root"]).code,
        2
    );

    let services = common::services(&db, onramp::product::Product::builtin()).await;
    let actor = services
        .admin_tokens
        .authenticate(&token, None)
        .await
        .unwrap();
    assert_eq!(actor.role, onramp::domain::Role::Operator);
}

#[test]
fn serve_starts_with_no_configuration_and_creates_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onramp"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("ONRAMP_DATA_DIR")
        .env_remove("ONRAMP_DATABASE_URL")
        .env_remove("ONRAMP_PRODUCT")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("onramp listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(async {
        reqwest::get(format!("{addr}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    assert!(dir.path().join("onramp-data/onramp.db").is_file());
}

#[tokio::test]
async fn init_is_idempotent_and_usage_errors_exit_2() {
    let db = TestDb::new(Backend::Sqlite).await;
    assert!(onramp(&db, None, &["init"])
        .ok()
        .stdout
        .contains("Registry ready (sqlite)"));
    onramp(&db, None, &["init"]).ok();
    assert_eq!(onramp(&db, None, &["customers", "frobnicate"]).code, 2);
    assert_eq!(
        onramp(&db, None, &["customers", "list", "--format", "xml"]).code,
        2
    );
    let bad_url = onramp(
        &db,
        None,
        &["--database-url", "mysql://x", "customers", "list"],
    );
    assert_eq!(bad_url.code, 7);
}

async fn the_cli_shows_runs_queries_and_offboards_with_an_export(backend: Backend) {
    let db = TestDb::new(backend).await;
    onramp(
        &db,
        None,
        &["customers", "onboard", "acme", "Acme", "--industry", "golf"],
    )
    .ok();
    let shown = onramp(&db, None, &["onboarding", "show", "acme"])
        .ok()
        .stdout;
    for step in [
        "provision_dataset",
        "verify_dataset",
        "activate",
        "Dataset visible in the data console",
    ] {
        assert!(shown.contains(step), "{shown}");
    }
    let checked = onramp(
        &db,
        None,
        &[
            "onboarding",
            "check",
            "acme",
            "schema_checked",
            "--format",
            "json",
        ],
    )
    .ok()
    .json();
    let item = checked["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "schema_checked")
        .unwrap()
        .clone();
    assert_eq!(item["done"], true);
    assert!(item["done_by"].as_str().unwrap().starts_with("cli:"));

    let q = onramp(
        &db,
        None,
        &["query", "acme", "SELECT 1 AS test", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(q["rows"], serde_json::json!([[1]]));
    let csv = onramp(
        &db,
        None,
        &["query", "acme", "SELECT 1 AS test", "--format", "csv"],
    )
    .ok()
    .stdout;
    assert_eq!(csv, "test\n1\n");
    let refused = onramp(&db, None, &["query", "acme", "DELETE FROM conversions"]);
    assert_eq!(refused.code, 3);
    assert!(
        refused.stderr.contains("sql: only a read-only query"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        onramp(&db, None, &["onboarding", "retry", "acme"]).code,
        5,
        "a succeeded run is not retried"
    );
    let config = onramp(&db, None, &["customers", "config", "acme"])
        .ok()
        .json();
    assert_eq!(config["dataset_id"], "tenant_acme");

    let export = db.data_dir().join("export-here");
    let run = onramp(
        &db,
        None,
        &[
            "customers",
            "offboard",
            "acme",
            "--delete-data",
            "--yes",
            "--export",
            export.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(
        run.stdout
            .contains("tables removed: conversions, daily_metrics"),
        "{}",
        run.stdout
    );
    let dirs: Vec<_> = std::fs::read_dir(&export).unwrap().collect();
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0]
        .as_ref()
        .unwrap()
        .path()
        .join("manifest.json")
        .is_file());
    assert_eq!(
        onramp(&db, None, &["query", "acme", "SELECT 1"]).code,
        5,
        "no dataset left"
    );

    // Everything Onramp wrote is its user's alone: the registry (and SQLite's files beside it),
    // datasets, key files and exports.
    onramp(
        &db,
        None,
        &["customers", "onboard", "beta", "Beta", "--industry", "golf"],
    )
    .ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn walk(dir: &std::path::Path, seen: &mut Vec<(std::path::PathBuf, u32)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                seen.push((path.clone(), mode));
                if path.is_dir() {
                    walk(&path, seen);
                }
            }
        }
        let mut seen = Vec::new();
        walk(db.data_dir(), &mut seen);
        assert!(seen.len() >= 5, "{seen:?}");
        for (path, mode) in seen {
            let expected = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, expected, "{} is {mode:o}", path.display());
        }
    }
}

#[tokio::test]
async fn audit_catalog_lists_every_event_type_and_readme_does_too() {
    let db = TestDb::new(Backend::Sqlite).await;
    let listed = onramp(&db, None, &["audit", "catalog", "--format", "json"])
        .ok()
        .json();
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = onramp::domain::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(listed, all);
    let readme = std::fs::read_to_string(crate::common::repo_path("README.md")).unwrap();
    for t in all {
        assert!(
            readme.contains(&format!("| `{t}` | 1 |")),
            "README's event catalog does not list {t}"
        );
    }
}

/// Runs `onramp` in `dir` with no `ONRAMP_*` setting inherited, plus `env`.
fn onramp_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onramp"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ONRAMP_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn a_configuration_file_sits_under_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("onramp.toml"),
        "data_dir = \"from-file\"\nrun_lease_seconds = 45\n",
    )
    .unwrap();
    let config = etc.join("onramp.toml");
    let config = config.to_str().unwrap();

    // The file's data dir, relative to the file.
    let out = onramp_in(dir.path(), &[], &["--config", config, "init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(etc.join("from-file").is_dir());
    assert!(!dir.path().join("onramp-data").exists());

    // The environment overrides the file; a flag overrides both.
    let out = onramp_in(
        dir.path(),
        &[("ONRAMP_CONFIG", config), ("ONRAMP_DATA_DIR", "from-env")],
        &["init"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("from-env").is_dir());
    let out = onramp_in(
        dir.path(),
        &[("ONRAMP_CONFIG", config), ("ONRAMP_DATA_DIR", "from-env")],
        &["--data-dir", "from-flag", "init"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("from-flag").is_dir());

    // An unknown key or a value out of range is refused with the file and the key named, and
    // nothing is created.
    for (text, needle) in [
        ("data_dri = \"x\"\n", "data_dri"),
        (
            "data_dir = \"x\"\njob_lease_seconds = 0\n",
            "job_lease_seconds",
        ),
    ] {
        std::fs::write(etc.join("bad.toml"), text).unwrap();
        let bad = etc.join("bad.toml");
        let out = onramp_in(
            dir.path(),
            &[],
            &["--config", bad.to_str().unwrap(), "init"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{stderr}");
        assert!(
            stderr.contains("bad.toml") && stderr.contains(needle),
            "{stderr}"
        );
        assert!(!etc.join("x").exists());
    }
    let out = onramp_in(dir.path(), &[], &["--config", "missing.toml", "init"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}
