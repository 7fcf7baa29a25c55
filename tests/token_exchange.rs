//! Token exchange and tenant routes, as seed 003's troubleshooting table says: 401 for a missing,
//! malformed, unknown, revoked or expired key or token; 403 for a valid one without the scope;
//! a token never reaches another customer's data. Both backends.

mod common;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use common::{Backend, TestApp};

async fn app(backend: Backend) -> TestApp {
    let toml = format!(
        "{}\n[credentials.exchange_key]\ndescription = \"Exchange API key\"\n",
        include_str!("../src/product/builtin.toml")
    );
    let product = onramp::product::Product::from_toml(&toml, "tokens", None).unwrap();
    let app = TestApp::start_with(backend, product).await;
    for id in ["acme_corp", "beta_inc"] {
        let r = app
            .post(
                "/api/v1/customers",
                &app.operator,
                &json!({"customer_id": id, "customer_name": id, "industry": "other"}),
            )
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
    let r = app
        .post(
            &format!("/api/v1/customers/{customer}/integration-keys"),
            &app.operator,
            &json!({"name": "k", "scopes": scopes}),
        )
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    (
        v["secret"].as_str().unwrap().to_owned(),
        v["key"]["key_id"].as_str().unwrap().to_owned(),
    )
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

on_both_backends!(
    keys_buy_tokens_and_tokens_reach_only_their_customer,
    bad_keys_and_tokens_are_401,
);
