//! The store conformance suite: the same tests against SQLite and PostgreSQL, for every store
//! trait (customers, events, admin tokens, runs with their datasets and checklist, integration
//! keys, the vault, signups); the jobs store's claiming and leases are proven in `jobs.rs`, on both too.

use crate::common;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

use crate::common::{Backend, TestDb};
use onramp::domain::credential::{CredentialStatus, VersionState};
use onramp::domain::customer::CustomerView;
use onramp::domain::envelope::{self, Binding, MasterKey};
use onramp::domain::events::{
    AdminTokenCreated, ChecklistCompleted, CustomerChanged, CustomerRegistered, EventBody,
};
use onramp::domain::run::{RunStatus, StepStatus};
use onramp::domain::signup::SignupStatus;
use onramp::domain::{
    AttributeValue, Contact, Customer, CustomerId, CustomerIdRule, CustomerName, CustomerStatus,
    Email, NewEvent, Role, Tags, OPERATOR_CHAIN,
};
use onramp::product::Product;
use onramp::store::credentials::{CredentialRecord, VersionRecord};
use onramp::store::keys::IntegrationKeyRecord;
use onramp::store::{
    AdminTokenRecord, ChecklistRecord, CustomerFilter, DatasetRecord, EventFilter,
    IdempotencyRecord, PageRequest, RunRecord, RunUpdate, SignupRecord, StepRecord, StoreError,
};
use rand::rngs::OsRng;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn customer(
    id: &str,
    name: &str,
    industry: &str,
    status: CustomerStatus,
    tags: &[&str],
) -> Customer {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "google_ads_customer_ids".to_owned(),
        AttributeValue::List(vec!["123-456-7890".into()]),
    );
    attributes.insert("country".to_owned(), AttributeValue::One("US".into()));
    Customer {
        id: CustomerId::parse(id, &CustomerIdRule::default()).unwrap(),
        name: CustomerName::parse(name).unwrap(),
        industry: industry.into(),
        data_store: "default".into(),
        status,
        tags: Tags::parse("tags", tags).unwrap(),
        attributes,
        contact: Contact {
            email: Some(Email::parse("ops@example.com").unwrap()),
            name: Some("Ann".into()),
        },
        created_by: Some("robert@company.com".into()),
        usage_tier: Some("starter".into()),
        test_clock_id: None,
        version: 1,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// An event of a catalog type, with a payload of that type.
fn body(c: Option<&Customer>, kind: &str) -> EventBody {
    match kind {
        "customer.registered" => EventBody::CustomerRegistered(CustomerRegistered {
            customer: CustomerView::of(c.expect("a customer"), &Product::builtin()),
            run_id: Some("run-1".into()),
            steps: vec![],
        }),
        "customer.updated" => EventBody::CustomerUpdated(CustomerChanged {
            changes: serde_json::Map::new(),
            version: 2,
        }),
        "admin_token.created" => EventBody::AdminTokenCreated(AdminTokenCreated {
            token_id: "t1".into(),
            name: "ops".into(),
            role: Role::Admin,
        }),
        "checklist.completed" => EventBody::ChecklistCompleted(ChecklistCompleted {
            item: "kickoff".into(),
        }),
        other => panic!("no test payload for {other}"),
    }
}

fn event(c: Option<&Customer>, kind: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        body: body(c, kind),
        actor: "test".into(),
        customer_id: c.map(|c| c.id.clone()),
        occurred_at: at,
        request_id: Some("req-1".into()),
    }
}

async fn a_customer_round_trips_with_every_field(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let c = customer(
        "acme_corp",
        "Acme Corporation",
        "ecommerce",
        CustomerStatus::Active,
        &["enterprise", "q1_2025"],
    );
    let e = store
        .insert_customer(&c, event(Some(&c), "customer.registered", t0()), None, None)
        .await
        .unwrap();
    assert_eq!((e.chain.as_str(), e.chain_seq), ("acme_corp", 1));
    assert_eq!(store.get_customer("acme_corp").await.unwrap(), Some(c));
    assert_eq!(store.get_customer("nobody").await.unwrap(), None);
    assert_eq!(store.count_customers().await.unwrap(), 1);
}

async fn a_duplicate_id_is_refused_and_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let c = customer("acme", "Acme", "retail", CustomerStatus::Active, &[]);
    store
        .insert_customer(&c, event(Some(&c), "customer.registered", t0()), None, None)
        .await
        .unwrap();
    let before = common::snapshot(store.as_ref()).await;
    let other = customer("acme", "Other", "golf", CustomerStatus::Active, &[]);
    let err = store
        .insert_customer(
            &other,
            event(Some(&other), "customer.registered", t0()),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CustomerExists(id) if id == "acme"));
    assert_eq!(common::snapshot(store.as_ref()).await, before);
}

async fn updates_check_the_version(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let c = customer("acme", "Acme", "retail", CustomerStatus::Active, &[]);
    store
        .insert_customer(&c, event(Some(&c), "customer.registered", t0()), None, None)
        .await
        .unwrap();
    let mut next = c.clone();
    next.status = CustomerStatus::Paused;
    next.version = 2;
    store
        .update_customer(
            &common::cid("acme"),
            &next,
            1,
            event(Some(&next), "customer.updated", t0()),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_customer("acme").await.unwrap().unwrap().status,
        CustomerStatus::Paused
    );

    let before = common::snapshot(store.as_ref()).await;
    let err = store
        .update_customer(
            &common::cid("acme"),
            &next,
            1,
            event(Some(&next), "customer.updated", t0()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .update_customer(
            &common::cid("ghost"),
            &next,
            1,
            event(Some(&next), "customer.updated", t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CustomerNotFound(_)), "{err:?}");
    assert_eq!(common::snapshot(store.as_ref()).await, before);
}

async fn listing_filters_and_pages_in_id_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let rows = [
        (
            "a_golf",
            "Topgolf Entertainment",
            "golf",
            CustomerStatus::Active,
            vec!["enterprise"],
        ),
        ("b_golf", "Puttery", "golf", CustomerStatus::Paused, vec![]),
        (
            "c_med",
            "MedCorp 100% Care",
            "medical",
            CustomerStatus::Active,
            vec!["enterprise", "usa"],
        ),
        (
            "d_shop",
            "Shop_Front",
            "ecommerce",
            CustomerStatus::Churned,
            vec!["usa"],
        ),
        (
            "e_shop",
            "ShopXFront",
            "ecommerce",
            CustomerStatus::Active,
            vec![],
        ),
    ];
    for (id, name, industry, status, tags) in &rows {
        let c = customer(id, name, industry, *status, tags);
        store
            .insert_customer(&c, event(Some(&c), "customer.registered", t0()), None, None)
            .await
            .unwrap();
    }
    let ids = |page: onramp::store::Page<Customer>| {
        page.items
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
    };
    let all = PageRequest {
        limit: 100,
        after: None,
    };
    let active = CustomerFilter {
        statuses: Some(vec![CustomerStatus::Active]),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_customers(&active, &all).await.unwrap()),
        ["a_golf", "c_med", "e_shop"]
    );
    let golf = CustomerFilter {
        industry: Some("golf".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_customers(&golf, &all).await.unwrap()),
        ["a_golf", "b_golf"]
    );
    let usa = CustomerFilter {
        tag: Some("usa".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_customers(&usa, &all).await.unwrap()),
        ["c_med", "d_shop"]
    );
    let q = CustomerFilter {
        name_contains: Some(onramp::domain::text::fold_name("TOPGOLF")),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_customers(&q, &all).await.unwrap()),
        ["a_golf"]
    );
    // LIKE wildcards in the text are literal: folded names hold none, so nothing matches.
    let pct = CustomerFilter {
        name_contains: Some("100%".into()),
        ..Default::default()
    };
    assert!(ids(store.list_customers(&pct, &all).await.unwrap()).is_empty());
    let under = CustomerFilter {
        name_contains: Some("p_f".into()),
        ..Default::default()
    };
    assert!(ids(store.list_customers(&under, &all).await.unwrap()).is_empty());

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_customers(&CustomerFilter::default(), &PageRequest { limit: 2, after })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        after = page.next.clone();
        seen.extend(ids(page));
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a_golf", "b_golf", "c_med", "d_shop", "e_shop"]);
}

async fn events_are_chained_per_customer_and_filterable(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = customer("acme", "Acme", "retail", CustomerStatus::Active, &[]);
    let b = customer("beta", "Beta", "golf", CustomerStatus::Active, &[]);
    store
        .insert_customer(&a, event(Some(&a), "customer.registered", t0()), None, None)
        .await
        .unwrap();
    store
        .insert_customer(
            &b,
            event(Some(&b), "customer.registered", t0() + Duration::seconds(1)),
            None,
            None,
        )
        .await
        .unwrap();
    let e3 = store
        .append_event(event(
            Some(&a),
            "customer.updated",
            t0() + Duration::seconds(2),
        ))
        .await
        .unwrap();
    let op = store
        .append_event(event(
            None,
            "admin_token.created",
            t0() + Duration::seconds(3),
        ))
        .await
        .unwrap();
    assert_eq!((e3.chain.as_str(), e3.chain_seq), ("acme", 2));
    assert_eq!((op.chain.as_str(), op.chain_seq), (OPERATOR_CHAIN, 1));
    assert_eq!(op.customer_id, None);

    let all = store
        .list_events(&EventFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all[2].prev_hash, all[0].hash,
        "acme's second event links to its first"
    );
    assert_eq!(all[2].computed_hash(), all[2].hash);
    assert_eq!(
        all[0].payload,
        body(Some(&a), "customer.registered").to_json()
    );
    assert_eq!(
        all[0].body().unwrap(),
        body(Some(&a), "customer.registered")
    );
    assert_eq!(all[0].request_id.as_deref(), Some("req-1"));

    let types = |f: EventFilter| {
        let store = store.clone();
        async move {
            store
                .list_events(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event_type)
                .collect::<Vec<_>>()
        }
    };
    let for_acme = EventFilter {
        customer_id: Some("acme".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        types(for_acme).await,
        ["customer.registered", "customer.updated"]
    );
    let updated = EventFilter {
        event_type: Some("customer.updated".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(types(updated).await, ["customer.updated"]);
    let window = EventFilter {
        since: Some(t0() + Duration::seconds(1)),
        until: Some(t0() + Duration::seconds(3)),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        types(window).await,
        ["customer.registered", "customer.updated"]
    );
    let after = EventFilter {
        after_id: Some(all[1].id),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(types(after).await, ["customer.updated"]);

    let heads = store.chain_heads().await.unwrap();
    let names: Vec<_> = heads.iter().map(|h| (h.chain.as_str(), h.seq)).collect();
    assert_eq!(names, [(OPERATOR_CHAIN, 1), ("acme", 2), ("beta", 1)]);
    let ordered = store
        .events_in_chain_order(Some(("acme", 1)), 10)
        .await
        .unwrap();
    let order: Vec<_> = ordered
        .iter()
        .map(|e| (e.chain.as_str(), e.chain_seq))
        .collect();
    assert_eq!(order, [("acme", 2), ("beta", 1)]);
}

async fn the_database_refuses_to_change_an_event(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .append_event(event(None, "admin_token.created", t0()))
        .await
        .unwrap();
    let refused = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!(
                "sqlite://{}/onramp.db",
                db.data_dir().display()
            ))
            .await
            .unwrap();
            let upd = sqlx::query("UPDATE events SET payload = '{}'")
                .execute(&pool)
                .await
                .is_err();
            let del = sqlx::query("DELETE FROM events")
                .execute(&pool)
                .await
                .is_err();
            upd && del
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(db.database_url.as_ref().unwrap())
                .await
                .unwrap();
            let upd = sqlx::query("UPDATE onramp.events SET payload = '{}'")
                .execute(&pool)
                .await
                .is_err();
            let del = sqlx::query("DELETE FROM onramp.events")
                .execute(&pool)
                .await
                .is_err();
            upd && del
        }
    };
    assert!(refused, "UPDATE and DELETE on events must fail");
    assert_eq!(
        store
            .list_events(&EventFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn an_idempotency_record_commits_with_its_customer(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let rec = IdempotencyRecord {
        key: "key-1".into(),
        fingerprint: "f".into(),
        status: 201,
        body: "{\"x\":1}".into(),
        created_at: t0(),
    };
    let a = customer("acme", "Acme", "retail", CustomerStatus::Active, &[]);
    store
        .insert_customer(
            &a,
            event(Some(&a), "customer.registered", t0()),
            None,
            Some(&rec),
        )
        .await
        .unwrap();
    let got = store.get_idempotency("key-1").await.unwrap().unwrap();
    assert_eq!(
        (got.fingerprint.as_str(), got.status, got.body.as_str()),
        ("f", 201, "{\"x\":1}")
    );

    let before = common::snapshot(store.as_ref()).await;
    let b = customer("beta", "Beta", "retail", CustomerStatus::Active, &[]);
    let err = store
        .insert_customer(
            &b,
            event(Some(&b), "customer.registered", t0()),
            None,
            Some(&rec),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyKeyTaken(_)), "{err:?}");
    assert_eq!(
        common::snapshot(store.as_ref()).await,
        before,
        "the customer rolled back with the key"
    );
    assert!(store.get_idempotency("other").await.unwrap().is_none());
}

async fn admin_tokens_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let t = AdminTokenRecord {
        id: "0123456789abcdef".into(),
        name: "ops".into(),
        role: Role::Operator,
        secret_hash: "ab".repeat(32),
        created_at: t0(),
        revoked_at: None,
    };
    store
        .insert_admin_token(&t, event(None, "admin_token.created", t0()))
        .await
        .unwrap();
    let got = store.get_admin_token(&t.id).await.unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.role, got.secret_hash.as_str()),
        ("ops", Role::Operator, t.secret_hash.as_str())
    );
    assert!(store
        .get_admin_token("ffffffffffffffff")
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_writers_keep_every_chain_intact(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = customer("acme", "Acme", "retail", CustomerStatus::Active, &[]);
    store
        .insert_customer(&a, event(Some(&a), "customer.registered", t0()), None, None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let who = if i % 2 == 0 { Some(&a) } else { None };
            store
                .append_event(event(who, "checklist.completed", t0()))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let services = common::services(&db, onramp::product::Product::builtin()).await;
    let report = services.audit.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.broken);
    assert_eq!(report.events_checked, 41);
    assert_eq!(report.chains, 2);
}

async fn migrations_can_run_again(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.unwrap();
    let again = db.store().await;
    again.ping().await.unwrap();
    assert_eq!(
        again.backend(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
}

/// A store with the active customer `acme` registered.
async fn active_acme(
    backend: Backend,
) -> (TestDb, std::sync::Arc<dyn onramp::store::Store>, Customer) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let c = customer("acme", "Acme", "retail", CustomerStatus::Active, &[]);
    store
        .insert_customer(&c, event(Some(&c), "customer.registered", t0()), None, None)
        .await
        .unwrap();
    (db, store, c)
}

/// A run with `validate` done, leased by `owner` until `lease_ms`.
fn leased_run(owner: &str, lease_ms: i64) -> RunRecord {
    RunRecord {
        customer_id: "acme".into(),
        run_id: "run-1".into(),
        status: RunStatus::Running,
        errors: vec![],
        started_at: t0(),
        finished_at: None,
        updated_at: t0(),
        lease_owner: Some(owner.into()),
        lease_expires_ms: lease_ms,
        steps: vec![StepRecord {
            name: "validate".into(),
            position: 0,
            status: StepStatus::Succeeded,
            attempts: 1,
            started_at: Some(t0()),
            finished_at: Some(t0()),
            error: None,
            completed_seq: Some(0),
        }],
        staged_credentials: vec![],
    }
}

fn renewal() -> RunUpdate<'static> {
    RunUpdate {
        steps: &[],
        lease_until_ms: 50_000,
        status: None,
        errors: None,
        at: t0(),
        customer: None,
        dataset: None,
        events: vec![],
    }
}

async fn runs_are_leased_claimed_once_and_keep_their_records(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let c = customer("acme", "Acme", "retail", CustomerStatus::Pending, &[]);
    let run = leased_run("p1", 1_000);
    store
        .insert_customer(
            &c,
            event(Some(&c), "customer.registered", t0()),
            Some(&run),
            None,
        )
        .await
        .unwrap();
    let stored = store.latest_run(&c.id).await.unwrap().unwrap();
    assert_eq!(stored, run);

    // Another process's write is refused and changes nothing.
    let lost = store.update_run(&c.id, "run-1", "p2", renewal()).await;
    assert!(
        matches!(lost, Err(StoreError::LeaseLost { .. })),
        "{lost:?}"
    );
    assert_eq!(store.latest_run(&c.id).await.unwrap().unwrap(), run);

    // Nobody claims a run before its lease runs out; after, exactly one claimer does.
    assert!(store
        .claim_runs(999, "p2", 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = store.claim_runs(1_001, "p2", 30_000, 10).await.unwrap();
    assert_eq!(claimed, vec![("acme".to_owned(), "run-1".to_owned())]);
    assert!(store
        .claim_runs(1_002, "p3", 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    let taken = store.latest_run(&c.id).await.unwrap().unwrap();
    assert_eq!(taken.lease_owner.as_deref(), Some("p2"));
    let old_owner = store.update_run(&c.id, "run-1", "p1", renewal()).await;
    assert!(matches!(old_owner, Err(StoreError::LeaseLost { .. })));
    store
        .update_run(&c.id, "run-1", "p2", renewal())
        .await
        .unwrap();

    // The dataset record round-trips and goes.
    let dataset = DatasetRecord {
        customer_id: "acme".into(),
        dataset_id: "tenant_acme".into(),
        data_store: "default".into(),
        tier: Some("starter".into()),
        schema_version: 1,
        tables: vec!["campaigns".into(), "keywords".into()],
        created_at: t0(),
        updated_at: t0(),
    };
    store
        .save_dataset(&dataset, Some(event(Some(&c), "customer.updated", t0())))
        .await
        .unwrap();
    assert_eq!(store.get_dataset(&c.id).await.unwrap(), Some(dataset));
    store
        .delete_dataset(&c.id, event(Some(&c), "customer.updated", t0()))
        .await
        .unwrap();
    assert_eq!(store.get_dataset(&c.id).await.unwrap(), None);

    // A checklist item marked twice keeps its first marking.
    let first = ChecklistRecord {
        item_id: "kickoff".into(),
        done_by: "ann".into(),
        done_at: t0(),
    };
    let second = ChecklistRecord {
        done_by: "bob".into(),
        done_at: t0() + Duration::hours(1),
        ..first.clone()
    };
    let marked = store
        .mark_checklist(&c.id, &first, event(Some(&c), "checklist.completed", t0()))
        .await
        .unwrap();
    assert_eq!(marked, first);
    let again = store
        .mark_checklist(&c.id, &second, event(Some(&c), "checklist.completed", t0()))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.checklist(&c.id).await.unwrap(), vec![first]);
}

async fn an_integration_key_changes_only_from_the_secret_it_was_read_with(backend: Backend) {
    let (_db, store, c) = active_acme(backend).await;
    let ev = || event(Some(&c), "customer.updated", t0());
    let key = IntegrationKeyRecord {
        key_id: "k1".into(),
        customer_id: "acme".into(),
        name: "shipping".into(),
        scopes: vec!["ship:upload".into()],
        allowed_adapters: vec!["ship".into()],
        expires_at: Some(t0() + Duration::days(90)),
        secret_hash: "h1".into(),
        previous_secret_hash: None,
        previous_valid_until: None,
        created_at: t0(),
        created_by: "test".into(),
        rotated_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_integration_key(&key, ev()).await.unwrap();
    assert_eq!(
        store.integration_key("k1").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        store.integration_keys(&c.id).await.unwrap(),
        vec![key.clone()]
    );
    assert_eq!(store.integration_key("k2").await.unwrap(), None);

    let rotated = IntegrationKeyRecord {
        secret_hash: "h2".into(),
        previous_secret_hash: Some("h1".into()),
        previous_valid_until: Some(t0() + Duration::hours(2)),
        rotated_at: Some(t0() + Duration::hours(1)),
        ..key.clone()
    };
    // A rotation read from another secret loses and writes nothing.
    let stale = store.update_integration_key(&rotated, "h0", ev()).await;
    assert!(matches!(stale, Err(StoreError::KeyChanged(_))), "{stale:?}");
    assert_eq!(
        store.integration_key("k1").await.unwrap(),
        Some(key.clone())
    );
    store
        .update_integration_key(&rotated, "h1", ev())
        .await
        .unwrap();
    assert_eq!(
        store.integration_key("k1").await.unwrap(),
        Some(rotated.clone())
    );
    // Replaying the same rotation loses too.
    let replay = store.update_integration_key(&rotated, "h1", ev()).await;
    assert!(matches!(replay, Err(StoreError::KeyChanged(_))));

    let used = t0() + Duration::hours(2);
    store.touch_integration_key("k1", used).await.unwrap();
    let touched = store.integration_key("k1").await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(used));

    let revoked_at = t0() + Duration::hours(3);
    assert_eq!(
        store
            .revoke_customer_keys(&c.id, revoked_at, Some(ev()))
            .await
            .unwrap(),
        1
    );
    let revoked = store.integration_key("k1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(revoked_at));
    assert_eq!(
        store
            .revoke_customer_keys(&c.id, revoked_at, None)
            .await
            .unwrap(),
        0
    );
    // A revoked key changes no more, whatever secret the change was read with.
    let after = IntegrationKeyRecord {
        secret_hash: "h3".into(),
        ..rotated
    };
    let refused = store.update_integration_key(&after, "h2", ev()).await;
    assert!(matches!(refused, Err(StoreError::KeyChanged(_))));
}

async fn a_credential_version_is_written_once_and_destroying_clears_every_value(backend: Backend) {
    let (_db, store, c) = active_acme(backend).await;
    let ev = || event(Some(&c), "customer.updated", t0());
    let master = MasterKey::new(1, [7u8; 32]);
    let binding = Binding {
        customer_id: "acme",
        credential_type: "api_key",
        version: 1,
    };
    let record = CredentialRecord {
        customer_id: "acme".into(),
        credential_type: "api_key".into(),
        status: CredentialStatus::Unvalidated,
        current_version: Some(1),
        scopes: Some(vec!["read".into()]),
        last_validated_at: None,
        validation_error: None,
        expires_at: None,
        rotate_by: Some(t0() + Duration::days(30)),
        created_at: t0(),
        updated_at: t0(),
    };
    let v1 = VersionRecord {
        customer_id: "acme".into(),
        credential_type: "api_key".into(),
        version: 1,
        state: VersionState::Enabled,
        fingerprint: "fp1".into(),
        sealed: Some(envelope::seal(&master, binding, b"value", &mut OsRng)),
        created_at: t0(),
        created_by: "test".into(),
        state_changed_at: t0(),
    };
    store
        .save_credential(&record, Some(&v1), &[], vec![ev()])
        .await
        .unwrap();
    assert_eq!(
        store.credential(&c.id, "api_key").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.credentials(&c.id).await.unwrap(),
        vec![record.clone()]
    );
    assert_eq!(
        store.credential_versions(&c.id, "api_key").await.unwrap(),
        vec![v1.clone()]
    );

    // The same version number again is refused and changes nothing.
    let taken = VersionRecord {
        fingerprint: "fp-other".into(),
        ..v1.clone()
    };
    let refused = store
        .save_credential(&record, Some(&taken), &[], vec![ev()])
        .await;
    assert!(
        matches!(refused, Err(StoreError::CredentialVersionTaken { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.credential_versions(&c.id, "api_key").await.unwrap(),
        vec![v1.clone()]
    );

    // Due for rotation once its deadline is within the window; rewrapped when the master moves.
    let due = store
        .credentials_due(t0() + Duration::days(31))
        .await
        .unwrap();
    assert_eq!(due, vec![record.clone()]);
    assert!(store
        .credentials_due(t0() + Duration::days(29))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.versions_to_rewrap(2, 10).await.unwrap(),
        vec![v1.clone()]
    );
    assert!(store.versions_to_rewrap(1, 10).await.unwrap().is_empty());

    // Destroying keeps the versions' metadata and clears every value.
    let destroyed = store
        .destroy_customer_credentials(&c.id, t0() + Duration::hours(1), Some(ev()))
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    let versions = store.credential_versions(&c.id, "api_key").await.unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions
        .iter()
        .all(|v| v.sealed.is_none() && v.state == VersionState::Destroyed));
    let after = store.credential(&c.id, "api_key").await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.current_version),
        (CredentialStatus::Revoked, None)
    );
    assert!(store.versions_to_rewrap(2, 10).await.unwrap().is_empty());
    assert!(store
        .credentials_due(t0() + Duration::days(31))
        .await
        .unwrap()
        .is_empty());
}

async fn a_signup_changes_only_from_the_version_it_was_read_at(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ev = || event(None, "admin_token.created", t0());
    let mut answers = onramp::store::signups::Answers::new();
    answers.insert(
        "account".into(),
        BTreeMap::from([("email".to_owned(), serde_json::json!("ann@example.com"))]),
    );
    let signup = SignupRecord {
        signup_id: "su_1".into(),
        email: "ann@example.com".into(),
        mailbox_key: "ann@example.com".into(),
        company_name: "Acme".into(),
        name_folded: "acme".into(),
        template: Some("starter".into()),
        status: SignupStatus::InProgress,
        current_step: Some("company".into()),
        furthest_step: "company".into(),
        answers,
        resume_token_hash: "h".into(),
        verified_at: None,
        verification: None,
        codes_requested: 1,
        failed_tries: 0,
        review: None,
        decision: None,
        created_at: t0(),
        updated_at: t0(),
        expires_at: t0() + Duration::hours(72),
        version: 1,
    };
    store.insert_signup(&signup, ev()).await.unwrap();
    assert_eq!(store.signup("su_1").await.unwrap(), Some(signup.clone()));
    assert_eq!(store.signup("su_2").await.unwrap(), None);
    // Idle once its expires_at is reached, and only while in progress.
    let idle = |h| store.idle_signups(t0() + Duration::hours(h), 10);
    assert!(idle(71).await.unwrap().is_empty());
    assert_eq!(idle(72).await.unwrap(), vec![signup.clone()]);
    let next = SignupRecord {
        status: SignupStatus::Abandoned,
        current_step: None,
        verified_at: Some(t0() + Duration::minutes(5)),
        verification: Some(onramp::store::signups::Verification {
            code_hash: "c".into(),
            link_hash: "l".into(),
            expires_at: t0() + Duration::minutes(30),
            attempts: 2,
        }),
        codes_requested: 3,
        failed_tries: 4,
        updated_at: t0() + Duration::hours(1),
        version: 2,
        ..signup.clone()
    };
    let stale = store.update_signup(&next, 0, vec![ev()]).await;
    assert!(
        matches!(stale, Err(StoreError::SignupChanged(_))),
        "{stale:?}"
    );
    assert_eq!(store.signup("su_1").await.unwrap(), Some(signup));
    let events = common::all_events(store.as_ref()).await.len();
    store.update_signup(&next, 1, vec![ev()]).await.unwrap();
    assert_eq!(store.signup("su_1").await.unwrap(), Some(next.clone()));
    assert!(
        idle(100).await.unwrap().is_empty(),
        "an abandoned signup is not idle"
    );
    assert_eq!(common::all_events(store.as_ref()).await.len(), events + 1);
    let replay = store.update_signup(&next, 1, vec![ev()]).await;
    assert!(matches!(replay, Err(StoreError::SignupChanged(_))));
}

async fn the_review_reads_names_contacts_lists_and_the_queue(backend: Backend) {
    use onramp::store::signups::{SignupFilter, StoredDomainList};
    let (_db, store, _acme) = active_acme(backend).await;
    let ev = || event(None, "admin_token.created", t0());
    // The customer "Acme" folds to a name starting with fold("Acme").
    let key = onramp::domain::text::company_key("ACME, Inc.");
    let found = store.names_starting(&key, t0(), "su_x", 10).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|m| (m.kind, m.id.as_str()))
            .collect::<Vec<_>>(),
        vec![("customer", "acme")]
    );
    assert!(store
        .names_starting("zz", t0(), "su_x", 10)
        .await
        .unwrap()
        .is_empty());
    // Live signups count; the asking one, ended ones and idle ones do not.
    let signup = |id: &str, status: SignupStatus, minutes: i64| SignupRecord {
        signup_id: id.into(),
        email: format!("{id}@example.com"),
        mailbox_key: format!("{id}@example.com"),
        company_name: "Acme Labs".into(),
        name_folded: onramp::domain::text::fold_name("Acme Labs"),
        template: None,
        status,
        current_step: None,
        furthest_step: "account".into(),
        answers: Default::default(),
        resume_token_hash: "h".into(),
        verified_at: None,
        verification: None,
        codes_requested: 1,
        failed_tries: 0,
        review: None,
        decision: None,
        created_at: t0() + Duration::minutes(minutes),
        updated_at: t0() + Duration::minutes(minutes),
        expires_at: t0() + Duration::hours(1),
        version: 1,
    };
    for (id, status, m) in [
        ("su_a", SignupStatus::InProgress, 1),
        ("su_b", SignupStatus::Review, 2),
        ("su_c", SignupStatus::Rejected, 3),
        ("su_d", SignupStatus::Review, 4),
    ] {
        store
            .insert_signup(&signup(id, status, m), ev())
            .await
            .unwrap();
    }
    let ids = |found: Vec<onramp::store::signups::NameMatch>| {
        let mut v: Vec<String> = found.into_iter().map(|m| m.id).collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(store.names_starting(&key, t0(), "su_d", 10).await.unwrap()),
        vec!["acme", "su_a", "su_b"]
    );
    assert_eq!(
        ids(store
            .names_starting(&key, t0() + Duration::hours(2), "su_d", 10)
            .await
            .unwrap()),
        vec!["acme", "su_b"],
        "an idle session is not live"
    );
    // What an address's sessions asked for and tried, since a time.
    assert_eq!(
        store
            .address_activity("su_b@example.com", t0())
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(
        store
            .address_activity("su_b@example.com", t0() + Duration::minutes(3))
            .await
            .unwrap(),
        (0, 0)
    );
    // The contact email, in any case.
    assert!(store.contact_email_taken("OPS@Example.com").await.unwrap());
    assert!(!store.contact_email_taken("ops@example.org").await.unwrap());
    // The queue by status, oldest change first, after a cursor.
    let page = |status, after| {
        let store = store.clone();
        async move {
            store
                .signups(&SignupFilter {
                    status,
                    after,
                    limit: 10,
                })
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.signup_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        page(Some(SignupStatus::Review), None).await,
        vec!["su_b", "su_d"]
    );
    assert_eq!(
        page(
            Some(SignupStatus::Review),
            Some((t0() + Duration::minutes(2), "su_b".into()))
        )
        .await,
        vec!["su_d"]
    );
    assert_eq!(page(None, None).await.len(), 4);
    // A domain list round-trips and is replaced whole.
    assert_eq!(store.domain_list("disposable").await.unwrap(), None);
    let list = StoredDomainList {
        name: "disposable".into(),
        source: "a.conf".into(),
        list_date: Some("2026-12-01".into()),
        entries: 2,
        domains: "a.example\nb.example".into(),
        updated_at: t0(),
    };
    store.save_domain_list(&list, ev()).await.unwrap();
    assert_eq!(
        store.domain_list("disposable").await.unwrap(),
        Some(list.clone())
    );
    let newer = StoredDomainList {
        source: "b.conf".into(),
        list_date: None,
        entries: 1,
        domains: "c.example".into(),
        updated_at: t0() + Duration::hours(1),
        ..list
    };
    store.save_domain_list(&newer, ev()).await.unwrap();
    assert_eq!(store.domain_list("disposable").await.unwrap(), Some(newer));
}

async fn the_delivery_log_queues_once_per_event_and_moves_with_its_cursor(backend: Backend) {
    use onramp::domain::email::{DeliveryStatus, EmailKind};
    use onramp::store::emails::{EmailFilter, EmailRecord};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .register_jobs(&["outbox.email"], &["email"], t0())
        .await
        .unwrap();
    let email = |id: &str, event: Option<i64>, kind: EmailKind, at: i64| EmailRecord {
        email_id: id.into(),
        kind,
        recipient: "ann@example.com".into(),
        customer_id: (id == "em_3").then(|| common::cid("acme")),
        signup_id: (id != "em_3").then(|| "su_1".to_owned()),
        user_id: (id == "em_3").then(|| "usr_1".to_owned()),
        event_id: event,
        status: DeliveryStatus::Queued,
        attempts: 0,
        subject: None,
        last_error: None,
        message_id: None,
        created_at: t0(),
        updated_at: t0(),
        next_attempt_at: t0() + Duration::seconds(at),
        sent_at: None,
    };
    let first = vec![
        email("em_1", Some(1), EmailKind::SignupVerification, 5),
        email("em_2", Some(2), EmailKind::SignupVerification, 0),
    ];
    store
        .queue_emails("email", 0, 2, &first, &[], t0())
        .await
        .unwrap();
    // A second attempt from the same cursor is refused and queues nothing.
    let again = store.queue_emails("email", 0, 2, &first, &[], t0()).await;
    assert!(
        matches!(again, Err(StoreError::CursorMoved(_))),
        "{again:?}"
    );
    // The same event and kind again (a replay after the cursor moved) is left as it was.
    let replay = vec![
        email("em_9", Some(2), EmailKind::SignupVerification, 0),
        email("em_3", Some(3), EmailKind::OnboardingSummary, 1),
    ];
    store
        .queue_emails("email", 2, 3, &replay, &[], t0())
        .await
        .unwrap();
    assert_eq!(
        store.outbox_cursors().await.unwrap(),
        vec![("email".to_owned(), 3)]
    );
    let all = store
        .emails(&EmailFilter {
            limit: 10,
            ..EmailFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.email_id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["em_3", "em_2", "em_1"],
        "newest id first, em_9 never queued"
    );
    assert_eq!(all[2], first[0]);
    // Due in next_attempt_at order; not before their time.
    let due = store
        .due_emails(t0() + Duration::seconds(1), 10)
        .await
        .unwrap();
    let due_ids: Vec<&str> = due.iter().map(|e| e.email_id.as_str()).collect();
    assert_eq!(due_ids, vec!["em_2", "em_3"]);
    assert_eq!(store.email_backlog(t0()).await.unwrap(), (3, 1));
    let mut sent = due[0].clone();
    sent.status = DeliveryStatus::Sent;
    sent.attempts = 1;
    sent.subject = Some("Your code".into());
    sent.message_id = Some("<em_2@example.com>".into());
    sent.sent_at = Some(t0() + Duration::seconds(1));
    sent.updated_at = t0() + Duration::seconds(1);
    store.update_email(&sent).await.unwrap();
    let by = |f: EmailFilter| {
        let store = store.clone();
        async move {
            store
                .emails(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.email_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by(EmailFilter {
            signup_id: Some("su_1".into()),
            status: Some(DeliveryStatus::Sent),
            limit: 10,
            ..EmailFilter::default()
        })
        .await,
        vec!["em_2"]
    );
    assert_eq!(
        by(EmailFilter {
            customer_id: Some(common::cid("acme")),
            limit: 10,
            ..EmailFilter::default()
        })
        .await,
        vec!["em_3"]
    );
    assert_eq!(
        by(EmailFilter {
            before: Some("em_3".into()),
            limit: 1,
            ..EmailFilter::default()
        })
        .await,
        vec!["em_2"]
    );
    let stored = store
        .emails(&EmailFilter {
            status: Some(DeliveryStatus::Sent),
            limit: 10,
            ..EmailFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored, vec![sent]);
    assert_eq!(
        store
            .email_backlog(t0() + Duration::hours(1))
            .await
            .unwrap(),
        (2, 2)
    );
    // A test message no event queued.
    store
        .insert_email(&email("em_4", None, EmailKind::Test, 0))
        .await
        .unwrap();
    assert_eq!(store.email_backlog(t0()).await.unwrap().0, 3);
}

async fn accounts_keep_one_email_check_versions_and_count_failures(backend: Backend) {
    use onramp::domain::account::{LinkPurpose, UserRole, UserStatus};
    use onramp::store::accounts::{
        LoginAttempt, PortalSessionRecord, SessionChange, UserLink, UserRecord,
    };
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ev = || event(None, "admin_token.created", t0());
    let user = UserRecord {
        user_id: "usr_1".into(),
        customer_id: common::cid("acme"),
        email: "Ann@Example.com".into(),
        email_key: "ann@example.com".into(),
        name: Some("Ann".into()),
        role: UserRole::Owner,
        status: UserStatus::Invited,
        password_hash: None,
        password_change_required: false,
        password_expires_at: None,
        link: Some(UserLink {
            hash: "linkhash".into(),
            purpose: LinkPurpose::SetPassword,
            expires_at: t0() + Duration::days(7),
        }),
        resets_requested: 0,
        resets_since: None,
        signup_id: None,
        invited_by: Some("token:t".into()),
        created_at: t0(),
        updated_at: t0(),
        last_login_at: None,
        version: 1,
    };
    store.insert_user(&user, ev()).await.unwrap();
    assert_eq!(store.user("usr_1").await.unwrap().as_ref(), Some(&user));
    assert_eq!(
        store.user_by_link("linkhash").await.unwrap().as_ref(),
        Some(&user)
    );
    // One account per email: a second is refused and writes nothing, its event included.
    let events = common::all_events(store.as_ref()).await.len();
    let twin = UserRecord {
        user_id: "usr_2".into(),
        customer_id: common::cid("globex"),
        ..user.clone()
    };
    let refused = store.insert_user(&twin, ev()).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::UserEmailTaken(ref k) if k == "ann@example.com"),
        "{refused:?}"
    );
    assert_eq!(common::all_events(store.as_ref()).await.len(), events);
    assert!(store.user("usr_2").await.unwrap().is_none());

    // A change from the version read, with a session; a stale one is refused whole.
    let session = PortalSessionRecord {
        token_hash: "s1".into(),
        user_id: "usr_1".into(),
        customer_id: common::cid("acme"),
        created_at: t0(),
        expires_at: t0() + Duration::hours(12),
    };
    let mut active = user.clone();
    active.status = UserStatus::Active;
    active.password_hash = Some("$argon2id$x".into());
    active.link = None;
    active.version = 2;
    store
        .update_user(
            &active,
            1,
            vec![ev()],
            SessionChange::Start(session.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        store.user_by_email("ann@example.com").await.unwrap(),
        Some(active.clone())
    );
    assert!(store.user_by_link("linkhash").await.unwrap().is_none());
    assert_eq!(
        store.portal_session("s1", t0()).await.unwrap(),
        Some(session.clone())
    );
    assert!(
        store
            .portal_session("s1", t0() + Duration::hours(12))
            .await
            .unwrap()
            .is_none(),
        "an ended session opens nothing"
    );
    let stale = store
        .update_user(&active, 1, vec![ev()], SessionChange::EndAll)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::UserChanged(_)), "{stale:?}");
    assert!(
        store.portal_session("s1", t0()).await.unwrap().is_some(),
        "a refused change ends nothing"
    );
    assert_eq!(
        store.users_of(&common::cid("acme")).await.unwrap(),
        vec![active.clone()]
    );

    // Attempts count up per key before they are checked, and lock by the caller's rule; while
    // a lock is on, an attempt is refused and not counted; clearing forgets them.
    let lock = |n: i64| (n >= 2).then(|| t0() + Duration::seconds(30));
    let attempt = |at| {
        let store = store.clone();
        async move {
            store
                .begin_login_attempt("ann@example.com", at, &lock)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        attempt(t0()).await,
        LoginAttempt::Allowed {
            failures: 1,
            locked_until: None
        }
    );
    let until = t0() + Duration::seconds(30);
    assert_eq!(
        attempt(t0()).await,
        LoginAttempt::Allowed {
            failures: 2,
            locked_until: Some(until)
        }
    );
    assert_eq!(attempt(t0()).await, LoginAttempt::Locked(until));
    assert_eq!(
        store
            .login_throttle("ann@example.com")
            .await
            .unwrap()
            .map(|t| t.failures),
        Some(2)
    );
    let later = t0() + Duration::seconds(31);
    assert!(matches!(
        attempt(later).await,
        LoginAttempt::Allowed { failures: 3, .. }
    ));
    store.clear_login_failures("ann@example.com").await.unwrap();
    assert!(store
        .login_throttle("ann@example.com")
        .await
        .unwrap()
        .is_none());

    // The purge takes ended sessions and day-old throttles that lock nothing.
    store
        .begin_login_attempt("old@example.com", t0(), &|_| None)
        .await
        .unwrap();
    assert_eq!(
        store
            .purge_account_leftovers(t0() + Duration::hours(1), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_account_leftovers(t0() + Duration::days(2), 100)
            .await
            .unwrap(),
        2
    );
    assert!(store.portal_session("s1", t0()).await.unwrap().is_none());

    // The last active owner stays; with a second, either may go, from the version read.
    let mut again = active.clone();
    again.version = 3;
    store
        .update_user(&again, 2, vec![], SessionChange::Start(session.clone()))
        .await
        .unwrap();
    let last = store.delete_user(&again, 3, ev()).await.unwrap_err();
    assert!(matches!(last, StoreError::LastOwner(_)), "{last:?}");
    let second = UserRecord {
        user_id: "usr_3".into(),
        email: "bo@example.com".into(),
        email_key: "bo@example.com".into(),
        status: UserStatus::Active,
        link: None,
        ..user.clone()
    };
    store.insert_user(&second, ev()).await.unwrap();
    assert!(store.delete_user(&again, 2, ev()).await.is_err());
    store.delete_user(&again, 3, ev()).await.unwrap();
    assert!(store.user("usr_1").await.unwrap().is_none());
    assert!(
        store.portal_session("s1", t0()).await.unwrap().is_none(),
        "a deleted user's sessions end"
    );
    let last = store.delete_user(&second, 1, ev()).await.unwrap_err();
    assert!(matches!(last, StoreError::LastOwner(_)), "{last:?}");

    // Lapsed invitations: a link expired, or none sent in time.
    let invited = |id: &str, link: Option<UserLink>, at| UserRecord {
        user_id: id.into(),
        email: format!("{id}@example.com"),
        email_key: format!("{id}@example.com"),
        role: UserRole::Member,
        created_at: at,
        link,
        ..user.clone()
    };
    store
        .insert_user(&invited("inv_a", None, t0()), ev())
        .await
        .unwrap();
    let expired = UserLink {
        hash: "la".into(),
        purpose: LinkPurpose::SetPassword,
        expires_at: t0() + Duration::days(7),
    };
    store
        .insert_user(&invited("inv_b", Some(expired), t0()), ev())
        .await
        .unwrap();
    store
        .insert_user(&invited("inv_c", None, t0() + Duration::days(10)), ev())
        .await
        .unwrap();
    let lapsed = |now| {
        let store = store.clone();
        async move {
            store
                .lapsed_invitations(now, now - Duration::days(14), 10)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.user_id)
                .collect::<Vec<_>>()
        }
    };
    assert!(lapsed(t0() + Duration::days(1)).await.is_empty());
    assert_eq!(lapsed(t0() + Duration::days(8)).await, ["inv_b"]);
    assert_eq!(lapsed(t0() + Duration::days(15)).await, ["inv_a", "inv_b"]);

    // Offboarding ends every session of the customer and, with its data, takes its users.
    let s2 = PortalSessionRecord {
        token_hash: "s2".into(),
        user_id: "usr_3".into(),
        ..session.clone()
    };
    let mut bo = store.user("usr_3").await.unwrap().unwrap();
    bo.version = 2;
    store
        .update_user(&bo, 1, vec![], SessionChange::Start(s2))
        .await
        .unwrap();
    let acme = common::cid("acme");
    assert_eq!(store.offboard_users(&acme, false, vec![]).await.unwrap(), 0);
    assert!(store.portal_session("s2", t0()).await.unwrap().is_none());
    assert_eq!(store.users_of(&acme).await.unwrap().len(), 4);
    assert_eq!(
        store.offboard_users(&acme, true, vec![ev()]).await.unwrap(),
        4
    );
    assert!(store.users_of(&acme).await.unwrap().is_empty());
}

on_both_backends!(
    accounts_keep_one_email_check_versions_and_count_failures,
    the_review_reads_names_contacts_lists_and_the_queue,
    the_delivery_log_queues_once_per_event_and_moves_with_its_cursor,
    a_customer_round_trips_with_every_field,
    a_duplicate_id_is_refused_and_changes_nothing,
    updates_check_the_version,
    listing_filters_and_pages_in_id_order,
    events_are_chained_per_customer_and_filterable,
    the_database_refuses_to_change_an_event,
    an_idempotency_record_commits_with_its_customer,
    admin_tokens_round_trip,
    concurrent_writers_keep_every_chain_intact,
    migrations_can_run_again,
    runs_are_leased_claimed_once_and_keep_their_records,
    an_integration_key_changes_only_from_the_secret_it_was_read_with,
    a_credential_version_is_written_once_and_destroying_clears_every_value,
    a_signup_changes_only_from_the_version_it_was_read_at,
);
