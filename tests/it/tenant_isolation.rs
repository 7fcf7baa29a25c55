//! Tenant isolation under attack: a dataset query cannot act as anyone but its dataset, reach
//! the registry or another tenant, touch the server's files or sessions, leave anything behind,
//! run past its deadline, or answer with more bytes than its bound. Run as an attacker holding
//! a viewer or operator token would, over HTTP, and again straight at the dataset backend (past
//! the statement check) to prove the database itself refuses.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::{Backend, TestApp, TestDb};
use onramp::product::Product;
use onramp::services::RunnerOptions;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn customer(id: &str) -> Value {
    json!({"customer_id": id, "customer_name": format!("{id} Inc"), "industry": "other"})
}

/// Two customers, `acme` (the attacker's) and `beta` (the victim), each with a row.
async fn two_tenants(backend: Backend, product: Product) -> TestApp {
    let app = TestApp::start_with(backend, product).await;
    for id in ["acme", "beta"] {
        let (status, v) = app.onboard(&customer(id)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    app
}

/// The attempts of a tenant's attacker, each refused before or by the database.
fn attempts() -> Vec<&'static str> {
    vec![
        // Switch back to Onramp's own login, then run a second query string as it.
        "SELECT set_config('role','none',true), query_to_xml('select count(*), current_user from onramp.admin_tokens',true,false,'')",
        "SELECT set_config('session_authorization','postgres',true)",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "RESET ROLE",
        "SELECT query_to_xml('select * from tenant_beta.conversions',true,false,'')",
        "SELECT xpath('/row', query_to_xml('select * from onramp.customers',true,false,''))",
        "SELECT table_to_xml('onramp.admin_tokens',true,false,'')",
        // The server's files, large objects, other databases.
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_catalog.pg_read_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT lo_import('/etc/passwd')",
        "COPY conversions TO '/tmp/stolen'",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "SELECT dblink('dbname=postgres','select 1')",
        // Other sessions.
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity",
        "SELECT pg_terminate_backend(1)",
        "SELECT * FROM pg_stat_activity",
        // Session state that would outlive the query.
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_advisory_lock(-2367373802587086338)",
        "SELECT set_config('statement_timeout','0',false)",
        "PREPARE p AS SELECT 1",
        "CREATE TEMP TABLE t (x int)",
        "LISTEN x",
        // The registry and other tenants, named and looked up.
        "SELECT * FROM onramp.admin_tokens",
        "SELECT * FROM onramp.integration_keys",
        "SELECT * FROM onramp.credential_versions",
        "SELECT * FROM tenant_beta.conversions",
        "SELECT * FROM \"tenant_beta\".\"conversions\"",
        "SELECT (SELECT count(*) FROM tenant_beta.conversions)",
        "WITH x AS (SELECT * FROM onramp.customers) SELECT count(*) FROM x",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT * FROM pg_roles",
        "SELECT * FROM information_schema.tables",
        "SELECT 'onramp.admin_tokens'::regclass::oid",
        "SELECT to_regclass('tenant_beta.conversions')",
        "SELECT current_setting('data_directory')",
        "SELECT pg_sleep(30)",
        // Refused names spelled so a parser other than PostgreSQL's misreads them, and
        // functions that run a query string of their own.
        "SELECT U&\"pg\\005fadvisory\\005flock\"(1), U&\"pg\\005fsleep\"(4)",
        "SELECT U&\"query\\005fto\\005fxml\"('select * from onramp.admin_tokens',true,false,'')",
        "SELECT * FROM ts_stat('SELECT array_to_tsvector(array_agg(nspname::text)) FROM pg_namespace')",
        "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
        // SQLite's own ways out of a file.
        "ATTACH DATABASE '../onramp.db' AS registry",
        "SELECT * FROM registry.customers",
        "PRAGMA query_only = 0",
        "SELECT * FROM pragma_database_list",
        "SELECT load_extension('/tmp/evil')",
        "SELECT readfile('/etc/passwd')",
        "SELECT * FROM sqlite_temp_master",
        // Writes, however dressed.
        "WITH gone AS (DELETE FROM conversions RETURNING *) SELECT * FROM gone",
        "SELECT * INTO stolen FROM conversions",
        "SELECT * FROM conversions FOR UPDATE",
    ]
}

async fn every_attempt_is_refused_with_a_viewer_or_operator_token(backend: Backend) {
    let app = two_tenants(backend, Product::builtin()).await;
    let before = app.snapshot().await;
    for token in [&app.viewer, &app.operator] {
        for sql in attempts() {
            let (status, v) = app.query(token, "acme", sql).await;
            let code = v["code"].as_str().unwrap_or_default();
            assert!(
                status == StatusCode::UNPROCESSABLE_ENTITY
                    && matches!(code, "query_refused" | "validation_failed"),
                "{sql}: {status} {v}"
            );
            if code == "validation_failed" {
                assert_eq!(v["errors"][0]["field"], "sql", "{sql}: {v}");
            }
            assert!(
                !v.to_string().contains("root:") && !v.to_string().contains("onr_at_"),
                "{sql}: {v}"
            );
        }
    }
    assert_eq!(app.snapshot().await, before, "refusals change nothing");
    // The tenant's own queries still work afterwards, as its own role.
    let (status, v) = app
        .query(&app.viewer, "acme", "SELECT count(*) AS n FROM conversions")
        .await;
    assert_eq!(
        (status, v["rows"].clone()),
        (StatusCode::OK, json!([[0]])),
        "{v}"
    );
}

/// Past the statement check, straight at the backend: the database itself refuses.
async fn the_database_refuses_what_the_statement_check_would(backend: Backend) {
    let app = two_tenants(backend, Product::builtin()).await;
    let store = app
        .services
        .datasets
        .stores()
        .get("default")
        .unwrap()
        .clone();
    let password = app.services.datasets.reader_password("tenant_acme");
    let limits = app.services.product.query;
    let attempts: &[&str] = match backend {
        Backend::Postgres => &[
            "SELECT set_config('role','none',true), query_to_xml('select count(*) from onramp.admin_tokens',true,false,'')",
            "SELECT set_config('session_authorization','postgres',true)",
            "SELECT query_to_xml('select * from tenant_beta.conversions',true,false,'')",
            "SELECT * FROM onramp.admin_tokens",
            "SELECT * FROM tenant_beta.conversions",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
            "SELECT * FROM pg_authid",
            "SELECT nextval('x')",
        ],
        Backend::Sqlite => &[
            "ATTACH DATABASE '../onramp.db' AS registry",
            "PRAGMA query_only = 0",
            "PRAGMA writable_schema = 1",
            "SELECT load_extension('/tmp/evil')",
            "INSERT INTO conversions (conversion_id) VALUES ('x')",
            "SELECT * FROM sqlite_temp_master",
        ],
    };
    for sql in attempts {
        let result = store.query("tenant_acme", &password, sql, limits).await;
        assert!(
            matches!(
                result,
                Err(onramp::store::datasets::DatasetError::QueryRefused(_))
            ),
            "{sql}: {result:?}"
        );
    }
    if backend == Backend::Postgres {
        // Whoever the query is, it is the dataset's own login, with no way to be anyone else.
        let who = store
            .query(
                "tenant_acme",
                &password,
                "SELECT session_user::text, current_user::text",
                limits,
            )
            .await
            .unwrap();
        let reader = who.rows[0][0].as_str().unwrap().to_owned();
        assert!(reader.starts_with("onr_"), "{who:?}");
        assert_eq!(who.rows[0][1], who.rows[0][0]);
        let pool = sqlx::PgPool::connect(app.db.database_url.as_ref().unwrap())
            .await
            .unwrap();
        let (login, superuser, createrole, createdb, bypassrls, replication, has_password): (
            bool,
            bool,
            bool,
            bool,
            bool,
            bool,
            bool,
        ) = sqlx::query_as(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, \
             rolreplication, rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = $1",
        )
        .bind(&reader)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(login && has_password, "a LOGIN role with a SCRAM password");
        assert!(!(superuser || createrole || createdb || bypassrls || replication));
        let memberships: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member \
             WHERE r.rolname = $1",
        )
        .bind(&reader)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(memberships, 0, "the reader is a member of no role");

        // Nothing outlives a query: a lock taken, a setting changed.
        let id = 4_242_424_242i64;
        store
            .query(
                "tenant_acme",
                &password,
                &format!("SELECT pg_advisory_lock({id}), set_config('application_name','x',false)"),
                limits,
            )
            .await
            .unwrap();
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ($1::bigint & 4294967295)::oid",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(held, 0, "the advisory lock went with the query");
        let names: Vec<String> =
            sqlx::query_scalar("SELECT application_name FROM pg_stat_activity WHERE usename = $1")
                .bind(&reader)
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(names.iter().all(|n| n != "x"), "{names:?}");
        // Migrations (which take sqlx's advisory lock) still run at once.
        tokio::time::timeout(Duration::from_secs(10), app.services.store.migrate())
            .await
            .expect("migrations are not blocked")
            .unwrap();
    }
}

async fn results_are_bounded_in_bytes_and_keep_every_column(backend: Backend) {
    let mut product = Product::builtin();
    product.query.max_bytes = 64 * 1024;
    let app = two_tenants(backend, product).await;
    let (status, v) = app
        .query(&app.viewer, "acme", "SELECT 1 AS x, 2 AS x")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["columns"].clone(), v["rows"].clone()),
        (json!(["x", "x"]), json!([[1, 2]]))
    );

    // One value far past the bound: refused, or cut off; never the memory.
    let huge = match backend {
        Backend::Sqlite => "SELECT hex(randomblob(100000000))",
        Backend::Postgres => "SELECT repeat('x', 100000000)",
    };
    let (status, v) = app.query(&app.viewer, "acme", huge).await;
    match status {
        StatusCode::OK => assert_eq!(
            (v["truncated"].clone(), v["row_count"].clone()),
            (json!(true), json!(0)),
            "{v}"
        ),
        _ => assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("query_refused")),
            "{v}"
        ),
    }
    // Many rows that fit one by one but not together: as many as fit, and truncated.
    let many = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
                SELECT i, replace(printf('%1000d', i), ' ', 'x') AS pad FROM n";
    let many = match backend {
        Backend::Sqlite => many.to_owned(),
        Backend::Postgres => many.replace(
            "replace(printf('%1000d', i), ' ', 'x')",
            "repeat('x', 1000)",
        ),
    };
    let (status, v) = app.query(&app.viewer, "acme", &many).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let rows = v["row_count"].as_u64().unwrap();
    assert!(
        v["truncated"] == json!(true) && rows > 10 && rows < 70,
        "{rows} rows"
    );
    assert!(serde_json::to_vec(&v["rows"]).unwrap().len() <= 64 * 1024 + 4096);
}

/// Arbitrary text at the query path: NULs, unterminated comments and quotes, deep nesting,
/// huge literals. Every answer comes within the time limit plus a margin, as rows or a 4xx.
async fn any_text_answers_within_the_deadline(backend: Backend) {
    let mut product = Product::builtin();
    product.query.timeout_ms = 1_000;
    let app = two_tenants(backend, product).await;
    let fixed = [
        "SELECT 1 /* \u{0} */".to_owned(),
        "SELECT 1 -- \u{0}".to_owned(),
        "\u{0}".to_owned(),
        "SELECT '\u{0}'".to_owned(),
        "SELECT 1 /* never closed".to_owned(),
        "SELECT 'never closed".to_owned(),
        "SELECT \"never closed".to_owned(),
        format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000)),
        format!("SELECT {}", "-".repeat(16_000)),
        format!("SELECT '{}'", "x".repeat(16_000)),
        format!("SELECT {}", "1+".repeat(5_000) + "1"),
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
            .to_owned(),
    ];
    let pieces = proptest::collection::vec(
        proptest::prop_oneof![
            proptest::string::string_regex("[ -~]{0,12}").unwrap(),
            proptest::sample::select(vec![
                "SELECT ",
                "\u{0}",
                "/*",
                "*/",
                "--",
                "'",
                "\"",
                "(",
                ")",
                ";",
                "\n",
                "$$",
                "$a$",
                "\\",
                "e'",
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n) ",
                "SELECT count(*) FROM n",
                " FROM conversions",
                "\u{202e}",
                "\u{feff}",
            ])
            .prop_map(str::to_owned),
        ],
        0..24,
    )
    .prop_map(|v| v.concat());
    let mut runner = TestRunner::deterministic();
    let generated: Vec<String> = (0..150)
        .map(|_| pieces.new_tree(&mut runner).unwrap().current())
        .collect();
    for sql in fixed.iter().chain(generated.iter()) {
        let started = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(6),
            app.client
                .post(app.url("/api/v1/customers/acme/query"))
                .bearer_auth(&app.viewer)
                .json(&json!({ "sql": sql }))
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer within the deadline for {sql:?}"))
        .unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::OK || status.is_client_error(),
            "{sql:?}: {status}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{sql:?} took {:?}",
            started.elapsed()
        );
    }
}

/// Onramp runs on PostgreSQL as an ordinary role with CREATEROLE that owns its database: no
/// superuser. Onboarding, a query and offboarding with data all work, and the dataset's role
/// goes with its dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_onramp_needs_no_superuser() {
    let db = TestDb::new_with_ordinary_owner().await;
    let runner = RunnerOptions::new(db.data_dir());
    let app = TestApp::start_on(db, Product::builtin(), runner).await;
    let (status, v) = app.onboard(&customer("acme")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = app
        .query(&app.viewer, "acme", "SELECT count(*) AS n FROM conversions")
        .await;
    assert_eq!(
        (status, v["rows"].clone()),
        (StatusCode::OK, json!([[0]])),
        "{v}"
    );
    let roles_with_dataset = app.db.dataset_roles().await;
    assert_eq!(roles_with_dataset.len(), 1, "{roles_with_dataset:?}");
    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/offboard",
            &app.admin,
            &json!({"delete_data": true, "confirm": "acme", "export": true}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        app.db.dataset_roles().await,
        Vec::<String>::new(),
        "the role went with the dataset"
    );
}

/// A NUL anywhere in a request is bad input (422 naming the field), and every other malformed
/// request is a problem object too, identically on both backends; none changes anything.
async fn malformed_requests_are_problems_that_change_nothing(backend: Backend) {
    let app = two_tenants(backend, Product::builtin()).await;
    let before = app.snapshot().await;
    let problem = |r: reqwest::Response| async move {
        let status = r.status();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(content_type, "application/problem+json", "{status} {v}");
        (status, v)
    };
    let nul_gets = [
        ("/api/v1/customers/acme%00", "path"),
        ("/api/v1/customers?q=a%00b", "q"),
        ("/api/v1/customers?industry=%00", "industry"),
        ("/api/v1/customers?tag=x%00", "tag"),
        ("/api/v1/audit?type=a%00", "type"),
        ("/api/v1/audit?customer_id=acme%00", "customer_id"),
        ("/api/v1/customers/acme/credentials/x%00y", "path"),
    ];
    for (path, field) in nul_gets {
        let (status, v) = problem(app.get(path, &app.admin).send().await.unwrap()).await;
        assert_eq!(
            (status, v["code"].as_str(), v["errors"][0]["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("validation_failed"),
                Some(field)
            ),
            "{path}: {v}"
        );
    }
    // A cursor that decodes to NULs is a position like any other; the NULs never reach a store.
    let r = app
        .get("/api/v1/customers?cursor=AAAA", &app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, v) = problem(
        app.get("/api/v1/customers?cursor=%21%21", &app.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")),
        "{v}"
    );
    let nul_bodies = [
        json!({"customer_id": "newco", "customer_name": "New\u{0}Co", "industry": "other"}),
        json!({"customer_id": "newco", "customer_name": "New Co", "industry": "other", "tags": ["a", "b\u{0}"]}),
    ];
    for body in nul_bodies {
        let text = body.to_string();
        assert!(text.contains("\\u0000"));
        let r = app
            .client
            .post(app.url("/api/v1/customers"))
            .bearer_auth(&app.operator)
            .header("content-type", "application/json")
            .body(text.clone())
            .send()
            .await
            .unwrap();
        let (status, v) = problem(r).await;
        assert_eq!(
            (status, v["errors"][0]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("nul_character")),
            "{text}: {v}"
        );
    }
    let (status, v) = problem(
        app.get("/api/v1/customers?limit=-1", &app.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")),
        "{v}"
    );
    let (status, v) = problem(
        app.get("/api/v1/audit?since=yesterday", &app.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("since")),
        "{v}"
    );
    let (status, _) = problem(
        app.get("/api/v1/customers/%FF%FE", &app.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let r = app
        .client
        .post(app.url("/api/v1/customers"))
        .bearer_auth(&app.operator)
        .header("content-type", "text/plain")
        .body(customer("newco").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .client
        .delete(app.url("/api/v1/customers"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.snapshot().await, before, "refusals change nothing");
}

/// Names shown to operators cannot reorder or hide text; they are stored composed, and a
/// lookalike name finds the original.
async fn display_text_cannot_deceive(backend: Backend) {
    let app = two_tenants(backend, Product::builtin()).await;
    let before = app.snapshot().await;
    for (field, body) in [
        (
            "customer_name",
            json!({"customer_id": "evil", "customer_name": "Acme\u{202E}gnp.exe", "industry": "other"}),
        ),
        (
            "customer_name",
            json!({"customer_id": "evil", "customer_name": "Ac\u{200B}me", "industry": "other"}),
        ),
        (
            "contact.name",
            json!({"customer_id": "evil", "customer_name": "Evil", "industry": "other", "contact": {"name": "\u{2066}Bob"}}),
        ),
    ] {
        let (status, v) = app.onboard(&body).await;
        assert_eq!(
            (
                status,
                v["errors"][0]["field"].as_str(),
                v["errors"][0]["code"].as_str()
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(field),
                Some("invalid_characters")
            ),
            "{body}: {v}"
        );
    }
    assert_eq!(app.snapshot().await, before);
    let (status, v) = common::status_and_json(
        app.onboard_request(&json!({"customer_id": "cafe", "customer_name": "Cafe\u{301} Ltd", "industry": "other"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["customer"]["customer_name"], "Caf\u{e9} Ltd", "{v}");
    // A Cyrillic lookalike of "acme" finds acme's record.
    let (status, v) = common::status_and_json(
        app.get("/api/v1/customers?q=%D0%B0cme", &app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme"], "{v}");
}

/// 100 identical requests at once under one `Idempotency-Key`: one onboarding; every answer is
/// that onboarding replayed or "in progress, retry"; none says the customer already exists.
async fn one_idempotency_key_onboards_once_under_concurrency(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = customer("racer");
    let requests = (0..100).map(|_| {
        app.onboard_request(&body)
            .header("Idempotency-Key", "race-key-0001")
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut created = 0;
    for r in responses {
        let r = r.unwrap();
        let status = r.status();
        let retry_after = r.headers().get("retry-after").cloned();
        let v: Value = r.json().await.unwrap();
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                assert_eq!(v["customer"]["customer_id"], "racer", "{v}");
                assert_eq!(v["onboarding"]["status"], "succeeded", "{v}");
                created += 1;
            }
            StatusCode::CONFLICT => {
                assert_eq!(v["code"], "idempotency_key_in_progress", "{v}");
                assert!(retry_after.is_some(), "409 in progress carries Retry-After");
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert!(created >= 1);
    let events = app
        .services
        .store
        .list_events(&onramp::store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "customer.registered")
            .count(),
        1
    );
}

/// Thousands of clients that connect and send nothing, or half a request head, neither stop
/// the server answering others nor stay connected past the header timeout; past the
/// connection bound new connections are closed, not queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_cannot_starve_the_server() {
    use onramp::interfaces::http::server::ConnectionLimits;
    use onramp::interfaces::http::ServeOptions;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new(Backend::Sqlite).await;
    let runner = RunnerOptions::new(db.data_dir());
    let options = ServeOptions {
        connections: ConnectionLimits {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            max_connections: 3_000,
        },
        ..ServeOptions::default()
    };
    let app = TestApp::start_serving(db, Product::builtin(), runner, options).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for i in 0..2_500 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        idle.push(s);
    }
    // Everyone else is still served, promptly.
    let started = Instant::now();
    for _ in 0..20 {
        let r = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (status, _) = app.query(&app.viewer, "nobody", "SELECT 1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A slow body is cut off too.
    let mut slow_body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                app.operator
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Past the header timeout the server has closed every idle connection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for mut s in idle.drain(..) {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("the server closed the idle connection")
            .unwrap_or(0);
        // Closed outright, or answered 408 and closed.
        if n > 0 {
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
        }
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), slow_body.read(&mut buf))
        .await
        .expect("the slow body was cut off")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || !answer.starts_with("HTTP/1.1 2"), "{answer}");

    // At the connection bound, a new connection is closed at once instead of waiting.
    let mut held = Vec::new();
    for _ in 0..3_000 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf))
        .await
        .expect("refused at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "served again once clients leave"
    );
}

/// On a server that checks passwords (SCRAM-SHA-256 for every login, as in production), each
/// dataset's reader logs in with its own derived password: onboarding, queries (including after
/// the reader's password changed under it, which Onramp repairs) and offboarding all work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_readers_log_in_with_their_password_on_a_password_checking_server() {
    let cluster = common::ScratchCluster::start();
    let db = TestDb::new_on(&cluster.admin_url).await;
    let runner = RunnerOptions::new(db.data_dir());
    let app = TestApp::start_on(db, Product::builtin(), runner).await;
    let (status, v) = app.onboard(&customer("acme")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = app
        .query(&app.viewer, "acme", "SELECT current_user::text AS me")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["rows"][0][0].as_str().unwrap().starts_with("onr_"), "{v}");

    // Someone changes the reader's password: the next query repairs the login and answers.
    let reader = v["rows"][0][0].as_str().unwrap().to_owned();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.admin_url)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER ROLE \"{reader}\" PASSWORD 'changed-elsewhere'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(&reader)
        .execute(&mut admin)
        .await
        .unwrap();
    // The pooled connection the server holds may still be the old session; within a couple of
    // queries the pool logs in again and the repair takes over.
    let mut answered = false;
    for _ in 0..3 {
        let (status, _) = app.query(&app.viewer, "acme", "SELECT 1 AS one").await;
        if status == StatusCode::OK {
            answered = true;
            break;
        }
    }
    assert!(answered, "the reader's login was repaired");
    // The server does check: the reader's name with any other password is refused.
    let mut wrong = url::Url::parse(app.db.database_url.as_ref().unwrap()).unwrap();
    wrong.set_username(&reader).unwrap();
    wrong.set_password(Some("changed-elsewhere")).unwrap();
    assert!(
        <sqlx::PgConnection as sqlx::Connection>::connect(wrong.as_str())
            .await
            .is_err(),
        "a wrong password is refused"
    );
    let (status, v) = common::status_and_json(
        app.post(
            "/api/v1/customers/acme/offboard",
            &app.admin,
            &json!({"delete_data": true, "confirm": "acme"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(&reader)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    drop(app);
}

on_both_backends!(
    one_idempotency_key_onboards_once_under_concurrency,
    display_text_cannot_deceive,
    malformed_requests_are_problems_that_change_nothing,
    every_attempt_is_refused_with_a_viewer_or_operator_token,
    the_database_refuses_what_the_statement_check_would,
    results_are_bounded_in_bytes_and_keep_every_column,
    any_text_answers_within_the_deadline,
);
