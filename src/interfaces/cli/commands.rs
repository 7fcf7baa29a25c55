//! What each command does: parse its arguments into a service request, call the service,
//! print the answer.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::process::ExitCode;
use zeroize::Zeroize;

use super::exit;
use super::output::{self, Format};
use super::{
    AdminCommand, Command, Config, CustomersCommand, OnboardingCommand, ProductCommand,
    TokenCommand, VaultCommand,
};
use crate::app::{Application, ProductSource, Settings};
use crate::domain::{Invalid, Role};
use crate::product::{AttributeKind, Product, ProductError};
use crate::services::credentials::SecretInput;
use crate::services::customers::{
    ContactInput, ListQuery, OffboardRequest, OnboardRequest, UpdateRequest,
};
use crate::services::keyring::KeyringError;
use crate::services::{Actor, ServiceError, Services};

/// Arguments of `customers onboard`.
#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// Unique id (`acme_corp`).
    customer_id: String,
    /// Display name (`"Acme Corporation"`).
    customer_name: String,
    /// Industry id (see GET /api/v1/industries).
    #[arg(long)]
    industry: String,
    /// Data store for the dataset (default: `default`).
    #[arg(long)]
    data_store: Option<String>,
    /// Tags, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Primary contact email.
    #[arg(long)]
    email: Option<String>,
    /// Primary contact name.
    #[arg(long)]
    contact_name: Option<String>,
    /// Who asked for the onboarding.
    #[arg(long)]
    created_by: Option<String>,
    /// Usage tier (default: the product's default tier).
    #[arg(long)]
    usage_tier: Option<String>,
    /// A product attribute, KEY=VALUE; list attributes take comma-separated values. Repeatable.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    attrs: Vec<String>,
    /// Google Ads customer ids, comma-separated (attribute google_ads_customer_ids).
    #[arg(long, value_delimiter = ',')]
    google_ads_ids: Vec<String>,
    /// Meta ad account ids, comma-separated (attribute meta_ad_account_ids).
    #[arg(long, value_delimiter = ',')]
    meta_accounts: Vec<String>,
    /// A credential to store during onboarding, TYPE=FILE: the value is read from FILE (`-` for
    /// stdin), never from the command line. Repeatable.
    #[arg(long = "credential", value_name = "TYPE=FILE")]
    credentials: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Arguments of `customers list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// A status, several comma-separated, or `all`.
    #[arg(long, default_value = "active")]
    status: String,
    /// Only this industry.
    #[arg(long)]
    industry: Option<String>,
    /// Only customers with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only names containing this text.
    #[arg(long)]
    q: Option<String>,
    /// At most this many (default: all).
    #[arg(long)]
    limit: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Arguments of `customers update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Customer id.
    customer_id: String,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    /// New status (active, paused, churned, ...).
    #[arg(long)]
    status: Option<String>,
    /// New tags, comma-separated (replace the old ones).
    #[arg(long, value_delimiter = ',')]
    tags: Option<Vec<String>>,
    /// New usage tier.
    #[arg(long)]
    usage_tier: Option<String>,
    /// New contact email.
    #[arg(long)]
    email: Option<String>,
    /// Set an attribute, KEY=VALUE. Repeatable.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    attrs: Vec<String>,
    /// Remove an attribute. Repeatable.
    #[arg(long = "unset-attr", value_name = "KEY")]
    unset: Vec<String>,
    /// Refuse unless the customer is still at this version.
    #[arg(long)]
    if_version: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Arguments of `customers offboard`.
#[derive(Debug, Args)]
pub struct OffboardArgs {
    /// Customer id.
    customer_id: String,
    /// Delete the customer's data too, leaving a tombstone. Needs --yes.
    #[arg(long)]
    delete_data: bool,
    /// Confirm a destructive offboarding.
    #[arg(long)]
    yes: bool,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
    /// With --delete-data: export the dataset into this directory first.
    #[arg(long, value_name = "DIR", requires = "delete_data")]
    export: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(super) enum CliError {
    Service(ServiceError),
    Other(anyhow::Error),
}

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::Service(e)
    }
}

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
                exchange_limits: crate::interfaces::http::limits::ExchangeLimits {
                    per_key_per_minute: exchange_rate_per_key,
                    per_address_per_minute: exchange_rate_per_address,
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
        Command::Customers(c) => customers(&services, &actor, *c).await,
        Command::Audit(a) => super::audit::run(&services, &actor, a).await,
        Command::Credentials(c) => super::credentials::run(&services, &actor, c).await,
        Command::Keys(k) => super::keys::run(&services, &actor, k).await,
        Command::Vault(VaultCommand::RotateMasterKey) => rotate_master_key(&services, &actor).await,
        Command::Onboarding(o) => onboarding(&services, &actor, o).await,
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
            println!(
                "{}: ok ({} industries, {} attributes, {} tiers, steps: {})",
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

/// Turns `KEY=VALUE` flags into an attributes object, splitting list attributes on commas.
fn parse_attrs(
    product: &Product,
    flag: &str,
    attrs: &[String],
    into: &mut Map<String, Value>,
) -> Result<(), ServiceError> {
    let mut errors = Vec::new();
    for a in attrs {
        let Some((key, value)) = a.split_once('=') else {
            errors
                .push(Invalid::new("invalid_format", format!("'{a}' must be KEY=VALUE")).at(flag));
            continue;
        };
        let value = match product.attributes.get(key).map(|d| d.kind) {
            Some(AttributeKind::List) => json!(value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()),
            _ => json!(value),
        };
        into.insert(key.to_owned(), value);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Invalid(errors))
    }
}

async fn customers(s: &Services, actor: &Actor, command: CustomersCommand) -> CliResult {
    match command {
        CustomersCommand::Onboard(a) => {
            let mut attributes = Map::new();
            parse_attrs(&s.product, "--attr", &a.attrs, &mut attributes)?;
            if !a.google_ads_ids.is_empty() {
                attributes.insert("google_ads_customer_ids".into(), json!(a.google_ads_ids));
            }
            if !a.meta_accounts.is_empty() {
                attributes.insert("meta_ad_account_ids".into(), json!(a.meta_accounts));
            }
            let contact = (a.email.is_some() || a.contact_name.is_some()).then(|| ContactInput {
                email: a.email.clone(),
                name: a.contact_name.clone(),
            });
            let req = OnboardRequest {
                customer_id: Some(a.customer_id),
                customer_name: Some(a.customer_name),
                industry: Some(a.industry),
                data_store: a.data_store,
                tags: a.tags,
                attributes,
                contact,
                created_by: a.created_by,
                usage_tier: a.usage_tier,
                credentials: read_credentials(&a.credentials)?,
            };
            let done = s.onboard(actor, &req, None).await?;
            let r = &done.response;
            match a.format {
                Format::Json => output::json(r),
                Format::Csv => output::customers(std::slice::from_ref(&r.customer), Format::Csv)?,
                Format::Table => {
                    println!(
                        "✓ Customer '{}' onboarded in {:.3}s (dataset {})",
                        r.customer.customer_id,
                        r.onboarding.duration_seconds,
                        r.onboarding.dataset_id.as_deref().unwrap_or("-")
                    );
                    for step in &r.onboarding.steps {
                        println!("  {:<10} {}", step.name, step.status);
                    }
                }
            }
            Ok(exit::OK)
        }
        CustomersCommand::List(a) => {
            let mut q = ListQuery {
                status: Some(a.status),
                industry: a.industry,
                tag: a.tag,
                q: a.q,
                limit: Some(
                    a.limit
                        .unwrap_or(crate::services::customers::MAX_PAGE)
                        .min(1000),
                ),
                cursor: None,
            };
            let mut items = Vec::new();
            loop {
                let page = s.list_customers(actor, &q).await?;
                items.extend(page.items);
                match (page.next_cursor, a.limit) {
                    (Some(cursor), None) => q.cursor = Some(cursor),
                    (Some(cursor), Some(max)) if (items.len() as u32) < max => {
                        q.limit = Some((max - items.len() as u32).min(1000));
                        q.cursor = Some(cursor);
                    }
                    _ => break,
                }
            }
            output::customers(&items, a.format)?;
            Ok(exit::OK)
        }
        CustomersCommand::Config { customer_id } => {
            output::json(&s.customer_config(actor, &customer_id).await?);
            Ok(exit::OK)
        }
        CustomersCommand::Show {
            customer_id,
            format,
        } => {
            let c = s.get_customer(actor, &customer_id).await?;
            output::customer(&c, format)?;
            Ok(exit::OK)
        }
        CustomersCommand::Update(a) => {
            let mut attributes = Map::new();
            parse_attrs(&s.product, "--attr", &a.attrs, &mut attributes)?;
            for key in &a.unset {
                attributes.insert(key.clone(), Value::Null);
            }
            let req = UpdateRequest {
                customer_name: a.name,
                tags: a.tags,
                attributes: (!attributes.is_empty()).then_some(attributes),
                contact: a.email.map(|e| ContactInput {
                    email: Some(e),
                    name: None,
                }),
                usage_tier: a.usage_tier,
                status: a.status,
            };
            let c = s
                .update_customer(actor, &a.customer_id, &req, a.if_version)
                .await?;
            match a.format {
                Format::Table => println!(
                    "✓ Customer '{}' updated (status {}, version {})",
                    c.customer_id, c.status, c.version
                ),
                f => output::customer(&c, f)?,
            }
            Ok(exit::OK)
        }
        CustomersCommand::Offboard(a) => {
            if a.delete_data && !a.yes {
                eprintln!(
                    "error: --delete-data removes the customer's data permanently; add --yes to confirm"
                );
                return Ok(exit::REFUSED);
            }
            let req = OffboardRequest {
                delete_data: a.delete_data,
                confirm: a.delete_data.then(|| a.customer_id.clone()),
                reason: a.reason,
                export: a.export.is_some(),
            };
            let r = s
                .offboard(actor, &a.customer_id, &req, a.export.as_deref())
                .await?;
            match a.format {
                Format::Table => {
                    println!(
                        "✓ Customer '{}' offboarded: status {}{}",
                        r.customer.customer_id,
                        r.customer.status,
                        if r.data_deleted {
                            ", data deleted"
                        } else {
                            ", data kept"
                        }
                    );
                    if let Some(receipt) = &r.receipt {
                        println!("  tables removed: {}", receipt.tables_removed.join(", "));
                        if let Some(export) = &receipt.export {
                            println!(
                                "  export: {} (manifest sha256 {})",
                                export.path, export.manifest_sha256
                            );
                        }
                    }
                }
                Format::Json => output::json(&r),
                Format::Csv => output::customers(std::slice::from_ref(&r.customer), Format::Csv)?,
            }
            Ok(exit::OK)
        }
        CustomersCommand::Import { file, format } => import(s, actor, &file, format).await,
    }
}

async fn import(s: &Services, actor: &Actor, file: &Path, format: Format) -> CliResult {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:30}] {pos}/{len} tenants")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let summary = s
        .import_legacy(actor, file, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await;
    bar.finish_and_clear();
    let summary = summary?;
    match format {
        Format::Json => output::json(&summary),
        _ => {
            for outcome in &summary.outcomes {
                use crate::services::legacy::ImportOutcome as O;
                match outcome {
                    O::Created { customer_id } => println!("  created  {customer_id}"),
                    O::Skipped { customer_id } => {
                        println!("  skipped  {customer_id} (already registered)")
                    }
                    O::Refused {
                        customer_id,
                        errors,
                    } => {
                        println!("  refused  {customer_id}");
                        for e in errors {
                            println!("           {}: {}", e.field, e.message);
                        }
                    }
                }
            }
            println!(
                "{} created, {} skipped, {} refused",
                summary.created, summary.skipped, summary.refused
            );
        }
    }
    Ok(if summary.refused > 0 {
        exit::REFUSED
    } else {
        exit::OK
    })
}

async fn create_token(
    s: &Services,
    actor: &Actor,
    role: Role,
    name: &str,
    format: Format,
) -> CliResult {
    let t = s.create_admin_token(actor, role, name).await?;
    match format {
        Format::Json => output::json(&t),
        _ => {
            println!("{}", t.token);
            eprintln!("Admin token '{}' ({}) created with id {}. It is shown only this once: store it now.", t.name, t.role, t.id);
        }
    }
    Ok(exit::OK)
}

fn print_run(run: &crate::services::views::OnboardingResult) {
    println!(
        "run {}: {}{} ({:.3}s)",
        run.run_id,
        run.status,
        if run.is_success { ", success" } else { "" },
        run.duration_seconds
    );
    let mut t = output::table(&["STEP", "STATUS", "ATTEMPTS", "ERROR"]);
    for s in &run.steps {
        t.add_row([
            s.name.clone(),
            s.status.to_string(),
            s.attempts.to_string(),
            s.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    for e in &run.errors {
        println!("  error: {e}");
    }
}

async fn onboarding(s: &Services, actor: &Actor, command: OnboardingCommand) -> CliResult {
    let (status, format) = match command {
        OnboardingCommand::Show {
            customer_id,
            format,
        } => (s.onboarding_status(actor, &customer_id).await?, format),
        OnboardingCommand::Check {
            customer_id,
            item,
            format,
        } => (s.mark_checklist(actor, &customer_id, &item).await?, format),
        OnboardingCommand::Retry {
            customer_id,
            format,
        } => {
            let run = s.retry_onboarding(actor, &customer_id).await?;
            match format {
                Format::Json => output::json(&run),
                _ => print_run(&run),
            }
            return Ok(if run.is_success {
                exit::OK
            } else {
                exit::FAILURE
            });
        }
        OnboardingCommand::Recover => {
            let n = s.recover_runs().await?;
            println!("{n} run(s) resumed");
            return Ok(exit::OK);
        }
    };
    match format {
        Format::Json => output::json(&status),
        _ => {
            print_run(&status.run);
            let mut t = output::table(&["CHECKLIST", "KIND", "DONE", "BY", "AT"]);
            for c in &status.checklist {
                t.add_row([
                    format!("{} ({})", c.title, c.id),
                    c.kind.clone(),
                    if c.done { "yes" } else { "no" }.to_owned(),
                    c.done_by.clone().unwrap_or_default(),
                    c.done_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ]);
            }
            println!("{t}");
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
    let result = s.query_dataset(actor, customer_id, sql).await?;
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
    let n = s.rewrap_credentials(actor).await?;
    println!(
        "{n} data key(s) rewrapped onto master key version {}",
        s.keyring.current().version
    );
    Ok(exit::OK)
}

/// Reads `TYPE=FILE` credential arguments: each value from its file, or stdin for `-`.
fn read_credentials(
    args: &[String],
) -> Result<std::collections::BTreeMap<String, SecretInput>, CliError> {
    let mut out = std::collections::BTreeMap::new();
    for arg in args {
        let Some((t, file)) = arg.split_once('=') else {
            return Err(ServiceError::from(
                Invalid::new(
                    "invalid_argument",
                    "--credential takes TYPE=FILE (FILE - reads stdin)",
                )
                .at("--credential"),
            )
            .into());
        };
        let mut raw = if file == "-" {
            let mut b = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut b)
                .map_err(anyhow::Error::from)?;
            b
        } else {
            std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read the {t} credential from {file}: {e}"))?
        };
        let value = raw.trim_end_matches(['\n', '\r']).to_owned();
        raw.zeroize();
        out.insert(t.to_owned(), SecretInput(SecretString::from(value)));
    }
    Ok(out)
}
