//! `onramp bench usage`: usage ingestion and entitlement checks. In-process: the entitlement
//! check's latency. Over HTTP against a real `onramp serve`: single-event requests with wrk
//! (each a new event), 1,000-event batches from concurrent clients (then every batch sent
//! again, each of its events to be answered a duplicate), entitlement checks with wrk, and the
//! server's resident memory after the run.

use serde::Serialize;
use std::time::{Duration, Instant};

use super::bench::{resident_mib, spawn_serve, Scratch};
use super::bench_keys::{run_wrk, time_each, wrk_version, HttpLoad, InProcess};
use crate::domain::Role;
use crate::product::Product;
use crate::services::billing::{EntitlementCheck, NewSubscription};
use crate::services::customers::OnboardRequest;
use crate::services::Actor;

/// What `bench usage` measured.
#[derive(Debug, Serialize)]
pub(super) struct UsageReport {
    backend: &'static str,
    /// The entitlement check in-process.
    entitlement_check: InProcess,
    /// wrk's runs: single-event ingestion and entitlement checks.
    http: Vec<HttpLoad>,
    /// 1,000-event batches over HTTP.
    batches: Option<BatchLoad>,
    /// The server's resident memory after the runs, MiB.
    server_rss_mib: Option<f64>,
    /// wrk's version, threads, connections and seconds.
    load_generator: Option<String>,
    /// Why there are no wrk figures, when there are none.
    http_skipped: Option<String>,
}

/// The batch run.
#[derive(Debug, Serialize)]
pub(super) struct BatchLoad {
    batches: u64,
    events: u64,
    events_per_second: f64,
    clients: usize,
    /// Every event of every batch, sent again: how many were answered duplicate.
    duplicates_detected: u64,
    duplicates_sent: u64,
}

fn batch_body(client: usize, n: u64) -> serde_json::Value {
    let events: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            serde_json::json!({
                "event_id": format!("b{client}-{n}-{i}"),
                "metric": "api_calls",
                "value": 1,
                "customer_id": "bench_customer",
            })
        })
        .collect();
    serde_json::json!({ "events": events })
}

pub(super) async fn usage(
    scratch: &Scratch,
    samples: u32,
    seconds: u32,
    connections: u32,
) -> anyhow::Result<UsageReport> {
    let data_dir = scratch.dir.path();
    let mut product = Product::builtin();
    product.steps = vec!["validate".into(), "register".into()];
    let services = scratch.services(product).await?;
    let actor = Actor::cli();
    services
        .customers
        .onboard(
            &actor,
            &OnboardRequest {
                customer_id: Some("bench_customer".into()),
                customer_name: Some("Bench Customer".into()),
                industry: Some("other".into()),
                ..OnboardRequest::default()
            },
            None,
        )
        .await?;
    services
        .billing
        .subscribe(
            &actor,
            "bench_customer",
            &NewSubscription {
                plan: Some("standard".into()),
                cycle: Some("monthly".into()),
                currency: None,
            },
        )
        .await?;
    let check = EntitlementCheck {
        customer_id: Some("bench_customer".into()),
        metric: Some("api_calls".into()),
        amount: None,
    };
    let entitlement_check = time_each(samples, || async {
        services.billing.check_entitlement(&actor, &check).await?;
        Ok(())
    })
    .await?;
    let token = services
        .admin_tokens
        .create(&actor, Role::Operator, "bench")
        .await?
        .token;
    let backend = services.store.backend();
    drop(services);

    let mut report = UsageReport {
        backend,
        entitlement_check,
        http: vec![],
        batches: None,
        server_rss_mib: None,
        load_generator: None,
        http_skipped: None,
    };
    let (mut child, base) = spawn_serve(data_dir, scratch.database_url(), &[]).await?;
    let client = reqwest::Client::new();

    // Batches: `connections` clients at once for `seconds`, then every batch again.
    let clients = (connections as usize).clamp(1, 16);
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, token) = (
            client.clone(),
            format!("{base}/api/v1/usage"),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&batch_body(c, sent))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "a batch: {}", r.status());
                let v: serde_json::Value = r.json().await?;
                anyhow::ensure!(v["accepted"] == 1000, "a batch was not all accepted: {v}");
                sent += 1;
            }
            Ok::<u64, anyhow::Error>(sent)
        }));
    }
    let mut per_client = Vec::new();
    for t in tasks {
        per_client.push(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let batches: u64 = per_client.iter().sum();
    // Every batch again, from the same clients at once: each event a duplicate.
    let mut resends = Vec::new();
    for (c, sent) in per_client.iter().copied().enumerate() {
        let (client, url, token) = (
            client.clone(),
            format!("{base}/api/v1/usage"),
            token.clone(),
        );
        resends.push(tokio::spawn(async move {
            let mut detected = 0u64;
            for n in 0..sent {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&batch_body(c, n))
                    .send()
                    .await?;
                let v: serde_json::Value = r.json().await?;
                detected += v["duplicates"].as_u64().unwrap_or(0);
            }
            Ok::<u64, anyhow::Error>(detected)
        }));
    }
    let mut duplicates_detected = 0u64;
    for t in resends {
        duplicates_detected += t.await??;
    }
    report.batches = Some(BatchLoad {
        batches,
        events: batches * 1000,
        events_per_second: (batches * 1000) as f64 / elapsed,
        clients,
        duplicates_detected,
        duplicates_sent: batches * 1000,
    });

    match wrk_version() {
        None => {
            report.http_skipped = Some("wrk is not installed (apt-get install wrk)".into());
        }
        Some(version) => {
            report.load_generator = Some(format!(
                "{version}, 2 threads, {connections} connections, {seconds} s per route, on the same machine as the server"
            ));
            let single = format!(
                "local threads = 0\n\
                 function setup(thread) thread:set(\"tid\", threads); threads = threads + 1 end\n\
                 local n = 0\n\
                 request = function()\n\
                   n = n + 1\n\
                   local body = string.format('{{\"events\":[{{\"event_id\":\"w%d-%d\",\"metric\":\"api_calls\",\"value\":1,\"customer_id\":\"bench_customer\"}}]}}', tid, n)\n\
                   return wrk.format(\"POST\", nil, {{[\"Content-Type\"] = \"application/json\", [\"Authorization\"] = \"Bearer {token}\"}}, body)\n\
                 end\n"
            );
            let entitlement = format!(
                "wrk.method = \"POST\"\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                 wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
                 wrk.body = '{{\"customer_id\":\"bench_customer\",\"metric\":\"api_calls\",\"amount\":1}}'\n"
            );
            let runs = [
                (
                    "POST /api/v1/usage (1 event)",
                    format!("{base}/api/v1/usage"),
                    single,
                ),
                (
                    "POST /api/v1/entitlements/check",
                    format!("{base}/api/v1/entitlements/check"),
                    entitlement,
                ),
            ];
            for (route, url, script) in runs {
                report
                    .http
                    .push(run_wrk(data_dir, route, &url, &script, connections, seconds).await?);
            }
        }
    }
    report.server_rss_mib = child.id().and_then(resident_mib);
    child.kill().await?;
    Ok(report)
}

pub(super) fn print(r: &UsageReport) {
    println!("usage benchmark ({})", r.backend);
    let l = &r.entitlement_check.latency;
    println!(
        "  entitlement check, in-process: p50 {:.3} ms, p99 {:.3} ms ({} samples, {:.0}/s one caller)",
        l.p50_ms, l.p99_ms, l.samples, r.entitlement_check.per_second
    );
    if let Some(b) = &r.batches {
        println!(
            "  1,000-event batches over HTTP: {:.0} events/s ({} batches, {} clients); duplicates detected {} of {}",
            b.events_per_second, b.batches, b.clients, b.duplicates_detected, b.duplicates_sent
        );
    }
    for h in &r.http {
        println!(
            "  {}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} requests)",
            h.route, h.requests_per_second, h.p50_ms, h.p99_ms, h.requests
        );
    }
    if let Some(why) = &r.http_skipped {
        println!("  wrk runs skipped: {why}");
    }
    if let Some(g) = &r.load_generator {
        println!("  load: {g}");
    }
    if let Some(rss) = r.server_rss_mib {
        println!("  server resident memory after the runs: {rss:.1} MiB");
    }
}
