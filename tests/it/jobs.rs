//! The jobs runtime: one process at a time per job, leases that hand a dead process's job to
//! another, backoff and attempts, and the event log's consumer that counts each event once.

use chrono::{Duration as Span, Utc};
use std::time::{Duration, Instant};

use crate::common::cli::{onramp, Server};
use crate::common::{self, Backend, TestDb};
use onramp::domain::events::{ChecklistCompleted, EventBody, IntegrationKeysRevoked};
use onramp::domain::job::AttemptOutcome;
use onramp::domain::NewEvent;

const EVEN: &str = "checklist.completed";
const ODD: &str = "integration_keys.revoked";
use onramp::jobs::{JobError, Jobs};
use onramp::product::Product;
use onramp::services::Services;
use onramp::store::jobs::{ClaimWhen, JobFinish};
use onramp::store::{EventFilter, Store, StoreError};

fn event(n: usize) -> NewEvent {
    NewEvent {
        // Two types, to count by type: even and odd.
        body: if n.is_multiple_of(2) {
            EventBody::ChecklistCompleted(ChecklistCompleted {
                item: format!("item-{n}"),
            })
        } else {
            EventBody::IntegrationKeysRevoked(IntegrationKeysRevoked {
                reason: format!("test {n}"),
            })
        },
        actor: "test".into(),
        customer_id: None,
        occurred_at: Utc::now(),
        request_id: None,
    }
}

async fn events(store: &dyn Store) -> Vec<onramp::domain::Event> {
    store
        .list_events(&EventFilter {
            limit: 100_000,
            ..EventFilter::default()
        })
        .await
        .unwrap()
}

async fn all_events(store: &dyn Store) -> usize {
    events(store).await.len()
}

async fn counted(services: &Services) -> i64 {
    services
        .store
        .event_counts(None)
        .await
        .unwrap()
        .iter()
        .map(|(_, _, n)| n)
        .sum()
}

async fn two_processes(db: &TestDb, lease: Duration) -> (Jobs, Jobs) {
    let a = common::services(db, Product::builtin()).await;
    let b = common::services(db, Product::builtin()).await;
    assert_ne!(a.runner.owner, b.runner.owner);
    (Jobs::new(a, lease), Jobs::new(b, lease))
}

async fn a_job_runs_in_one_process_at_a_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = two_processes(&db, Duration::from_secs(30)).await;
    a.register().await.unwrap();
    let store = db.store().await;
    // Both claim at once: one gets each job, never both.
    let names = ["recover_runs", "outbox.event_counts"];
    let (ca, cb) = tokio::join!(
        store.claim_jobs(&names, ClaimWhen::Due, "process-a", Utc::now(), 30_000, 8),
        store.claim_jobs(&names, ClaimWhen::Due, "process-b", Utc::now(), 30_000, 8),
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.len() + cb.len(), 2, "{ca:?} {cb:?}");
    for name in names {
        assert_eq!(
            ca.iter().chain(&cb).filter(|c| c.name == name).count(),
            1,
            "{name} claimed once"
        );
    }
    // Held jobs are not claimed again, and running one by hand says who holds it.
    assert!(store
        .claim_jobs(&names, ClaimWhen::Now, "process-c", Utc::now(), 30_000, 8)
        .await
        .unwrap()
        .is_empty());
    match b.run_now("recover_runs").await {
        Err(JobError::Busy { owner, .. }) => assert!(owner.starts_with("process-")),
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(matches!(
        a.run_now("no_such_job").await,
        Err(JobError::Unknown(_))
    ));
}

async fn a_dead_process_s_job_is_taken_over_after_its_lease(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = two_processes(&db, Duration::from_secs(2)).await;
    a.register().await.unwrap();
    let store = db.store().await;
    // A process claims the job and dies without ending its attempt.
    let dead = store
        .claim_jobs(
            &["recover_runs"],
            ClaimWhen::Now,
            "dead-process",
            Utc::now(),
            2_000,
            1,
        )
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(matches!(
        b.run_now("recover_runs").await,
        Err(JobError::Busy { .. })
    ));
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let report = b.run_now("recover_runs").await.unwrap();
    assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
    let attempts = a.attempts("recover_runs", 10).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].id, dead.attempt_id);
    assert_eq!(attempts[1].outcome, AttemptOutcome::Abandoned);
    assert_eq!(attempts[1].owner, "dead-process");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    // The dead process, come back, cannot end an attempt it no longer holds.
    let late = store
        .finish_job(
            &dead,
            "dead-process",
            &JobFinish {
                at: Utc::now(),
                outcome: AttemptOutcome::Succeeded,
                detail: "late".into(),
                next_run_ms: 0,
            },
        )
        .await;
    assert!(matches!(late, Err(StoreError::JobLeaseLost(_))), "{late:?}");
    let record = store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "recover_runs")
        .unwrap();
    assert_eq!(record.runs, 1);
    assert_eq!(record.lease_owner, None);
}

async fn a_failed_attempt_backs_off_and_keeps_its_error(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, _) = two_processes(&db, Duration::from_secs(30)).await;
    a.register().await.unwrap();
    let store = db.store().await;
    let now = Utc::now();
    for expected_failures in 1..=2 {
        let claim = store
            .claim_jobs(&["recover_runs"], ClaimWhen::Now, "p", now, 30_000, 1)
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(claim.failures, expected_failures - 1);
        let next = onramp::domain::job::next_run_ms(
            now.timestamp_millis(),
            Duration::from_secs(5),
            u32::try_from(expected_failures).unwrap(),
            0.0,
        );
        store
            .finish_job(
                &claim,
                "p",
                &JobFinish {
                    at: now,
                    outcome: AttemptOutcome::Failed,
                    detail: "the database was away".into(),
                    next_run_ms: next,
                },
            )
            .await
            .unwrap();
        let r = store
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.name == "recover_runs")
            .unwrap();
        assert_eq!(r.failures, expected_failures);
        assert_eq!(r.next_run_ms, next);
        assert_eq!(r.last_error.as_deref(), Some("the database was away"));
        assert_eq!(r.last_outcome, Some(AttemptOutcome::Failed));
    }
    // Not due during its backoff; a success clears the failures and the error.
    assert!(store
        .claim_jobs(&["recover_runs"], ClaimWhen::Due, "p", now, 30_000, 1)
        .await
        .unwrap()
        .is_empty());
    let report = a.run_now("recover_runs").await.unwrap();
    assert_eq!(report.outcome, AttemptOutcome::Succeeded);
    let r = store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "recover_runs")
        .unwrap();
    assert_eq!((r.failures, r.last_error), (0, None));
}

async fn the_event_counts_consumer_takes_each_event_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = two_processes(&db, Duration::from_secs(30)).await;
    let services = common::services(&db, Product::builtin()).await;
    for n in 0..25 {
        services.store.append_event(event(n)).await.unwrap();
    }
    let report = a.run_now("outbox.event_counts").await.unwrap();
    assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
    let total = all_events(services.store.as_ref()).await as i64;
    assert_eq!(counted(&services).await, total);
    let counts = services.store.event_counts(None).await.unwrap();
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        counts.contains(&(today.clone(), EVEN.into(), 13)),
        "{counts:?}"
    );
    assert!(
        counts.contains(&(today.clone(), ODD.into(), 12)),
        "{counts:?}"
    );
    // Again, from another process: nothing new, nothing counted twice.
    b.run_now("outbox.event_counts").await.unwrap();
    assert_eq!(counted(&services).await, total);
    for n in 0..7 {
        services.store.append_event(event(n)).await.unwrap();
    }
    b.run_now("outbox.event_counts").await.unwrap();
    assert_eq!(counted(&services).await, total + 7);
    let status = a.status().await.unwrap();
    let consumer = status
        .iter()
        .find(|s| s.name == "outbox.event_counts")
        .unwrap();
    let last_id = events(services.store.as_ref()).await.last().unwrap().id;
    assert_eq!(consumer.cursor, Some(("event_counts", last_id)));
    // A consumer whose cursor moved under it changes nothing.
    let before = services.store.event_counts(None).await.unwrap();
    let stale = services
        .store
        .add_event_counts(
            "event_counts",
            0,
            last_id,
            &[(today, EVEN.into(), 100)],
            Utc::now(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::CursorMoved(_))),
        "{stale:?}"
    );
    assert_eq!(services.store.event_counts(None).await.unwrap(), before);
    // The projection's own filter.
    let tomorrow = (Utc::now() + Span::days(1)).format("%Y-%m-%d").to_string();
    assert!(services
        .store
        .event_counts(Some(&tomorrow))
        .await
        .unwrap()
        .is_empty());
}

async fn the_cli_lists_runs_and_shows_jobs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let listed = onramp(&db, None, &["jobs", "list", "--format", "json"]).ok();
    let names: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "recover_runs",
            "outbox.event_counts",
            "signups.expire",
            "outbox.email",
            "email.deliver",
            "accounts.purge",
            "signups.purge",
            "outbox.trial_activations",
            "billing.due"
        ]
    );
    let run = onramp(
        &db,
        None,
        &["jobs", "run", "outbox.event_counts", "--format", "json"],
    )
    .ok();
    assert_eq!(run.json()["outcome"], "succeeded", "{}", run.stdout);
    let status = onramp(
        &db,
        None,
        &["jobs", "status", "outbox.event_counts", "--format", "json"],
    )
    .ok();
    assert_eq!(status.json()[0]["outcome"], "succeeded");
    let table = onramp(&db, None, &["jobs", "list"]).ok();
    assert!(
        table.stdout.contains("consumer event_counts"),
        "{}",
        table.stdout
    );
    let counts = onramp(&db, None, &["audit", "counts", "--format", "json"]).ok();
    assert!(counts.json().is_array());
    // An unknown job is a plain sentence and exit code 4; nothing is stored for it.
    let unknown = onramp(&db, None, &["jobs", "run", "teleport"]);
    assert_eq!(unknown.code, 4, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("there is no job 'teleport'"));
    let store = db.store().await;
    assert!(store
        .jobs()
        .await
        .unwrap()
        .iter()
        .all(|r| r.name != "teleport"));
    assert!(store.job_attempts("teleport", 10).await.unwrap().is_empty());
}

on_both_backends!(
    a_job_runs_in_one_process_at_a_time,
    a_dead_process_s_job_is_taken_over_after_its_lease,
    a_failed_attempt_backs_off_and_keeps_its_error,
    the_event_counts_consumer_takes_each_event_once,
    the_cli_lists_runs_and_shows_jobs,
);

/// Three `onramp serve` processes share one PostgreSQL database: each job runs in one of them
/// at a time, and when the one holding the consumer's job is killed mid-run, another takes it
/// over once the lease has run out, and every event is still counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_the_jobs_and_survive_a_kill() {
    let db = TestDb::new(Backend::Postgres).await;
    let services = common::services(&db, Product::builtin()).await;
    let store = services.store.clone();
    // The first server stalls inside the consumer's job, after it has read its batch and
    // before it has counted it.
    let stalling = Server::start_jobs(&db, Some("job:outbox.event_counts=stall:600000"), 2);
    let others = [
        Server::start_jobs(&db, None, 2),
        Server::start_jobs(&db, None, 2),
    ];
    let stalling_owner = stalling.owner_prefix();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Events keep arriving until the stalling server holds the consumer's job.
    loop {
        for _ in 0..5 {
            store.append_event(event(n)).await.unwrap();
            n += 1;
        }
        // Held, and stalled: its attempt has been open for a while.
        let held = store
            .job_attempts("outbox.event_counts", 1)
            .await
            .unwrap()
            .pop()
            .is_some_and(|a| {
                a.owner.starts_with(&stalling_owner)
                    && a.outcome == AttemptOutcome::Running
                    && a.started_at < Utc::now() - Span::milliseconds(500)
            });
        if held {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalling server never took the job"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for _ in 0..5 {
        store.append_event(event(n)).await.unwrap();
        n += 1;
    }
    stalling.kill();
    let total = all_events(store.as_ref()).await as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counted(&services).await < total {
        assert!(
            Instant::now() < deadline,
            "the consumer's job was never taken over ({} of {total} counted)",
            counted(&services).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the survivors run a few more rounds, then look at every attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        counted(&services).await,
        total,
        "every event counted exactly once"
    );
    for job in ["outbox.event_counts", "recover_runs"] {
        let mut attempts = store.job_attempts(job, 200).await.unwrap();
        attempts.reverse();
        assert!(attempts.len() >= 3, "{job}: {attempts:?}");
        for pair in attempts.windows(2) {
            let ended = pair[0]
                .finished_at
                .expect("only the last attempt may be open");
            assert!(
                pair[1].started_at >= ended,
                "{job}: attempt {} started before attempt {} ended",
                pair[1].id,
                pair[0].id
            );
        }
        if job == "outbox.event_counts" {
            // Its last attempt is the one it was killed in (earlier ones found nothing to
            // take, so never stalled).
            let killed = attempts
                .iter()
                .rposition(|a| a.owner.starts_with(&stalling_owner))
                .expect("the killed server's attempt is recorded");
            assert_eq!(attempts[killed].outcome, AttemptOutcome::Abandoned);
            let next = &attempts[killed + 1];
            assert!(!next.owner.starts_with(&stalling_owner));
            assert!(
                next.started_at >= attempts[killed].started_at + Span::milliseconds(2_000),
                "taken over only after the lease ran out"
            );
        }
    }
    // The survivors shared the work: a job ran in each at some point, never in two at once.
    let owners: std::collections::BTreeSet<String> = store
        .job_attempts("recover_runs", 200)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.owner)
        .collect();
    assert!(!owners.is_empty());
    for server in others {
        server.kill();
    }
}
