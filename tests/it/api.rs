//! The HTTP API, spoken to like a client, on both backends.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{Backend, TestApp};

fn acme() -> Value {
    json!({
        "customer_id": "acme_corp",
        "customer_name": "Acme Corporation",
        "industry": "ecommerce",
        "tags": ["enterprise", "q1_2025"],
        "attributes": {
            "google_ads_customer_ids": ["123-456-7890"],
            "meta_ad_account_ids": ["act_12345678"]
        },
        "contact": {"email": "john@acme.com"},
        "created_by": "robert@company.com",
        "usage_tier": "enterprise"
    })
}

async fn body(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn onboard_returns_201_with_the_customer_and_the_run(backend: Backend) {
    let app = TestApp::start(backend).await;
    let r = app.onboard_request(&acme()).send().await.unwrap();
    assert_eq!(r.headers()["etag"], "\"2\"");
    let (status, v) = body(r).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["customer"]["customer_id"], "acme_corp");
    assert_eq!(v["customer"]["status"], "active");
    assert_eq!(v["customer"]["usage_tier"], "enterprise");
    assert_eq!(
        v["customer"]["attributes"]["meta_ad_account_ids"],
        json!(["act_12345678"])
    );
    assert_eq!(v["customer"]["source"], "registry");
    let ob = &v["onboarding"];
    assert_eq!(ob["is_success"], true);
    assert_eq!(ob["customer_id"], "acme_corp");
    assert_eq!(ob["dataset_id"], "tenant_acme_corp");
    assert!(ob["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(ob["errors"], json!([]));
    let steps: Vec<_> = ob["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "validate",
            "register",
            "provision_dataset",
            "verify_dataset",
            "activate"
        ]
    );

    let (status, got) = body(
        app.get("/api/v1/customers/acme_corp", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, v["customer"]);

    let (_, audit) = body(
        app.get("/api/v1/customers/acme_corp/audit", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let e = &audit["items"][0];
    assert_eq!(e["type"], "customer.registered");
    assert!(e["actor"].as_str().unwrap().starts_with("token:"));
    assert!(
        !e["request_id"].as_str().unwrap().is_empty(),
        "the request id is recorded"
    );
}

async fn onboard_returns_409_when_customer_exists(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.onboard(&acme()).await;
    let before = app.snapshot().await;
    let r = app.onboard_request(&acme()).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let (status, v) = body(r).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(v["code"], "customer_exists");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("Customer already exists"));
    assert_eq!(app.snapshot().await, before);
}

async fn every_bad_field_is_listed_and_nothing_changes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let before = app.snapshot().await;
    let bad = json!({
        "customer_id": "Acme Corp",
        "customer_name": "",
        "industry": "spaceflight",
        "data_store": "mars",
        "tags": ["ok", "Not OK"],
        "attributes": {
            "google_ads_customer_ids": ["123-456-7890", "1234567890", "123-4567-890"],
            "meta_ad_account_ids": ["12345678", "account_12345"],
            "favourite_colour": "blue"
        },
        "contact": {"email": "not-an-email"},
        "usage_tier": "platinum"
    });
    let (status, v) = body(app.onboard_request(&bad).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "validation_failed");
    let fields: Vec<(&str, &str)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("customer_id", "invalid_format"),
            ("customer_name", "required"),
            ("industry", "unknown_industry"),
            ("data_store", "unknown_data_store"),
            ("tags[1]", "invalid_tag"),
            (
                "attributes.google_ads_customer_ids[1]",
                "invalid_google_ads_customer_id"
            ),
            (
                "attributes.google_ads_customer_ids[2]",
                "invalid_google_ads_customer_id"
            ),
            (
                "attributes.meta_ad_account_ids[0]",
                "invalid_meta_ad_account_id"
            ),
            (
                "attributes.meta_ad_account_ids[1]",
                "invalid_meta_ad_account_id"
            ),
            ("attributes.favourite_colour", "unknown_attribute"),
            ("contact.email", "invalid_email"),
            ("usage_tier", "unknown_tier"),
        ]
    );
    let messages = v["errors"].to_string();
    assert!(messages.contains("Invalid Google Ads customer ID format"));
    assert!(messages.contains("Invalid Meta ad account ID format"));
    assert_eq!(app.snapshot().await, before);
}

async fn malformed_and_oversized_bodies_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let before = app.snapshot().await;
    let r = app
        .client
        .post(app.url("/api/v1/customers"))
        .bearer_auth(&app.operator)
        .header("content-type", "application/json")
        .body("{\"customer_id\": ")
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_body"))
    );

    let r = app
        .onboard_request(&json!({"customer_id": "x", "tags": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await.1["code"], "malformed_body");

    let r = app
        .onboard_request(&json!({"customer_id": "abc", "surprise": 1}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("surprise"), "{v}");

    let huge =
        json!({"customer_id": "big", "customer_name": "x".repeat(100_000), "industry": "golf"});
    let (status, v) = body(app.onboard_request(&huge).send().await.unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    let r = app
        .client
        .post(app.url("/api/v1/customers"))
        .bearer_auth(&app.operator)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.snapshot().await, before);
}

async fn tokens_are_checked_and_roles_enforced(backend: Backend) {
    let app = TestApp::start(backend).await;
    let before = app.snapshot().await;
    let r = app
        .client
        .post(app.url("/api/v1/customers"))
        .json(&acme())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(body(r).await.0, StatusCode::UNAUTHORIZED);
    for bad in [
        "nonsense",
        "onr_at_0123456789abcdef_00",
        &app.operator.replace("onr_at_", "onr_at_f"),
    ] {
        let (status, v) = body(
            app.post("/api/v1/customers", bad, &acme())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{bad}"
        );
    }
    // A right id with a wrong secret.
    let mut forged = app.operator.clone();
    forged.replace_range(forged.len() - 4.., "0000");
    assert_eq!(
        app.post("/api/v1/customers", &forged, &acme())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let (status, v) = body(
        app.post("/api/v1/customers", &app.viewer, &acme())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.get("/api/v1/customers", &app.viewer)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .get(app.url("/api/v1/industries"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn idempotency_keys_replay_the_first_response(backend: Backend) {
    let app = TestApp::start(backend).await;
    let send = |key: &str, b: Value| {
        app.onboard_request(&b)
            .header("Idempotency-Key", key)
            .send()
    };
    let first = send("k-1", acme()).await.unwrap();
    assert!(first.headers().get("idempotency-replayed").is_none());
    let (s1, b1) = body(first).await;
    assert_eq!(s1, StatusCode::CREATED);
    let before = app.snapshot().await;
    let again = send("k-1", acme()).await.unwrap();
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let (s2, b2) = body(again).await;
    assert_eq!((s2, &b2), (StatusCode::CREATED, &b1));
    assert_eq!(app.snapshot().await, before, "a replay changes nothing");

    let mut other = acme();
    other["customer_name"] = json!("Someone Else");
    let (status, v) = body(send("k-1", other).await.unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    assert_eq!(app.snapshot().await, before);
}

async fn listing_filters_and_paginates(backend: Backend) {
    let app = TestApp::start(backend).await;
    let rows = [
        (
            "topgolf",
            "Topgolf Entertainment",
            "golf",
            vec!["enterprise"],
        ),
        ("puttery", "Puttery", "golf", vec![]),
        ("medcorp_a", "MedCorp A", "medical", vec!["enterprise"]),
        ("shop", "Shop", "ecommerce", vec![]),
    ];
    for (id, name, industry, tags) in &rows {
        let b =
            json!({"customer_id": id, "customer_name": name, "industry": industry, "tags": tags});
        assert_eq!(
            app.onboard_request(&b).send().await.unwrap().status(),
            StatusCode::CREATED
        );
    }
    app.patch(
        "/api/v1/customers/shop",
        &app.operator,
        &json!({"status": "paused"}),
    )
    .send()
    .await
    .unwrap();
    let ids = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["customer_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let list = |q: &str| {
        let req = app.get(&format!("/api/v1/customers{q}"), &app.viewer);
        async move { body(req.send().await.unwrap()).await.1 }
    };
    assert_eq!(
        ids(&list("").await),
        ["medcorp_a", "puttery", "topgolf"],
        "default is active"
    );
    assert_eq!(
        ids(&list("?status=all").await),
        ["medcorp_a", "puttery", "shop", "topgolf"]
    );
    assert_eq!(ids(&list("?status=paused").await), ["shop"]);
    assert_eq!(ids(&list("?industry=golf").await), ["puttery", "topgolf"]);
    assert_eq!(
        ids(&list("?tag=enterprise").await),
        ["medcorp_a", "topgolf"]
    );
    assert_eq!(ids(&list("?q=GOLF").await), ["topgolf"]);

    let p1 = list("?status=all&limit=3").await;
    assert_eq!(ids(&p1), ["medcorp_a", "puttery", "shop"]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = list(&format!("?status=all&limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&p2), ["topgolf"]);
    assert_eq!(p2["next_cursor"], Value::Null);

    for bad in [
        "?status=gone",
        "?industry=space",
        "?limit=0",
        "?limit=5000",
        "?cursor=%%%",
        "?tag=Bad%20Tag",
    ] {
        let (status, v) = body(
            app.get(&format!("/api/v1/customers{bad}"), &app.viewer)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
}

async fn updates_follow_the_status_machine_and_versions(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.onboard(&acme()).await;
    let r = app
        .patch("/api/v1/customers/acme_corp", &app.operator, &json!({"status": "paused", "tags": ["retail", "usa", "premium"], "usage_tier": "enterprise"}))
        .header("If-Match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], "\"3\"");
    let (status, v) = body(r).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["version"].as_i64()),
        (Some("paused"), Some(3))
    );
    assert_eq!(v["tags"], json!(["retail", "usa", "premium"]));

    let before = app.snapshot().await;
    let stale = app
        .patch(
            "/api/v1/customers/acme_corp",
            &app.operator,
            &json!({"customer_name": "X"}),
        )
        .header("If-Match", "\"1\"");
    let (status, v) = body(stale.send().await.unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("version_mismatch"))
    );

    let (status, v) = body(
        app.patch(
            "/api/v1/customers/acme_corp",
            &app.operator,
            &json!({"status": "pending"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("from paused to pending"));

    let (status, v) = body(
        app.patch(
            "/api/v1/customers/acme_corp",
            &app.operator,
            &json!({"status": "inactive"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("use_offboard"))
    );

    let (status, _) = body(
        app.patch(
            "/api/v1/customers/acme_corp",
            &app.operator,
            &json!({"attributes": {"google_ads_customer_ids": ["nope"]}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, v) = body(
        app.patch(
            "/api/v1/customers/ghost",
            &app.operator,
            &json!({"customer_name": "X"}),
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
    let r = app
        .patch("/api/v1/customers/acme_corp", &app.operator, &json!({}))
        .header("If-Match", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await.1["code"], "invalid_if_match");
    assert_eq!(app.snapshot().await, before);

    // A change of nothing is not a change.
    let (_, v) = body(
        app.patch(
            "/api/v1/customers/acme_corp",
            &app.operator,
            &json!({"status": "paused"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(v["version"], 3);
    assert_eq!(app.snapshot().await, before);

    let (_, v) = body(
        app.patch(
            "/api/v1/customers/acme_corp",
            &app.operator,
            &json!({"attributes": {"meta_ad_account_ids": null, "country": "gb"}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        v["attributes"],
        json!({"country": "GB", "google_ads_customer_ids": ["123-456-7890"]})
    );
}

async fn offboarding_keeps_or_deletes_data(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.onboard(&acme()).await;
    let (status, v) = body(
        app.post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({"delete_data": false}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["customer"]["status"].as_str(),
            v["data_deleted"].as_bool()
        ),
        (Some("inactive"), Some(false))
    );
    assert_eq!(
        v["customer"]["contact"]["email"], "john@acme.com",
        "data kept"
    );

    let before = app.snapshot().await;
    let (status, v) = body(
        app.post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({"delete_data": false}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    let (status, v) = body(
        app.post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({"delete_data": true}),
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
    let (status, _) = body(
        app.post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({"delete_data": true, "confirm": "other"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.snapshot().await, before);

    let (status, v) = body(
        app.post(
            "/api/v1/customers/acme_corp/offboard",
            &app.operator,
            &json!({"delete_data": true, "confirm": "acme_corp", "reason": "contract ended"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let c = &v["customer"];
    assert_eq!(
        (
            c["status"].as_str(),
            c["attributes"].clone(),
            c["contact"]["email"].clone()
        ),
        (Some("deleted"), json!({}), Value::Null)
    );
    let (status, v) = body(
        app.patch(
            "/api/v1/customers/acme_corp",
            &app.admin,
            &json!({"customer_name": "Back"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("customer_deleted"))
    );
}

async fn industries_audit_health_and_openapi_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.onboard(&acme()).await;
    let (_, v) = body(
        app.get("/api/v1/industries", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "golf",
            "medical",
            "restaurant",
            "retail",
            "ecommerce",
            "other"
        ]
    );
    assert_eq!(
        v["items"][0]["description"],
        "Golf and entertainment venues"
    );

    let (_, v) = body(
        app.get("/api/v1/audit?type=admin_token.created", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    assert!(
        v["items"].to_string().find("onr_at_").is_none(),
        "token secrets never reach the log"
    );
    let (_, v) = body(
        app.get("/api/v1/audit?customer_id=acme_corp&limit=1", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["items"][0]["type"], "customer.registered");
    let (_, v) = body(
        app.get("/api/v1/audit?since=2999-01-01T00:00:00Z", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["items"], json!([]));
    let (status, _) = body(
        app.get("/api/v1/customers/ghost/audit", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, v) = body(app.client.get(app.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            v["status"].as_str(),
            v["checks"]["registry"]["status"].as_str()
        ),
        (Some("ok"), Some("ok"))
    );

    let (status, v) = body(
        app.client
            .get(app.url("/api/v1/nowhere"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (_, doc) = body(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let routes = [
        ("/api/v1/customers", "post"),
        ("/api/v1/customers", "get"),
        ("/api/v1/customers/{customer_id}", "get"),
        ("/api/v1/customers/{customer_id}", "patch"),
        ("/api/v1/customers/{customer_id}/offboard", "post"),
        ("/api/v1/customers/{customer_id}/audit", "get"),
        ("/api/v1/industries", "get"),
        ("/api/v1/audit", "get"),
        ("/health", "get"),
    ];
    for (path, method) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        if path.starts_with("/api/v1") {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
        }
    }
    assert!(doc["paths"]["/api/v1/customers"]["post"]["responses"]["409"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(
        doc["components"]["schemas"]["OnboardRequest"]["properties"]["customer_id"].is_object()
    );
}

on_both_backends!(
    onboard_returns_201_with_the_customer_and_the_run,
    onboard_returns_409_when_customer_exists,
    every_bad_field_is_listed_and_nothing_changes,
    malformed_and_oversized_bodies_are_refused_and_change_nothing,
    tokens_are_checked_and_roles_enforced,
    idempotency_keys_replay_the_first_response,
    listing_filters_and_paginates,
    updates_follow_the_status_machine_and_versions,
    offboarding_keeps_or_deletes_data,
    industries_audit_health_and_openapi_answer,
);
