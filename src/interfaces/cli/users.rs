//! `onramp users`: a customer's portal users: list them, invite one, remove one.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::accounts::{Caller, InviteUser};
use crate::services::{Actor, Services};

/// The `users` command group.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// A customer's users, oldest first.
    List {
        /// The customer.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Invite EMAIL to the customer with a role; the invitation email carries a link to choose
    /// a password.
    Invite {
        /// The customer.
        customer_id: String,
        /// Where the invitation goes; their login.
        email: String,
        /// owner, admin or member.
        #[arg(long, default_value = "member")]
        role: String,
        /// Their name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a user and end their sessions (not the last owner).
    Remove {
        /// The customer.
        customer_id: String,
        /// The user.
        user_id: String,
    },
}

/// Runs a `users` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: UsersCommand) -> CliResult {
    let caller = Caller::Operator(actor);
    match command {
        UsersCommand::List {
            customer_id,
            format,
        } => {
            let list = s.accounts.list(caller, &customer_id).await?;
            match format {
                Format::Json => output::json(&list.items),
                Format::Csv | Format::Table => {
                    let mut t =
                        output::table(&["ID", "EMAIL", "ROLE", "STATUS", "LAST LOGIN", "CREATED"]);
                    for u in &list.items {
                        t.add_row([
                            u.user_id.clone(),
                            u.email.clone(),
                            u.role.to_string(),
                            u.status.to_string(),
                            u.last_login_at
                                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                                .unwrap_or_default(),
                            u.created_at
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
        UsersCommand::Invite {
            customer_id,
            email,
            role,
            name,
        } => {
            let user = s
                .accounts
                .invite(caller, &customer_id, &InviteUser { email, role, name })
                .await?;
            println!(
                "invited {} to {} as {} (user {}); the invitation email is queued",
                user.email, user.customer_id, user.role, user.user_id
            );
            Ok(exit::OK)
        }
        UsersCommand::Remove {
            customer_id,
            user_id,
        } => {
            s.accounts.remove(caller, &customer_id, &user_id).await?;
            println!("removed user {user_id} from {customer_id}; their sessions have ended");
            Ok(exit::OK)
        }
    }
}
