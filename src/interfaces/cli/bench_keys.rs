//! `onramp bench keys`: how fast integration keys are verified and exchanged for access tokens,
//! and access tokens checked. In-process, one at a time, through the services; then over HTTP
//! against a real `onramp serve` process (rate limits off) with wrk, Debian's `wrk` package,
//! which Onramp runs as a child process and whose summary it reads.

use serde::Serialize;
use std::path::Path;
use std::time::Instant;

use super::bench::{latency, spawn_serve, Latency, Scratch};
use super::output;
use crate::product::Product;
use crate::services::customers::OnboardRequest;
use crate::services::keyring::HashSecret;
use crate::services::keys::IssueKeyRequest;
use crate::services::Actor;

/// One in-process operation: its latency and how many a second one caller gets.
#[derive(Debug, Serialize)]
pub(super) struct InProcess {
    pub(super) latency: Latency,
    pub(super) per_second: f64,
}

/// One wrk run.
#[derive(Debug, Serialize)]
pub(super) struct HttpLoad {
    pub(super) route: String,
    pub(super) requests_per_second: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) requests: u64,
    pub(super) non_2xx: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct KeysReport {
    backend: &'static str,
    verify_key: InProcess,
    exchange_key: InProcess,
    check_access_token: InProcess,
    /// wrk's version line, threads, connections and seconds.
    load_generator: Option<String>,
    http: Vec<HttpLoad>,
    /// Why there are no HTTP figures, when there are none.
    http_skipped: Option<String>,
}

pub(super) async fn time_each<F, Fut, T>(samples: u32, mut op: F) -> anyhow::Result<InProcess>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut durations = Vec::with_capacity(samples as usize);
    let started = Instant::now();
    for _ in 0..samples {
        let t = Instant::now();
        op().await?;
        durations.push(t.elapsed());
    }
    let total = started.elapsed().as_secs_f64();
    Ok(InProcess {
        latency: latency(durations),
        per_second: f64::from(samples) / total,
    })
}

pub(super) async fn keys(
    scratch: &Scratch,
    samples: u32,
    seconds: u32,
    connections: u32,
) -> anyhow::Result<KeysReport> {
    let data_dir = scratch.dir.path();
    let mut product = Product::builtin();
    product.steps = vec!["validate".into(), "register".into()];
    // The server started below reads the same generated secret from the scratch data dir.
    let services = scratch
        .services(product)
        .await?
        .with_key_hash(HashSecret::load(data_dir, None, false)?);
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
    let issued = services
        .keys
        .issue(
            &actor,
            "bench_customer",
            &IssueKeyRequest {
                name: "bench".into(),
                scopes: vec!["data:read".into(), "jobs:read".into()],
                allowed_adapters: vec![],
                expires_at: None,
            },
        )
        .await?;
    let secret = issued.secret;

    let verify_key = time_each(samples, || async {
        services.keys.verify(&secret).await?;
        Ok(())
    })
    .await?;
    let exchange_key = time_each(samples, || async {
        services.keys.exchange(&secret).await?;
        Ok(())
    })
    .await?;
    let token = services.keys.exchange(&secret).await?.access_token;
    let check_access_token = time_each(samples, || async {
        services.keys.authenticate(&token)?;
        Ok(())
    })
    .await?;
    let backend = services.store.backend();
    drop(services);

    let mut report = KeysReport {
        backend,
        verify_key,
        exchange_key,
        check_access_token,
        load_generator: None,
        http: vec![],
        http_skipped: None,
    };
    let Some(version) = wrk_version() else {
        report.http_skipped = Some("wrk is not installed (apt-get install wrk)".into());
        return Ok(report);
    };
    report.load_generator = Some(format!(
        "{version}, 2 threads, {connections} connections, {seconds} s per route, on the same machine as the server"
    ));

    let (mut child, base) = spawn_serve(
        data_dir,
        scratch.database_url(),
        &[
            "--exchange-rate-per-key",
            "0",
            "--exchange-rate-per-address",
            "0",
        ],
    )
    .await?;
    let exchange_url = format!("{base}/api/v1/auth/token/integration");
    let me_url = format!("{base}/api/v1/me");
    // One request of each first: a misconfigured run fails here, not as 10 s of errors.
    let client = reqwest::Client::new();
    let r = client
        .post(&exchange_url)
        .header("x-api-key", &secret)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "token exchange: {}", r.status());
    let r = client.get(&me_url).bearer_auth(&token).send().await?;
    anyhow::ensure!(r.status().is_success(), "GET /api/v1/me: {}", r.status());

    let runs = [
        (
            "POST /api/v1/auth/token/integration",
            exchange_url,
            format!("wrk.method = \"POST\"\nwrk.headers[\"x-api-key\"] = \"{secret}\"\n"),
        ),
        (
            "GET /api/v1/me",
            me_url,
            format!("wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
        ),
    ];
    for (route, url, script) in runs {
        report
            .http
            .push(run_wrk(data_dir, route, &url, &script, connections, seconds).await?);
    }
    child.kill().await?;
    Ok(report)
}

/// wrk's version line, or none when wrk is not installed.
pub(super) fn wrk_version() -> Option<String> {
    let out = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .find(|l| l.starts_with("wrk"))
            .map(|l| l.split(" [").next().unwrap_or(l).trim().to_owned())
            .unwrap_or_else(|| "wrk".into()),
    )
}

/// One wrk run of `script` (Lua) against `url`, 2 threads: its summary, every response 2xx.
pub(super) async fn run_wrk(
    dir: &Path,
    route: &str,
    url: &str,
    script: &str,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<HttpLoad> {
    let script_path = dir.join("bench.lua");
    write_private(&script_path, script)?;
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("--latency")
        .arg("-s")
        .arg(&script_path)
        .arg(url)
        .output()
        .await?;
    std::fs::remove_file(&script_path)?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    let load = parse_wrk(route, &text)
        .ok_or_else(|| anyhow::anyhow!("cannot read wrk's summary:\n{text}"))?;
    anyhow::ensure!(
        load.non_2xx == 0,
        "{route}: {} of {} responses were not 2xx",
        load.non_2xx,
        load.requests
    );
    Ok(load)
}

/// Writes a file only its owner can read (the scripts hold the scratch key and token).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

fn wrk_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// Reads wrk's `--latency` summary.
fn parse_wrk(route: &str, text: &str) -> Option<HttpLoad> {
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut rps = None;
    let mut non_2xx = 0;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", d] => p50 = wrk_duration_ms(d),
            ["99%", d] => p99 = wrk_duration_ms(d),
            ["Requests/sec:", n] => rps = n.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => non_2xx = n.parse().ok()?,
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            _ => {}
        }
    }
    Some(HttpLoad {
        route: route.to_owned(),
        requests_per_second: rps?,
        p50_ms: p50?,
        p99_ms: p99?,
        requests: requests?,
        non_2xx,
    })
}

pub(super) fn print(r: &KeysReport) {
    println!("onramp bench keys on {}", r.backend);
    let mut t = output::table(&[
        "IN-PROCESS, ONE AT A TIME",
        "P50 MS",
        "P99 MS",
        "PER SECOND",
    ]);
    for (name, m) in [
        ("verify an integration key", &r.verify_key),
        ("exchange a key for an access token", &r.exchange_key),
        ("check an access token", &r.check_access_token),
    ] {
        t.add_row([
            name.to_owned(),
            format!("{:.3}", m.latency.p50_ms),
            format!("{:.3}", m.latency.p99_ms),
            format!("{:.0}", m.per_second),
        ]);
    }
    println!("{t}");
    match (&r.load_generator, &r.http_skipped) {
        (_, Some(why)) => println!("  over HTTP: skipped: {why}"),
        (Some(generator), None) => {
            println!("  over HTTP ({generator}):");
            let mut t = output::table(&["ROUTE", "REQUESTS/S", "P50 MS", "P99 MS", "REQUESTS"]);
            for h in &r.http {
                t.add_row([
                    h.route.clone(),
                    format!("{:.0}", h.requests_per_second),
                    format!("{:.3}", h.p50_ms),
                    format!("{:.3}", h.p99_ms),
                    h.requests.to_string(),
                ]);
            }
            println!("{t}");
        }
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_summary() {
        let text = "Running 10s test @ http://127.0.0.1:1/api/v1/me\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.23ms  456.00us  20.00ms   90.00%\n    Req/Sec     6.00k   500.00    7.00k    70.00%\n  Latency Distribution\n     50%  850.00us\n     75%    1.20ms\n     90%    2.00ms\n     99%    4.10ms\n  123456 requests in 10.00s, 45.67MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  12345.67\nTransfer/sec:      4.56MB\n";
        let h = parse_wrk("GET /api/v1/me", text).unwrap();
        assert_eq!(h.requests, 123_456);
        assert_eq!(h.non_2xx, 3);
        assert!((h.p50_ms - 0.85).abs() < 1e-9);
        assert!((h.p99_ms - 4.1).abs() < 1e-9);
        assert!((h.requests_per_second - 12_345.67).abs() < 1e-9);
        assert!(parse_wrk("x", "garbage").is_none());
    }
}
