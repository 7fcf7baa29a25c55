//! `onramp keys`: customers' integration keys: issue, list, rotate, revoke.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::keys::{IssueKeyRequest, IssuedKey, KeyView, RotateKeyRequest};
use crate::services::{Actor, Services};

/// The `keys` command group.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key; its secret is printed this once.
    Issue {
        /// Customer id.
        customer_id: String,
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated (ship:upload,jobs:read).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Allowed adapters, comma-separated.
        #[arg(long, value_delimiter = ',')]
        adapters: Vec<String>,
        /// When it stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A customer's keys, without secrets.
    List {
        /// Customer id.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Give a key a new secret (printed this once).
    Rotate {
        /// Customer id.
        customer_id: String,
        /// Key id.
        key_id: String,
        /// Seconds the old secret keeps working.
        #[arg(long, default_value_t = 0)]
        grace_seconds: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke a key at once.
    Revoke {
        /// Customer id.
        customer_id: String,
        /// Key id.
        key_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn key_rows(items: &[KeyView], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(&items),
        Format::Csv => output::csv_rows(
            &[
                "key_id",
                "customer_id",
                "name",
                "status",
                "scopes",
                "allowed_adapters",
                "expires_at",
                "last_used_at",
            ],
            items.iter().map(|k| {
                vec![
                    k.key_id.clone(),
                    k.customer_id.clone(),
                    k.name.clone(),
                    k.status.clone(),
                    k.scopes.join(" "),
                    k.allowed_adapters.join(" "),
                    k.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    k.last_used_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ]
            }),
        )?,
        Format::Table => {
            let mut t = output::table(&[
                "key id",
                "name",
                "status",
                "scopes",
                "adapters",
                "expires",
                "last used",
            ]);
            for k in items {
                t.add_row(vec![
                    k.key_id.clone(),
                    k.name.clone(),
                    k.status.clone(),
                    k.scopes.join(", "),
                    k.allowed_adapters.join(", "),
                    k.expires_at
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_else(|| "never".into()),
                    k.last_used_at
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "never".into()),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

fn print_issued(issued: &IssuedKey, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(issued),
        _ => {
            key_rows(std::slice::from_ref(&issued.key), format)?;
            eprintln!("The key's secret, shown this once (store it now):");
            println!("{}", issued.secret);
        }
    }
    Ok(())
}

/// Runs a `keys` command.
pub(super) async fn run(s: &Services, actor: &Actor, k: KeysCommand) -> CliResult {
    match k {
        KeysCommand::Issue {
            customer_id,
            name,
            scopes,
            adapters,
            expires_at,
            format,
        } => {
            let req = IssueKeyRequest {
                name,
                scopes,
                allowed_adapters: adapters,
                expires_at,
            };
            let issued = s.keys.issue(actor, &customer_id, &req).await?;
            print_issued(&issued, format)?;
        }
        KeysCommand::List {
            customer_id,
            format,
        } => key_rows(&s.keys.list(actor, &customer_id).await?, format)?,
        KeysCommand::Rotate {
            customer_id,
            key_id,
            grace_seconds,
            format,
        } => {
            let issued = s
                .keys
                .rotate(
                    actor,
                    &customer_id,
                    &key_id,
                    &RotateKeyRequest { grace_seconds },
                )
                .await?;
            print_issued(&issued, format)?;
        }
        KeysCommand::Revoke {
            customer_id,
            key_id,
            format,
        } => {
            let view = s.keys.revoke(actor, &customer_id, &key_id).await?;
            key_rows(std::slice::from_ref(&view), format)?;
        }
    }
    Ok(exit::OK)
}
