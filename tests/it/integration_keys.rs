//! Integration keys through the API, on both backends: the secret shown once and stored only as
//! an HMAC, checksum refusals without a look-up, rotation with and without grace, revocation and
//! expiry taking effect at once, offboarding revoking keys, and bad input changing nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::cli::onramp;
use crate::common::{Backend, TestApp, TestDb};

async fn app(backend: Backend) -> TestApp {
    let app = TestApp::start(backend).await;
    for id in ["acme_corp", "beta_inc"] {
        let r = app
            .onboard_request(&json!({"customer_id": id, "customer_name": id, "industry": "other"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    app
}

async fn issue(app: &TestApp, customer: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .post(
            &format!("/api/v1/customers/{customer}/integration-keys"),
            &app.operator,
            &body,
        )
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn verify(app: &TestApp, key: &str) -> Option<String> {
    app.services
        .keys
        .verify(key)
        .await
        .ok()
        .map(|k| k.customer_id)
}

async fn issued_once_and_stored_as_a_hash(backend: Backend) {
    let app = app(backend).await;
    let (s, issued) = issue(
        &app,
        "acme_corp",
        json!({"name": "Production CLI", "scopes": ["ship:upload", "ship:read", "jobs:read"],
               "allowed_adapters": ["conversions-csv"], "expires_at": null}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let secret = issued["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("onr_ik_"), "{secret}");
    let key_id = issued["key"]["key_id"].as_str().unwrap().to_owned();
    assert!(secret.contains(&key_id));
    assert_eq!(issued["key"]["status"], "active");
    assert_eq!(verify(&app, &secret).await.as_deref(), Some("acme_corp"));

    let r = app
        .get("/api/v1/customers/acme_corp/integration-keys", &app.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let secret_part = secret.split('_').nth(3).unwrap();
    assert!(!text.contains(secret_part));
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        list["items"][0]["scopes"],
        json!(["ship:upload", "ship:read", "jobs:read"])
    );
    assert!(
        list["items"][0]["last_used_at"].is_string(),
        "use is recorded: {list}"
    );

    // Not in the registry, not in the events.
    let (_, audit) = (
        (),
        app.get("/api/v1/customers/acme_corp/audit", &app.admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(audit.contains("integration_key.issued"));
    assert!(!audit.contains(secret_part));
    let snap = format!("{:?}", app.snapshot().await);
    assert!(!snap.contains(secret_part));

    // Typos, forgeries and other kinds of token never reach the database's answer.
    let mut flipped = secret.clone().into_bytes();
    let i = secret.len() - 20;
    flipped[i] = if flipped[i] == b'0' { b'1' } else { b'0' };
    for bad in [
        String::from_utf8(flipped).unwrap(),
        secret.replace("onr_ik_", "onr_at_"),
        app.admin.clone(),
        String::new(),
        "onr_ik_0000000000000000_".to_owned() + &"0".repeat(64) + "_00000000",
    ] {
        assert_eq!(verify(&app, &bad).await, None, "{bad}");
    }
}

async fn rotation_revocation_and_expiry(backend: Backend) {
    let app = app(backend).await;
    let (_, issued) = issue(
        &app,
        "acme_corp",
        json!({"name": "ci", "scopes": ["jobs:read"]}),
    )
    .await;
    let first = issued["secret"].as_str().unwrap().to_owned();
    let key_id = issued["key"]["key_id"].as_str().unwrap().to_owned();
    let rotate = |grace: u32| {
        app.post(
            &format!("/api/v1/customers/acme_corp/integration-keys/{key_id}/rotate"),
            &app.operator,
            &json!({"grace_seconds": grace}),
        )
        .send()
    };

    // With a grace period both secrets work; the key id stays.
    let r = rotate(3600).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rotated: Value = r.json().await.unwrap();
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(rotated["key"]["key_id"], key_id.as_str());
    assert!(rotated["key"]["previous_valid_until"].is_string());
    assert!(verify(&app, &first).await.is_some());
    assert!(verify(&app, &second).await.is_some());

    // Without one, only the new secret works, and the first is gone for good.
    let r = rotate(0).await.unwrap();
    let third = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(verify(&app, &first).await.is_none());
    assert!(verify(&app, &second).await.is_none());
    assert!(verify(&app, &third).await.is_some());

    // A grace period out of range is refused.
    let r = rotate(10_000_000).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(verify(&app, &third).await.is_some());

    // Revocation takes effect at once; a revoked key cannot be rotated back to life.
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
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "revoked");
    assert!(verify(&app, &third).await.is_none());
    let r = rotate(0).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "key_revoked");

    // Another customer's key id is not found through this customer.
    let r = app
        .post(
            &format!("/api/v1/customers/beta_inc/integration-keys/{key_id}/rotate"),
            &app.operator,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Expiry.
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (s, short) = issue(
        &app,
        "beta_inc",
        json!({"name": "short", "expires_at": soon}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{short}");
    let short = short["secret"].as_str().unwrap().to_owned();
    assert_eq!(verify(&app, &short).await.as_deref(), Some("beta_inc"));
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert!(verify(&app, &short).await.is_none());
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = app(backend).await;
    let before = app.snapshot().await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "scopes": ["Ship Upload"]}), "scopes[0]"),
        (
            json!({"name": "x", "scopes": ["jobs:read", "jobs:read"]}),
            "scopes[1]",
        ),
        (
            json!({"name": "x", "allowed_adapters": ["bad adapter!"]}),
            "allowed_adapters[0]",
        ),
        (
            json!({"name": "x", "allowed_adapters": ["conversions-csv", "no-such-adapter"]}),
            "allowed_adapters[1]",
        ),
        (
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let (s, p) = issue(&app, "acme_corp", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{p}"
        );
    }
    let r = app
        .post(
            "/api/v1/customers/acme_corp/integration-keys",
            &app.viewer,
            &json!({"name": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (s, _) = issue(&app, "nobody", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(app.snapshot().await, before);
}

async fn offboarding_revokes_keys(backend: Backend) {
    let app = app(backend).await;
    let (_, issued) = issue(&app, "acme_corp", json!({"name": "ci"})).await;
    let secret = issued["secret"].as_str().unwrap().to_owned();
    assert!(verify(&app, &secret).await.is_some());
    let r = app
        .post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(verify(&app, &secret).await.is_none());
    let list: Value = app
        .get("/api/v1/customers/acme_corp/integration-keys", &app.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["status"], "revoked");
}

on_both_backends!(
    issued_once_and_stored_as_a_hash,
    rotation_revocation_and_expiry,
    bad_input_is_refused_and_changes_nothing,
    offboarding_revokes_keys,
);

/// The CLI issues, lists, rotates and revokes; production refuses without KEY_HASH_SECRET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_keys() {
    let db = TestDb::new(Backend::Sqlite).await;
    onramp(
        &db,
        None,
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
    let issued = onramp(
        &db,
        None,
        &[
            "keys",
            "issue",
            "acme_corp",
            "--name",
            "ci",
            "--scopes",
            "jobs:read",
            "--format",
            "json",
        ],
    )
    .ok();
    let issued = issued.json();
    let key_id = issued["key"]["key_id"].as_str().unwrap().to_owned();
    assert!(issued["secret"].as_str().unwrap().starts_with("onr_ik_"));
    let list = onramp(
        &db,
        None,
        &["keys", "list", "acme_corp", "--format", "json"],
    )
    .ok();
    assert_eq!(list.json()[0]["key_id"], key_id.as_str());
    assert!(!list.stdout.contains(issued["secret"].as_str().unwrap()));
    let rotated = onramp(
        &db,
        None,
        &[
            "keys",
            "rotate",
            "acme_corp",
            &key_id,
            "--grace-seconds",
            "60",
        ],
    )
    .ok();
    assert!(
        rotated.stdout.lines().any(|l| l.starts_with("onr_ik_")),
        "{}",
        rotated.stdout
    );
    let revoked = onramp(
        &db,
        None,
        &["keys", "revoke", "acme_corp", &key_id, "--format", "json"],
    )
    .ok();
    assert_eq!(revoked.json()[0]["status"], "revoked");
    let missing = onramp(
        &db,
        None,
        &["keys", "revoke", "acme_corp", "0000000000000000"],
    );
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    // Production: a real master key is not enough without KEY_HASH_SECRET.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_onramp"))
        .args(db.cli_args())
        .args(["--production", "keys", "list", "acme_corp"])
        .env(
            "ONRAMP_MASTER_KEY",
            "v1:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        )
        .env_remove("KEY_HASH_SECRET")
        .env_remove("ONRAMP_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("KEY_HASH_SECRET"), "{stderr}");
}
