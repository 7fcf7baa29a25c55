//! `onramp bench signup`: the public signup wizard over HTTP (start and step latency, one
//! client, against a real `onramp serve` with its rate limits off and MX lookups off), a
//! signup's completion in-process (the risk review without DNS, its save and events), and email
//! delivery throughput to a local SMTP server: the one `--smtp-url` names, or aiosmtpd's
//! discarding sink (`python3 -m aiosmtpd`, from PyPI) started for the run.

use serde::Serialize;
use std::time::{Duration, Instant};

use super::bench::{latency, spawn_serve, Latency, Scratch};
use super::output;
use crate::product::Product;
use crate::services::signups::{Issue, StartSignup, StepSubmission, VerifyEmail};
use crate::services::Services;

/// Email delivery to a local server.
#[derive(Debug, Serialize)]
pub(super) struct Delivery {
    /// The server, without its password.
    server: String,
    /// Connections in the pool.
    pool: usize,
    /// Messages sent.
    messages: u32,
    /// From the first send to the last acceptance.
    seconds: f64,
    /// Messages the server accepted a second.
    per_second: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct SignupReport {
    backend: &'static str,
    http_start: Latency,
    http_step: Latency,
    complete_in_process: Latency,
    delivery: Option<Delivery>,
    delivery_skipped: Option<String>,
}

/// A signup's first step, for sample `i`: an address and a company of its own (one mailbox
/// gets at most 20 codes a day; distinct names keep the duplicate check honest).
fn start_request(i: u32) -> StartSignup {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    StartSignup {
        email: format!("ann.{i}@{}.example", &tag[..12]),
        company_name: format!("{} Analytics {i}", &tag[12..20]),
        template: None,
    }
}

fn step(name: &str, data: serde_json::Value) -> StepSubmission {
    StepSubmission {
        step: name.into(),
        data: data.as_object().cloned().unwrap_or_default(),
    }
}

const COMPANY: &str = "company";
fn company_answers() -> serde_json::Value {
    serde_json::json!({"industry": "ecommerce", "country": "DE", "timezone": "Europe/Berlin"})
}

/// Completes `samples` verified, answered signups one at a time; the completion alone is timed.
async fn complete_in_process(services: &Services, samples: u32) -> anyhow::Result<Latency> {
    let s = &services.signups;
    let mut durations = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let req = start_request(i);
        let started = s.start(&req, None).await?;
        let id = started.signup.signup_id.clone();
        let token = started.resume_token;
        let Issue::Issued(code) = s.issue_verification(&id, &req.email).await? else {
            anyhow::bail!("no verification code was issued for {id}");
        };
        s.verify(&id, &token, &VerifyEmail { code: code.code }, None)
            .await?;
        s.submit_step(&id, &token, &step(COMPANY, company_answers()), None)
            .await?;
        s.submit_step(
            &id,
            &token,
            &step(
                "contact",
                serde_json::json!({"contact_name": "Ann Lee", "accept_terms": true}),
            ),
            None,
        )
        .await?;
        let t = Instant::now();
        s.complete(&id, &token, None).await?;
        durations.push(t.elapsed());
    }
    Ok(latency(durations))
}

/// Starts `samples` signups over HTTP and saves each one's next step, one request at a time.
async fn over_http(base: &str, samples: u32) -> anyhow::Result<(Latency, Latency)> {
    let client = reqwest::Client::new();
    let mut starts = Vec::with_capacity(samples as usize);
    let mut sessions = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let req = start_request(i);
        let body = serde_json::json!({"email": req.email, "company_name": req.company_name});
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/signup/sessions"))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await?;
        starts.push(t.elapsed());
        anyhow::ensure!(status.as_u16() == 201, "start: {status}: {v}");
        sessions.push((
            v["signup_id"].as_str().unwrap_or_default().to_owned(),
            v["resume_token"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let mut steps = Vec::with_capacity(samples as usize);
    for (id, token) in &sessions {
        let body = serde_json::json!({"step": COMPANY, "data": company_answers()});
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/signup/sessions/{id}/step"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let _ = r.bytes().await?;
        steps.push(t.elapsed());
        anyhow::ensure!(status.is_success(), "step: {status}");
    }
    Ok((latency(starts), latency(steps)))
}

/// aiosmtpd's discarding sink on a free port, when Python has it.
async fn start_sink() -> Result<(tokio::process::Child, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = tokio::process::Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("python3 does not start: {e}"))?;
    // Ready when it accepts a connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok((child, format!("smtp://127.0.0.1:{port}")));
        }
        if Instant::now() > deadline {
            return Err("aiosmtpd did not start (pip install aiosmtpd, or give --smtp-url)".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Queues `messages` verification emails (one per signup started, through the outbox) and
/// times their delivery until none is due.
async fn delivery(scratch: &Scratch, smtp_url: &str, messages: u32) -> anyhow::Result<Delivery> {
    let url = smtp_url.to_owned();
    let services = scratch
        .services_with(Product::builtin(), move |s| {
            s.smtp_url = Some(url.into());
            s.mail_from = Some("Onramp Bench <bench@onramp.test>".into());
            s.dns_resolver = Some("off".into());
        })
        .await?;
    for i in 0..messages {
        services.signups.start(&start_request(i), None).await?;
    }
    let jobs = crate::jobs::Jobs::new(services.clone(), Duration::from_secs(60));
    jobs.register().await?;
    jobs.run_now("outbox.email").await?;
    let health = services.email.health().await?;
    anyhow::ensure!(
        health.due >= i64::from(messages),
        "{} message(s) queued, {messages} expected",
        health.due
    );
    let started = Instant::now();
    let mut sent = 0usize;
    loop {
        let r = services.email.deliver_due(200).await?;
        anyhow::ensure!(
            r.failed == 0 && r.retrying == 0,
            "the server refused messages: {r:?}"
        );
        sent += r.sent;
        if r.sent + r.skipped == 0 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        sent == messages as usize,
        "{sent} of {messages} messages sent"
    );
    Ok(Delivery {
        server: services.email.server().unwrap_or_default(),
        pool: services.email.pool_size().unwrap_or_default(),
        messages,
        seconds,
        per_second: f64::from(messages) / seconds,
    })
}

pub(super) async fn signup(
    config: &super::Config,
    scratch: &Scratch,
    samples: u32,
    messages: u32,
    smtp_url: Option<&str>,
) -> anyhow::Result<SignupReport> {
    let services = scratch
        .services_with(Product::builtin(), |s| s.dns_resolver = Some("off".into()))
        .await?;
    let backend = services.store.backend();
    let complete = complete_in_process(&services, samples).await?;
    drop(services);

    // The server reads its settings from the environment it is given: MX lookups off.
    let (mut child, base) = spawn_serve(
        scratch.dir.path(),
        scratch.database_url(),
        &[
            "--signup-rate-per-address",
            "0",
            "--signup-rate-per-session",
            "0",
        ],
    )
    .await?;
    let http = over_http(&base, samples).await;
    child.kill().await?;
    let (http_start, http_step) = http?;

    let mut report = SignupReport {
        backend,
        http_start,
        http_step,
        complete_in_process: complete,
        delivery: None,
        delivery_skipped: None,
    };
    let sink = match smtp_url {
        Some(url) => Ok((None, url.to_owned())),
        None => start_sink().await.map(|(child, url)| (Some(child), url)),
    };
    match sink {
        Err(why) => report.delivery_skipped = Some(why),
        Ok((child, url)) => {
            let d = Scratch::new(config).await?;
            let result = delivery(&d, &url, messages).await;
            d.drop().await?;
            if let Some(mut c) = child {
                let _ = c.kill().await;
            }
            report.delivery = Some(result?);
        }
    }
    Ok(report)
}

pub(super) fn print(r: &SignupReport) {
    println!("onramp bench signup on {}", r.backend);
    let mut t = output::table(&["OPERATION", "P50 MS", "P99 MS", "SAMPLES"]);
    for (name, l) in [
        (
            "POST /api/v1/signup/sessions (start), over HTTP",
            &r.http_start,
        ),
        (
            "POST /api/v1/signup/sessions/{id}/step, over HTTP",
            &r.http_step,
        ),
        (
            "complete a signup in-process (risk review without DNS, save, events)",
            &r.complete_in_process,
        ),
    ] {
        t.add_row([
            name.to_owned(),
            format!("{:.3}", l.p50_ms),
            format!("{:.3}", l.p99_ms),
            l.samples.to_string(),
        ]);
    }
    println!("{t}");
    match (&r.delivery, &r.delivery_skipped) {
        (Some(d), _) => println!(
            "  email delivery to {} ({} connections): {} messages in {:.2} s, {:.0} messages/s",
            d.server, d.pool, d.messages, d.seconds, d.per_second
        ),
        (None, Some(why)) => println!("  email delivery: skipped: {why}"),
        (None, None) => {}
    }
}
