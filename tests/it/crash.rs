//! Crash safety: a real `onramp serve` is killed while a batch of onboardings is in flight,
//! then started again. Every registered customer must end up active with its dataset, or
//! failed with none; no dataset may be left without a customer whose run succeeded.

use crate::common;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::cli::{onramp, Server};
use crate::common::{Backend, TestDb};
use onramp::domain::run::{RunStatus, StepStatus};
use onramp::domain::CustomerStatus;
use onramp::product::Product;
use onramp::store::{CustomerFilter, PageRequest};

/// How many of `customers` have a run that has not ended.
async fn unfinished(
    store: &dyn onramp::store::Store,
    customers: &[onramp::domain::Customer],
) -> usize {
    let mut open = 0;
    for c in customers {
        let run = store
            .latest_run(&c.id)
            .await
            .unwrap()
            .expect("every registered customer has its run");
        open += usize::from(!run.status.is_final());
    }
    open
}

async fn killing_the_server_mid_batch_leaves_no_half_onboarded_customer(backend: Backend) {
    let db = TestDb::new(backend).await;
    let token = onramp(
        &db,
        None,
        &[
            "admin", "token", "create", "--role", "operator", "--format", "json",
        ],
    )
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every provisioning stalls, so the kill lands while runs are mid-step.
    let server = Server::start(&db, Some("provision_dataset=stall:600"), 1);
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for i in 0..16 {
        let req = client
            .post(format!("{}/api/v1/customers", server.base))
            .bearer_auth(&token)
            .json(&json!({"customer_id": format!("c{i:02}"), "customer_name": format!("Customer {i}"), "industry": "golf"}))
            .send();
        requests.push(tokio::spawn(req));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill();
    for r in requests {
        let _ = r.await; // Cut off by the kill: errors are expected.
    }

    let services = common::services(&db, Product::builtin()).await;
    let store = services.store.clone();
    let registered = store
        .list_customers(
            &CustomerFilter::default(),
            &PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await
        .unwrap()
        .items;
    assert!(
        !registered.is_empty(),
        "some onboardings were registered before the kill"
    );
    assert!(
        unfinished(store.as_ref(), &registered).await > 0,
        "the kill left runs unfinished"
    );

    // A new process resumes every run once the dead one's leases have run out.
    let server = Server::start(&db, None, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = unfinished(store.as_ref(), &registered).await;
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} run(s) were never resumed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill();

    let customers = store
        .list_customers(
            &CustomerFilter::default(),
            &PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await
        .unwrap()
        .items;
    let present: BTreeSet<String> = services
        .datasets
        .stores()
        .get("default")
        .unwrap()
        .list()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut expected = BTreeSet::new();
    let mut resumed = 0;
    for c in &customers {
        let run = store
            .latest_run(&c.id)
            .await
            .unwrap()
            .expect("every registered customer has its run");
        let dataset = store.get_dataset(&c.id).await.unwrap();
        match c.status {
            CustomerStatus::Active => {
                assert_eq!(run.status, RunStatus::Succeeded, "{}", c.id);
                let d = dataset
                    .unwrap_or_else(|| panic!("{} is active without a dataset record", c.id));
                assert!(
                    present.contains(&d.dataset_id),
                    "{} is active without its dataset",
                    c.id
                );
                expected.insert(d.dataset_id);
            }
            CustomerStatus::Failed => {
                assert_eq!(run.status, RunStatus::Failed, "{}", c.id);
                assert!(
                    dataset.is_none(),
                    "{} failed but kept a dataset record",
                    c.id
                );
            }
            other => panic!("{} was left {other}", c.id),
        }
        if run.steps.iter().any(|s| {
            s.name == "provision_dataset" && s.attempts >= 2 && s.status == StepStatus::Succeeded
        }) {
            resumed += 1;
        }
    }
    assert_eq!(
        present, expected,
        "no dataset exists without an active customer"
    );
    assert!(
        resumed > 0,
        "at least one interrupted step ran again after the restart"
    );
    assert!(services.audit.verify().await.unwrap().ok);
}

on_both_backends!(killing_the_server_mid_batch_leaves_no_half_onboarded_customer);
