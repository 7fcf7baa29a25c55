//! The store conformance suite: the same tests against SQLite and PostgreSQL.

use crate::common;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

use crate::common::{Backend, TestDb};
use onramp::domain::customer::CustomerView;
use onramp::domain::events::{
    AdminTokenCreated, ChecklistCompleted, CustomerChanged, CustomerRegistered, EventBody,
};
use onramp::domain::{
    AttributeValue, Contact, Customer, CustomerId, CustomerIdRule, CustomerName, CustomerStatus,
    Email, NewEvent, Role, Tags, OPERATOR_CHAIN,
};
use onramp::product::Product;
use onramp::store::{
    AdminTokenRecord, CustomerFilter, EventFilter, IdempotencyRecord, PageRequest, StoreError,
};

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

on_both_backends!(
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
);
