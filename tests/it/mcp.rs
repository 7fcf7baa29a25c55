//! The MCP server, driven with the official Rust SDK's client against the real binary: over
//! stdio (`onramp mcp`) and over streamable HTTP (`onramp serve`, `/mcp`). The GrowthNav seed's
//! MCP workflow and "Automated Checks" are replayed end to end on both transports.

use crate::common;
use rmcp::model::{CallToolRequestParams, CallToolResult, ReadResourceRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use crate::common::cli::{onramp, Server};
use crate::common::{Backend, TestDb};

const PRODUCT: &str = "examples/growthnav/onramp.toml";

type Client = RunningService<RoleClient, ()>;

/// `onramp mcp` on `db` as a child process, with the SDK's client on its stdio.
async fn stdio_client(db: &TestDb, role: &str) -> Client {
    stdio_client_with(db, role, PRODUCT).await
}

/// [`stdio_client`] serving `product`.
async fn stdio_client_with(db: &TestDb, role: &str, product: &str) -> Client {
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_onramp")).configure(|cmd| {
            cmd.args(db.cli_args())
                .arg("--product")
                .arg(common::repo_path(product))
                .args(["mcp", "--role", role])
                .env_remove("ONRAMP_DATABASE_URL")
                .env_remove("ONRAMP_PRODUCT")
                .env_remove("ONRAMP_FAULTS")
                .env("RUST_LOG", "warn");
        }),
    )
    .expect("spawn onramp mcp");
    ().serve(transport).await.expect("initialize over stdio")
}

/// `onramp serve` on `db`, and an admin token of `role` made with the CLI.
fn http_server(db: &TestDb, role: &str) -> (Server, String) {
    let token = onramp(
        db,
        Some(PRODUCT),
        &[
            "admin", "token", "create", "--role", role, "--format", "json",
        ],
    )
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (Server::start_with_product(db, Some(PRODUCT)), token)
}

async fn http_client(server: &Server, token: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", server.base))
            .auth_header(token),
    );
    ().serve(transport).await.expect("initialize over HTTP")
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().expect("arguments are an object").clone()
}

async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
}

/// The structured result of a call that must succeed.
async fn ok(client: &Client, tool: &str, arguments: Value) -> Value {
    let r = call(client, tool, arguments).await;
    assert_ne!(r.is_error, Some(true), "{tool} refused: {:?}", r.content);
    r.structured_content.expect("structured result")
}

/// The problem object of a call that must be refused.
async fn refused(client: &Client, tool: &str, arguments: Value) -> Value {
    let r = call(client, tool, arguments).await;
    assert_eq!(r.is_error, Some(true), "{tool} was not refused: {:?}", r);
    r.structured_content.expect("problem object")
}

async fn resource(client: &Client, uri: &str) -> Value {
    let r = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("reading {uri}: {e}"));
    let text = match &r.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents {
            text, mime_type, ..
        } => {
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            text.clone()
        }
        other => panic!("{uri} is not text: {other:?}"),
    };
    serde_json::from_str(&text).unwrap()
}

fn has_error_at(problem: &Value, field: &str, code: &str) -> bool {
    problem["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|x| x["field"] == field && x["code"] == code))
}

/// The seed's workflow: check, onboard, the automated checks, the config resource, offboard.
async fn replay_seed(client: &Client, db: &TestDb) {
    // Step 1: the customer does not exist yet: null, not an error.
    let r = call(client, "get_customer", json!({"customer_id": "acme_corp"})).await;
    assert_ne!(r.is_error, Some(true));
    assert_eq!(r.structured_content, Some(json!({"customer": null})));

    // Steps 2-3: onboard.
    let result = ok(
        client,
        "onboard_customer",
        json!({
            "customer_id": "acme_corp",
            "customer_name": "Acme Corporation",
            "industry": "ecommerce",
            "attributes": {
                "google_ads_customer_ids": ["123-456-7890"],
                "meta_ad_account_ids": ["act_12345678"]
            },
            "tags": ["enterprise", "q1_2025"]
        }),
    )
    .await;
    assert_eq!(result["onboarding"]["is_success"], true, "{result}");
    assert_eq!(result["onboarding"]["dataset_id"], "growthnav_acme_corp");
    let steps: Vec<_> = result["onboarding"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert!(steps.iter().all(|(_, s)| *s == "succeeded"), "{steps:?}");

    // Step 4: store credentials; write-only, listed without their values.
    for (t, v) in [
        ("google_ads_refresh_token", "1//0xAbCdEfGh12"),
        ("meta_access_token", "EAAGxYz12345678"),
    ] {
        let stored = ok(
            client,
            "store_credential",
            json!({"customer_id": "acme_corp", "type": t, "value": v}),
        )
        .await;
        assert_eq!(stored["status"], "unvalidated");
        assert!(!stored.to_string().contains(v));
    }
    let p = refused(
        client,
        "store_credential",
        json!({"customer_id": "acme_corp", "type": "meta_access_token", "value": "12345678"}),
    )
    .await;
    assert!(has_error_at(&p, "value", "invalid_format"), "{p}");
    assert!(!p.to_string().contains("12345678\""), "{p}");
    let creds = ok(
        client,
        "list_credentials",
        json!({"customer_id": "acme_corp"}),
    )
    .await;
    let names: Vec<_> = creds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "growthnav-acme_corp-google_ads_refresh_token",
            "growthnav-acme_corp-meta_access_token"
        ]
    );
    assert!(!creds.to_string().contains("EAAGxYz12345678"));

    // Automated check 1: in the registry and active.
    let customer = ok(client, "get_customer", json!({"customer_id": "acme_corp"})).await;
    let customer = &customer["customer"];
    assert_eq!(customer["status"], "active");
    assert_eq!(customer["customer_name"], "Acme Corporation");

    // Automated check 2: in its industry's list.
    let listed = ok(
        client,
        "list_customers_by_industry",
        json!({"industry": "ecommerce"}),
    )
    .await;
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["customer_id"] == "acme_corp"));
    let golf = ok(
        client,
        "list_customers_by_industry",
        json!({"industry": "golf"}),
    )
    .await;
    assert_eq!(golf, json!({"items": []}));

    // Automated check 3: the dataset answers the seed's query.
    let q = ok(
        client,
        "query_dataset",
        json!({"customer_id": "acme_corp", "sql": "SELECT 1 as test"}),
    )
    .await;
    assert!(!q["rows"].as_array().unwrap().is_empty());
    assert_eq!(q["columns"], json!(["test"]));

    // The related resources.
    let config = resource(client, "customer://acme_corp/config").await;
    assert_eq!(config["dataset_id"], "growthnav_acme_corp");
    let tables: Vec<_> = config["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tables.contains(&"conversions") && tables.contains(&"daily_metrics"));
    let industries = resource(client, "industries://list").await;
    assert!(industries["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == "golf"));
    let plans = resource(client, "plans://list").await;
    // GrowthNav's product file sells nothing through Onramp.
    assert_eq!(plans, json!({"items": [], "metrics": [], "trial": null}));
    let onboarding = resource(client, "customer://acme_corp/onboarding").await;
    assert_eq!(onboarding["run"]["status"], "succeeded");
    let status = ok(
        client,
        "get_onboarding_status",
        json!({"customer_id": "acme_corp"}),
    )
    .await;
    assert_eq!(status["run"]["is_success"], true);

    // Deleting data without confirm is refused, naming the field, and changes nothing.
    let before = common::snapshot(db.store().await.as_ref()).await;
    let problem = refused(
        client,
        "offboard_customer",
        json!({"customer_id": "acme_corp", "delete_data": true}),
    )
    .await;
    assert_eq!(problem["code"], "validation_failed");
    assert!(
        has_error_at(&problem, "confirm", "confirmation_required"),
        "{problem}"
    );
    assert_eq!(common::snapshot(db.store().await.as_ref()).await, before);

    // Offboard with data, confirmed: a receipt, a tombstone, no dataset.
    let off = ok(
        client,
        "offboard_customer",
        json!({"customer_id": "acme_corp", "delete_data": true, "confirm": "acme_corp"}),
    )
    .await;
    assert_eq!(off["data_deleted"], true);
    assert!(off["receipt"].is_object(), "{off}");
    let gone = ok(client, "get_customer", json!({"customer_id": "acme_corp"})).await;
    assert_eq!(gone["customer"]["status"], "deleted");
    let problem = refused(
        client,
        "query_dataset",
        json!({"customer_id": "acme_corp", "sql": "SELECT 1 as test"}),
    )
    .await;
    assert_eq!(problem["code"], "no_dataset");
}

async fn seed_replays_over_stdio(backend: Backend) {
    let db = TestDb::new(backend).await;
    let client = stdio_client(&db, "operator").await;
    replay_seed(&client, &db).await;
    client.cancel().await.unwrap();
}

async fn seed_replays_over_http(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (server, token) = http_server(&db, "operator");
    let client = http_client(&server, &token).await;
    replay_seed(&client, &db).await;
    client.cancel().await.unwrap();
}

/// Tools describe themselves: schemas with described fields, truthful hints.
async fn tools_are_typed_and_hinted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let client = stdio_client(&db, "operator").await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "get_customer",
        "list_customers_by_industry",
        "list_customers",
        "onboard_customer",
        "get_onboarding_status",
        "query_dataset",
        "update_customer",
        "offboard_customer",
        "list_signups",
        "get_signup",
        "approve_signup",
        "reject_signup",
        "list_users",
        "invite_user",
        "get_trial",
        "start_trial",
        "extend_trial",
        "get_subscription",
        "subscribe_customer",
        "preview_subscription_change",
        "change_subscription",
        "cancel_subscription",
        "unschedule_subscription",
        "get_usage",
        "check_entitlement",
        "record_usage",
        "advance_test_clock",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for t in &tools {
        let a = t.annotations.as_ref().expect("annotations");
        let read_only = a.read_only_hint == Some(true);
        assert_eq!(
            read_only,
            [
                "get_customer",
                "list_customers_by_industry",
                "list_customers",
                "get_onboarding_status",
                "query_dataset",
                "list_credentials",
                "list_signups",
                "get_signup",
                "list_users",
                "get_trial",
                "get_subscription",
                "preview_subscription_change",
                "get_usage",
                "check_entitlement"
            ]
            .contains(&t.name.as_ref()),
            "{}",
            t.name
        );
        if t.name == "offboard_customer" {
            assert_eq!(a.destructive_hint, Some(true));
        }
        if t.name == "onboard_customer" {
            assert_eq!(a.destructive_hint, Some(false));
        }
        assert!(t.input_schema["properties"].is_object(), "{}", t.name);
    }
    let onboard = tools.iter().find(|t| t.name == "onboard_customer").unwrap();
    assert!(onboard.input_schema["properties"]["customer_id"]["description"].is_string());
    let templates = client.list_all_resource_templates().await.unwrap();
    let uris: Vec<_> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(
        uris.contains(&"customer://{customer_id}/config"),
        "{uris:?}"
    );
    assert!(uris.contains(&"customer://{customer_id}/onboarding"));
    let resources = client.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "industries://list"));
    assert!(resources.iter().any(|r| r.uri == "plans://list"));
    client.cancel().await.unwrap();
}

/// Bad arguments are `isError` results that name the field and the rule, and change nothing.
async fn bad_arguments_are_refused_and_change_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let client = stdio_client(&db, "operator").await;
    ok(
        &client,
        "onboard_customer",
        json!({"customer_id": "golf_one", "customer_name": "Golf One", "industry": "golf"}),
    )
    .await;
    let before = common::snapshot(db.store().await.as_ref()).await;

    let p = refused(&client, "get_customer", json!({})).await;
    assert!(has_error_at(&p, "customer_id", "required"), "{p}");
    assert_eq!(p["status"], 422);

    let p = refused(
        &client,
        "get_customer",
        json!({"customer_id": "golf_one", "include": "everything"}),
    )
    .await;
    assert!(has_error_at(&p, "include", "unknown_field"), "{p}");

    let p = refused(
        &client,
        "onboard_customer",
        json!({"customer_id": "acme_corp", "customer_name": "Acme", "industry": "ecommerce", "tags": ["ok", 5]}),
    )
    .await;
    assert!(has_error_at(&p, "tags[1]", "invalid_type"), "{p}");

    let p = refused(
        &client,
        "onboard_customer",
        json!({
            "customer_id": "acme_corp",
            "customer_name": "Acme",
            "industry": "spaceships",
            "attributes": {"google_ads_customer_ids": ["1234567890"], "meta_ad_account_ids": ["12345678"]}
        }),
    )
    .await;
    assert_eq!(p["code"], "validation_failed");
    assert!(
        p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "industry"),
        "{p}"
    );
    assert!(
        p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "attributes.google_ads_customer_ids[0]"),
        "{p}"
    );
    assert!(
        p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "attributes.meta_ad_account_ids[0]"),
        "{p}"
    );

    let p = refused(
        &client,
        "onboard_customer",
        json!({"customer_id": "golf_one", "customer_name": "Again", "industry": "golf"}),
    )
    .await;
    assert_eq!(p["code"], "customer_exists");
    assert_eq!(p["status"], 409);

    let p = refused(
        &client,
        "query_dataset",
        json!({"customer_id": "golf_one", "sql": "DELETE FROM conversions"}),
    )
    .await;
    assert_eq!(p["code"], "validation_failed");
    assert_eq!(p["errors"][0]["field"], "sql", "{p}");

    let p = refused(
        &client,
        "update_customer",
        json!({"customer_id": "golf_one", "status": "flying"}),
    )
    .await;
    assert!(has_error_at(&p, "status", "unknown_status"), "{p}");

    let p = refused(
        &client,
        "update_customer",
        json!({"customer_id": "golf_one", "customer_name": "New", "expected_version": 99}),
    )
    .await;
    assert_eq!(p["code"], "version_mismatch");

    let p = refused(
        &client,
        "invite_user",
        json!({"customer_id": "golf_one", "email": "x", "role": "king"}),
    )
    .await;
    assert!(has_error_at(&p, "email", "invalid_email"), "{p}");
    assert!(has_error_at(&p, "role", "unknown_role"), "{p}");
    let users = ok(&client, "list_users", json!({"customer_id": "golf_one"})).await;
    assert_eq!(
        users["items"],
        json!([]),
        "a refused invitation makes no user"
    );

    let p = refused(
        &client,
        "offboard_customer",
        json!({"customer_id": "golf_one", "delete_data": true, "confirm": "someone_else"}),
    )
    .await;
    assert_eq!(p["code"], "validation_failed");

    let p = refused(
        &client,
        "get_onboarding_status",
        json!({"customer_id": "nobody"}),
    )
    .await;
    assert_eq!(p["code"], "customer_not_found");
    assert_eq!(p["status"], 404);

    let e = client
        .read_resource(ReadResourceRequestParams::new("customer://nobody/config"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nobody"), "{e}");

    assert_eq!(common::snapshot(db.store().await.as_ref()).await, before);
    client.cancel().await.unwrap();
}

/// A viewer sees only the read-only tools and cannot call the others; HTTP needs a token.
async fn roles_limit_what_an_agent_can_do(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (server, viewer) = http_server(&db, "viewer");
    let client = http_client(&server, &viewer).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(!tools.is_empty());
    assert!(
        tools
            .iter()
            .all(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true)),
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let before = common::snapshot(db.store().await.as_ref()).await;
    let p = refused(
        &client,
        "onboard_customer",
        json!({"customer_id": "acme_corp", "customer_name": "Acme", "industry": "ecommerce"}),
    )
    .await;
    assert_eq!(p["code"], "forbidden");
    assert_eq!(p["status"], 403);
    let found = call(&client, "get_customer", json!({"customer_id": "acme_corp"})).await;
    assert_eq!(found.structured_content, Some(json!({"customer": null})));
    assert_eq!(common::snapshot(db.store().await.as_ref()).await, before);
    client.cancel().await.unwrap();

    // The same rule over stdio, for an agent started with --role viewer.
    let stdio = stdio_client(&db, "viewer").await;
    assert_eq!(stdio.list_all_tools().await.unwrap().len(), tools.len());
    let p = refused(
        &stdio,
        "offboard_customer",
        json!({"customer_id": "acme_corp"}),
    )
    .await;
    assert_eq!(p["code"], "forbidden");
    stdio.cancel().await.unwrap();

    // No token, or a bad one: 401 before any MCP message is read.
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for auth in [None, Some("Bearer onr_at_nope_nope"), Some("Basic x")] {
        let mut req = http
            .post(format!("{}/mcp", server.base))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    // A request for another host name (DNS rebinding) is refused even with a good token.
    let r = http
        .post(format!("{}/mcp", server.base))
        .header("accept", "application/json, text/event-stream")
        .header("host", "attacker.example")
        .bearer_auth(&viewer)
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(common::snapshot(db.store().await.as_ref()).await, before);
}

/// Trials, subscriptions and a test clock through the MCP tools, with the clock made and the
/// customer attached by the CLI: refusals are `isError` results naming the field, and a viewer
/// may read but not change.
async fn billing_tools_work(backend: Backend) {
    const PC: &str = "examples/policycortex/onramp.toml";
    let db = TestDb::new(backend).await;
    let made = onramp(
        &db,
        Some(PC),
        &[
            "test-clocks",
            "create",
            "--name",
            "mcp",
            "--frozen-time",
            "2026-05-01T00:00:00Z",
        ],
    )
    .ok();
    let clock = made.stdout.split_whitespace().next().unwrap().to_owned();
    onramp(
        &db,
        Some(PC),
        &[
            "customers",
            "onboard",
            "contoso",
            "Contoso",
            "--industry",
            "technology",
            "--test-clock",
            &clock,
        ],
    )
    .ok();
    let client = stdio_client_with(&db, "operator", PC).await;
    let trial = ok(
        &client,
        "start_trial",
        json!({"customer_id": "contoso", "days": 20}),
    )
    .await;
    assert_eq!(trial["status"], "active");
    assert_eq!(trial["ends_at"], "2026-05-21T00:00:00Z");
    let problem = refused(
        &client,
        "extend_trial",
        json!({"customer_id": "contoso", "days": 5}),
    )
    .await;
    assert!(has_error_at(&problem, "reason", "required"), "{problem}");
    let problem = refused(&client, "start_trial", json!({"customer_id": "contoso"})).await;
    assert_eq!(problem["code"], "trial_exists");
    let sub = ok(
        &client,
        "subscribe_customer",
        json!({"customer_id": "contoso", "plan": "professional", "cycle": "monthly"}),
    )
    .await;
    assert_eq!(
        (sub["plan"].as_str(), sub["price_per_period"].as_i64()),
        (Some("professional"), Some(49_900))
    );
    assert_eq!(
        ok(&client, "get_trial", json!({"customer_id": "contoso"})).await["status"],
        "converted"
    );
    let problem = refused(
        &client,
        "subscribe_customer",
        json!({"customer_id": "contoso", "plan": "starter", "cycle": "fortnightly"}),
    )
    .await;
    assert!(
        has_error_at(&problem, "cycle", "unknown_cycle"),
        "{problem}"
    );
    // Usage and entitlements: recorded once (a resend is a duplicate), bad events named.
    let events = json!({"events": [
        {"event_id": "m1", "metric": "api_calls", "value": 90000, "customer_id": "contoso"},
        {"event_id": "m2", "metric": "api_calls", "value": -1, "customer_id": "contoso"},
    ]});
    let recorded = ok(&client, "record_usage", events.clone()).await;
    assert_eq!(
        (recorded["accepted"].as_u64(), recorded["refused"].as_u64()),
        (Some(1), Some(1)),
        "{recorded}"
    );
    assert_eq!(recorded["results"][1]["field"], "events[1].value");
    let again = ok(&client, "record_usage", events).await;
    assert_eq!(again["duplicates"], 1, "{again}");
    let usage = ok(&client, "get_usage", json!({"customer_id": "contoso"})).await;
    let calls = crate::billing::metric_line(&usage, "api_calls");
    assert_eq!(
        (calls["used"].as_i64(), calls["soft_exceeded"].as_bool()),
        (Some(90000), Some(true))
    );
    let e = ok(
        &client,
        "check_entitlement",
        json!({"customer_id": "contoso", "metric": "api_calls", "amount": 20000}),
    )
    .await;
    assert_eq!(
        (e["allowed"].as_bool(), e["source"].as_str()),
        (Some(true), Some("subscription")),
        "past the limit, Professional's overage allows it: {e}"
    );
    let problem = refused(
        &client,
        "check_entitlement",
        json!({"customer_id": "contoso", "metric": "seats"}),
    )
    .await;
    assert!(
        has_error_at(&problem, "metric", "unknown_metric"),
        "{problem}"
    );
    let preview = ok(
        &client,
        "preview_subscription_change",
        json!({"customer_id": "contoso", "plan": "enterprise"}),
    )
    .await;
    assert_eq!(
        preview["total"],
        249_900 - 49_900,
        "a whole month left: the full difference"
    );
    // A scheduled change withdrawn, then scheduled again; with nothing scheduled the
    // withdrawal is an error.
    for _ in 0..2 {
        ok(
            &client,
            "change_subscription",
            json!({"customer_id": "contoso", "plan": "starter", "when": "period_end"}),
        )
        .await;
        let sub = ok(
            &client,
            "unschedule_subscription",
            json!({"customer_id": "contoso"}),
        )
        .await;
        assert_eq!(sub["pending_change"], Value::Null, "{sub}");
    }
    let problem = refused(
        &client,
        "unschedule_subscription",
        json!({"customer_id": "contoso"}),
    )
    .await;
    assert_eq!(problem["code"], "subscription_status", "{problem}");
    ok(
        &client,
        "change_subscription",
        json!({"customer_id": "contoso", "plan": "starter", "when": "period_end"}),
    )
    .await;
    let moved = ok(
        &client,
        "advance_test_clock",
        json!({"test_clock_id": clock, "to": "2026-06-02T00:00:00Z"}),
    )
    .await;
    assert_eq!(moved["work_done"], 1);
    let sub = ok(
        &client,
        "get_subscription",
        json!({"customer_id": "contoso"}),
    )
    .await;
    assert_eq!(
        (sub["plan"].as_str(), sub["current_period_start"].as_str()),
        (Some("starter"), Some("2026-06-01T00:00:00Z"))
    );
    let problem = refused(
        &client,
        "advance_test_clock",
        json!({"test_clock_id": clock, "to": "2026-05-01T00:00:00Z"}),
    )
    .await;
    assert!(has_error_at(&problem, "to", "not_forward"), "{problem}");
    client.cancel().await.unwrap();

    let viewer = stdio_client_with(&db, "viewer", PC).await;
    assert_eq!(
        ok(
            &viewer,
            "get_subscription",
            json!({"customer_id": "contoso"})
        )
        .await["plan"],
        "starter"
    );
    let r = call(
        &viewer,
        "cancel_subscription",
        json!({"customer_id": "contoso", "when": "now"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let r = call(
        &viewer,
        "record_usage",
        json!({"events": [{"event_id": "v1", "metric": "api_calls", "value": 1, "customer_id": "contoso"}]}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "a viewer records no usage");
    viewer.cancel().await.unwrap();
    let client = stdio_client_with(&db, "operator", PC).await;
    ok(
        &client,
        "cancel_subscription",
        json!({"customer_id": "contoso", "when": "now"}),
    )
    .await;
    let problem = refused(
        &client,
        "get_subscription",
        json!({"customer_id": "contoso"}),
    )
    .await;
    assert_eq!(problem["code"], "subscription_not_found");
    client.cancel().await.unwrap();
}

on_both_backends!(
    billing_tools_work,
    seed_replays_over_stdio,
    seed_replays_over_http,
    tools_are_typed_and_hinted,
    bad_arguments_are_refused_and_change_nothing,
    roles_limit_what_an_agent_can_do,
    the_python_sdk_reads_every_tool_over_stdio,
    the_python_sdk_reads_every_tool_over_http,
);

/// In stdio mode stdout carries nothing but protocol, even with every log level on.
#[test]
fn stdio_stdout_is_only_protocol() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onramp"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .arg("--product")
        .arg(common::repo_path(PRODUCT))
        .arg("mcp")
        .env("RUST_LOG", "trace")
        .env_remove("ONRAMP_DATABASE_URL")
        .env_remove("ONRAMP_PRODUCT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "onboard_customer",
            "arguments": {"customer_id": "acme_corp", "customer_name": "Acme Corporation", "industry": "ecommerce"}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "onboard_customer",
            "arguments": {"customer_id": "Bad Id"}}}),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "query_dataset",
            "arguments": {"customer_id": "acme_corp", "sql": "SELECT 1 as test"}}}),
        json!({"jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": {"uri": "customer://acme_corp/config"}}),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "store_credential",
            "arguments": {"customer_id": "acme_corp", "type": "meta_access_token", "value": "EAAtraceSecret12345"}}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for m in messages {
            writeln!(stdin, "{m}").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        // Closing stdin ends the session.
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "exit: {:?}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut ids = Vec::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON-RPC ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        ids.push(v["id"].as_i64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let by_id = |id: i64| -> Value {
        stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["id"] == id)
            .unwrap()
    };
    assert_eq!(
        by_id(3)["result"]["structuredContent"]["onboarding"]["is_success"],
        true
    );
    assert_eq!(by_id(4)["result"]["isError"], true);
    assert_eq!(
        by_id(5)["result"]["structuredContent"]["rows"],
        json!([[1]])
    );
    assert!(by_id(7)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no_such_tool"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mcp tool call"),
        "logs go to stderr: {stderr}"
    );
    assert_eq!(
        by_id(8)["result"]["structuredContent"]["status"],
        "unvalidated"
    );
    assert!(
        !stderr.contains("EAAtraceSecret12345") && !stdout.contains("EAAtraceSecret12345"),
        "a credential value reached the logs or a response"
    );
}

/// Runs the official MCP Python SDK's client script (`tests/python/mcp_sdk_client.py`) with
/// `args`; it calls every tool and checks each result against the tool's output schema.
fn python_sdk(args: &[String]) {
    let python = std::env::var("ONRAMP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(common::repo_path("tests/python/mcp_sdk_client.py"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("python3 runs (pip install -r tests/python/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all tools read"),
        "the Python SDK client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn the_python_sdk_reads_every_tool_over_stdio(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut argv = vec!["stdio".to_owned(), env!("CARGO_BIN_EXE_onramp").to_owned()];
    argv.extend(db.cli_args());
    argv.extend([
        "--product".to_owned(),
        common::repo_path(PRODUCT).display().to_string(),
        "mcp".to_owned(),
        "--role".to_owned(),
        "admin".to_owned(),
    ]);
    python_sdk(&argv);
}

async fn the_python_sdk_reads_every_tool_over_http(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (server, token) = http_server(&db, "admin");
    python_sdk(&["http".to_owned(), format!("{}/mcp", server.base), token]);
}

/// A message that is not JSON, or not sent as JSON, gets JSON-RPC's own error object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_json_gets_a_json_rpc_error() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (server, token) = http_server(&db, "viewer");
    let client = reqwest::Client::new();
    for (content_type, body, status, code) in [
        ("application/json", "not json", 400, -32700),
        ("application/json", "{\"jsonrpc\": \"2.0\", ", 400, -32700),
        ("text/plain", "{}", 415, -32600),
    ] {
        let r = client
            .post(format!("{}/mcp", server.base))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["jsonrpc"].as_str(), v["error"]["code"].as_i64()),
            (Some("2.0"), Some(code)),
            "{v}"
        );
    }
}
