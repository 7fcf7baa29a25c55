//! `onramp customers`: the registry: onboard, list, show, config, update, offboard, import.

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use zeroize::Zeroize;

use super::commands::{CliError, CliResult};
use super::exit;
use super::output::{self, Format};
use crate::domain::Invalid;
use crate::product::{AttributeKind, Product};
use crate::services::credentials::SecretInput;
use crate::services::customers::{
    ContactInput, ListQuery, OffboardRequest, OnboardRequest, UpdateRequest,
};
use crate::services::{Actor, ServiceError, Services};

/// The `customers` command group.
#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Onboard a customer.
    Onboard(OnboardArgs),
    /// List customers.
    List(ListArgs),
    /// A customer's resolved configuration (dataset, tier, tables, checklist).
    Config {
        /// Customer id.
        customer_id: String,
    },
    /// Show one customer.
    Show {
        /// Customer id.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a customer.
    Update(UpdateArgs),
    /// Offboard a customer: inactive with data kept, or deleted with --delete-data --yes.
    Offboard(OffboardArgs),
    /// Import a legacy tenants.yaml (idempotent: registered tenants are skipped).
    Import {
        /// The tenants file.
        file: PathBuf,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

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
    /// A test clock whose time the customer's billing follows (not in production).
    #[arg(long)]
    test_clock: Option<String>,
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

/// Runs a `customers` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: CustomersCommand) -> CliResult {
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
                test_clock_id: a.test_clock,
            };
            let done = s.customers.onboard(actor, &req, None).await?;
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
                let page = s.customers.list(actor, &q).await?;
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
            output::json(&s.customers.config(actor, &customer_id).await?);
            Ok(exit::OK)
        }
        CustomersCommand::Show {
            customer_id,
            format,
        } => {
            let c = s.customers.get(actor, &customer_id).await?;
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
                .customers
                .update(actor, &a.customer_id, &req, a.if_version)
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
                .customers
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
        .customers
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
