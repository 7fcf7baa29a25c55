//! `onramp credentials`: the credentials vault: put, list, validate, revoke, and what is due.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use secrecy::SecretString;
use zeroize::Zeroize;

use crate::services::credentials::{CredentialView, PutCredential};
use crate::services::{Actor, Services};

/// The `credentials` command group.
#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Store a new version of a credential; the value is read from stdin, never from argv.
    Put {
        /// Customer id.
        customer_id: String,
        /// Credential type (the product's [credentials.*]).
        credential_type: String,
        /// Scopes the credential was granted, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A customer's credentials (metadata only).
    List {
        /// Customer id.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Check a credential against the provider's endpoint and record the outcome.
    Validate {
        /// Customer id.
        customer_id: String,
        /// Credential type.
        credential_type: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke a credential; --destroy erases every version.
    Revoke {
        /// Customer id.
        customer_id: String,
        /// Credential type.
        credential_type: String,
        /// Erase every stored version for good.
        #[arg(long)]
        destroy: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Credentials past or near their rotation deadline.
    Due {
        /// Look this many days ahead.
        #[arg(long, default_value_t = 14)]
        within_days: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn credential_rows(items: &[CredentialView], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(&items),
        Format::Csv => output::csv_rows(
            &[
                "customer_id",
                "credential_type",
                "status",
                "current_version",
                "fingerprint",
                "last_validated_at",
                "rotate_by",
            ],
            items.iter().map(|c| {
                vec![
                    c.customer_id.clone(),
                    c.credential_type.clone(),
                    c.status.as_str().to_owned(),
                    c.current_version.map(|v| v.to_string()).unwrap_or_default(),
                    c.fingerprint.clone().unwrap_or_default(),
                    c.last_validated_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    c.rotate_by.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ]
            }),
        )?,
        Format::Table => {
            let mut t = output::table(&[
                "customer",
                "type",
                "status",
                "version",
                "fingerprint",
                "validated",
                "rotate by",
                "problem",
            ]);
            for c in items {
                t.add_row(vec![
                    c.customer_id.clone(),
                    c.credential_type.clone(),
                    c.status.as_str().to_owned(),
                    c.current_version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    c.fingerprint.clone().unwrap_or_default(),
                    c.last_validated_at
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "never".into()),
                    c.rotate_by
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                    c.validation_error.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

/// Runs a `credentials` command.
pub(super) async fn run(s: &Services, actor: &Actor, c: CredentialsCommand) -> CliResult {
    match c {
        CredentialsCommand::Put {
            customer_id,
            credential_type,
            scopes,
            format,
        } => {
            use std::io::Read;
            let mut raw = String::new();
            std::io::stdin()
                .read_to_string(&mut raw)
                .map_err(anyhow::Error::from)?;
            // One trailing newline (from echo or a heredoc) is not part of the value.
            let value = raw.strip_suffix('\n').unwrap_or(&raw);
            let value = value.strip_suffix('\r').unwrap_or(value).to_owned();
            raw.zeroize();
            let req = PutCredential {
                value: SecretString::from(value),
                scopes,
            };
            let view = s
                .vault
                .put(actor, &customer_id, &credential_type, &req)
                .await?;
            credential_rows(std::slice::from_ref(&view), format)?;
        }
        CredentialsCommand::List {
            customer_id,
            format,
        } => {
            let list = s.vault.list(actor, &customer_id).await?;
            if format == Format::Json {
                output::json(&list);
            } else {
                credential_rows(&list.items, format)?;
                if !list.missing_required.is_empty() && format == Format::Table {
                    println!("missing required: {}", list.missing_required.join(", "));
                }
            }
        }
        CredentialsCommand::Validate {
            customer_id,
            credential_type,
            format,
        } => {
            let view = s
                .vault
                .validate(actor, &customer_id, &credential_type)
                .await?;
            credential_rows(std::slice::from_ref(&view), format)?;
        }
        CredentialsCommand::Revoke {
            customer_id,
            credential_type,
            destroy,
            format,
        } => {
            let view = s
                .vault
                .revoke(actor, &customer_id, &credential_type, destroy)
                .await?;
            credential_rows(std::slice::from_ref(&view), format)?;
        }
        CredentialsCommand::Due {
            within_days,
            format,
        } => {
            let items = s.vault.due(actor, within_days).await?;
            credential_rows(&items, format)?;
        }
    }
    Ok(exit::OK)
}
