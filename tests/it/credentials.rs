//! The credentials vault through the API, on both backends: encryption at rest (the raw database
//! is searched for the secret), tampered and moved ciphertexts, versions, live validation against
//! a real local provider endpoint, rotation deadlines, offboarding, and secrets kept out of every
//! response, event and log line.

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common;
use crate::common::cli::{onramp, Server};
use crate::common::{Backend, TestApp, TestDb};
use onramp::product::Product;

const GOOD: &str = "EAAgood7Xq2LmP9sTzR4";
const WITHDRAW: &str = "EAAwithdraw9KdP2mQ";
const EXPIRED: &str = "EAAexpired4HsL8pW";
const REFUSED: &str = "EAArefused3NcV5tY";

/// A provider's check endpoint: knows a few tokens, refuses the rest with 401.
async fn provider() -> String {
    async fn check(headers: HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse;
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let future = chrono::Utc::now().timestamp() + 86_400;
        let body = match auth.strip_prefix("Bearer ") {
            Some(GOOD) => {
                json!({"data": {"scopes": ["ads_read", "ads_management"], "expires_at": future}})
            }
            Some(WITHDRAW) => {
                json!({"data": {"scopes": ["ads_read", "withdraw"], "expires_at": future}})
            }
            Some(EXPIRED) => json!({"data": {"scopes": ["ads_read"], "expires_at": 1_000_000}}),
            _ => return (StatusCode::UNAUTHORIZED, "bad token").into_response(),
        };
        axum::Json(body).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/check", axum::routing::get(check));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/check")
}

fn product_toml(check_url: &str) -> String {
    format!(
        r#"{}
[credentials.meta_access_token]
description = "Meta Marketing API access token"
pattern = "^EAA[A-Za-z0-9]{{8,}}$"
rotation_days = 60
required_scopes = ["ads_read"]
forbidden_scopes = ["withdraw"]
check = {{ url = "{check_url}", scopes_pointer = "/data/scopes", expires_at_pointer = "/data/expires_at", timeout_ms = 2000 }}

[credentials.exchange_key]
description = "Exchange API key"
required = true
rotation_days = 1
forbidden_scopes = ["withdraw"]
"#,
        include_str!("../../src/product/builtin.toml").replace(
            r#""register", "provision_dataset""#,
            r#""register", "store_credentials", "provision_dataset""#
        )
    )
}

async fn app(backend: Backend) -> TestApp {
    let url = provider().await;
    let product = Product::from_toml(&product_toml(&url), "vault-test", None).unwrap();
    let app = TestApp::start_with(backend, product).await;
    let r = app
        .onboard_request(
            &json!({"customer_id": "acme_corp", "customer_name": "Acme", "industry": "other"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    app
}

async fn put(
    app: &TestApp,
    customer: &str,
    t: &str,
    body: Value,
    token: &str,
) -> (StatusCode, Value) {
    let r = app
        .client
        .put(app.url(&format!("/api/v1/customers/{customer}/credentials/{t}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let r = app.get(path, token).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn post(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let r = app.post(path, token, &json!({})).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Everything the registry holds, as text: every row of every table.
async fn raw_dump(app: &TestApp) -> String {
    let mut out = String::new();
    match app.db.backend {
        Backend::Sqlite => {
            // The database file and its write-ahead log, byte for byte.
            for entry in std::fs::read_dir(app.db.data_dir()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
            }
        }
        Backend::Postgres => {
            let url = app.db.database_url.as_deref().unwrap();
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'onramp'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for (t,) in tables {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT t::text FROM onramp.{t} t"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                for (r,) in rows {
                    out.push_str(&r);
                }
            }
        }
    }
    out
}

/// Runs one statement on the registry.
async fn raw_exec(app: &TestApp, sqlite: &str, postgres: &str) {
    match app.db.backend {
        Backend::Sqlite => {
            let path = app.db.data_dir().join("onramp.db");
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
                "sqlite://{}",
                path.display()
            ))
            .await
            .unwrap();
            sqlx::query(sqlite).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let url = app.db.database_url.as_deref().unwrap();
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            sqlx::query(postgres).execute(&mut conn).await.unwrap();
        }
    }
}

async fn stored_encrypted_and_read_by_admins_only(backend: Backend) {
    let app = app(backend).await;
    let (s, view) = put(
        &app,
        "acme_corp",
        "meta_access_token",
        json!({"value": GOOD}),
        &app.operator,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "unvalidated");
    assert_eq!(view["current_version"], 1);
    assert_eq!(view["display_name"], "onramp-acme_corp-meta_access_token");
    assert!(view["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert!(!view.to_string().contains(GOOD));
    let rotate_by: chrono::DateTime<chrono::Utc> =
        view["rotate_by"].as_str().unwrap().parse().unwrap();
    let days = (rotate_by - chrono::Utc::now()).num_days();
    assert!((59..=60).contains(&days), "{days}");

    // Metadata for viewers; the value for admins only, and every read is an event.
    let (s, list) = get(&app, "/api/v1/customers/acme_corp/credentials", &app.viewer).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.contains(GOOD));
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["missing_required"], json!(["exchange_key"]));
    for token in [&app.viewer, &app.operator] {
        let (s, body) = get(
            &app,
            "/api/v1/customers/acme_corp/credentials/meta_access_token/value",
            token,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(!body.contains(GOOD));
    }
    let (s, body) = get(
        &app,
        "/api/v1/customers/acme_corp/credentials/meta_access_token/value",
        &app.admin,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["value"], GOOD);
    assert_eq!(body["version"], 1);
    let (_, audit) = get(&app, "/api/v1/customers/acme_corp/audit", &app.admin).await;
    assert!(!audit.contains(GOOD), "the event log holds the secret");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let types: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(types.contains(&"credential.stored".to_owned()), "{types:?}");
    assert!(types.contains(&"credential.read".to_owned()), "{types:?}");

    // At rest: the secret is nowhere in the registry.
    let dump = raw_dump(&app).await;
    assert!(
        dump.contains("meta_access_token"),
        "the dump reads the vault's tables"
    );
    assert!(!dump.contains(GOOD), "the secret is stored in the clear");
}

async fn altered_or_moved_ciphertexts_do_not_decrypt(backend: Backend) {
    let app = app(backend).await;
    let r = app
        .onboard_request(
            &json!({"customer_id": "beta_inc", "customer_name": "Beta", "industry": "other"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        put(
            &app,
            "acme_corp",
            "meta_access_token",
            json!({"value": GOOD}),
            &app.operator
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        put(
            &app,
            "beta_inc",
            "meta_access_token",
            json!({"value": EXPIRED}),
            &app.operator
        )
        .await
        .0,
        StatusCode::OK
    );

    // Beta's row gets acme's sealed value: it must not open as beta's.
    raw_exec(
        &app,
        "UPDATE credential_versions SET (master_version, wrapped_key, key_nonce, ciphertext, nonce) = \
         (SELECT master_version, wrapped_key, key_nonce, ciphertext, nonce FROM credential_versions WHERE customer_id = 'acme_corp') \
         WHERE customer_id = 'beta_inc'",
        "UPDATE onramp.credential_versions b SET master_version = a.master_version, wrapped_key = a.wrapped_key, \
         key_nonce = a.key_nonce, ciphertext = a.ciphertext, nonce = a.nonce FROM onramp.credential_versions a \
         WHERE a.customer_id = 'acme_corp' AND b.customer_id = 'beta_inc'",
    )
    .await;
    let (s, body) = get(
        &app,
        "/api/v1/customers/beta_inc/credentials/meta_access_token/value",
        &app.admin,
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("credential_unreadable"));
    assert!(!body.contains(GOOD) && !body.contains(EXPIRED));

    // One flipped byte of acme's ciphertext: refused too.
    raw_exec(
        &app,
        "UPDATE credential_versions SET ciphertext = zeroblob(length(ciphertext)) WHERE customer_id = 'acme_corp'",
        "UPDATE onramp.credential_versions SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) WHERE customer_id = 'acme_corp'",
    )
    .await;
    let (s, body) = get(
        &app,
        "/api/v1/customers/acme_corp/credentials/meta_access_token/value",
        &app.admin,
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("credential_unreadable"));
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = app(backend).await;
    let before = app.snapshot().await;
    let cases = [
        (
            "meta_access_token",
            json!({"value": "1234567890abc"}),
            "value",
            "invalid_format",
        ),
        (
            "meta_access_token",
            json!({"value": ""}),
            "value",
            "required",
        ),
        (
            "meta_access_token",
            json!({"value": GOOD, "scopes": ["ads_read", "withdraw"]}),
            "scopes",
            "scope_not_allowed",
        ),
        (
            "meta_access_token",
            json!({"value": GOOD, "scopes": ["ads_management"]}),
            "scopes",
            "scope_not_allowed",
        ),
        (
            "paypal_password",
            json!({"value": GOOD}),
            "credential_type",
            "unknown_credential_type",
        ),
    ];
    for (t, body, field, code) in cases {
        let (s, p) = put(&app, "acme_corp", t, body.clone(), &app.operator).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {p}");
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{p}"
        );
        assert!(
            !p.to_string().contains("1234567890abc") && !p.to_string().contains(GOOD),
            "{p}"
        );
    }
    let (s, _) = put(
        &app,
        "acme_corp",
        "meta_access_token",
        json!({"value": GOOD}),
        &app.viewer,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = put(
        &app,
        "nobody",
        "meta_access_token",
        json!({"value": GOOD}),
        &app.operator,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
    let (s, p) = put(
        &app,
        "acme_corp",
        "meta_access_token",
        json!({"value": GOOD, "extra": 1}),
        &app.operator,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(app.snapshot().await, before);
    let (_, list) = get(&app, "/api/v1/customers/acme_corp/credentials", &app.viewer).await;
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap()["items"],
        json!([])
    );
}

async fn validated_against_the_provider(backend: Backend) {
    let app = app(backend).await;
    let path = "/api/v1/customers/acme_corp/credentials/meta_access_token/validate";
    let expect = |token: &'static str, status: &'static str, error: Option<&'static str>| {
        (token, status, error)
    };
    for (token, status, error) in [
        expect(GOOD, "active", None),
        expect(WITHDRAW, "invalid", Some("forbidden scope 'withdraw'")),
        expect(EXPIRED, "expired", Some("expired")),
        expect(REFUSED, "invalid", Some("HTTP 401")),
    ] {
        assert_eq!(
            put(
                &app,
                "acme_corp",
                "meta_access_token",
                json!({"value": token}),
                &app.operator
            )
            .await
            .0,
            StatusCode::OK
        );
        let (s, view) = post(&app, path, &app.operator).await;
        assert_eq!(s, StatusCode::OK, "{view}");
        assert_eq!(view["status"], status, "{token}: {view}");
        assert!(view["last_validated_at"].is_string());
        match error {
            None => {
                assert!(view["validation_error"].is_null(), "{view}");
                assert_eq!(view["scopes"], json!(["ads_read", "ads_management"]));
            }
            Some(e) => assert!(
                view["validation_error"].as_str().unwrap().contains(e),
                "{view}"
            ),
        }
        assert!(!view.to_string().contains(token));
    }
    // A type without a check endpoint says so.
    assert_eq!(
        put(
            &app,
            "acme_corp",
            "exchange_key",
            json!({"value": "k3y-abc"}),
            &app.operator
        )
        .await
        .0,
        StatusCode::OK
    );
    let (s, p) = post(
        &app,
        "/api/v1/customers/acme_corp/credentials/exchange_key/validate",
        &app.operator,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["code"], "no_check_configured");
}

async fn current_value(app: &TestApp, base: &str) -> (StatusCode, String) {
    get(app, &format!("{base}/value"), &app.admin).await
}

async fn versions_revocation_and_rotation(backend: Backend) {
    let app = app(backend).await;
    let base = "/api/v1/customers/acme_corp/credentials/meta_access_token";
    for token in [GOOD, EXPIRED, WITHDRAW] {
        put(
            &app,
            "acme_corp",
            "meta_access_token",
            json!({"value": token}),
            &app.operator,
        )
        .await;
    }
    assert!(current_value(&app, base).await.1.contains(WITHDRAW));
    let (s, v) = post(&app, &format!("{base}/versions/3/disable"), &app.operator).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(current_value(&app, base).await.1.contains(EXPIRED));
    let (s, v) = post(&app, &format!("{base}/versions/2/destroy"), &app.operator).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let states: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["version"].as_i64().unwrap(),
                x["state"].as_str().unwrap().to_owned(),
                x["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (1, "enabled".into(), true),
            (2, "destroyed".into(), false),
            (3, "disabled".into(), false)
        ]
    );
    assert!(current_value(&app, base).await.1.contains(GOOD));
    let (s, p) = post(&app, &format!("{base}/versions/2/enable"), &app.operator).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a destroyed version stays destroyed: {p}"
    );
    assert_eq!(p["code"], "invalid_version_state", "{p}");
    let (s, p) = post(&app, &format!("{base}/versions/1/explode"), &app.operator).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");

    // Rotation deadlines: exchange_key rotates daily.
    put(
        &app,
        "acme_corp",
        "exchange_key",
        json!({"value": "k3y-abc"}),
        &app.operator,
    )
    .await;
    let (_, due) = get(&app, "/api/v1/credentials/due?within_days=2", &app.viewer).await;
    let due: Value = serde_json::from_str(&due).unwrap();
    let types: Vec<_> = due["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["exchange_key"]);
    let (_, due) = get(&app, "/api/v1/credentials/due?within_days=0", &app.viewer).await;
    assert_eq!(
        serde_json::from_str::<Value>(&due).unwrap()["items"],
        json!([])
    );

    // Revocation with destroy: nothing readable, nothing left at rest.
    let r = app
        .client
        .delete(app.url(&format!("{base}?destroy=true")))
        .bearer_auth(&app.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["status"], "revoked");
    assert!(view["current_version"].is_null());
    assert_eq!(current_value(&app, base).await.0, StatusCode::NOT_FOUND);
    let (_, v) = get(&app, &format!("{base}/versions"), &app.viewer).await;
    let v: Value = serde_json::from_str(&v).unwrap();
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "destroyed"),
        "{v}"
    );
}

async fn offboarding_with_data_destroys_credentials(backend: Backend) {
    let app = app(backend).await;
    put(
        &app,
        "acme_corp",
        "meta_access_token",
        json!({"value": GOOD}),
        &app.operator,
    )
    .await;
    let (s, off) = post(&app, "/api/v1/customers/acme_corp/offboard", &app.operator).await;
    assert_eq!(s, StatusCode::OK, "{off}");
    // Without data: the credential stays.
    let (_, list) = get(&app, "/api/v1/customers/acme_corp/credentials", &app.viewer).await;
    assert!(list.contains("\"current_version\":1"), "{list}");
    let r = app
        .post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({"delete_data": true, "confirm": "acme_corp"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let off: Value = r.json().await.unwrap();
    assert_eq!(
        off["receipt"]["credentials_destroyed"],
        json!(["meta_access_token"])
    );
    assert!(!raw_dump(&app).await.contains(GOOD));
    let (_, audit) = get(&app, "/api/v1/customers/acme_corp/audit", &app.admin).await;
    assert!(audit.contains("credentials.destroyed"));
    let types = common::event_types(app.services.store.as_ref()).await;
    for t in [
        "credential.stored",
        "credentials.destroyed",
        "customer.offboarded",
    ] {
        assert!(types.contains(t), "no {t} event in {types:?}");
    }
}

/// A real `onramp serve` at debug level: no log line holds a secret it handled.
async fn secrets_never_reach_the_logs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let url = provider().await;
    let product = db.data_dir().join("product.toml");
    std::fs::write(&product, product_toml(&url)).unwrap();
    let product = product.display().to_string();
    let admin = onramp(
        &db,
        Some(&product),
        &[
            "admin", "token", "create", "--role", "admin", "--format", "json",
        ],
    )
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = Server::start_logging(&db, &product, "debug,sqlx=trace,tower_http=trace");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(&admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    call(
        reqwest::Method::POST,
        "/api/v1/customers",
        Some(json!({"customer_id": "acme_corp", "customer_name": "Acme", "industry": "other"})),
    )
    .await
    .unwrap();
    for token in [GOOD, REFUSED] {
        let r = call(
            reqwest::Method::PUT,
            "/api/v1/customers/acme_corp/credentials/meta_access_token",
            Some(json!({"value": token})),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        call(
            reqwest::Method::POST,
            "/api/v1/customers/acme_corp/credentials/meta_access_token/validate",
            Some(json!({})),
        )
        .await
        .unwrap();
    }
    let r = call(
        reqwest::Method::PUT,
        "/api/v1/customers/acme_corp/credentials/meta_access_token",
        Some(json!({"value": "notEAAformat-SECRET-9z"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(
        reqwest::Method::GET,
        "/api/v1/customers/acme_corp/credentials/meta_access_token/value",
        None,
    )
    .await
    .unwrap();
    assert!(r.text().await.unwrap().contains(REFUSED));
    let kept = server.logs.clone();
    server.kill();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = kept.lock().unwrap().join("\n");
    assert!(
        logs.contains("credentials"),
        "debug logs were captured: {} bytes",
        logs.len()
    );
    for secret in [GOOD, REFUSED, "notEAAformat-SECRET-9z"] {
        assert!(!logs.contains(secret), "a log line holds a secret");
    }
}

on_both_backends!(
    stored_encrypted_and_read_by_admins_only,
    altered_or_moved_ciphertexts_do_not_decrypt,
    bad_input_is_refused_and_changes_nothing,
    validated_against_the_provider,
    versions_revocation_and_rotation,
    offboarding_with_data_destroys_credentials,
    secrets_never_reach_the_logs,
    onboarding_stores_credentials_and_rollback_destroys_them,
);

/// The CLI: a value from stdin (never argv), listing, validation, rotation of the master key
/// with every data key rewrapped, and the value still opening afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_puts_from_stdin_and_rotates_the_master_key() {
    use std::io::Write;
    let db = TestDb::new(Backend::Sqlite).await;
    let url = provider().await;
    let product = db.data_dir().join("product.toml");
    std::fs::write(&product, product_toml(&url)).unwrap();
    let product = product.display().to_string();
    onramp(
        &db,
        Some(&product),
        &[
            "customers",
            "onboard",
            "acme_corp",
            "Acme",
            "--industry",
            "other",
        ],
    )
    .ok();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_onramp"))
        .args(db.cli_args())
        .args([
            "--product",
            &product,
            "credentials",
            "put",
            "acme_corp",
            "meta_access_token",
            "--format",
            "json",
        ])
        .env_remove("ONRAMP_MASTER_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{GOOD}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(stderr.contains("DEVELOPMENT MASTER KEY"), "{stderr}");
    assert!(!stdout.contains(GOOD) && !stderr.contains(GOOD));
    let rotated = onramp(&db, Some(&product), &["vault", "rotate-master-key"]).ok();
    assert!(
        rotated
            .stdout
            .contains("1 data key(s) rewrapped onto master key version 2"),
        "{}",
        rotated.stdout
    );
    let key_file = std::fs::read_to_string(db.data_dir().join("master.key")).unwrap();
    assert!(key_file.contains("v2:"));
    let v = onramp(
        &db,
        Some(&product),
        &[
            "credentials",
            "validate",
            "acme_corp",
            "meta_access_token",
            "--format",
            "json",
        ],
    )
    .ok();
    assert_eq!(v.json()[0]["status"], "active", "{}", v.stdout);
    let list = onramp(
        &db,
        Some(&product),
        &["credentials", "list", "acme_corp", "--format", "json"],
    )
    .ok();
    assert_eq!(list.json()["missing_required"], json!(["exchange_key"]));
    let bad = onramp(
        &db,
        Some(&product),
        &["credentials", "validate", "acme_corp", "nope"],
    );
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    // Production refuses the development key.
    let prod = onramp(
        &db,
        Some(&product),
        &["--production", "credentials", "list", "acme_corp"],
    );
    assert_eq!(prod.code, 7, "{}", prod.stderr);
    assert!(
        prod.stderr.contains("production mode needs a master key"),
        "{}",
        prod.stderr
    );
}

async fn onboarding_stores_credentials_and_rollback_destroys_them(backend: Backend) {
    let url = provider().await;
    let product = Product::from_toml(&product_toml(&url), "vault-test", None).unwrap();
    assert!(product.steps.contains(&"store_credentials".to_owned()));
    let db = TestDb::new(backend).await;
    let mut runner = onramp::services::RunnerOptions::new(db.data_dir());
    runner.faults =
        onramp::services::faults::FaultPlan::parse("verify_dataset@doomed=permanent").unwrap();
    let app = TestApp::start_on(db, product, runner).await;

    // A wrong-format credential refuses the whole onboarding, naming the field, changing nothing.
    let before = app.snapshot().await;
    let r = app
        .onboard_request(&json!({
            "customer_id": "acme_corp", "customer_name": "Acme", "industry": "other",
            "credentials": {"meta_access_token": "not-a-meta-token", "nope": "x1"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let p: Value = r.json().await.unwrap();
    assert!(!p.to_string().contains("not-a-meta-token"), "{p}");
    let fields: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["credentials.meta_access_token", "credentials.nope"],
        "{p}"
    );
    assert_eq!(app.snapshot().await, before);

    // Onboarding with credentials stores them in its store_credentials step.
    let r = app
        .onboard_request(&json!({
            "customer_id": "acme_corp", "customer_name": "Acme", "industry": "other",
            "credentials": {"meta_access_token": GOOD, "exchange_key": "k3y-abc"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert!(!body.to_string().contains(GOOD));
    assert_eq!(body["onboarding"]["is_success"], true, "{body}");
    let step = body["onboarding"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "store_credentials")
        .cloned()
        .unwrap();
    assert_eq!(step["status"], "succeeded");
    let (_, list) = get(&app, "/api/v1/customers/acme_corp/credentials", &app.viewer).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list["missing_required"], json!([]));
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["current_version"] == 1 && c["status"] == "unvalidated"));
    let (_, v) = get(
        &app,
        "/api/v1/customers/acme_corp/credentials/meta_access_token/value",
        &app.admin,
    )
    .await;
    assert!(v.contains(GOOD));

    // A run that fails after storing them rolls them back: nothing readable, nothing at rest.
    let r = app
        .onboard_request(&json!({
            "customer_id": "doomed", "customer_name": "Doomed", "industry": "other",
            "credentials": {"meta_access_token": WITHDRAW}
        }))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["onboarding"]["status"], "failed", "{body}");
    assert_eq!(body["customer"]["status"], "failed");
    let (_, list) = get(&app, "/api/v1/customers/doomed/credentials", &app.viewer).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "revoked" && c["current_version"].is_null()),
        "{list}"
    );
    let dump = raw_dump(&app).await;
    assert!(
        !dump.contains(WITHDRAW),
        "a rolled-back credential is still stored"
    );
    let (_, audit) = get(&app, "/api/v1/customers/doomed/audit", &app.admin).await;
    assert!(audit.contains("credentials.destroyed"), "{audit}");
}
