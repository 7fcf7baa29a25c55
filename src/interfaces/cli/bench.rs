//! `onramp bench`: the benchmarks behind the figures in README.
//!
//! `bench registry` registers N customers in a scratch registry (a temp dir for SQLite, a
//! temporary database on the given PostgreSQL server), then measures get-by-id and
//! list-by-industry latency in-process and over HTTP against a real `onramp serve` process,
//! and that process's resident memory. The operator's own registry is never touched.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::output::{self, Format};
use super::Config;
use crate::app::{Application, MasterKeys, ProductSource, Settings};
use crate::domain::Role;
use crate::product::Product;
use crate::services::customers::{ListQuery, OnboardRequest};
use crate::services::{Actor, Services};
use crate::store;
use crate::store::datasets::DatasetSpec;
use secrecy::SecretString;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Registry create throughput, read latency, and a serving process's memory.
    Registry {
        /// How many customers to register.
        #[arg(long, default_value_t = 100_000)]
        customers: u32,
        /// Onboardings in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// How many timed reads of each kind.
        #[arg(long, default_value_t = 5_000)]
        samples: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Integration key verification, token exchange and access-token checks: in-process, and
    /// over HTTP against a real `onramp serve` with wrk (Debian's `wrk` package).
    Keys {
        /// Timed in-process operations of each kind.
        #[arg(long, default_value_t = 20_000)]
        samples: u32,
        /// Seconds of each wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// wrk's open connections.
        #[arg(long, default_value_t = 32)]
        connections: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The public signup wizard: start and step latency over HTTP (one client, against a real
    /// `onramp serve`), a signup's completion in-process (the risk review without DNS), and
    /// email delivery throughput to a local SMTP server.
    Signup {
        /// Signups timed of each kind.
        #[arg(long, default_value_t = 2_000)]
        samples: u32,
        /// Messages delivered for the throughput figure.
        #[arg(long, default_value_t = 2_000)]
        messages: u32,
        /// The SMTP server to deliver to (default: aiosmtpd's discarding sink, started for the
        /// run; `pip install aiosmtpd`).
        #[arg(long)]
        smtp_url: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Usage ingestion (single events and 1,000-event batches over HTTP, every duplicate
    /// detected) and entitlement checks (in-process, and over HTTP with wrk), and the server's
    /// memory.
    Usage {
        /// Timed in-process entitlement checks.
        #[arg(long, default_value_t = 20_000)]
        samples: u32,
        /// Seconds of each HTTP run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// wrk's open connections (and batch clients, at most 16).
        #[arg(long, default_value_t = 32)]
        connections: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Complete onboardings (validate, register, provision, verify, activate) against the bare
    /// cost of the same DDL on the same database.
    Onboard {
        /// How many customers to onboard (and how many bare datasets to create).
        #[arg(long, default_value_t = 1_000)]
        customers: u32,
        /// Onboardings in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Latency percentiles of one operation, in milliseconds.
#[derive(Debug, Serialize)]
pub(super) struct Latency {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) samples: usize,
}

pub(super) fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    Latency {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        samples: samples.len(),
    }
}

#[derive(Debug, Serialize)]
struct RegistryReport {
    backend: &'static str,
    customers: u32,
    concurrency: usize,
    create_seconds: f64,
    creates_per_second: f64,
    get_by_id: Latency,
    list_by_industry_first_page: Latency,
    http_get_by_id: Latency,
    http_list_by_industry_first_page: Latency,
    serve_rss_mb: Option<f64>,
}

/// A scratch registry: a temp dir, and on PostgreSQL a temporary database on the given server.
pub(super) struct Scratch {
    pub(super) dir: tempfile::TempDir,
    pg: Option<(String, String, String)>,
}

impl Scratch {
    pub(super) async fn new(config: &Config) -> anyhow::Result<Self> {
        let pg = match &config.database_url {
            Some(url) => {
                let name = format!("onramp_bench_{}", uuid::Uuid::new_v4().simple());
                Some((
                    url.clone(),
                    name.clone(),
                    store::postgres::create_database(url, &name).await?,
                ))
            }
            None => None,
        };
        Ok(Self {
            dir: tempfile::tempdir()?,
            pg,
        })
    }

    pub(super) fn database_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, _, u)| u.as_str())
    }

    pub(super) async fn services(&self, product: Product) -> anyhow::Result<Services> {
        self.services_with(product, |_| {}).await
    }

    /// [`Scratch::services`], with `configure` setting what else the benchmark needs.
    pub(super) async fn services_with(
        &self,
        product: Product,
        configure: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Services> {
        let mut settings = Settings::new(self.dir.path());
        settings.database_url = self.database_url().map(SecretString::from);
        settings.product = ProductSource::Loaded(Box::new(product));
        settings.master_keys = MasterKeys::Ephemeral;
        configure(&mut settings);
        Ok(Application::build(settings).await?.services)
    }

    pub(super) async fn drop(self) -> anyhow::Result<()> {
        if let Some((server, name, _)) = &self.pg {
            store::postgres::drop_database(server, name).await?;
        }
        Ok(())
    }
}

pub(super) async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<u8> {
    match command {
        BenchCommand::Registry {
            customers,
            concurrency,
            samples,
            format,
        } => {
            anyhow::ensure!(customers > 0, "--customers must be at least 1");
            anyhow::ensure!(
                (1..=256).contains(&concurrency),
                "--concurrency must be from 1 to 256"
            );
            anyhow::ensure!(samples > 0, "--samples must be at least 1");
            let scratch = Scratch::new(config).await?;
            let result = registry(&scratch, customers, concurrency, samples).await;
            scratch.drop().await?;
            let report = result?;
            match format {
                Format::Json => output::json(&report),
                _ => print_report(&report),
            }
        }
        BenchCommand::Keys {
            samples,
            seconds,
            connections,
            format,
        } => {
            check_load(samples, seconds, connections)?;
            let scratch = Scratch::new(config).await?;
            let result = super::bench_keys::keys(&scratch, samples, seconds, connections).await;
            scratch.drop().await?;
            let report = result?;
            match format {
                Format::Json => output::json(&report),
                _ => super::bench_keys::print(&report),
            }
        }
        BenchCommand::Signup {
            samples,
            messages,
            smtp_url,
            format,
        } => {
            anyhow::ensure!(
                (1..=100_000).contains(&samples),
                "--samples must be from 1 to 100000"
            );
            anyhow::ensure!(
                (1..=100_000).contains(&messages),
                "--messages must be from 1 to 100000"
            );
            let scratch = Scratch::new(config).await?;
            let result = super::bench_signup::signup(
                config,
                &scratch,
                samples,
                messages,
                smtp_url.as_deref(),
            )
            .await;
            scratch.drop().await?;
            let report = result?;
            match format {
                Format::Json => output::json(&report),
                _ => super::bench_signup::print(&report),
            }
        }
        BenchCommand::Usage {
            samples,
            seconds,
            connections,
            format,
        } => {
            check_load(samples, seconds, connections)?;
            let scratch = Scratch::new(config).await?;
            let result = super::bench_usage::usage(&scratch, samples, seconds, connections).await;
            scratch.drop().await?;
            let report = result?;
            match format {
                Format::Json => output::json(&report),
                _ => super::bench_usage::print(&report),
            }
        }
        BenchCommand::Onboard {
            customers,
            concurrency,
            format,
        } => {
            anyhow::ensure!(customers > 0, "--customers must be at least 1");
            anyhow::ensure!(
                (1..=64).contains(&concurrency),
                "--concurrency must be from 1 to 64"
            );
            let scratch = Scratch::new(config).await?;
            let result = onboard(&scratch, customers, concurrency).await;
            scratch.drop().await?;
            let report = result?;
            match format {
                Format::Json => output::json(&report),
                _ => print_onboard_report(&report),
            }
        }
    }
    Ok(super::exit::OK)
}

fn print_report(r: &RegistryReport) {
    println!(
        "onramp bench registry: {} customers on {} (concurrency {})",
        r.customers, r.backend, r.concurrency
    );
    println!(
        "  create: {:.1} s, {:.0} customers/s",
        r.create_seconds, r.creates_per_second
    );
    let mut t = output::table(&["OPERATION", "P50 MS", "P99 MS", "SAMPLES"]);
    for (name, l) in [
        ("get by id (in-process)", &r.get_by_id),
        (
            "list by industry, first page (in-process)",
            &r.list_by_industry_first_page,
        ),
        ("GET /api/v1/customers/{id}", &r.http_get_by_id),
        (
            "GET /api/v1/customers?industry=",
            &r.http_list_by_industry_first_page,
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
    match r.serve_rss_mb {
        Some(mb) => println!("  onramp serve resident memory after the reads: {mb:.1} MB"),
        None => println!("  onramp serve resident memory: not measurable on this platform"),
    }
}

async fn registry(
    scratch: &Scratch,
    n: u32,
    concurrency: usize,
    samples: u32,
) -> anyhow::Result<RegistryReport> {
    let (data_dir, database_url) = (scratch.dir.path(), scratch.database_url());
    // The registry alone: the onboarding steps that provision datasets are measured by
    // `bench onboard`.
    let mut product = Product::builtin();
    product.steps = vec!["validate".into(), "register".into()];
    let industries: Arc<Vec<String>> =
        Arc::new(product.industries.iter().map(|i| i.id.clone()).collect());
    let services = scratch.services(product).await?;
    let store = services.store.clone();
    let actor = Actor::cli();

    let bar = ProgressBar::new(u64::from(n));
    bar.set_style(
        ProgressStyle::with_template("{spinner} registering [{bar:30}] {pos}/{len} ({per_sec})")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (services, actor, next, industries, bar) = (
            services.clone(),
            actor.clone(),
            next.clone(),
            industries.clone(),
            bar.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let req = OnboardRequest {
                    customer_id: Some(format!("customer_{i:07}")),
                    customer_name: Some(format!("Customer {i}")),
                    industry: Some(industries[i as usize % industries.len()].clone()),
                    tags: vec![format!("cohort_{}", i % 20)],
                    ..OnboardRequest::default()
                };
                services.customers.onboard(&actor, &req, None).await?;
                bar.inc(1);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let create_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut rng = rand::thread_rng();
    let ids: Vec<String> = (0..samples)
        .map(|_| format!("customer_{:07}", rng.gen_range(0..n)))
        .collect();
    let mut gets = Vec::with_capacity(ids.len());
    for id in &ids {
        let t = Instant::now();
        services.customers.get(&actor, id).await?;
        gets.push(t.elapsed());
    }
    let mut lists = Vec::new();
    for i in 0..samples {
        let q = ListQuery {
            industry: Some(industries[i as usize % industries.len()].clone()),
            ..ListQuery::default()
        };
        let t = Instant::now();
        services.customers.list(&actor, &q).await?;
        lists.push(t.elapsed());
    }

    let token = services
        .admin_tokens
        .create(&actor, Role::Viewer, "bench")
        .await?
        .token;
    let backend = store.backend();
    drop(services);
    drop(store);
    let (http_gets, http_lists, rss) =
        serve_and_probe(data_dir, database_url, &token, &ids, &industries).await?;
    Ok(RegistryReport {
        backend,
        customers: n,
        concurrency,
        create_seconds,
        creates_per_second: f64::from(n) / create_seconds,
        get_by_id: latency(gets),
        list_by_industry_first_page: latency(lists),
        http_get_by_id: latency(http_gets),
        http_list_by_industry_first_page: latency(http_lists),
        serve_rss_mb: rss,
    })
}

/// Starts `onramp serve` on a scratch registry with `extra` serve flags; returns the process
/// and its base URL once it listens.
pub(super) async fn spawn_serve(
    data_dir: &Path,
    database_url: Option<&str>,
    extra: &[&str],
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra);
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.env("RUST_LOG", "warn")
        .env_remove("ONRAMP_PRODUCT")
        .env_remove("ONRAMP_CONFIG")
        .env_remove("KEY_HASH_SECRET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("onramp serve exited before listening"))?;
        if let Some(rest) = line.strip_prefix("onramp listening on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining its stderr so a chatty server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, base))
}

/// A process's resident memory (`VmRSS`), MiB.
pub(super) fn resident_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Starts `onramp serve` on the scratch registry, times reads over HTTP, and reads its RSS.
async fn serve_and_probe(
    data_dir: &Path,
    database_url: Option<&str>,
    token: &str,
    ids: &[String],
    industries: &[String],
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Option<f64>)> {
    let (mut child, base) = spawn_serve(data_dir, database_url, &[]).await?;
    let client = reqwest::Client::new();
    let mut gets = Vec::with_capacity(ids.len());
    for id in ids {
        let t = Instant::now();
        let r = client
            .get(format!("{base}/api/v1/customers/{id}"))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "GET {id}: {}", r.status());
        r.bytes().await?;
        gets.push(t.elapsed());
    }
    let mut lists = Vec::with_capacity(ids.len());
    for i in 0..ids.len() {
        let t = Instant::now();
        let industry = &industries[i % industries.len()];
        let r = client
            .get(format!("{base}/api/v1/customers?industry={industry}"))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "list: {}", r.status());
        r.bytes().await?;
        lists.push(t.elapsed());
    }
    let rss = child.id().and_then(resident_mib);
    child.kill().await?;
    Ok((gets, lists, rss))
}

#[derive(Debug, Serialize)]
struct OnboardReport {
    backend: &'static str,
    customers: u32,
    concurrency: usize,
    onboarding_p50_ms: f64,
    onboarding_p95_ms: f64,
    customers_per_minute: f64,
    bare_ddl_p50_ms: f64,
    bare_ddl_p95_ms: f64,
    ratio_p50: f64,
}

fn print_onboard_report(r: &OnboardReport) {
    println!(
        "onramp bench onboard: {} customers on {} (concurrency {})",
        r.customers, r.backend, r.concurrency
    );
    let mut t = output::table(&["MEASURE", "P50 MS", "P95 MS"]);
    t.add_row([
        "complete onboarding".to_owned(),
        format!("{:.2}", r.onboarding_p50_ms),
        format!("{:.2}", r.onboarding_p95_ms),
    ]);
    t.add_row([
        "bare DDL (dataset and tables, one transaction)".to_owned(),
        format!("{:.2}", r.bare_ddl_p50_ms),
        format!("{:.2}", r.bare_ddl_p95_ms),
    ]);
    println!("{t}");
    println!(
        "  {:.0} customers/minute; onboarding p50 is {:.2}x the bare DDL",
        r.customers_per_minute, r.ratio_p50
    );
}

/// Times `n` runs of `op(i)`, `concurrency` at a time; returns each latency and the wall time.
async fn timed<F, Fut>(
    n: u32,
    concurrency: usize,
    op: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(u32) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, op) = (next.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(lat);
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok((all, started.elapsed()))
}

fn percentile_ms(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0
}

async fn onboard(scratch: &Scratch, n: u32, concurrency: usize) -> anyhow::Result<OnboardReport> {
    let services = scratch.services(Product::builtin()).await?;
    let backend = services
        .datasets
        .stores()
        .get("default")
        .expect("the built-in product has a default store")
        .clone();

    // The baseline first, on the same database: the same dataset DDL, nothing else.
    let tables = services
        .product
        .tables_for_tier(services.product.default_tier.as_deref());
    let (mut ddl, _) = timed(n, concurrency, {
        let backend = backend.clone();
        let services = services.clone();
        move |i| {
            let backend = backend.clone();
            let dataset_id = format!("bench_ddl_{i:07}");
            let spec = DatasetSpec {
                reader_password: services.datasets.reader_password(&dataset_id),
                dataset_id,
                tables: tables.clone(),
            };
            async move { Ok(backend.provision(&spec).await?) }
        }
    })
    .await?;
    for i in 0..n {
        backend.drop_dataset(&format!("bench_ddl_{i:07}")).await?;
    }

    let bar = ProgressBar::new(u64::from(n));
    bar.set_style(
        ProgressStyle::with_template("{spinner} onboarding [{bar:30}] {pos}/{len} ({per_sec})")?
            .progress_chars("=> "),
    );
    let (mut runs, wall) = timed(n, concurrency, {
        let (services, bar) = (services.clone(), bar.clone());
        move |i| {
            let (services, bar) = (services.clone(), bar.clone());
            async move {
                let req = OnboardRequest {
                    customer_id: Some(format!("customer_{i:07}")),
                    customer_name: Some(format!("Customer {i}")),
                    industry: Some("golf".into()),
                    ..OnboardRequest::default()
                };
                let done = services
                    .customers
                    .onboard(&Actor::cli(), &req, None)
                    .await?;
                anyhow::ensure!(
                    done.response.onboarding.is_success,
                    "onboarding {i} failed: {:?}",
                    done.response.onboarding.errors
                );
                bar.inc(1);
                Ok(())
            }
        }
    })
    .await?;
    bar.finish_and_clear();
    // Roles are global to a PostgreSQL server: drop the datasets, not just the database.
    for id in backend.list().await? {
        backend.drop_dataset(&id).await?;
    }
    let onboarding_p50_ms = percentile_ms(&mut runs, 0.50);
    let bare_ddl_p50_ms = percentile_ms(&mut ddl, 0.50);
    Ok(OnboardReport {
        backend: services.store.backend(),
        customers: n,
        concurrency,
        onboarding_p50_ms,
        onboarding_p95_ms: percentile_ms(&mut runs, 0.95),
        customers_per_minute: f64::from(n) / wall.as_secs_f64() * 60.0,
        bare_ddl_p50_ms,
        bare_ddl_p95_ms: percentile_ms(&mut ddl, 0.95),
        ratio_p50: onboarding_p50_ms / bare_ddl_p50_ms,
    })
}

/// The options of a benchmark that times in-process samples and then loads HTTP with wrk.
fn check_load(samples: u32, seconds: u32, connections: u32) -> anyhow::Result<()> {
    anyhow::ensure!(samples > 0, "--samples must be at least 1");
    anyhow::ensure!(
        (1..=600).contains(&seconds),
        "--seconds must be from 1 to 600"
    );
    anyhow::ensure!(
        (1..=1024).contains(&connections),
        "--connections must be from 1 to 1024"
    );
    Ok(())
}
