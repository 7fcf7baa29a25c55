//! The PaidSocialNav seed, replayed through the CLI and the API: onboard, list with
//! `--status=all` and `--format=json|csv`, update to paused, the legacy `tenants.yaml`
//! fallback, and its migration into the registry.

use crate::common;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::cli::onramp;
use crate::common::{Backend, TestApp};
use onramp::product::Product;

const PRODUCT: &str = "examples/paidsocialnav/onramp.toml";

async fn paidsocialnav_runbook_replays(backend: Backend) {
    let product = Product::load(&common::repo_path(PRODUCT)).unwrap();
    let app = TestApp::start_with(backend, product).await;
    let db = &app.db;
    let cli = |args: &[&str]| onramp(db, Some(PRODUCT), args);

    // Method 1: the command-line onboarding.
    cli(&[
        "customers",
        "onboard",
        "newclient",
        "New Client Inc.",
        "--industry",
        "retail",
        "--attr",
        "gcp_project_id=newclient-gcp-project",
        "--attr",
        "bq_dataset=paid_social",
        "--meta-accounts",
        "act_123456789",
        "--email",
        "john@newclient.com",
        "--tags",
        "retail,usa",
        "--created-by",
        "robert@company.com",
    ])
    .ok();
    cli(&[
        "customers",
        "onboard",
        "second",
        "Second Co",
        "--industry",
        "entertainment",
    ])
    .ok();

    // List: active by default, all statuses, JSON, CSV.
    let table = cli(&["customers", "list"]).ok().stdout;
    assert!(
        table.contains("newclient") && table.contains("New Client Inc."),
        "{table}"
    );
    let json = cli(&["customers", "list", "--status=all", "--format=json"])
        .ok()
        .json();
    let c = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer_id"] == "newclient")
        .unwrap()
        .clone();
    assert_eq!(c["attributes"]["gcp_project_id"], "newclient-gcp-project");
    assert_eq!(c["attributes"]["meta_ad_account_ids"][0], "act_123456789");
    assert_eq!(c["contact"]["email"], "john@newclient.com");
    assert_eq!(c["created_by"], "robert@company.com");
    let csv = cli(&["customers", "list", "--format=csv"]).ok().stdout;
    let lines: Vec<_> = csv.lines().collect();
    assert!(lines[0].starts_with("customer_id,customer_name,industry,status"));
    assert_eq!(lines.len(), 3, "header and one row per customer: {csv}");
    assert!(lines[1].starts_with("newclient,New Client Inc.,retail,active"));

    // Update: paused, new tags, enterprise tier.
    cli(&[
        "customers",
        "update",
        "newclient",
        "--status",
        "paused",
        "--tags",
        "retail,usa,premium",
        "--usage-tier",
        "enterprise",
    ])
    .ok();
    let active = cli(&["customers", "list", "--format=json"]).ok().json();
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["customer_id"] != "newclient"),
        "paused is not active"
    );
    let all = cli(&["customers", "list", "--status=all", "--format=json"])
        .ok()
        .json();
    let c = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer_id"] == "newclient")
        .unwrap();
    assert_eq!(
        (c["status"].as_str(), c["usage_tier"].as_str()),
        (Some("paused"), Some("enterprise"))
    );
    assert_eq!(c["tags"], serde_json::json!(["retail", "usa", "premium"]));
    let refused = cli(&["customers", "update", "newclient", "--status", "pending"]);
    assert_eq!(refused.code, 5);
    assert!(refused
        .stderr
        .contains("cannot change status from paused to pending"));

    // Troubleshooting: "Customer 'xyz' not found".
    let missing = cli(&["customers", "show", "xyz"]);
    assert_eq!(missing.code, 4);
    assert!(missing.stderr.contains("Customer 'xyz' not found"));

    // Backward compatibility: a tenant only in tenants.yaml is found there.
    let r = app
        .get("/api/v1/customers/legacyclient", &app.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let legacy: Value = r.json().await.unwrap();
    assert_eq!(legacy["source"], "legacy");
    assert_eq!(legacy["attributes"]["gcp_project_id"], "legacy-project-123");
    assert_eq!(legacy["attributes"]["default_level"], "campaign");

    // Migrate the existing tenants: created, then skipped on a second run.
    let tenants = common::repo_path("examples/paidsocialnav/tenants.yaml")
        .display()
        .to_string();
    let first = cli(&["customers", "import", &tenants, "--format", "json"])
        .ok()
        .json();
    assert_eq!(
        (
            first["created"].as_u64(),
            first["skipped"].as_u64(),
            first["refused"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );
    let before = common::snapshot(app.services.store.as_ref()).await;
    let second = cli(&["customers", "import", &tenants]).ok().stdout;
    assert!(
        second.contains("0 created, 2 skipped, 0 refused"),
        "{second}"
    );
    assert_eq!(
        common::snapshot(app.services.store.as_ref()).await,
        before,
        "a second import changes nothing"
    );

    let imported: Value = app
        .get("/api/v1/customers/puttery", &app.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(imported["source"], "registry");
    assert_eq!(imported["customer_name"], "Puttery");
    assert_eq!(imported["industry"], "other");
    assert_eq!(imported["attributes"]["default_level"], "adset");
    assert_eq!(cli(&["audit", "verify"]).ok().code, 0);
}

async fn an_import_refuses_bad_tenants_and_names_why(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let file = db.data_dir().join("tenants.yaml");
    std::fs::write(
        &file,
        "tenants:\n  good_one:\n    project_id: good-project-1\n  Bad Key:\n    project_id: x\n  bad_project:\n    project_id: NOPE\n",
    )
    .unwrap();
    let run = onramp(
        &db,
        Some(PRODUCT),
        &["customers", "import", file.to_str().unwrap()],
    );
    assert_eq!(run.code, 3, "refusals give the refused-input code");
    assert!(
        run.stdout.contains("1 created, 0 skipped, 2 refused"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("attributes.gcp_project_id"),
        "{}",
        run.stdout
    );
    let garbage = db.data_dir().join("garbage.yaml");
    std::fs::write(&garbage, "tenants: [1, 2").unwrap();
    let run = onramp(
        &db,
        Some(PRODUCT),
        &["customers", "import", garbage.to_str().unwrap()],
    );
    assert_eq!(run.code, 7);
}

on_both_backends!(
    paidsocialnav_runbook_replays,
    an_import_refuses_bad_tenants_and_names_why
);
