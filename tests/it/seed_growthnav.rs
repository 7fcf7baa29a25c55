//! The GrowthNav seed, replayed through the API and the CLI as far as the registry reaches:
//! check the customer does not exist, onboard it, the automated checks, the troubleshooting
//! messages, and offboarding with data kept.

use crate::common;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::cli::onramp;
use crate::common::{Backend, TestApp};
use onramp::product::Product;

const PRODUCT: &str = "examples/growthnav/onramp.toml";

async fn growthnav_onboarding_replays(backend: Backend) {
    let product = Product::load(&common::repo_path(PRODUCT)).unwrap();
    let app = TestApp::start_with(backend, product).await;
    let token = app.operator.clone();

    // Step 1: validate the customer doesn't exist.
    let r = app
        .get("/api/v1/customers/acme_corp", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Steps 2-3: prepare and execute the onboarding request.
    let request = json!({
        "customer_id": "acme_corp",
        "customer_name": "Acme Corporation",
        "industry": "ecommerce",
        "attributes": {
            "google_ads_customer_ids": ["123-456-7890"],
            "meta_ad_account_ids": ["act_12345678"]
        },
        "tags": ["enterprise", "q1_2025"]
    });
    let r = app
        .post("/api/v1/customers", &token, &request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["onboarding"]["is_success"], true);
    assert_eq!(result["onboarding"]["dataset_id"], "growthnav_acme_corp");
    assert!(result["onboarding"]["duration_seconds"].as_f64().unwrap() < 5.0);

    // Automated checks 1 and 2: in the registry and active; in its industry's list.
    let customer: Value = app
        .get("/api/v1/customers/acme_corp", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(customer["status"], "active");
    let listed: Value = app
        .get("/api/v1/customers?industry=ecommerce", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["customer_id"] == "acme_corp"));

    // Automated check 3: the dataset answers the seed's query.
    let r = app
        .post(
            "/api/v1/customers/acme_corp/query",
            &token,
            &json!({"sql": "SELECT 1 as test"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let result: Value = r.json().await.unwrap();
    assert!(!result["rows"].as_array().unwrap().is_empty());
    assert_eq!(result["rows"][0][0], 1);

    // What gets created: the dataset with conversions and daily_metrics, in the registry's config.
    let config: Value = app
        .get("/api/v1/customers/acme_corp/config", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["dataset_id"], "growthnav_acme_corp");
    let tables: Vec<_> = config["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["conversions", "daily_metrics"]);

    // Troubleshooting: "Customer already exists".
    let r = app
        .post("/api/v1/customers", &token, &request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("Customer already exists"));

    // Troubleshooting: the id formats, with the seed's valid and invalid examples.
    for (field, bad, message) in [
        (
            "google_ads_customer_ids",
            "1234567890",
            "Invalid Google Ads customer ID format",
        ),
        (
            "google_ads_customer_ids",
            "123-4567-890",
            "Invalid Google Ads customer ID format",
        ),
        (
            "meta_ad_account_ids",
            "12345678",
            "Invalid Meta ad account ID format",
        ),
        (
            "meta_ad_account_ids",
            "account_12345",
            "Invalid Meta ad account ID format",
        ),
    ] {
        let mut req = request.clone();
        req["customer_id"] = json!("another_one");
        req["attributes"][field] = json!([bad]);
        let r = app
            .post("/api/v1/customers", &token, &req)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], format!("attributes.{field}[0]"));
        assert!(
            p["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{p}"
        );
    }

    // The GrowthNav id rule has no '-': the product file decides.
    let mut req = request.clone();
    req["customer_id"] = json!("acme-corp");
    assert_eq!(
        app.post("/api/v1/customers", &token, &req)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The CLI shows what the API shows.
    let shown = onramp(
        &app.db,
        Some(PRODUCT),
        &["customers", "show", "acme_corp", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(shown, customer);
    let golf = onramp(
        &app.db,
        Some(PRODUCT),
        &[
            "customers",
            "list",
            "--industry",
            "ecommerce",
            "--format",
            "json",
        ],
    )
    .ok()
    .json();
    assert_eq!(golf[0]["customer_id"], "acme_corp");

    // Offboarding: mark as inactive but keep data (the lifecycle's ACTIVE -> INACTIVE).
    let r = app
        .post(
            "/api/v1/customers/acme_corp/offboard",
            &token,
            &json!({"delete_data": false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let customer: Value = app
        .get("/api/v1/customers/acme_corp", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(customer["status"], "inactive");
    assert_eq!(
        customer["attributes"]["google_ads_customer_ids"],
        json!(["123-456-7890"])
    );

    // The whole history verifies.
    let verify = onramp(
        &app.db,
        Some(PRODUCT),
        &["audit", "verify", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(verify["ok"], true);

    // Every event the replay appended is a type of the catalog, with its typed payload.
    let types = common::event_types(app.services.store.as_ref()).await;
    for t in [
        "customer.registered",
        "dataset.provisioned",
        "customer.activated",
        "customer.offboarded",
        "admin_token.created",
    ] {
        assert!(types.contains(t), "no {t} event in {types:?}");
    }
}

async fn growthnav_onboarding_through_the_cli(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let run = onramp(
        &db,
        Some(PRODUCT),
        &[
            "customers",
            "onboard",
            "topgolf",
            "Topgolf Entertainment",
            "--industry",
            "golf",
            "--google-ads-ids",
            "123-456-7890,111-222-3333",
            "--meta-accounts",
            "act_12345",
            "--tags",
            "enterprise",
            "--format",
            "json",
        ],
    )
    .ok();
    let v = run.json();
    assert_eq!(v["onboarding"]["is_success"], true);
    assert_eq!(
        v["customer"]["attributes"]["google_ads_customer_ids"],
        json!(["123-456-7890", "111-222-3333"])
    );

    let bad = onramp(
        &db,
        Some(PRODUCT),
        &[
            "customers",
            "onboard",
            "medcorp_a",
            "MedCorp",
            "--industry",
            "medical",
            "--google-ads-ids",
            "1234567890",
        ],
    );
    assert_eq!(bad.code, 3, "refused input");
    assert!(
        bad.stderr.contains(
            "attributes.google_ads_customer_ids[0]: Invalid Google Ads customer ID format"
        ),
        "{}",
        bad.stderr
    );
    let dup = onramp(
        &db,
        Some(PRODUCT),
        &[
            "customers",
            "onboard",
            "topgolf",
            "Again",
            "--industry",
            "golf",
        ],
    );
    assert_eq!(dup.code, 5, "conflict");
    assert!(dup.stderr.contains("Customer already exists"));
    let listed = onramp(
        &db,
        Some(PRODUCT),
        &["customers", "list", "--status", "all", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "refusals registered nothing"
    );
}

on_both_backends!(
    growthnav_onboarding_replays,
    growthnav_onboarding_through_the_cli
);
