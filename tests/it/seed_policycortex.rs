//! The PolicyCortex seed's onboarding wizard, replayed end to end against
//! `examples/policycortex/onramp.toml` on both backends: start a session with a template, the
//! eight steps (Registration, Organization, Azure Connection, Feature Selection, Initial Scan,
//! User Invites, Configuration, Completion) with their validation, the session's status, an
//! abandoned session tracked in the funnel, and a session resumed later with its resume token.
//! The product is in open mode: the finished signup is approved by the risk policy, becomes a
//! customer on its template's plan, and the colleagues named in User Invites are invited.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

use crate::common::smtp::SmtpSink;
use crate::common::{self, status_and_json, Backend, TestApp};
use onramp::jobs::Jobs;
use onramp::product::Product;

const PRODUCT: &str = "examples/policycortex/onramp.toml";
const TENANT: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    status_and_json(req.send().await.unwrap()).await
}

async fn step(
    app: &TestApp,
    id: &str,
    token: &str,
    step: &str,
    data: Value,
) -> (StatusCode, Value) {
    send(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/signup/sessions/{id}/step"),
        Some(token),
        Some(json!({"step": step, "data": data})),
    )
    .await
}

async fn policycortex_wizard_replays(backend: Backend) {
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let clock = crate::email::clock();
    let product = Product::load(&common::repo_path(PRODUCT)).unwrap();
    let app_clock = clock.clone();
    let app = TestApp::start_configured(backend, product, move |s| {
        s.smtp_url = Some(smtp.into());
        s.mail_from = Some("PolicyCortex <onboarding@policycortex.test>".into());
        s.public_url = Some("https://app.policycortex.test".into());
        s.clock = app_clock;
    })
    .await;
    let jobs = Jobs::new(app.services.clone(), Duration::from_secs(30));
    jobs.register().await.unwrap();
    let post = reqwest::Method::POST;

    // Start: POST /api/v1/onboarding/start {user_email, company_name, template}.
    let (status, started) = send(
        &app,
        post.clone(),
        "/api/v1/signup/sessions",
        None,
        Some(json!({"email": "user@acme-corp.example", "company_name": "Acme Corp", "template": "professional"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["signup_id"].as_str().unwrap().to_owned();
    let token = started["resume_token"].as_str().unwrap().to_owned();
    let steps: Vec<&str> = started["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "registration",
            "organization",
            "azure_connection",
            "feature_selection",
            "initial_scan",
            "user_invites",
            "configuration",
            "completion"
        ]
    );
    assert_eq!(started["current_step"], "organization");
    assert_eq!(
        started["progress"],
        json!({"done": 1, "total": 8, "percent": 12})
    );

    // Step 2, Organization, with the seed's step_data; bad answers are named, nothing saved.
    let before = common::snapshot(app.services.store.as_ref()).await;
    let stored = app.services.store.signup(&id).await.unwrap().unwrap();
    let (status, v) = step(
        &app,
        &id,
        &token,
        "organization",
        json!({"organization_type": "conglomerate", "industry": "finance", "employee_count": 500, "cloud_environments": ["azure", "azure"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "data.organization_type",
            "data.employee_count",
            "data.cloud_environments"
        ],
        "{v}"
    );
    let (status, v) = step(
        &app,
        &id,
        &token,
        "feature_selection",
        json!({"features": ["policy_compliance"]}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("step_out_of_order")),
        "{v}"
    );
    assert_eq!(common::snapshot(app.services.store.as_ref()).await, before);
    assert_eq!(
        app.services.store.signup(&id).await.unwrap().unwrap(),
        stored,
        "refusals save nothing"
    );
    let (status, v) = step(
        &app,
        &id,
        &token,
        "organization",
        json!({"organization_type": "enterprise", "industry": "finance", "employee_count": "201-1000", "cloud_environments": ["azure", "aws"], "country": "US"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = step(
        &app,
        &id,
        &token,
        "azure_connection",
        json!({"azure_tenant_id": "not-a-tenant", "subscription_ids": "sub-1"}),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("data.azure_tenant_id")
        ),
        "{v}"
    );
    let (status, v) = step(
        &app,
        &id,
        &token,
        "azure_connection",
        json!({"azure_tenant_id": TENANT, "subscription_ids": "sub-prod-01, sub-dev-02"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Session status: GET /api/v1/onboarding/{session_id}.
    let (status, v) = send(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/signup/sessions/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["current_step"].as_str()),
        (Some("in_progress"), Some("feature_selection"))
    );
    assert_eq!(v["progress"]["done"], 3);

    // A second prospect starts, fills Organization, and abandons at Azure Connection:
    // DELETE /api/v1/onboarding/{session_id}.
    let (status, other) = send(
        &app,
        post.clone(),
        "/api/v1/signup/sessions",
        None,
        Some(json!({"email": "it@initech.example", "company_name": "Initech", "template": "small_business"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let other_id = other["signup_id"].as_str().unwrap().to_owned();
    let other_token = other["resume_token"].as_str().unwrap().to_owned();
    let (status, _) = step(&app, &other_id, &other_token, "organization", json!({"organization_type": "small_business", "industry": "technology", "employee_count": "11-50", "cloud_environments": ["azure"]})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/signup/sessions/{other_id}"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "abandoned");
    let (status, v) = step(
        &app,
        &other_id,
        &other_token,
        "azure_connection",
        json!({"azure_tenant_id": TENANT, "subscription_ids": "s"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("signup_finished")),
        "{v}"
    );
    // Abandonment tracking: the funnel shows where it was left.
    let (_, funnel) = status_and_json(
        app.get("/api/v1/signups/funnel", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(funnel["started"], 2, "{funnel}");
    let azure = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "azure_connection")
        .unwrap();
    assert_eq!(azure["abandoned"], 1, "{funnel}");

    // The first prospect comes back later (a new browser): the resume token opens the session
    // with its answers, and the wizard goes on where it stopped.
    let (status, resumed) = send(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/signup/sessions/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let org = resumed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "organization")
        .unwrap();
    assert_eq!(
        org["answers"]["cloud_environments"],
        json!(["azure", "aws"])
    );
    assert_eq!(org["done"], true);
    for (name, data) in [
        (
            "feature_selection",
            json!({"features": ["policy_compliance", "cost_optimization", "security_posture"]}),
        ),
        ("initial_scan", json!({"scan_scope": "all_subscriptions"})),
        (
            "user_invites",
            json!({"invite_emails": "sam@acme-corp.example; Lee@ACME-corp.example, partner@consultancy.example"}),
        ),
        (
            "configuration",
            json!({"timezone": "America/New_York", "notification_email": "alerts@acme-corp.example"}),
        ),
    ] {
        let (status, v) = step(&app, &id, &token, name, data).await;
        assert_eq!(status, StatusCode::OK, "{name}: {v}");
    }
    // A bad invitation list names the bad address.
    let (status, v) = step(
        &app,
        &id,
        &token,
        "user_invites",
        json!({"invite_emails": "sam@acme-corp.example, not-an-email"}),
    )
    .await;
    assert_eq!(
        (
            status,
            v["errors"][0]["field"].as_str(),
            v["errors"][0]["code"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("data.invite_emails"),
            Some("invalid_email")
        ),
        "{v}"
    );
    let (status, v) = step(
        &app,
        &id,
        &token,
        "completion",
        json!({"accept_terms": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["progress"],
        json!({"done": 8, "total": 8, "percent": 100})
    );

    // Completion needs the verified email: the code from the mail.
    crate::email::deliver(&jobs).await;
    // (The abandoned session's code was never sent: it no longer applied.)
    let mail = sink.wait_for(1);
    let verification = mail
        .iter()
        .find(|m| m.rcpt_tos == ["user@acme-corp.example"])
        .unwrap();
    let code = crate::email::code_in(verification);
    let (status, v) = send(
        &app,
        post.clone(),
        &format!("/api/v1/signup/sessions/{id}/verify"),
        Some(&token),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = send(
        &app,
        post.clone(),
        &format!("/api/v1/signup/sessions/{id}/complete"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["status"], "approved",
        "open mode: a clean signup is approved by the policy"
    );

    // The customer, on the Professional template's plan, with its organization's answers.
    let (_, detail) = status_and_json(
        app.get(&format!("/api/v1/signups/{id}"), &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let customer_id = detail["customer_id"].as_str().unwrap().to_owned();
    let (_, customer) = status_and_json(
        app.get(&format!("/api/v1/customers/{customer_id}"), &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(customer["usage_tier"], "professional", "{customer}");
    assert_eq!(customer["industry"], "finance");
    assert_eq!(customer["attributes"]["organization_type"], "enterprise");
    assert_eq!(customer["status"], "active");

    // User Invites: the owner, and the two colleagues at the signup's domain invited as members
    // (the outside address is left for the owner to invite from the portal).
    let (_, users) = status_and_json(
        app.get(
            &format!("/api/v1/customers/{customer_id}/users"),
            &app.viewer,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let people: Vec<(&str, &str, &str)> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap(),
                u["role"].as_str().unwrap(),
                u["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        people,
        [
            ("user@acme-corp.example", "owner", "active"),
            ("sam@acme-corp.example", "member", "invited"),
            ("Lee@ACME-corp.example", "member", "invited"),
        ]
    );
    crate::email::deliver(&jobs).await;
    let mail = sink.wait_for(5);
    let invited: Vec<&str> = mail
        .iter()
        .filter(|m| m.subject == "You are invited to Acme Corp on PolicyCortex")
        .map(|m| m.rcpt_tos[0].as_str())
        .collect();
    assert_eq!(invited.len(), 2, "{invited:?}");
    assert!(mail
        .iter()
        .any(|m| m.subject == "Welcome to PolicyCortex, Acme Corp"));
    // The resume token is spent with the completion.
    let (status, _) = send(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/signup/sessions/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Thirty days on, the abandoned session is deleted with its answers and its delivery log
    // rows; the approved one stays with its customer.
    clock.advance(chrono::Duration::days(31));
    jobs.run_now("signups.purge").await.unwrap();
    assert!(app
        .services
        .store
        .signup(&other_id)
        .await
        .unwrap()
        .is_none());
    assert!(app.services.store.signup(&id).await.unwrap().is_some());
    let (_, log) = status_and_json(
        app.get(&format!("/api/v1/emails?signup_id={other_id}"), &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(log["items"], json!([]), "{log}");
}

on_both_backends!(policycortex_wizard_replays, policycortex_plans_replay);

/// The seed's plans and trials, on a test clock: a 30-day trial extended twice and refused a
/// third time, converted to Professional on the annual cycle at 17% off, upgraded to
/// Enterprise mid-cycle with the proration previewed and then charged to the second, and a
/// downgrade scheduled for the period's end that the renewal applies.
async fn policycortex_plans_replay(backend: Backend) {
    let product = Product::load(&common::repo_path(PRODUCT)).unwrap();
    let app = TestApp::start_with(backend, product).await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let op = app.operator.clone();
    let (_, clock) = send(
        &app,
        post.clone(),
        "/api/v1/test-clocks",
        Some(&op),
        Some(json!({"frozen_time": "2026-03-01T00:00:00Z", "name": "policycortex plans"})),
    )
    .await;
    let clock_id = clock["test_clock_id"].as_str().unwrap().to_owned();
    let advance = |to: &'static str| {
        let (app, path, op) = (
            &app,
            format!("/api/v1/test-clocks/{clock_id}/advance"),
            op.clone(),
        );
        async move {
            let (status, body) = send(
                app,
                reqwest::Method::POST,
                &path,
                Some(&op),
                Some(json!({"to": to})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let (status, created) = app
        .onboard(&json!({
            "customer_id": "contoso", "customer_name": "Contoso Ltd", "industry": "technology",
            "attributes": {"organization_type": "enterprise", "country": "US"},
            "test_clock_id": clock_id,
        }))
        .await;
    assert_eq!(status, 201, "{created}");

    // POST /api/v1/trials/{tenant_id}/start {"plan_id": "professional", "trial_days": 30}
    let (status, trial) = send(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/trial",
        Some(&op),
        Some(json!({"plan": "professional", "days": 30})),
    )
    .await;
    assert_eq!(status, 201, "{trial}");
    assert_eq!(trial["status"], "active");
    assert_eq!(trial["ends_at"], "2026-03-31T00:00:00Z");
    assert_eq!(trial["extensions_left"], 2);
    assert_eq!(
        trial["limits"],
        json!({"api_calls": 100000, "resources": 1000, "users": 25})
    );

    // Two extensions, then the third refused with nothing changed.
    let extend = |days: i64| {
        let app = &app;
        let op = op.clone();
        async move {
            send(
                app,
                reqwest::Method::POST,
                "/api/v1/customers/contoso/trial/extend",
                Some(&op),
                Some(json!({"days": days, "reason": "security review"})),
            )
            .await
        }
    };
    let (status, trial) = extend(14).await;
    assert_eq!(
        (status.as_u16(), trial["ends_at"].as_str()),
        (200, Some("2026-04-14T00:00:00Z"))
    );
    let (status, trial) = extend(10).await;
    assert_eq!(
        (status.as_u16(), trial["ends_at"].as_str()),
        (200, Some("2026-04-24T00:00:00Z"))
    );
    assert_eq!(trial["extensions_left"], 0);
    let before = app.snapshot().await;
    let (status, problem) = extend(5).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("no_extensions_left"))
    );
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("2 extension(s)"));
    assert_eq!(app.snapshot().await, before);

    // Converted to Professional, annual at 17% off: 12 × $499 less 17% = $4,970.04.
    advance("2026-04-10T00:00:00Z").await;
    let before = app.snapshot().await;
    for (body, field) in [
        (json!({"plan": "professional", "cycle": "weekly"}), "cycle"),
        (json!({"plan": "free", "cycle": "annual"}), "cycle"),
        (json!({"plan": "gold", "cycle": "annual"}), "plan"),
        (
            json!({"plan": "professional", "cycle": "annual", "currency": "EUR"}),
            "currency",
        ),
    ] {
        let (status, problem) = send(
            &app,
            post.clone(),
            "/api/v1/customers/contoso/trial/convert",
            Some(&op),
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(app.snapshot().await, before);
    let (status, sub) = send(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/trial/convert",
        Some(&op),
        Some(json!({"plan": "professional", "cycle": "annual"})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["plan"], "professional");
    assert_eq!(sub["cycle"], "annual");
    assert_eq!(sub["price_per_period"], 497_004);
    assert_eq!(sub["currency"], "USD");
    assert_eq!(sub["current_period_start"], "2026-04-10T00:00:00Z");
    assert_eq!(sub["renews_at"], "2027-04-10T00:00:00Z");
    assert_eq!(sub["trial_id"], trial["trial_id"]);
    assert_eq!(sub["available_actions"], json!(["change", "cancel"]));
    let (_, trial) = send(
        &app,
        get.clone(),
        "/api/v1/customers/contoso/trial",
        Some(&op),
        None,
    )
    .await;
    assert_eq!(
        (trial["status"].as_str(), &trial["next"]),
        (Some("converted"), &Value::Null)
    );
    let (status, problem) = send(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/trial/convert",
        Some(&op),
        Some(json!({"plan": "starter", "cycle": "monthly"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");

    // Usage on Professional: 850 governed resources pass the 80% soft threshold; the hard
    // limit of 1,000 blocks the 1,001st; API calls past 100,000 accrue overage at $0.10.
    let (status, r) = send(
        &app,
        post.clone(),
        "/api/v1/usage",
        Some(&op),
        Some(json!({"events": [
            {"event_id": "scan-1", "metric": "resources", "value": 850, "customer_id": "contoso"},
            {"event_id": "api-1", "metric": "api_calls", "value": 120000, "customer_id": "contoso"},
        ]})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), r["accepted"].as_u64()),
        (200, Some(2)),
        "{r}"
    );
    let check = |metric: &'static str, amount: i64| {
        let (app, op) = (&app, op.clone());
        async move {
            send(
                app,
                reqwest::Method::POST,
                "/api/v1/entitlements/check",
                Some(&op),
                Some(json!({"customer_id": "contoso", "metric": metric, "amount": amount})),
            )
            .await
            .1
        }
    };
    let e = check("resources", 900).await;
    assert_eq!(
        (e["allowed"].as_bool(), e["soft_exceeded"].as_bool()),
        (Some(true), Some(true)),
        "{e}"
    );
    let e = check("resources", 1001).await;
    assert_eq!(
        (e["allowed"].as_bool(), e["limit"].as_i64()),
        (Some(false), Some(1000)),
        "{e}"
    );
    let e = check("api_calls", 1).await;
    assert_eq!(
        (e["allowed"].as_bool(), e["overage"].as_i64()),
        (Some(true), Some(20000)),
        "{e}"
    );
    let (_, usage) = send(
        &app,
        get.clone(),
        "/api/v1/customers/contoso/usage",
        Some(&op),
        None,
    )
    .await;
    let calls = crate::billing::metric_line(&usage, "api_calls");
    assert_eq!(
        calls["overage_amount"],
        json!({"USD": 200000}),
        "20,000 calls at $0.10"
    );

    // Mid-cycle (183 of 365 days gone) the upgrade to Enterprise is previewed, then made:
    // the 182 unused days credited at $4,970.04 a year, charged at $24,890.04.
    advance("2026-10-10T00:00:00Z").await;
    let (status, preview) = send(
        &app,
        get.clone(),
        "/api/v1/customers/contoso/subscription/preview?plan=enterprise&cycle=annual",
        Some(&op),
        None,
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    let amounts: Vec<i64> = preview["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [-247_821, 1_241_092]);
    assert_eq!(preview["total"], 1_241_092 - 247_821);
    assert_eq!(preview["lines"][0]["from"], "2026-10-10T00:00:00Z");
    assert_eq!(preview["lines"][0]["to"], "2027-04-10T00:00:00Z");
    let (status, problem) = send(
        &app,
        get.clone(),
        "/api/v1/customers/contoso/subscription/preview?plan=professional&cycle=annual",
        Some(&op),
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("subscription_unchanged"))
    );
    let (status, sub) = send(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/subscription/change",
        Some(&op),
        Some(json!({"plan": "enterprise", "cycle": "annual", "when": "now"})),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(
        (sub["plan"].as_str(), sub["price_per_period"].as_i64()),
        (Some("enterprise"), Some(2_489_004))
    );
    assert_eq!(
        sub["renews_at"], "2027-04-10T00:00:00Z",
        "same cycle, same periods"
    );

    // A downgrade to Starter at the period's end; the renewal applies it.
    let (status, sub) = send(
        &app,
        post.clone(),
        "/api/v1/customers/contoso/subscription/change",
        Some(&op),
        Some(json!({"plan": "starter", "when": "period_end"})),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["plan"], "enterprise");
    assert_eq!(
        sub["pending_change"],
        json!({"kind": "change", "plan": "starter", "cycle": "annual"})
    );
    let moved = advance("2027-05-01T00:00:00Z").await;
    assert_eq!(moved["work_done"], 1);
    let (_, sub) = send(
        &app,
        get.clone(),
        "/api/v1/customers/contoso/subscription",
        Some(&op),
        None,
    )
    .await;
    assert_eq!(
        (sub["plan"].as_str(), sub["price_per_period"].as_i64()),
        (Some("starter"), Some(98_604))
    );
    assert_eq!(sub["current_period_start"], "2027-04-10T00:00:00Z");
    assert_eq!(sub["pending_change"], Value::Null);

    let (_, events) = send(
        &app,
        get.clone(),
        "/api/v1/customers/contoso/audit",
        Some(&op),
        None,
    )
    .await;
    let billing: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("subscription."))
        .collect();
    let types: Vec<&str> = billing
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "subscription.created",
            "subscription.changed",
            "subscription.change_scheduled",
            "subscription.renewed"
        ]
    );
    assert_eq!(billing[0]["payload"]["total"], 497_004);
    assert_eq!(billing[1]["payload"]["total"], 1_241_092 - 247_821);
    assert_eq!(billing[1]["payload"]["from_plan"], "professional");
    assert_eq!(billing[3]["payload"]["from_plan"], "enterprise");
    assert_eq!(billing[3]["payload"]["at"], "2027-04-10T00:00:00Z");
    assert_eq!(billing[3]["payload"]["total"], 98_604);
}
