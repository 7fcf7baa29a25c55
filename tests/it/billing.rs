//! Billing: the catalog as the API, MCP and the CLI show it.

use reqwest::StatusCode;
use serde_json::{json, Value};

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

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    status_and_json(req.send().await.unwrap()).await
}

/// A new test clock at `at`; its id.
async fn test_clock(app: &TestApp, at: &str, name: &str) -> String {
    let (status, clock) = call(
        app,
        reqwest::Method::POST,
        "/api/v1/test-clocks",
        &app.operator,
        Some(json!({"frozen_time": at, "name": name})),
    )
    .await;
    assert_eq!(status, 201, "{clock}");
    clock["test_clock_id"].as_str().unwrap().to_owned()
}

/// One metric's line of a customer's usage (`GET /api/v1/customers/{id}/usage`).
pub(crate) fn metric_line(usage: &Value, metric: &str) -> Value {
    usage["metrics"]
        .as_array()
        .expect("the usage's metrics")
        .iter()
        .find(|m| m["metric"] == metric)
        .unwrap_or_else(|| panic!("{metric} in {usage}"))
        .clone()
}

/// Starts `customer`'s trial with the product's defaults.
async fn start_trial(app: &TestApp, customer: &str) -> Value {
    let (status, trial) = call(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/customers/{customer}/trial"),
        &app.operator,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{trial}");
    trial
}

/// Advances test clock `clock_id` to `to` as the operator; the clock as it answers.
async fn advance(app: &TestApp, clock_id: &str, to: &str) -> Value {
    let (status, moved) = call(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/test-clocks/{clock_id}/advance"),
        &app.operator,
        Some(json!({ "to": to })),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    moved
}

/// What the operator reads at `path` (GET), whatever its status.
async fn read(app: &TestApp, path: &str) -> Value {
    call(app, reqwest::Method::GET, path, &app.operator, None)
        .await
        .1
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn customer(id: &str, clock: Option<&str>) -> Value {
    let mut body =
        json!({"customer_id": id, "customer_name": format!("Customer {id}"), "industry": "retail"});
    if let Some(c) = clock {
        body["test_clock_id"] = json!(c);
    }
    body
}

/// A trial on the built-in product (14 days, 7 to 30, one extension of at most 14 days, a
/// reminder 2 days before the end, a grace of 3 days, then the free plan), driven by a test
/// clock across a year's end; every refusal leaves the registry as it was.
async fn a_trial_lives_on_its_test_clock(backend: Backend) {
    let app = TestApp::start(backend).await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let op = app.operator.clone();

    // A clock's refusals name their fields.
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/test-clocks",
        &op,
        Some(json!({"frozen_time": "next tuesday"})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(fields(&problem), ["frozen_time", "name"]);
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/test-clocks",
        &app.viewer,
        Some(json!({"frozen_time": "2026-12-20T09:00:00Z", "name": "x"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, clock) = call(
        &app,
        post.clone(),
        "/api/v1/test-clocks",
        &op,
        Some(json!({"frozen_time": "2026-12-20T09:00:00Z", "name": "year end"})),
    )
    .await;
    assert_eq!(status, 201, "{clock}");
    let clock_id = clock["test_clock_id"].as_str().unwrap().to_owned();
    assert_eq!(clock["frozen_time"], "2026-12-20T09:00:00Z");

    // A customer attached to a clock that does not exist is refused, naming the field.
    let before = app.snapshot().await;
    let (status, problem) = app.onboard(&customer("acme", Some("tc_nope"))).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(fields(&problem), ["test_clock_id"]);
    assert_eq!(app.snapshot().await, before);

    let (status, created) = app.onboard(&customer("acme", Some(&clock_id))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["customer"]["test_clock_id"], clock_id.as_str());

    // Refused trials change nothing.
    let before = app.snapshot().await;
    for (body, field) in [
        (json!({"days": 40}), "days"),
        (json!({"days": 6}), "days"),
        (json!({"plan": "platinum"}), "plan"),
    ] {
        let (status, problem) = call(
            &app,
            post.clone(),
            "/api/v1/customers/acme/trial",
            &op,
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(fields(&problem), [field]);
    }
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial",
        &op,
        Some(json!({"days": 40})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("days must be from 7 to 30"),
        "{problem}"
    );
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/customers/nobody/trial",
        &op,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial",
        &app.viewer,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, problem) =
        call(&app, get.clone(), "/api/v1/customers/acme/trial", &op, None).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (404, Some("trial_not_found"))
    );
    assert_eq!(app.snapshot().await, before);

    // The customer is onboarded, so the trial runs from the clock's now: 14 days from
    // 20 December at 09:00 is 3 January at 09:00, across the year's end.
    let (status, trial) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial",
        &op,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{trial}");
    assert_eq!(trial["status"], "active");
    assert_eq!(trial["plan"], "standard");
    assert_eq!(trial["activated_at"], "2026-12-20T09:00:00Z");
    assert_eq!(trial["ends_at"], "2027-01-03T09:00:00Z");
    assert_eq!(trial["grace_ends_at"], "2027-01-06T09:00:00Z");
    assert_eq!(
        trial["next"],
        json!({"at": "2027-01-01T09:00:00Z", "work": "remind"})
    );
    assert_eq!(trial["limits"], json!({"api_calls": 10000}));
    assert_eq!(trial["available_actions"], json!(["extend"]));
    assert_eq!(trial["now"], "2026-12-20T09:00:00Z");
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial",
        &op,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("trial_exists"))
    );
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial/activate",
        &op,
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("trial_status")),
        "{problem}"
    );

    // Extensions: bad ones named, one granted, the next refused.
    let before = app.snapshot().await;
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial/extend",
        &op,
        Some(json!({"days": 15})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&problem), ["days", "reason"]);
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("days must be from 1 to 14"));
    assert_eq!(app.snapshot().await, before);
    let (status, trial) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial/extend",
        &op,
        Some(json!({"days": 7, "reason": "procurement review"})),
    )
    .await;
    assert_eq!(status, 200, "{trial}");
    assert_eq!(trial["status"], "extended");
    assert_eq!(trial["ends_at"], "2027-01-10T09:00:00Z");
    assert_eq!(
        (trial["days"].as_u64(), trial["extensions_left"].as_u64()),
        (Some(21), Some(0))
    );
    assert_eq!(trial["available_actions"], json!([]));
    let before = app.snapshot().await;
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial/extend",
        &op,
        Some(json!({"days": 1, "reason": "again"})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("no_extensions_left"))
    );
    assert_eq!(app.snapshot().await, before);

    // A customer on real time is not moved by the clock.
    app.onboard(&customer("realtime", None)).await;
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/customers/realtime/trial",
        &op,
        Some(json!({"days": 7})),
    )
    .await;
    assert_eq!(status, 201);

    // Time moves only forward, and by at most five years at once.
    let advance = format!("/api/v1/test-clocks/{clock_id}/advance");
    for to in ["2026-12-19T00:00:00Z", "2040-01-01T00:00:00Z", "soon"] {
        let (status, problem) =
            call(&app, post.clone(), &advance, &op, Some(json!({"to": to}))).await;
        assert_eq!(status, 422, "{to}: {problem}");
        assert_eq!(fields(&problem), ["to"]);
    }
    let (status, same) = call(
        &app,
        post.clone(),
        &advance,
        &op,
        Some(json!({"to": "2026-12-20T09:00:00Z"})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), same["work_done"].as_u64()),
        (200, Some(0)),
        "the clock's own time moves nothing: {same}"
    );

    // The reminder comes two days before the new end.
    let (status, moved) = call(
        &app,
        post.clone(),
        &advance,
        &op,
        Some(json!({"to": "2027-01-09T09:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["work_done"], 1);
    assert_eq!(moved["frozen_time"], "2027-01-09T09:00:00Z");
    let (_, trial) = call(&app, get.clone(), "/api/v1/customers/acme/trial", &op, None).await;
    assert_eq!(trial["reminded_at"], "2027-01-08T09:00:00Z");
    assert_eq!(
        trial["next"],
        json!({"at": "2027-01-10T09:00:00Z", "work": "expire"})
    );

    // The expiry, then the grace, then the end behaviour, each at its own time, in one advance.
    let (_, moved) = call(
        &app,
        post.clone(),
        &advance,
        &op,
        Some(json!({"to": "2027-01-11T00:00:00Z"})),
    )
    .await;
    assert_eq!(moved["work_done"], 1);
    let (_, trial) = call(&app, get.clone(), "/api/v1/customers/acme/trial", &op, None).await;
    assert_eq!(
        (trial["status"].as_str(), trial["in_grace"].as_bool()),
        (Some("expired"), Some(true))
    );
    let (_, moved) = call(
        &app,
        post.clone(),
        &advance,
        &op,
        Some(json!({"to": "2027-02-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(moved["work_done"], 1);
    let (_, trial) = call(&app, get.clone(), "/api/v1/customers/acme/trial", &op, None).await;
    assert_eq!(trial["ended_at"], "2027-01-13T09:00:00Z");
    assert_eq!(
        (trial["in_grace"].as_bool(), &trial["next"]),
        (Some(false), &Value::Null)
    );

    // The end behaviour: the free plan, monthly, from the end of the grace.
    let (status, sub) = call(
        &app,
        get.clone(),
        "/api/v1/customers/acme/subscription",
        &op,
        None,
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(
        (sub["plan"].as_str(), sub["cycle"].as_str()),
        (Some("free"), Some("monthly"))
    );
    assert_eq!(sub["current_period_start"], "2027-01-13T09:00:00Z");
    assert_eq!(
        (sub["price_per_period"].as_i64(), &sub["trial_id"]),
        (Some(0), &trial["trial_id"])
    );

    let (status, events) = call(&app, get.clone(), "/api/v1/customers/acme/audit", &op, None).await;
    assert_eq!(status, 200);
    let trail: Vec<(String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("trial."))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["payload"]["at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("trial.started", "2026-12-20T09:00:00Z"),
        ("trial.activated", "2026-12-20T09:00:00Z"),
        ("trial.extended", "2026-12-20T09:00:00Z"),
        ("trial.ending_soon", "2027-01-08T09:00:00Z"),
        ("trial.expired", "2027-01-10T09:00:00Z"),
        ("trial.ended", "2027-01-13T09:00:00Z"),
    ];
    assert_eq!(
        trail,
        expect.map(|(t, a)| (t.to_owned(), a.to_owned())).to_vec()
    );

    // The real-time customer's trial did not move.
    let other = read(&app, "/api/v1/customers/realtime/trial").await;
    assert_eq!(other["status"], "active");
    assert_eq!(other["reminded_at"], Value::Null);
}

/// A trial that waits for the customer's credentials (WAOOAW's `credentials_configured`) stays
/// pending until the last required credential is stored, then runs from that moment on its
/// clock.
async fn a_pending_trial_starts_when_its_credentials_are_configured(backend: Backend) {
    let mut product = Product::load(&common::repo_path("examples/waooaw/onramp.toml")).unwrap();
    // With a deadline: a trial still pending three days after it was made starts then.
    product.catalog.trial.as_mut().unwrap().activate_within_days = Some(3);
    let app = TestApp::start_with(backend, product).await;
    let jobs = onramp::jobs::Jobs::new(app.services.clone(), std::time::Duration::from_secs(30));
    jobs.register().await.unwrap();
    let post = reqwest::Method::POST;
    let op = app.operator.clone();
    let clock_id = test_clock(&app, "2026-02-12T10:00:00Z", "waooaw").await;
    let body = json!({
        "customer_id": "sunrise", "customer_name": "Sunrise Yoga", "industry": "marketing",
        "attributes": {"country": "IN", "timezone": "Asia/Kolkata"}, "test_clock_id": clock_id,
    });
    let (status, created) = app.onboard(&body).await;
    assert_eq!(status, 201, "{created}");
    let mut dawn = body.clone();
    dawn["customer_id"] = json!("dawn");
    assert_eq!(app.onboard(&dawn).await.0, 201);
    for id in ["dawn", "sunrise"] {
        start_trial(&app, id).await;
    }
    let trial = read(&app, "/api/v1/customers/sunrise/trial").await;
    assert_eq!(trial["status"], "pending");
    assert_eq!(
        trial["next"],
        json!({"at": "2026-02-15T10:00:00Z", "work": "activate"})
    );
    assert_eq!(trial["activate_on"], "credentials_configured");
    assert_eq!(trial["ends_at"], Value::Null);
    assert_eq!(trial["limits"], json!({"tasks": 5, "tokens": 10000}));
    assert_eq!(trial["available_actions"], json!(["activate"]));

    // Two days later the platform token is stored; the consumer starts the trial's clock.
    call(
        &app,
        post.clone(),
        &format!("/api/v1/test-clocks/{clock_id}/advance"),
        &op,
        Some(json!({"to": "2026-02-14T10:00:00Z"})),
    )
    .await;
    jobs.run_now("outbox.trial_activations").await.unwrap();
    let still = read(&app, "/api/v1/customers/sunrise/trial").await;
    assert_eq!(still["status"], "pending");
    let r = app
        .client
        .put(app.url("/api/v1/customers/sunrise/credentials/platform_token"))
        .bearer_auth(&op)
        .json(&json!({"value": "EAAG-platform-token-for-tests"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    jobs.run_now("outbox.trial_activations").await.unwrap();
    let trial = read(&app, "/api/v1/customers/sunrise/trial").await;
    assert_eq!(trial["status"], "active", "{trial}");
    assert_eq!(trial["activated_at"], "2026-02-14T10:00:00Z");
    assert_eq!(trial["ends_at"], "2026-02-21T10:00:00Z");
    // Taking the events again changes nothing.
    let before = app.snapshot().await;
    jobs.run_now("outbox.trial_activations").await.unwrap();
    assert_eq!(app.snapshot().await, before);

    // Dawn never configures its credentials: its trial starts at the deadline, on the 15th.
    advance(&app, &clock_id, "2026-02-16T00:00:00Z").await;
    let trial = read(&app, "/api/v1/customers/dawn/trial").await;
    assert_eq!(
        (
            trial["status"].as_str(),
            trial["activated_at"].as_str(),
            trial["ends_at"].as_str()
        ),
        (
            Some("active"),
            Some("2026-02-15T10:00:00Z"),
            Some("2026-02-22T10:00:00Z")
        ),
        "{trial}"
    );
    let events = common::all_events(app.services.store.as_ref()).await;
    let activated = events
        .iter()
        .find(|e| e.event_type == "trial.activated" && e.customer_id.as_deref() == Some("dawn"))
        .expect("dawn's trial.activated");
    assert!(
        activated
            .payload_text
            .contains("its activation deadline passed (3 days)"),
        "{}",
        activated.payload_text
    );
}

/// An access token of `customer`'s with `scopes`.
async fn tenant_token(app: &TestApp, customer: &str, scopes: &[&str]) -> String {
    let (status, key) = call(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/customers/{customer}/integration-keys"),
        &app.operator,
        Some(json!({"name": "metering", "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let r = app
        .client
        .post(app.url("/api/v1/auth/token/integration"))
        .header("x-api-key", key["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (status, grant) = status_and_json(r).await;
    assert_eq!(status, 200, "{grant}");
    grant["access_token"].as_str().unwrap().to_owned()
}

fn statuses(results: &Value) -> Vec<(String, Option<u64>)> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["http_status"].as_u64(),
            )
        })
        .collect()
}

/// Usage on PolicyCortex's plans: each event once (a replay is a duplicate, another content
/// under a used id a 409), every bad field named, totals exact under concurrency, the soft and
/// hard thresholds each one event a period, a trial's limits then the plan's with overage, and
/// a customer's own token with `usage:write`.
async fn usage_is_metered_once_and_entitled(backend: Backend) {
    let product = Product::load(&common::repo_path("examples/policycortex/onramp.toml")).unwrap();
    let app = TestApp::start_with(backend, product).await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let op = app.operator.clone();
    let clock_id = test_clock(&app, "2026-03-10T12:00:00Z", "usage").await;
    let body = json!({"customer_id": "contoso", "customer_name": "Contoso", "industry": "technology", "test_clock_id": clock_id});
    assert_eq!(app.onboard(&body).await.0, 201);

    // No plan and no trial: nothing is allowed.
    let (status, e) = call(
        &app,
        post.clone(),
        "/api/v1/entitlements/check",
        &op,
        Some(json!({"customer_id": "contoso", "metric": "api_calls"})),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        (e["allowed"].as_bool(), e["source"].as_str()),
        (Some(false), Some("none"))
    );

    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/trial",
        &op,
        Some(json!({"days": 14})),
    )
    .await;
    assert_eq!(status, 201);
    advance(&app, &clock_id, "2026-03-10T13:00:00Z").await;

    let ev = |id: &str, metric: &str, value: Value| json!({"event_id": id, "metric": metric, "value": value, "customer_id": "contoso", "timestamp": "2026-03-10T12:10:00Z"});
    let batch = json!({"events": [
        ev("e1", "api_calls", json!(1000)),
        ev("e2", "api_calls", json!(1000)),
        ev("e3", "api_calls", json!(1000.5)),
        ev("e1", "api_calls", json!(1000)),
        ev("e2", "api_calls", json!(7)),
        ev("e4", "storage", json!(1)),
        ev("e5", "api_calls", json!(-1)),
        {"event_id": "e6", "metric": "api_calls", "value": 1, "customer_id": "contoso", "timestamp": "2026-01-01T00:00:00Z"},
        {"event_id": "e7", "metric": "api_calls", "value": 1},
        {"event_id": "e8", "metric": "api_calls", "customer_id": "contoso"},
        {"event_id": "e9", "metric": "api_calls", "value": 1, "customer_id": "nobody"},
    ]});
    let (status, results) = call(
        &app,
        post.clone(),
        "/api/v1/usage",
        &op,
        Some(batch.clone()),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    let accepted = |s: &str| (s.to_owned(), None);
    assert_eq!(
        statuses(&results),
        [
            accepted("accepted"),
            accepted("accepted"),
            accepted("accepted"),
            accepted("duplicate"),
            ("refused".to_owned(), Some(409)),
            ("refused".to_owned(), Some(422)),
            ("refused".to_owned(), Some(422)),
            ("refused".to_owned(), Some(422)),
            ("refused".to_owned(), Some(422)),
            ("refused".to_owned(), Some(422)),
            ("refused".to_owned(), Some(422)),
        ]
    );
    let fields: Vec<&str> = results["results"].as_array().unwrap()[4..]
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "events[4].event_id",
            "events[5].metric",
            "events[6].value",
            "events[7].timestamp",
            "events[8].customer_id",
            "events[9].value",
            "events[10].customer_id"
        ]
    );
    assert_eq!(
        (
            results["accepted"].as_u64(),
            results["duplicates"].as_u64(),
            results["refused"].as_u64()
        ),
        (Some(3), Some(1), Some(7))
    );
    // The same batch again: the accepted ones are duplicates now, nothing counts twice.
    let (_, again) = call(&app, post.clone(), "/api/v1/usage", &op, Some(batch)).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(4))
    );
    let before = app.snapshot().await;
    for bad in [
        json!({"events": []}),
        json!({"events": [ev("x", "api_calls", json!(1))], "extra": 1}),
        json!({"events": [[null, null]]}),
        json!({"events": [ev("x", "api_calls", json!("5"))]}),
        json!({"events": [{"event_id": "x", "metric": "api_calls", "value": 1, "customer_id": "contoso", "colour": "red"}]}),
    ] {
        let (status, _) = call(&app, post.clone(), "/api/v1/usage", &op, Some(bad)).await;
        assert!(status == 422 || status == 400, "{status}");
    }
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/usage",
        &app.viewer,
        Some(json!({"events": [ev("v1", "api_calls", json!(1))]})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(app.snapshot().await, before);

    // Exact under concurrency: eight batches of 100 new events (and 50 replays each) at once.
    let mut tasks = Vec::new();
    for b in 0..8 {
        let (client, url, op) = (app.client.clone(), app.url("/api/v1/usage"), op.clone());
        tasks.push(tokio::spawn(async move {
            let events: Vec<Value> = (0..150)
                .map(|i| {
                    let n = if i < 100 { b * 100 + i } else { i - 100 };
                    json!({"event_id": format!("c{n}"), "metric": "api_calls", "value": 10, "customer_id": "contoso", "timestamp": "2026-03-10T12:30:00Z"})
                })
                .collect();
            let r = client.post(url).bearer_auth(op).json(&json!({"events": events})).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r["refused"], 0, "{r}");
        accepted += r["accepted"].as_u64().unwrap();
    }
    assert_eq!(accepted, 800);
    let usage = read(&app, "/api/v1/customers/contoso/usage").await;
    let calls = metric_line(&usage, "api_calls");
    assert_eq!(calls["used"], json!(3000.5 + 8000.0));
    assert_eq!(calls["events"], 803);
    assert_eq!(usage["source"], "trial");
    assert_eq!(
        calls["period_start"], "2026-03-10T12:00:00Z",
        "the trial's month, from its activation"
    );
    // Single events at once, each sent twice: written together, each accepted once and
    // answered a duplicate once, whichever request came first.
    let singles = futures_util::future::join_all((0..40).map(|i| {
        let body = json!({"events": [{"event_id": format!("s{}", i % 20), "metric": "api_calls", "value": 10, "customer_id": "contoso", "timestamp": "2026-03-10T12:30:00Z"}]});
        call(&app, post.clone(), "/api/v1/usage", &op, Some(body))
    }))
    .await;
    let statuses: Vec<String> = singles
        .iter()
        .map(|(status, r)| {
            assert_eq!(*status, 200, "{r}");
            r["results"][0]["status"].as_str().unwrap().to_owned()
        })
        .collect();
    for i in 0..20 {
        let mut pair = [statuses[i].as_str(), statuses[i + 20].as_str()];
        pair.sort();
        assert_eq!(pair, ["accepted", "duplicate"], "s{i}");
    }
    let usage = read(&app, "/api/v1/customers/contoso/usage").await;
    let calls = metric_line(&usage, "api_calls");
    assert_eq!(calls["used"], json!(3000.5 + 8000.0 + 200.0));
    assert_eq!(calls["events"], 823);
    // An event sent late from before the trial began is recorded in the month before it,
    // never in the trial's first month.
    let (_, r) = call(&app, post.clone(), "/api/v1/usage", &op, Some(json!({"events": [{"event_id": "early", "metric": "api_calls", "value": 500, "customer_id": "contoso", "timestamp": "2026-03-10T11:00:00Z"}]}))).await;
    assert_eq!(r["accepted"], 1, "{r}");
    let usage = read(&app, "/api/v1/customers/contoso/usage").await;
    assert_eq!(
        metric_line(&usage, "api_calls")["used"],
        json!(3000.5 + 8000.0 + 200.0)
    );

    // Users (a max): 20 of 25 passes the 80% soft threshold, 25 reaches the limit; each is one
    // event a period however many batches follow.
    for (i, v) in [20, 18, 25, 25, 24].iter().enumerate() {
        let (_, r) = call(&app, post.clone(), "/api/v1/usage", &op, Some(json!({"events": [{"event_id": format!("u{i}"), "metric": "users", "value": v, "customer_id": "contoso"}]}))).await;
        assert_eq!(r["accepted"], 1, "{r}");
    }
    let (_, e) = call(
        &app,
        post.clone(),
        "/api/v1/entitlements/check",
        &op,
        Some(json!({"customer_id": "contoso", "metric": "users", "amount": 26})),
    )
    .await;
    assert_eq!(
        (
            e["allowed"].as_bool(),
            e["used"].as_i64(),
            e["limit"].as_i64()
        ),
        (Some(false), Some(25), Some(25))
    );
    assert_eq!(e["soft_exceeded"], true);
    let types = common::event_types(app.services.store.as_ref()).await;
    assert!(types.contains("usage.soft_limit_reached") && types.contains("usage.limit_reached"));
    let alerts = common::all_events(app.services.store.as_ref())
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("usage."))
        .count();
    assert_eq!(alerts, 2, "one soft and one hard event for the period");

    // Ten days on, subscribed to Starter: its month starts then, with 10,000 calls and overage
    // at $0.10.
    advance(&app, &clock_id, "2026-03-20T12:00:00Z").await;
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/subscription",
        &op,
        Some(json!({"plan": "starter", "cycle": "monthly"})),
    )
    .await;
    assert_eq!(status, 201);
    let token = tenant_token(&app, "contoso", &["usage:write"]).await;
    let weak = tenant_token(&app, "contoso", &["data:upload"]).await;
    let mine = json!({"events": [{"event_id": "m1", "metric": "api_calls", "value": 12000}]});
    let (status, problem) = call(
        &app,
        post.clone(),
        "/api/v1/me/usage",
        &weak,
        Some(mine.clone()),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, r) = call(&app, post.clone(), "/api/v1/me/usage", &token, Some(json!({"events": [{"event_id": "m0", "metric": "api_calls", "value": 1, "customer_id": "someone_else"}]}))).await;
    assert_eq!((status.as_u16(), r["refused"].as_u64()), (200, Some(1)));
    let (status, r) = call(&app, post.clone(), "/api/v1/me/usage", &token, Some(mine)).await;
    assert_eq!(
        (status.as_u16(), r["accepted"].as_u64()),
        (200, Some(1)),
        "{r}"
    );
    let (status, problem) = call(
        &app,
        get.clone(),
        "/api/v1/me/entitlements/api_calls",
        &weak,
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("insufficient_scope")),
        "reading entitlements needs usage:read or usage:write"
    );
    let reader = tenant_token(&app, "contoso", &["usage:read"]).await;
    let (status, e) = call(
        &app,
        get.clone(),
        "/api/v1/me/entitlements/api_calls?amount=5",
        &reader,
        None,
    )
    .await;
    assert_eq!(status, 200, "{e}");
    let (status, e) = call(
        &app,
        get.clone(),
        "/api/v1/me/entitlements/api_calls?amount=5",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        (e["allowed"].as_bool(), e["source"].as_str()),
        (Some(true), Some("subscription"))
    );
    assert_eq!(
        (
            e["used"].as_i64(),
            e["overage"].as_i64(),
            e["remaining"].as_i64()
        ),
        (Some(12000), Some(2000), Some(0)),
        "{e}"
    );
    let usage = read(&app, "/api/v1/customers/contoso/usage").await;
    let calls = metric_line(&usage, "api_calls");
    assert_eq!(
        calls["overage_amount"],
        json!({"USD": 20000}),
        "2,000 calls at $0.10"
    );
    let (status, _) = call(
        &app,
        get.clone(),
        "/api/v1/me/entitlements/storage",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 422);
}

/// An offboarded customer's billing stops: its usage is refused, its subscription ends at its
/// period's end instead of renewing; and an event sent without a timestamp is a duplicate when
/// retried later, not a conflict.
async fn offboarding_stops_billing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let post = reqwest::Method::POST;
    let op = app.operator.clone();
    let clock_id = test_clock(&app, "2026-06-01T00:00:00Z", "offboarding").await;
    assert_eq!(app.onboard(&customer("acme", Some(&clock_id))).await.0, 201);
    let (status, _) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/subscription",
        &op,
        Some(json!({"plan": "standard", "cycle": "monthly"})),
    )
    .await;
    assert_eq!(status, 201);
    let event = json!({"events": [{"event_id": "no-ts", "metric": "api_calls", "value": 3, "customer_id": "acme"}]});
    let (_, first) = call(
        &app,
        post.clone(),
        "/api/v1/usage",
        &op,
        Some(event.clone()),
    )
    .await;
    assert_eq!(first["accepted"], 1, "{first}");
    call(
        &app,
        post.clone(),
        &format!("/api/v1/test-clocks/{clock_id}/advance"),
        &op,
        Some(json!({"to": "2026-06-02T00:00:00Z"})),
    )
    .await;
    let (_, retry) = call(&app, post.clone(), "/api/v1/usage", &op, Some(event)).await;
    assert_eq!(retry["duplicates"], 1, "{retry}");

    let (status, off) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/offboard",
        &op,
        Some(json!({"delete_data": false})),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    let (_, refused) = call(&app, post.clone(), "/api/v1/usage", &op, Some(json!({"events": [{"event_id": "late", "metric": "api_calls", "value": 1, "customer_id": "acme"}]}))).await;
    assert_eq!(
        refused["results"][0]["code"], "customer_offboarded",
        "{refused}"
    );
    let (_, e) = call(
        &app,
        post.clone(),
        "/api/v1/entitlements/check",
        &op,
        Some(json!({"customer_id": "acme", "metric": "api_calls"})),
    )
    .await;
    assert_eq!(
        (e["allowed"].as_bool(), e["source"].as_str()),
        (Some(false), Some("offboarded"))
    );
    let (_, moved) = call(
        &app,
        post.clone(),
        &format!("/api/v1/test-clocks/{clock_id}/advance"),
        &op,
        Some(json!({"to": "2026-08-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(moved["work_done"], 1, "one cancellation, no renewals");
    let (status, problem) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/customers/acme/subscription",
        &op,
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (404, Some("subscription_not_found"))
    );
    assert!(common::event_types(app.services.store.as_ref())
        .await
        .contains("subscription.canceled"));
}

/// The reminder of a trial's end is an email to the customer's contact, through a real SMTP
/// server, with the shipped template; a reminder whose trial was converted before it left is
/// skipped with the reason, not sent.
async fn a_trial_reminder_is_emailed_once(backend: Backend) {
    let sink = crate::common::smtp::SmtpSink::start();
    let smtp_url = sink.url();
    let app = TestApp::start_configured(backend, Product::builtin(), move |s| {
        s.smtp_url = Some(smtp_url.into());
        s.mail_from = Some(crate::email::FROM.into());
    })
    .await;
    let jobs = onramp::jobs::Jobs::new(app.services.clone(), std::time::Duration::from_secs(30));
    jobs.register().await.unwrap();
    let post = reqwest::Method::POST;
    let op = app.operator.clone();
    let clock_id = test_clock(&app, "2026-12-20T09:00:00Z", "reminders").await;
    for id in ["acme", "zenith"] {
        let mut body = customer(id, Some(&clock_id));
        body["contact"] = json!({"email": format!("owner@{id}.example")});
        let (status, created) = app.onboard(&body).await;
        assert_eq!(status, 201, "{created}");
        start_trial(&app, id).await;
    }
    crate::email::deliver(&jobs).await;
    let before = sink.received().len();

    // Two days before the end (3 January 09:00), both trials are reminded; Zenith converts
    // before its message leaves.
    advance(&app, &clock_id, "2027-01-01T21:00:00Z").await;
    let (status, converted) = call(
        &app,
        post.clone(),
        "/api/v1/customers/zenith/trial/convert",
        &op,
        Some(json!({"plan": "standard", "cycle": "monthly"})),
    )
    .await;
    assert_eq!(status, 201, "{converted}");
    // Acme's trial is extended by a week before its reminder left, and reminded again.
    let (status, extended) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/trial/extend",
        &op,
        Some(json!({"days": 7, "reason": "evaluation slipped"})),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    advance(&app, &clock_id, "2027-01-08T12:00:00Z").await;
    let report = crate::email::deliver(&jobs).await;
    crate::email::deliver(&jobs).await;
    let sent: Vec<_> = sink.received().into_iter().skip(before).collect();
    assert_eq!(sent.len(), 1, "{report}: {sent:?}");
    let m = &sent[0];
    assert_eq!(m.rcpt_tos, ["owner@acme.example"]);
    // The newer reminder only: 45 hours left count as 2 days.
    assert_eq!(m.subject, "Your Onramp trial ends in 2 days");
    assert!(
        m.text()
            .contains("The Standard trial of Customer acme on Onramp")
            && m.text()
                .contains("ends in 2 days, at 2027-01-10T09:00:00Z."),
        "{}",
        m.text()
    );
    let (_, log) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/emails?customer_id=zenith",
        &app.viewer,
        None,
    )
    .await;
    let reminder = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "trial_ending_soon")
        .expect("zenith's reminder is in the log");
    assert_eq!(reminder["status"], "skipped", "{reminder}");
    assert_eq!(
        reminder["last_error"],
        "the trial is converted, not running"
    );
    let (_, log) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/emails?customer_id=acme",
        &app.viewer,
        None,
    )
    .await;
    let reminders: Vec<(&str, Option<&str>)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "trial_ending_soon")
        .map(|e| (e["status"].as_str().unwrap(), e["last_error"].as_str()))
        .collect();
    assert_eq!(
        reminders,
        [
            ("sent", None),
            (
                "skipped",
                Some("a newer reminder of this trial's end was queued")
            )
        ]
    );
}

/// Advances of one clock at once: each answers 200 or refuses a time the clock has passed,
/// the clock ends at the latest time asked for, and every customer's work is done once.
async fn concurrent_advances_do_each_piece_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let clock_id = test_clock(&app, "2026-12-20T09:00:00Z", "race").await;
    let customers = ["ada", "bob", "cyd", "dee"];
    for id in customers {
        let (status, created) = app.onboard(&customer(id, Some(&clock_id))).await;
        assert_eq!(status, 201, "{created}");
        start_trial(&app, id).await;
    }
    // The trials remind on 1 January, expire on the 3rd and end their grace on the 6th
    // (downgraded to the free plan, which renews monthly).
    let path = format!("/api/v1/test-clocks/{clock_id}/advance");
    let targets = [
        "2027-01-02T00:00:00Z",
        "2027-01-07T00:00:00Z",
        "2027-01-04T00:00:00Z",
        "2027-03-10T00:00:00Z",
    ];
    let answers = futures_util::future::join_all(targets.iter().map(|to| {
        call(
            &app,
            reqwest::Method::POST,
            &path,
            &app.operator,
            Some(json!({ "to": to })),
        )
    }))
    .await;
    for (status, answer) in &answers {
        assert!(
            *status == 200 || (*status == 422 && answer["errors"][0]["code"] == "not_forward"),
            "{status}: {answer}"
        );
    }
    let clock = read(&app, &format!("/api/v1/test-clocks/{clock_id}")).await;
    assert_eq!(clock["frozen_time"], "2027-03-10T00:00:00Z", "{clock}");
    // An advance to the clock's own time moves nothing and finds nothing left to do.
    let (status, same) = call(
        &app,
        reqwest::Method::POST,
        &path,
        &app.operator,
        Some(json!({"to": "2027-03-10T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(
        (same["frozen_time"].as_str(), same["work_done"].as_u64()),
        (Some("2027-03-10T00:00:00Z"), Some(0))
    );
    let events = common::all_events(app.services.store.as_ref()).await;
    for id in customers {
        let count = |t: &str| {
            events
                .iter()
                .filter(|e| e.event_type == t && e.customer_id.as_deref() == Some(id))
                .count()
        };
        assert_eq!(
            [
                count("trial.ending_soon"),
                count("trial.expired"),
                count("subscription.created"),
                count("subscription.renewed")
            ],
            [1, 1, 1, 2],
            "{id}: reminded, expired, downgraded on 6 January, renewed on 6 February and 6 March"
        );
    }
}

/// What was scheduled for a period's end can be withdrawn before it comes; with nothing
/// scheduled the withdrawal is refused and changes nothing.
async fn a_scheduled_change_can_be_withdrawn(backend: Backend) {
    let app = TestApp::start(backend).await;
    let post = reqwest::Method::POST;
    let op = app.operator.clone();
    let clock_id = test_clock(&app, "2027-01-15T00:00:00Z", "unschedule").await;
    assert_eq!(app.onboard(&customer("acme", Some(&clock_id))).await.0, 201);
    let (status, sub) = call(
        &app,
        post.clone(),
        "/api/v1/customers/acme/subscription",
        &op,
        Some(json!({"plan": "standard", "cycle": "monthly"})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["available_actions"], json!(["change", "cancel"]));
    let path = "/api/v1/customers/acme/subscription/unschedule";
    let before = app.snapshot().await;
    let (status, problem) = call(&app, post.clone(), path, &op, None).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("subscription_status")),
        "{problem}"
    );
    assert_eq!(app.snapshot().await, before);

    for body in [
        json!({"plan": "free", "when": "period_end"}),
        json!({"when": "period_end"}),
    ] {
        let cancel = body.get("plan").is_none();
        let route = if cancel { "cancel" } else { "change" };
        let (status, sub) = call(
            &app,
            post.clone(),
            &format!("/api/v1/customers/acme/subscription/{route}"),
            &op,
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{sub}");
        assert!(sub["pending_change"].is_object(), "{sub}");
        assert!(sub["available_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("unschedule")));
        let before = app.snapshot().await;
        let (status, _) = call(&app, post.clone(), path, &app.viewer, None).await;
        assert_eq!(status, 403);
        assert_eq!(app.snapshot().await, before);
        let (status, sub) = call(&app, post.clone(), path, &op, None).await;
        assert_eq!(status, 200, "{sub}");
        assert_eq!(sub["pending_change"], Value::Null);
        assert_eq!(sub["available_actions"], json!(["change", "cancel"]));
    }

    // The period's end renews the plan as it was.
    advance(&app, &clock_id, "2027-02-16T00:00:00Z").await;
    let sub = read(&app, "/api/v1/customers/acme/subscription").await;
    assert_eq!(
        (
            sub["status"].as_str(),
            sub["plan"].as_str(),
            sub["current_period_start"].as_str()
        ),
        (
            Some("active"),
            Some("standard"),
            Some("2027-02-15T00:00:00Z")
        )
    );
    let events = common::event_types(app.services.store.as_ref()).await;
    assert!(events.contains("subscription.unscheduled"), "{events:?}");
}

/// A deadline added to the product after trials went pending applies to them: the next
/// server (here, services over the same registry with the new product) schedules them.
async fn a_deadline_added_later_reaches_pending_trials(backend: Backend) {
    use onramp::services::billing::AdvanceTestClock;
    let path = common::repo_path("examples/waooaw/onramp.toml");
    let app = TestApp::start_with(backend, Product::load(&path).unwrap()).await;
    let clock_id = test_clock(&app, "2026-02-12T10:00:00Z", "late").await;
    let body = json!({
        "customer_id": "late", "customer_name": "Late Co", "industry": "marketing",
        "attributes": {"country": "IN", "timezone": "Asia/Kolkata"}, "test_clock_id": clock_id,
    });
    assert_eq!(app.onboard(&body).await.0, 201);
    let trial = start_trial(&app, "late").await;
    assert_eq!(
        (trial["status"].as_str(), &trial["next"]),
        (Some("pending"), &Value::Null)
    );

    let mut product = Product::load(&path).unwrap();
    product.catalog.trial.as_mut().unwrap().activate_within_days = Some(2);
    let next = common::services(&app.db, product).await;
    let actor = onramp::services::Actor::cli();
    let moved = next
        .billing
        .advance_test_clock(
            &actor,
            &clock_id,
            &AdvanceTestClock {
                to: Some("2026-02-15T10:00:00Z".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.work_done, Some(1));
    let trial = next.billing.trial(&actor, "late").await.unwrap();
    assert_eq!(
        (
            trial.status.as_str(),
            trial.activated_at.map(|t| t.to_rfc3339())
        ),
        ("active", Some("2026-02-14T10:00:00+00:00".to_owned()))
    );
}

on_both_backends!(
    a_deadline_added_later_reaches_pending_trials,
    a_scheduled_change_can_be_withdrawn,
    concurrent_advances_do_each_piece_once,
    a_trial_reminder_is_emailed_once,
    offboarding_stops_billing,
    a_trial_lives_on_its_test_clock,
    a_pending_trial_starts_when_its_credentials_are_configured,
    usage_is_metered_once_and_entitled,
);

/// In production there are no test clocks: making one, reading them, and attaching a customer
/// to one are refused, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_test_clocks() {
    use onramp::services::billing::{BillingError, NewTestClock};
    use onramp::services::Actor;
    let db = common::TestDb::new(Backend::Sqlite).await;
    let services = common::services(&db, Product::builtin())
        .await
        .with_test_clocks(false);
    let actor = Actor::cli();
    let req = NewTestClock {
        frozen_time: Some("2026-12-20T09:00:00Z".into()),
        name: Some("prod".into()),
    };
    let e = services
        .billing
        .create_test_clock(&actor, &req)
        .await
        .unwrap_err();
    assert!(matches!(e, BillingError::TestClocksOff), "{e}");
    assert!(services.billing.test_clocks(&actor).await.is_err());
    let before = common::snapshot(services.store.as_ref()).await;
    let req: onramp::services::customers::OnboardRequest = serde_json::from_value(
        json!({"customer_id": "acme", "customer_name": "Acme", "industry": "retail", "test_clock_id": "tc_1"}),
    )
    .unwrap();
    let e = services
        .customers
        .onboard(&actor, &req, None)
        .await
        .unwrap_err();
    let refused = e.invalid_fields().unwrap();
    assert_eq!(refused[0].field, "test_clock_id");
    assert!(refused[0].message.contains("not available in production"));
    assert_eq!(common::snapshot(services.store.as_ref()).await, before);
}
