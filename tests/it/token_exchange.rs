//! Token exchange and tenant routes, as seed 003's troubleshooting table says: 401 for a missing,
//! malformed, unknown, revoked or expired key or token; 403 for a valid one without the scope;
//! a token never reaches another customer's data. Both backends.

use crate::common;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{Backend, TestApp};
use onramp::interfaces::http::limits::Quotas;
use onramp::interfaces::http::ServeOptions;

async fn app(backend: Backend) -> TestApp {
    app_serving(backend, ServeOptions::default()).await
}

/// Two customers, `acme_corp` and `beta_inc`, each with an `exchange_key` credential.
async fn app_serving(backend: Backend, options: ServeOptions) -> TestApp {
    let toml = format!(
        "{}\n[credentials.exchange_key]\ndescription = \"Exchange API key\"\n",
        include_str!("../../src/product/builtin.toml")
    );
    let product = onramp::product::Product::from_toml(&toml, "tokens", None).unwrap();
    let db = common::TestDb::new(backend).await;
    let runner = onramp::services::RunnerOptions::new(db.data_dir());
    let app = TestApp::start_serving(db, product, runner, options).await;
    for id in ["acme_corp", "beta_inc"] {
        let r = app
            .onboard_request(&json!({"customer_id": id, "customer_name": id, "industry": "other"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = app
            .client
            .put(app.url(&format!("/api/v1/customers/{id}/credentials/exchange_key")))
            .bearer_auth(&app.operator)
            .json(&json!({"value": format!("value-of-{id}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    app
}

async fn key(app: &TestApp, customer: &str, scopes: &[&str]) -> (String, String) {
    key_with(app, customer, scopes, &[]).await
}

async fn exchange(app: &TestApp, api_key: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url("/api/v1/auth/token/integration"));
    if let Some(k) = api_key {
        req = req.header("x-api-key", k);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn get_as(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let r = app.get(path, token).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn forged(app: &TestApp, alg: Algorithm, key: &[u8], claims: Value) -> String {
    let _ = app;
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
}

async fn keys_buy_tokens_and_tokens_reach_only_their_customer(backend: Backend) {
    let app = app(backend).await;
    let (reader, _) = key(&app, "acme_corp", &["credentials:read", "jobs:read"]).await;
    let (plain, _) = key(&app, "acme_corp", &["jobs:read"]).await;

    let (s, grant) = exchange(&app, Some(&reader)).await;
    assert_eq!(s, StatusCode::OK, "{grant}");
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["expires_in"], 900);
    assert_eq!(grant["scope"], "credentials:read jobs:read");
    let token = grant["access_token"].as_str().unwrap().to_owned();

    let (s, me) = get_as(&app, "/api/v1/me", &token).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["customer_id"], "acme_corp");
    assert_eq!(me["scopes"], json!(["credentials:read", "jobs:read"]));

    // Its own credential, with the scope: yes. Another customer's: 403. Without the scope: 403.
    let (s, v) = get_as(
        &app,
        "/api/v1/customers/acme_corp/credentials/exchange_key/value",
        &token,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"], "value-of-acme_corp");
    let (s, p) = get_as(
        &app,
        "/api/v1/customers/beta_inc/credentials/exchange_key/value",
        &token,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    assert!(!p.to_string().contains("value-of-beta_inc"));
    let plain_token = exchange(&app, Some(&plain)).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, p) = get_as(
        &app,
        "/api/v1/customers/acme_corp/credentials/exchange_key/value",
        &plain_token,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(p["code"], "insufficient_scope");

    // Tokens are not admin tokens, and admin tokens are not tenant tokens.
    let (s, _) = get_as(&app, "/api/v1/customers", &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = get_as(&app, "/api/v1/me", &app.admin).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The read is in the event log, by the key.
    let audit = app
        .get("/api/v1/customers/acme_corp/audit", &app.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("key:"), "{audit}");
}

async fn bad_keys_and_tokens_are_401(backend: Backend) {
    let app = app(backend).await;
    let (good, key_id) = key(&app, "acme_corp", &["jobs:read"]).await;

    // The exchange: missing, malformed, unknown, revoked.
    assert_eq!(exchange(&app, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        exchange(&app, Some("hello")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let unknown = good.replacen(&key_id, "0123456789abcdef", 1);
    let (s, p) = exchange(&app, Some(&unknown)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(p["code"], "unauthorized");
    let token = exchange(&app, Some(&good)).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .delete(app.url(&format!(
            "/api/v1/customers/acme_corp/integration-keys/{key_id}"
        )))
        .bearer_auth(&app.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        exchange(&app, Some(&good)).await.0,
        StatusCode::UNAUTHORIZED,
        "revocation takes effect at once"
    );

    // Tokens: missing, garbage, unsigned, another algorithm, another key, another issuer, expired.
    let r = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get_as(&app, "/api/v1/me", "not.a.token").await.0,
        StatusCode::UNAUTHORIZED
    );
    let signing = app.services.key_hash.derive("onramp/tenant-jwt/v1");
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, exp: i64| json!({"iss": iss, "sub": "acme_corp", "key_id": key_id, "scope": "jobs:read", "adapters": [], "iat": now, "exp": exp, "jti": "x"});
    // The real key, as a sanity check that forging works at all.
    let real = forged(&app, Algorithm::HS256, &signing, claims("onramp", now + 60));
    assert_eq!(get_as(&app, "/api/v1/me", &real).await.0, StatusCode::OK);
    let parts: Vec<&str> = real.split('.').collect();
    use base64::Engine;
    let none_header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for bad in [
        format!("{none_header}.{}.", parts[1]),
        format!("{none_header}.{}", parts[1]),
        forged(&app, Algorithm::HS512, &signing, claims("onramp", now + 60)),
        forged(
            &app,
            Algorithm::HS256,
            b"another-key-entirely-32-bytes-long!",
            claims("onramp", now + 60),
        ),
        forged(
            &app,
            Algorithm::HS256,
            &signing,
            claims("someone-else", now + 60),
        ),
        forged(
            &app,
            Algorithm::HS256,
            &signing,
            claims("onramp", now - 120),
        ),
        format!("{}.{}.{}", parts[0], parts[1], "AAAA"),
    ] {
        let (s, p) = get_as(&app, "/api/v1/me", &bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}: {p}");
    }
    // A token lives its minutes even after its key is revoked.
    assert_eq!(get_as(&app, "/api/v1/me", &token).await.0, StatusCode::OK);
}

async fn key_with(
    app: &TestApp,
    customer: &str,
    scopes: &[&str],
    adapters: &[&str],
) -> (String, String) {
    let r = app
        .post(
            &format!("/api/v1/customers/{customer}/integration-keys"),
            &app.operator,
            &json!({"name": "k", "scopes": scopes, "allowed_adapters": adapters}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    (
        v["secret"].as_str().unwrap().to_owned(),
        v["key"]["key_id"].as_str().unwrap().to_owned(),
    )
}

async fn token_of(app: &TestApp, secret: &str) -> String {
    let (s, grant) = exchange(app, Some(secret)).await;
    assert_eq!(s, StatusCode::OK, "{grant}");
    grant["access_token"].as_str().unwrap().to_owned()
}

async fn the_exchange_is_rate_limited_per_key_and_per_address(backend: Backend) {
    let options = ServeOptions {
        exchange_limits: Quotas {
            per_key_per_minute: 3,
            per_address_per_minute: 8,
        },
        ..Default::default()
    };
    let app = app_serving(backend, options).await;
    let (a, a_id) = key(&app, "acme_corp", &["jobs:read"]).await;
    let (b, _) = key(&app, "beta_inc", &["jobs:read"]).await;
    let (c, _) = key(&app, "beta_inc", &["jobs:read"]).await;

    for _ in 0..3 {
        assert_eq!(exchange(&app, Some(&a)).await.0, StatusCode::OK);
    }
    let r = app
        .client
        .post(app.url("/api/v1/auth/token/integration"))
        .header("x-api-key", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "rate_limited");
    assert!(p["detail"].as_str().unwrap().contains("key"), "{p}");

    // Guesses at the key's secret spend the same quota: a well-formed key with A's id and
    // another secret is refused before any look-up.
    let guess = onramp::domain::integration_key::format_key(&a_id, &"0".repeat(64));
    assert_eq!(
        exchange(&app, Some(&guess)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let before = app.snapshot().await;

    // Other keys still work from this address until its own quota (8) is spent.
    for _ in 0..3 {
        assert_eq!(exchange(&app, Some(&b)).await.0, StatusCode::OK);
    }
    let (s, p) = exchange(&app, Some(&c)).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(p["detail"].as_str().unwrap().contains("address"), "{p}");
    let (s, _) = exchange(&app, None).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "a missing key spends the address quota too"
    );
    // Refusals change nothing: the store is as it was but for B's uses.
    let after = app.snapshot().await;
    assert_eq!(before.customers, after.customers);
}

async fn rotate_own(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .client
        .post(app.url("/api/v1/me/integration-key/rotate"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn key_view(app: &TestApp, customer: &str, key_id: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/customers/{customer}/integration-keys"),
            &app.viewer,
        )
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .unwrap()
        .clone()
}

async fn a_replayed_rotation_is_refused_and_changes_nothing(backend: Backend) {
    let app = app(backend).await;
    let (s1, key_id) = key(&app, "acme_corp", &["keys:rotate", "jobs:read"]).await;
    let t1 = token_of(&app, &s1).await;

    // Without the scope: 403.
    let (plain, _) = key(&app, "acme_corp", &["jobs:read"]).await;
    let (s, p) = rotate_own(&app, &token_of(&app, &plain).await, json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    // The first rotation works and returns the new secret once.
    let (s, rotated) = rotate_own(&app, &t1, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let s2 = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(s2, s1);
    let after_first = key_view(&app, "acme_corp", &key_id).await;
    let snapshot = app.snapshot().await;

    // The same request again (a replay): 409, and the key is as the first rotation left it.
    let (s, p) = rotate_own(&app, &t1, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["code"], "key_changed");
    assert!(!p.to_string().contains(&s2));
    assert_eq!(key_view(&app, "acme_corp", &key_id).await, after_first);
    assert_eq!(app.snapshot().await.events, snapshot.events);
    assert_eq!(exchange(&app, Some(&s2)).await.0, StatusCode::OK);
    assert_eq!(exchange(&app, Some(&s1)).await.0, StatusCode::UNAUTHORIZED);

    // A token from the old secret during a grace period may not rotate either.
    let t2 = token_of(&app, &s2).await;
    let (s, graced) = rotate_own(&app, &t2, json!({"grace_seconds": 300})).await;
    assert_eq!(s, StatusCode::OK, "{graced}");
    let s3 = graced["secret"].as_str().unwrap().to_owned();
    let t_old = token_of(&app, &s2).await;
    let (s, p) = rotate_own(&app, &t_old, json!({})).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("key_changed"))
    );

    // Two rotations racing with one token: exactly one wins.
    let t3 = token_of(&app, &s3).await;
    let (x, y) = tokio::join!(
        rotate_own(&app, &t3, json!({})),
        rotate_own(&app, &t3, json!({}))
    );
    let mut statuses = [x.0, y.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} {}",
        x.1,
        y.1
    );
    let winner = if x.0 == StatusCode::OK { x.1 } else { y.1 };
    assert_eq!(
        exchange(&app, Some(winner["secret"].as_str().unwrap()))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(exchange(&app, Some(&s3)).await.0, StatusCode::UNAUTHORIZED);

    // Bad input changes nothing.
    let t4 = token_of(&app, winner["secret"].as_str().unwrap()).await;
    let before = key_view(&app, "acme_corp", &key_id).await;
    let (s, p) = rotate_own(&app, &t4, json!({"grace_seconds": 10_000_000})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "grace_seconds");
    assert_eq!(key_view(&app, "acme_corp", &key_id).await, before);
}

async fn upload(app: &TestApp, token: &str, adapter: &str, csv: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/me/uploads/{adapter}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn count(app: &TestApp, customer: &str, table: &str) -> i64 {
    let r = app
        .post(
            &format!("/api/v1/customers/{customer}/query"),
            &app.viewer,
            &json!({"sql": format!("SELECT count(*) AS n FROM {table}")}),
        )
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["rows"][0][0].as_i64().unwrap_or_else(|| panic!("{v}"))
}

async fn uploads_need_the_adapter_and_its_scope(backend: Backend) {
    let app = app(backend).await;
    let (secret, _) = key_with(&app, "acme_corp", &["data:upload"], &["conversions-csv"]).await;
    let token = token_of(&app, &secret).await;
    let (me_secret, _) = key_with(&app, "acme_corp", &["jobs:read"], &["conversions-csv"]).await;
    let no_scope = token_of(&app, &me_secret).await;

    let csv = "conversion_id,occurred_at,source,value,currency\n\
               c-1,2026-01-31T09:30:00Z,google_ads,12.50,USD\n\
               c-2,2026-02-01 10:00:00,meta,3,EUR\n";
    let (s, receipt) = upload(&app, &token, "conversions-csv", csv).await;
    assert_eq!(s, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["rows_loaded"], 2);
    assert_eq!(receipt["table"], "conversions");
    assert_eq!(receipt["customer_id"], "acme_corp");
    assert_eq!(count(&app, "acme_corp", "conversions").await, 2);
    assert_eq!(count(&app, "beta_inc", "conversions").await, 0);
    let r = app
        .post(
            "/api/v1/customers/acme_corp/query",
            &app.viewer,
            &json!({"sql": "SELECT conversion_id, value FROM conversions ORDER BY conversion_id"}),
        )
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["rows"][0][0], "c-1");
    assert_eq!(v["rows"][0][1].as_f64(), Some(12.5), "{v}");
    assert_eq!(v["rows"][1][1].as_f64(), Some(3.0), "{v}");

    // The adapter not in the key's allowed_adapters: 403, nothing loaded.
    let metrics = "date,source,impressions\n2026-01-31,google_ads,100\n";
    let (s, p) = upload(&app, &token, "daily-metrics-csv", metrics).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("adapter_not_allowed")),
        "{p}"
    );
    assert_eq!(count(&app, "acme_corp", "daily_metrics").await, 0);
    // The adapter allowed but not the scope: 403.
    let (s, p) = upload(&app, &no_scope, "conversions-csv", csv).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
    // No such adapter: 404. No token: 401.
    let (s, p) = upload(&app, &token, "nope", csv).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("adapter_not_found"))
    );
    let r = app
        .client
        .post(app.url("/api/v1/me/uploads/conversions-csv"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A file with a bad row loads nothing, and every problem is named by row and column.
    let before = app.snapshot().await;
    let bad =
        "conversion_id,value,occurred_at\nc-3,1.00,2026-01-31T00:00:00Z\nc-4,lots,yesterday\n";
    let (s, p) = upload(&app, &token, "conversions-csv", bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["rows[2].value", "rows[2].occurred_at"]);
    let (s, p) = upload(
        &app,
        &token,
        "conversions-csv",
        "conversion_id,password\nx,y\n",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["code"], "unknown_column");
    let r = app
        .client
        .post(app.url("/api/v1/me/uploads/conversions-csv"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(count(&app, "acme_corp", "conversions").await, 2);
    assert_eq!(app.snapshot().await, before);

    // The load is in the event log, by the key.
    let audit = app
        .get("/api/v1/customers/acme_corp/audit", &app.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("dataset.uploaded"), "{audit}");
}

on_both_backends!(
    keys_buy_tokens_and_tokens_reach_only_their_customer,
    bad_keys_and_tokens_are_401,
    the_exchange_is_rate_limited_per_key_and_per_address,
    a_replayed_rotation_is_refused_and_changes_nothing,
    uploads_need_the_adapter_and_its_scope,
);
