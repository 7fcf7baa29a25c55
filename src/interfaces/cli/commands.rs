//! Wiring and dispatch: the settings from the command line, opening the application, and the
//! commands too small for a group of their own (serve, init, query, admin token, vault, product
//! check).

use secrecy::SecretString;
use std::path::Path;
use std::process::ExitCode;

use super::exit;
use super::output::{self, Format};
use super::{AdminCommand, Command, Config, ProductCommand, TokenCommand, VaultCommand};
use crate::app::{Application, ProductSource, Settings};
use crate::domain::Role;
use crate::product::{Product, ProductError};
use crate::services::keyring::KeyringError;
use crate::services::{Actor, ServiceError, Services};

pub(super) enum CliError {
    Service(ServiceError),
    Other(anyhow::Error),
}

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::Service(e)
    }
}

crate::interfaces::from_capability_errors!(CliError, CliError::Service);

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Other(e)
    }
}

pub(super) type CliResult = Result<u8, CliError>;

/// The settings this command line gives, with the environment-only ones.
pub(super) fn settings(config: &Config) -> Settings {
    let mut settings = Settings::new(&config.data_dir).from_env();
    settings.database_url = config.database_url.clone().map(SecretString::from);
    settings.product = match &config.product {
        Some(path) => ProductSource::File(path.clone()),
        None => ProductSource::Builtin,
    };
    settings.run_lease = std::time::Duration::from_secs(config.run_lease_seconds);
    settings.job_lease = std::time::Duration::from_secs(config.job_lease_seconds);
    settings.master_key_file = config.master_key_file.clone();
    settings.production |= config.production;
    settings
}

/// Starts Onramp (opening and migrating the registry); prints why when it cannot.
pub(super) async fn open(config: &Config) -> Result<Application, ExitCode> {
    Application::build(settings(config)).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(exit::CONFIG)
    })
}

pub(super) async fn run(config: Config, command: Command) -> ExitCode {
    let command = match command {
        Command::Product(ProductCommand::Check { file }) => return product_check(&file),
        Command::Bench(b) => {
            return finish(super::bench::run(&config, b).await.map_err(CliError::Other))
        }
        other => other,
    };
    let app = match open(&config).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let services = app.services.clone();
    let actor = Actor::cli();
    let result = match command {
        Command::Serve {
            listen,
            mcp_allowed_hosts,
            exchange_rate_per_key,
            exchange_rate_per_address,
            signup_rate_per_address,
            portal_rate_per_address,
            trusted_proxies,
            signup_rate_per_session,
            header_timeout,
            body_timeout,
            max_connections,
        } => {
            let options = crate::interfaces::http::ServeOptions {
                mcp_allowed_hosts: if mcp_allowed_hosts.iter().any(|h| h == "*") {
                    vec![]
                } else {
                    mcp_allowed_hosts
                },
                exchange_limits: crate::interfaces::http::limits::Quotas {
                    per_key_per_minute: exchange_rate_per_key,
                    per_address_per_minute: exchange_rate_per_address,
                },
                signup_limits: crate::interfaces::http::limits::Quotas {
                    per_key_per_minute: signup_rate_per_session,
                    per_address_per_minute: signup_rate_per_address,
                },
                portal_limits: crate::interfaces::http::limits::Quotas {
                    per_key_per_minute: 0,
                    per_address_per_minute: portal_rate_per_address,
                },
                trusted_proxies: match crate::interfaces::http::limits::TrustedProxies::parse(
                    &trusted_proxies,
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("error: --trusted-proxies: {e}");
                        return ExitCode::from(super::exit::CONFIG);
                    }
                },
                connections: crate::interfaces::http::server::ConnectionLimits {
                    header_timeout: std::time::Duration::from_secs(header_timeout),
                    body_timeout: std::time::Duration::from_secs(body_timeout),
                    max_connections: max_connections.map_or_else(
                        crate::interfaces::http::server::default_max_connections,
                        |n| usize::try_from(n).unwrap_or(usize::MAX),
                    ),
                },
            };
            serve(services, app.jobs, &listen, options).await
        }
        Command::Mcp { role } => {
            let user = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
            let actor = Actor {
                name: format!("mcp:{user}"),
                role,
                request_id: None,
            };
            crate::interfaces::mcp::serve_stdio(services, actor)
                .await
                .map(|()| exit::OK)
                .map_err(CliError::Other)
        }
        Command::Init => {
            let location = match config.database_url {
                Some(_) => "PostgreSQL schema 'onramp'".to_owned(),
                None => config
                    .data_dir
                    .join(crate::store::sqlite::REGISTRY_FILE)
                    .display()
                    .to_string(),
            };
            println!("Registry ready ({}): {location}", services.store.backend());
            Ok(exit::OK)
        }
        Command::Product(_) | Command::Bench(_) => unreachable!("handled above"),
        Command::Customers(c) => super::customers::run(&services, &actor, *c).await,
        Command::Audit(a) => super::audit::run(&services, &actor, a).await,
        Command::Email(e) => super::email::run(&services, &actor, e).await,
        Command::Users(u) => super::users::run(&services, &actor, u).await,
        Command::Plans(p) => super::billing::run(&services, &actor, p).await,
        Command::Trials(t) => super::billing::run_trials(&services, &actor, t).await,
        Command::Subscriptions(c) => super::billing::run_subscriptions(&services, &actor, c).await,
        Command::TestClocks(c) => super::billing::run_clocks(&services, &actor, c).await,
        Command::Signups(c) => super::signups::run(&services, &actor, c).await,
        Command::Signup(c) => super::signups::run_settings(&services, &actor, c).await,
        Command::Credentials(c) => super::credentials::run(&services, &actor, c).await,
        Command::Keys(k) => super::keys::run(&services, &actor, k).await,
        Command::Vault(VaultCommand::RotateMasterKey) => rotate_master_key(&services, &actor).await,
        Command::Onboarding(o) => super::onboarding::run(&services, &actor, o).await,
        Command::Query {
            customer_id,
            sql,
            format,
        } => query(&services, &actor, &customer_id, &sql, format).await,
        Command::Admin(AdminCommand::Token(TokenCommand::Create { role, name, format })) => {
            create_token(&services, &actor, role, &name, format).await
        }
        Command::Jobs(command) => {
            return match super::jobs::run(&app.jobs, command).await {
                Ok(code) => ExitCode::from(code),
                Err(e) => super::jobs::report(&e),
            };
        }
    };
    finish(result)
}

fn finish(result: CliResult) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(CliError::Service(e)) => exit::report(&e),
        Err(CliError::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn product_check(file: &Path) -> ExitCode {
    match Product::load(file) {
        Ok(p) => {
            let signup = match &p.signup {
                None => "no self-serve signup".to_owned(),
                Some(w) if !w.enabled => "signup switched off".to_owned(),
                Some(w) => format!(
                    "signup ({}): {}",
                    w.mode.as_str(),
                    w.steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            };
            let sells = if p.catalog.plans.is_empty() {
                "no plans".to_owned()
            } else {
                let plans: Vec<&str> = p.catalog.plans.iter().map(|p| p.id.as_str()).collect();
                let trial = p.catalog.trial.as_ref().map_or(String::new(), |t| {
                    format!(", a {}-day trial of {}", t.days, t.plan)
                });
                format!(
                    "plans: {}; {} metrics{trial}",
                    plans.join(", "),
                    p.catalog.metrics.len()
                )
            };
            println!(
                "{}: ok ({} industries, {} attributes, {} tiers, steps: {}; {signup}; {sells})",
                file.display(),
                p.industries.len(),
                p.attributes.len(),
                p.tiers.len(),
                p.steps.join(" → ")
            );
            ExitCode::from(exit::OK)
        }
        Err(ProductError::Invalid {
            source_name,
            problems,
        }) => {
            eprintln!("{source_name}: {} problem(s)", problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            ExitCode::from(exit::CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::CONFIG)
        }
    }
}

async fn serve(
    services: Services,
    jobs: crate::jobs::Jobs,
    listen: &str,
    options: crate::interfaces::http::ServeOptions,
) -> CliResult {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!(
        "onramp listening on http://{} ({} registry, product {})",
        listener.local_addr().map_err(anyhow::Error::from)?,
        services.store.backend(),
        services.product.name
    );
    crate::interfaces::http::serve(listener, services, jobs, options)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(exit::OK)
}

async fn create_token(
    s: &Services,
    actor: &Actor,
    role: Role,
    name: &str,
    format: Format,
) -> CliResult {
    let t = s.admin_tokens.create(actor, role, name).await?;
    match format {
        Format::Json => output::json(&t),
        _ => {
            println!("{}", t.token);
            eprintln!("Admin token '{}' ({}) created with id {}. It is shown only this once: store it now.", t.name, t.role, t.id);
        }
    }
    Ok(exit::OK)
}

async fn query(
    s: &Services,
    actor: &Actor,
    customer_id: &str,
    sql: &str,
    format: Format,
) -> CliResult {
    let result = s.datasets.query(actor, customer_id, sql).await?;
    match format {
        Format::Json => output::json(&result),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(&result.columns)
                .map_err(anyhow::Error::from)?;
            for row in &result.rows {
                w.write_record(row.iter().map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                }))
                .map_err(anyhow::Error::from)?;
            }
            w.flush().map_err(anyhow::Error::from)?;
        }
        Format::Table => {
            let columns: Vec<&str> = result.columns.iter().map(String::as_str).collect();
            let mut t = output::table(&columns);
            for row in &result.rows {
                t.add_row(row.iter().map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }));
            }
            println!("{t}");
            println!(
                "{} row(s){}",
                result.row_count,
                if result.truncated { ", truncated" } else { "" }
            );
        }
    }
    Ok(exit::OK)
}

async fn rotate_master_key(s: &Services, actor: &Actor) -> CliResult {
    match s.keyring.add_version() {
        Ok(v) => eprintln!("master key version {v} added and current"),
        Err(KeyringError::EnvironmentManaged) => eprintln!(
            "master keys come from ONRAMP_MASTER_KEY: rewrapping onto its newest version, {}",
            s.keyring.current().version
        ),
        Err(e) => return Err(CliError::Other(e.into())),
    }
    let n = s.vault.rewrap(actor).await?;
    println!(
        "{n} data key(s) rewrapped onto master key version {}",
        s.keyring.current().version
    );
    Ok(exit::OK)
}
