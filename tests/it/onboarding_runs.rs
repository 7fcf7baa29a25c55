//! Onboarding runs on both backends: real datasets provisioned, verified and activated;
//! injected faults retried or rolled back; stuck runs resumed; the dataset query confined to
//! the customer's own data; offboarding with an export and a receipt.

use crate::common;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

use crate::common::{Backend, TestApp, TestDb};
use onramp::product::Product;
use onramp::services::faults::FaultPlan;
use onramp::services::{Actor, RunnerOptions};

fn customer(id: &str) -> Value {
    json!({"customer_id": id, "customer_name": format!("Customer {id}"), "industry": "golf"})
}

fn runner(db: &TestDb, faults: &str) -> RunnerOptions {
    let mut r = RunnerOptions::new(db.data_dir());
    r.faults = FaultPlan::parse(faults).unwrap();
    r
}

async fn datasets_present(app: &TestApp) -> Vec<String> {
    app.services
        .datasets
        .stores()
        .get("default")
        .unwrap()
        .list()
        .await
        .unwrap()
}

async fn an_onboarding_creates_verifies_and_activates_a_real_dataset(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, v) = app.onboard(&customer("acme")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["customer"]["status"], "active");
    let run = &v["onboarding"];
    assert_eq!(
        (run["status"].as_str(), run["is_success"].as_bool()),
        (Some("succeeded"), Some(true))
    );
    assert_eq!(run["dataset_id"], "tenant_acme");
    for step in run["steps"].as_array().unwrap() {
        assert_eq!(
            (step["status"].as_str(), step["attempts"].as_u64()),
            (Some("succeeded"), Some(1)),
            "{step}"
        );
        assert!(step["finished_at"].is_string());
    }

    // The dataset is real: its tables exist in the backend.
    assert_eq!(datasets_present(&app).await, ["tenant_acme"]);
    let tables = app
        .services
        .datasets
        .stores()
        .get("default")
        .unwrap()
        .describe("tenant_acme")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tables.keys().collect::<Vec<_>>(),
        ["conversions", "daily_metrics"]
    );
    assert!(tables["conversions"].contains(&"conversion_id".to_owned()));

    // Verification sees the tables that exist, not the ones that do not, and no dataset at all
    // for a customer that has none.
    let backend = app.services.datasets.stores().get("default").unwrap();
    let limits = app.services.product.query;
    let expected = ["conversions".to_owned(), "benchmarks".to_owned()];
    let (result, seen) = backend
        .verify("tenant_acme", limits, &expected)
        .await
        .unwrap();
    assert_eq!(result.rows, vec![vec![json!(1)]]);
    let seen = seen.unwrap();
    assert_eq!(seen["conversions"], tables["conversions"]);
    assert!(!seen.contains_key("benchmarks"), "{seen:?}");
    // (Several times: a failed verification must leave no connection in a broken transaction.)
    for _ in 0..10 {
        let missing = backend.verify("tenant_nobody", limits, &expected).await;
        assert!(
            matches!(
                missing,
                Err(onramp::store::datasets::DatasetError::NotFound(_)) | Ok((_, None))
            ),
            "{missing:?}"
        );
    }

    // The run and the checklist.
    let (_, ob) = common::status_and_json(
        app.get("/api/v1/customers/acme/onboarding", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ob["run"]["run_id"], run["run_id"]);
    let checklist = ob["checklist"].as_array().unwrap();
    assert_eq!(checklist.len(), 5 + 4);
    assert!(checklist[..5]
        .iter()
        .all(|c| c["kind"] == "automatic" && c["done"] == true));
    assert!(checklist[5..]
        .iter()
        .all(|c| c["kind"] == "manual" && c["done"] == false));

    let before = app.snapshot().await;
    let r = app
        .client
        .post(app.url("/api/v1/customers/acme/onboarding/checklist/welcome_party"))
        .bearer_auth(&app.operator)
        .send()
        .await
        .unwrap();
    let (status, v) = common::status_and_json(r).await;
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("unknown_checklist_item")
        )
    );
    let r = app
        .client
        .post(app.url("/api/v1/customers/acme/onboarding/checklist/schema_checked"))
        .bearer_auth(&app.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.snapshot().await, before);
    let r = app
        .client
        .post(app.url("/api/v1/customers/acme/onboarding/checklist/schema_checked"))
        .bearer_auth(&app.operator)
        .send()
        .await
        .unwrap();
    let (status, v) = common::status_and_json(r).await;
    assert_eq!(status, StatusCode::OK);
    let item = v["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "schema_checked")
        .unwrap()
        .clone();
    assert_eq!(item["done"], true);
    assert!(item["done_by"].as_str().unwrap().starts_with("token:"));

    // The seed's verification query, and the resolved config.
    let (status, q) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/query",
            &app.viewer,
            &json!({"sql": "SELECT 1 AS test"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(
        q,
        json!({"columns": ["test"], "rows": [[1]], "row_count": 1, "truncated": false})
    );
    let (_, config) = common::status_and_json(
        app.get("/api/v1/customers/acme/config", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (
            config["dataset_id"].as_str(),
            config["tier"].as_str(),
            config["schema_version"].as_i64()
        ),
        (Some("tenant_acme"), Some("starter"), Some(1))
    );
    assert_eq!(config["retention_days"], 90);
    let names: Vec<_> = config["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["conversions", "daily_metrics"]);

    // A tier change provisions what the new tier adds.
    let (status, _) = common::status_and_json(
        app.patch(
            "/api/v1/customers/acme",
            &app.operator,
            &json!({"usage_tier": "enterprise"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, config) = common::status_and_json(
        app.get("/api/v1/customers/acme/config", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(config["schema_version"], 2);
    assert_eq!(config["tables"].as_array().unwrap().len(), 3);
    let (status, _) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/query",
            &app.viewer,
            &json!({"sql": "SELECT count(*) AS n FROM benchmarks"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn transient_faults_are_retried_to_success(backend: Backend) {
    let db = TestDb::new(backend).await;
    let r = runner(
        &db,
        "provision_dataset=transient:2;verify_dataset=transient:1",
    );
    let app = TestApp::start_on(db, Product::builtin(), r).await;
    let (status, v) = app.onboard(&customer("acme")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["onboarding"]["status"], "succeeded");
    let attempts: Vec<_> = v["onboarding"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["attempts"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("validate", 1),
            ("register", 1),
            ("provision_dataset", 3),
            ("verify_dataset", 2),
            ("activate", 1)
        ]
    );
    assert_eq!(v["customer"]["status"], "active");
}

async fn permanent_faults_roll_back_and_a_retry_starts_over(backend: Backend) {
    let db = TestDb::new(backend).await;
    let r = runner(
        &db,
        "verify_dataset=permanent;provision_dataset@other=transient:99",
    );
    let app = TestApp::start_on(db, Product::builtin(), r).await;
    let (status, v) = app.onboard(&customer("acme")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["customer"]["status"], "failed");
    let run = &v["onboarding"];
    assert_eq!(
        (run["status"].as_str(), run["is_success"].as_bool()),
        (Some("failed"), Some(false))
    );
    assert_eq!(
        run["errors"],
        json!(["verify_dataset failed after 1 attempt(s): injected permanent fault"])
    );
    let statuses: Vec<_> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "compensated",
            "compensated",
            "compensated",
            "failed",
            "skipped"
        ]
    );
    assert!(
        datasets_present(&app).await.is_empty(),
        "the dataset was dropped"
    );
    assert!(app
        .services
        .store
        .get_dataset(&common::cid("acme"))
        .await
        .unwrap()
        .is_none());

    // Exhausted transient retries are a permanent failure too.
    let (_, v) = app.onboard(&customer("other")).await;
    assert_eq!(v["customer"]["status"], "failed");
    assert_eq!(
        v["onboarding"]["steps"][2]["attempts"], 5,
        "the product's max_attempts"
    );
    assert!(datasets_present(&app).await.is_empty());

    // The status of a customer being onboarded is the run's to set.
    let (status, v) = common::status_and_json(
        app.patch(
            "/api/v1/customers/acme",
            &app.operator,
            &json!({"status": "active"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("status_owned_by_onboarding"))
    );

    // Without the fault, a retry starts a new run that succeeds; a second retry is refused.
    let healthy = common::services(&app.db, Product::builtin()).await;
    let retried = healthy
        .onboarding
        .retry(&Actor::cli(), "acme")
        .await
        .unwrap();
    assert!(retried.is_success);
    assert_ne!(retried.run_id, run["run_id"].as_str().unwrap());
    let (_, c) = common::status_and_json(
        app.get("/api/v1/customers/acme", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(c["status"], "active");
    let before = app.snapshot().await;
    let r = app
        .client
        .post(app.url("/api/v1/customers/acme/onboarding/retry"))
        .bearer_auth(&app.operator)
        .send()
        .await
        .unwrap();
    let (status, v) = common::status_and_json(r).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("run_not_retryable"))
    );
    assert_eq!(app.snapshot().await, before);
    let types: Vec<String> = app
        .services
        .store
        .list_events(&onramp::store::EventFilter {
            customer_id: Some("acme".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "customer.registered",
            "dataset.dropped",
            "customer.onboarding_failed",
            "onboarding.retried",
            "dataset.provisioned",
            "customer.activated"
        ]
    );
}

async fn a_run_whose_process_died_is_resumed_after_its_lease(backend: Backend) {
    let db = TestDb::new(backend).await;
    // A first process stalls in provision_dataset and is abandoned (as if killed) mid-step.
    let mut stalled = runner(&db, "provision_dataset=stall:60000");
    stalled.lease = Duration::from_millis(300);
    let dying = common::services_with(&db, Product::builtin(), stalled).await;
    let task = tokio::spawn({
        let dying = dying.clone();
        async move {
            let req = serde_json::from_value(customer("acme")).unwrap();
            let _ = dying.customers.onboard(&Actor::cli(), &req, None).await;
        }
    });
    let store = dying.store.clone();
    for _ in 0..100 {
        if let Some(run) = store.latest_run(&common::cid("acme")).await.unwrap() {
            if run.steps[2].status == onramp::domain::run::StepStatus::Running {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let run = store
        .latest_run(&common::cid("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, onramp::domain::run::RunStatus::Running);

    // A second process takes the run over once the lease has run out, and finishes it.
    let mut healthy_opts = RunnerOptions::new(db.data_dir());
    healthy_opts.lease = Duration::from_millis(300);
    let healthy = common::services_with(&db, Product::builtin(), healthy_opts).await;
    assert_eq!(
        healthy.onboarding.recover().await.unwrap(),
        0,
        "the lease has not run out yet"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(healthy.onboarding.recover().await.unwrap(), 1);
    let run = store
        .latest_run(&common::cid("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, onramp::domain::run::RunStatus::Succeeded);
    assert_eq!(run.steps[2].attempts, 2, "the interrupted step ran again");
    assert_eq!(
        store.get_customer("acme").await.unwrap().unwrap().status,
        onramp::domain::CustomerStatus::Active
    );
    assert!(healthy.audit.verify().await.unwrap().ok);
}

async fn the_query_reads_only_the_customers_own_dataset(backend: Backend) {
    let mut product = Product::builtin();
    product.query.max_rows = 5;
    product.query.timeout_ms = 300;
    let app = TestApp::start_with(backend, product).await;
    for id in ["acme", "beta"] {
        assert_eq!(
            app.onboard_request(&customer(id))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::CREATED
        );
    }
    let q = |sql: &str| {
        let req = app.post(
            "/api/v1/customers/acme/query",
            &app.viewer,
            &json!({ "sql": sql }),
        );
        async move { common::status_and_json(req.send().await.unwrap()).await }
    };
    let (status, v) = q("SELECT * FROM conversions").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["columns"][0], "conversion_id");
    assert_eq!(v["row_count"], 0);
    let (_, v) = q("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) SELECT x FROM n").await;
    assert_eq!(
        (v["row_count"].as_u64(), v["truncated"].as_bool()),
        (Some(5), Some(true))
    );

    let before = app.snapshot().await;
    let tables_before = app
        .services
        .datasets
        .stores()
        .get("default")
        .unwrap()
        .describe("tenant_acme")
        .await
        .unwrap();
    for sql in [
        "INSERT INTO conversions (conversion_id) VALUES ('x')",
        "DROP TABLE conversions",
        "ATTACH DATABASE 'other.db' AS o",
        "SELECT 1; SELECT 2",
        "DELETE FROM conversions",
    ] {
        let (status, v) = q(sql).await;
        assert_eq!(
            (status, v["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("sql")),
            "{sql}: {v}"
        );
    }
    let escapes: &[&str] = match backend {
        Backend::Sqlite => &["SELECT * FROM customers", "SELECT * FROM events", "SELECT * FROM tenant_beta.conversions"],
        Backend::Postgres => &[
            "SELECT * FROM onramp.customers",
            "SELECT * FROM onramp.admin_tokens",
            "SELECT * FROM tenant_beta.conversions",
            "WITH gone AS (DELETE FROM conversions RETURNING *) SELECT * FROM gone",
            "SELECT set_config('search_path', 'onramp', true), (SELECT count(*) FROM onramp.customers)",
        ],
    };
    for sql in escapes {
        let (status, v) = q(sql).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("query_refused")),
            "{sql}: {v}"
        );
    }
    let (status, v) = q(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("query_timeout")),
        "{v}"
    );
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.services
            .datasets
            .stores()
            .get("default")
            .unwrap()
            .describe("tenant_acme")
            .await
            .unwrap(),
        tables_before
    );

    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/ghost/query",
            &app.viewer,
            &json!({"sql": "SELECT 1"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("customer_not_found"))
    );
}

async fn offboarding_with_data_exports_drops_and_returns_a_receipt(backend: Backend) {
    let app = TestApp::start(backend).await;
    for id in ["acme", "beta"] {
        app.onboard(&customer(id)).await;
    }
    // Some data to export, written straight into the dataset as the customer's product would.
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!(
                "sqlite://{}/datasets/tenant_acme.db",
                app.db.data_dir().display()
            ))
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO conversions (conversion_id, value) VALUES ('c1', 10), ('c2', 20)",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(app.db.database_url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query("INSERT INTO tenant_acme.conversions (conversion_id, value) VALUES ('c1', 10), ('c2', 20)").execute(&pool).await.unwrap();
        }
    }
    // Without data: everything kept, the dataset still answers.
    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/beta/offboard",
            &app.operator,
            &json!({"delete_data": false}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (
            status,
            v["customer"]["status"].as_str(),
            v["receipt"].clone()
        ),
        (StatusCode::OK, Some("inactive"), Value::Null)
    );
    assert!(datasets_present(&app)
        .await
        .contains(&"tenant_beta".to_owned()));
    assert_eq!(
        app.post(
            "/api/v1/customers/beta/query",
            &app.viewer,
            &json!({"sql": "SELECT 1 AS test"})
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::OK
    );

    // Without confirmation: refused, nothing changed.
    let before = app.snapshot().await;
    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/offboard",
            &app.operator,
            &json!({"delete_data": true, "export": true}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("confirm"))
    );
    assert_eq!(app.snapshot().await, before);
    assert!(datasets_present(&app)
        .await
        .contains(&"tenant_acme".to_owned()));

    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/offboard",
            &app.operator,
            &json!({"delete_data": true, "confirm": "acme", "export": true}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["customer"]["status"], "deleted");
    let receipt = &v["receipt"];
    assert_eq!(receipt["dataset_id"], "tenant_acme");
    assert_eq!(
        receipt["tables_removed"],
        json!(["conversions", "daily_metrics"])
    );
    assert!(receipt["deleted_by"]
        .as_str()
        .unwrap()
        .starts_with("token:"));
    let export = &receipt["export"];
    let dir = std::path::PathBuf::from(export["path"].as_str().unwrap());
    assert!(dir.starts_with(app.db.data_dir().join("exports")));
    let manifest_bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    use sha2::Digest;
    assert_eq!(
        export["manifest_sha256"],
        hex::encode(sha2::Sha256::digest(&manifest_bytes))
    );
    let conversions = export["manifest"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "conversions")
        .unwrap();
    assert_eq!(conversions["rows"], 2);
    let lines = std::fs::read(dir.join("conversions.jsonl")).unwrap();
    assert_eq!(
        conversions["sha256"],
        hex::encode(sha2::Sha256::digest(&lines))
    );
    assert_eq!(String::from_utf8(lines).unwrap().lines().count(), 2);

    assert_eq!(
        datasets_present(&app).await,
        ["tenant_beta"],
        "acme's dataset is gone"
    );
    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/query",
            &app.viewer,
            &json!({"sql": "SELECT 1"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_dataset"))
    );
    let events = app
        .services
        .store
        .list_events(&onramp::store::EventFilter {
            event_type: Some("customer.offboarded".into()),
            customer_id: Some("acme".into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events[0].payload["receipt"]["export"]["manifest_sha256"],
        export["manifest_sha256"]
    );
    assert!(app.services.audit.verify().await.unwrap().ok);
    // The receipt, export and manifest included, is the typed payload of the catalog.
    let types = common::event_types(app.services.store.as_ref()).await;
    for t in ["customer.offboarded", "dataset.dropped"] {
        assert!(types.contains(t), "no {t} event in {types:?}");
    }
}

/// An operator's change while the run is under way (new tags) is kept when the run activates
/// the customer: the activation sees the newer version and builds on it.
async fn an_update_during_the_run_survives_activation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let services = common::services_with(
        &db,
        Product::builtin(),
        runner(&db, "verify_dataset=stall:800"),
    )
    .await;
    let task = tokio::spawn({
        let services = services.clone();
        async move {
            let req = serde_json::from_value(customer("acme")).unwrap();
            services.customers.onboard(&Actor::cli(), &req, None).await
        }
    });
    for _ in 0..100 {
        if services.store.get_customer("acme").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let req = onramp::services::customers::UpdateRequest {
        tags: Some(vec!["vip".into()]),
        ..Default::default()
    };
    let updated = services
        .customers
        .update(&Actor::cli(), "acme", &req, None)
        .await
        .unwrap();
    assert_eq!(updated.status, onramp::domain::CustomerStatus::Pending);
    let onboarded = task.await.unwrap().unwrap();
    assert_eq!(
        onboarded.response.onboarding.status,
        onramp::domain::run::RunStatus::Succeeded
    );
    let c = services.store.get_customer("acme").await.unwrap().unwrap();
    assert_eq!(c.status, onramp::domain::CustomerStatus::Active);
    assert_eq!(
        c.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["vip"]
    );
    assert_eq!(c.version, 3, "registered, tagged, activated");
    assert!(services.audit.verify().await.unwrap().ok);
}

on_both_backends!(
    an_update_during_the_run_survives_activation,
    an_onboarding_creates_verifies_and_activates_a_real_dataset,
    transient_faults_are_retried_to_success,
    permanent_faults_roll_back_and_a_retry_starts_over,
    a_run_whose_process_died_is_resumed_after_its_lease,
    the_query_reads_only_the_customers_own_dataset,
    offboarding_with_data_exports_drops_and_returns_a_receipt,
);

/// On PostgreSQL, a dataset in the registry's own database is created in the registering
/// transaction: when that transaction fails after the DDL, neither the customer nor its schema
/// exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_registration_and_dataset_commit_together() {
    let app = TestApp::start(Backend::Postgres).await;
    assert!(app.services.store.provisions_datasets_in_registry());
    let pool = sqlx::PgPool::connect(app.db.database_url.as_ref().unwrap())
        .await
        .unwrap();
    // A record that already claims the dataset id makes the transaction fail after its DDL.
    sqlx::query(
        "INSERT INTO onramp.datasets (customer_id, dataset_id, data_store, schema_version, tables, created_at, updated_at) \
         VALUES ('someone_else', 'tenant_newco', 'default', 1, '[]', now(), now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = app.snapshot().await;
    let r = app
        .onboard_request(&customer("newco"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        app.snapshot().await,
        before,
        "no customer, no run, no event"
    );
    let schema: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'tenant_newco'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(schema, None, "the DDL rolled back with the registration");
}
