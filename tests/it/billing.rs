//! Billing: the catalog as the API, MCP and the CLI show it.

use serde_json::json;

use crate::common::{self, status_and_json, Backend, TestApp};
use onramp::product::Product;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plans_are_listed_with_prices_per_cycle_and_limits() {
    let product = Product::load(&common::repo_path("examples/policycortex/onramp.toml")).unwrap();
    let app = TestApp::start_with(Backend::Sqlite, product).await;

    let (status, _) = status_and_json(
        app.client
            .get(app.url("/api/v1/plans"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "the catalog needs a token");

    let (status, body) =
        status_and_json(app.get("/api/v1/plans", &app.viewer).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["free", "starter", "professional", "enterprise"]);

    let pro = &body["items"][2];
    assert_eq!(pro["name"], "Professional");
    assert_eq!(pro["prices"], json!({"USD": 49900}));
    assert_eq!(
        pro["limits"],
        json!({"api_calls": 100000, "resources": 1000, "users": 25})
    );
    assert_eq!(
        pro["hard"]["api_calls"],
        json!({"behaviour": "overage", "unit_price": {"USD": 10}, "per": 1})
    );
    assert_eq!(pro["hard"]["users"], json!({"behaviour": "block"}));
    assert_eq!(pro["soft_threshold_percent"], 80);
    // Quarterly: 3 × $499 less 10% = $1,347.30; annual: 12 × $499 less 17% = $4,970.04.
    let cycles: Vec<_> = pro["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap(),
                c["months"].as_u64().unwrap(),
                c["period_prices"]["USD"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cycles,
        [
            ("monthly", 1, 49_900),
            ("quarterly", 3, 134_730),
            ("annual", 12, 497_004)
        ]
    );
    assert_eq!(pro["cycles"][2]["discount_percent"], 17.0);

    let enterprise = &body["items"][3];
    assert_eq!(
        enterprise["limits"],
        json!({"api_calls": null, "resources": null, "users": null})
    );
    assert_eq!(enterprise["hard"], json!({}));
    assert_eq!(body["items"][0]["free"], true);
    assert_eq!(body["items"][0]["prices"], json!({}));

    assert_eq!(body["metrics"][2]["id"], "api_calls");
    assert_eq!(body["metrics"][2]["aggregation"], "sum");
    assert_eq!(body["trial"]["plan"], "professional");
    assert_eq!(body["trial"]["max_extensions"], 2);
    assert_eq!(
        body["trial"]["end"],
        json!({"action": "downgrade", "plan": "free", "cycle": "monthly"})
    );

    let doc = app.openapi().await;
    assert!(doc["paths"]["/api/v1/plans"]["get"].is_object());
}
