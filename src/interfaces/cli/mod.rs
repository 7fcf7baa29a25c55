//! The command line: `onramp <noun> <verb>`. Tables for people, `--format json|csv` for
//! scripts, and exit codes that mean something (see [`exit`]).

mod audit;
mod bench;
mod bench_keys;
mod bench_signup;
mod bench_usage;
mod billing;
mod commands;
mod credentials;
mod customers;
mod email;
pub mod exit;
mod jobs;
mod keys;
mod onboarding;
mod output;
mod signups;
mod users;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::domain::Role;
use output::Format;

/// Onramp: customer onboarding and tenant lifecycle.
#[derive(Debug, Parser)]
#[command(name = "onramp", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

/// Where Onramp keeps its data and what product it onboards to: one typed struct, from
/// defaults, then the configuration file, then `ONRAMP_` environment variables, then flags.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// A configuration file (TOML) whose keys are these options' long names with `_` for `-`
    /// (`data_dir`, `database_url`, `product`, `run_lease_seconds`, `job_lease_seconds`,
    /// `master_key_file`, `production`). Environment variables and flags override it; relative
    /// paths in it are relative to the file.
    #[arg(long, global = true, env = "ONRAMP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data dir of the embedded default (SQLite registry and datasets).
    #[arg(
        long,
        global = true,
        env = "ONRAMP_DATA_DIR",
        default_value = "./onramp-data"
    )]
    pub data_dir: PathBuf,
    /// Use PostgreSQL (postgres://...) instead of the embedded SQLite registry.
    #[arg(
        long,
        global = true,
        env = "ONRAMP_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Product file (TOML); the built-in generic product when absent.
    #[arg(long, global = true, env = "ONRAMP_PRODUCT")]
    pub product: Option<PathBuf>,
    /// How long a process holds an onboarding run without renewing it; a run whose process
    /// died is resumed by another once this has passed.
    #[arg(long, global = true, env = "ONRAMP_RUN_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub run_lease_seconds: u64,
    /// How long a process holds a background job without renewing it; a job whose process
    /// died is taken over by another once this has passed.
    #[arg(long, global = true, env = "ONRAMP_JOB_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub job_lease_seconds: u64,
    /// The vault's master key file (`v<N>:<base64>` per line). ONRAMP_MASTER_KEY, when set,
    /// holds the keys instead. With neither, a development key is made in the data dir.
    #[arg(long, global = true, env = "ONRAMP_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Refuse to run without a real master key (also ONRAMP_ENV=production).
    #[arg(long, global = true)]
    pub production: bool,
}

/// The configuration file's keys: the global options, each optional.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    product: Option<PathBuf>,
    run_lease_seconds: Option<u64>,
    job_lease_seconds: Option<u64>,
    master_key_file: Option<PathBuf>,
    production: Option<bool>,
}

impl Config {
    /// Fills every option that neither a flag nor an environment variable set from the
    /// configuration file, when there is one. Refuses an unreadable file, an unknown key or a
    /// value outside its option's range, naming the file and the key.
    fn apply_file(&mut self, matches: &clap::ArgMatches) -> Result<(), String> {
        use clap::parser::ValueSource;
        let Some(path) = self.config.clone() else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| format!("the configuration file {} is invalid: {e}", path.display()))?;
        let base = path.parent().map(PathBuf::from).unwrap_or_default();
        let unset = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        let lease = |key: &str, v: u64| {
            if (1..=3600).contains(&v) {
                Ok(v)
            } else {
                Err(format!(
                    "the configuration file {}: {key} must be from 1 to 3600 seconds, not {v}",
                    path.display()
                ))
            }
        };
        if let Some(v) = file.data_dir.filter(|_| unset("data_dir")) {
            self.data_dir = base.join(v);
        }
        if let Some(v) = file.database_url.filter(|_| unset("database_url")) {
            self.database_url = Some(v);
        }
        if let Some(v) = file.product.filter(|_| unset("product")) {
            self.product = Some(base.join(v));
        }
        if let Some(v) = file
            .run_lease_seconds
            .filter(|_| unset("run_lease_seconds"))
        {
            self.run_lease_seconds = lease("run_lease_seconds", v)?;
        }
        if let Some(v) = file
            .job_lease_seconds
            .filter(|_| unset("job_lease_seconds"))
        {
            self.job_lease_seconds = lease("job_lease_seconds", v)?;
        }
        if let Some(v) = file.master_key_file.filter(|_| unset("master_key_file")) {
            self.master_key_file = Some(base.join(v));
        }
        if let Some(v) = file.production.filter(|_| unset("production")) {
            self.production = v;
        }
        Ok(())
    }

    /// Whether production rules apply.
    pub fn is_production(&self) -> bool {
        self.production || std::env::var("ONRAMP_ENV").is_ok_and(|v| v == "production")
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API, with the MCP server at /mcp.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ONRAMP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Host names (or host:port) that /mcp answers, against DNS rebinding; `*` answers
        /// any. Add the name clients reach this server by when it is not localhost.
        #[arg(
            long,
            env = "ONRAMP_MCP_ALLOWED_HOSTS",
            value_delimiter = ',',
            default_value = "localhost,127.0.0.1,::1"
        )]
        mcp_allowed_hosts: Vec<String>,
        /// Token exchanges allowed per minute for each integration key (0: no limit).
        #[arg(long, env = "ONRAMP_EXCHANGE_RATE_PER_KEY", default_value_t = 60)]
        exchange_rate_per_key: u32,
        /// Token exchanges allowed per minute from each client address (0: no limit).
        #[arg(long, env = "ONRAMP_EXCHANGE_RATE_PER_ADDRESS", default_value_t = 600)]
        exchange_rate_per_address: u32,
        /// Public signup requests allowed per minute from each client address (0: no limit).
        #[arg(long, env = "ONRAMP_SIGNUP_RATE_PER_ADDRESS", default_value_t = 60)]
        signup_rate_per_address: u32,
        /// Requests allowed per minute for each signup session (0: no limit).
        #[arg(long, env = "ONRAMP_SIGNUP_RATE_PER_SESSION", default_value_t = 60)]
        signup_rate_per_session: u32,
        /// Portal logins, password resets and invitation acceptances allowed per minute from
        /// each client address (0: no limit).
        #[arg(long, env = "ONRAMP_PORTAL_RATE_PER_ADDRESS", default_value_t = 30)]
        portal_rate_per_address: u32,
        /// Proxies in front of Onramp (addresses or networks, comma-separated) whose
        /// X-Forwarded-For names the client the rate limits count; none by default.
        #[arg(long, env = "ONRAMP_TRUSTED_PROXIES", default_value = "")]
        trusted_proxies: String,
        /// Seconds a client has to send a request's head; also how long a kept-alive
        /// connection may wait idle for its next request.
        #[arg(long, env = "ONRAMP_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_timeout: u64,
        /// Seconds a client has to send a request's body.
        #[arg(long, env = "ONRAMP_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        body_timeout: u64,
        /// Connections open at once; past it new ones are closed (default: the open-file
        /// limit less 256, at most 10000).
        #[arg(long, env = "ONRAMP_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: Option<u64>,
    },
    /// Serve MCP over stdin and stdout, for an AI agent that starts Onramp itself.
    Mcp {
        /// The role the agent acts with: viewer sees only the read-only tools.
        #[arg(long, default_value = "operator")]
        role: Role,
    },
    /// Create the data dir and apply database migrations (also done by every command).
    Init,
    /// Product files.
    #[command(subcommand)]
    Product(ProductCommand),
    /// The customer registry.
    #[command(subcommand)]
    Customers(Box<customers::CustomersCommand>),
    /// Onboarding runs and checklists.
    #[command(subcommand)]
    Onboarding(onboarding::OnboardingCommand),
    /// Run one read-only SQL statement inside a customer's dataset.
    Query {
        /// Customer id.
        customer_id: String,
        /// The statement, such as "SELECT 1 AS test".
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The credentials vault.
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// The vault's master keys.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Customers' integration keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The signup review queue: list, show, approve, reject.
    #[command(subcommand)]
    Signups(signups::SignupsCommand),
    /// Signup settings: the risk review's domain lists.
    #[command(subcommand)]
    Signup(signups::SignupCommand),
    /// Transactional email: send a test message, read the delivery log.
    #[command(subcommand)]
    Email(email::EmailCommand),
    /// A customer's portal users: list, invite, remove.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Background jobs: list them, run one now, see its attempts.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// The product's plans.
    #[command(subcommand)]
    Plans(billing::PlansCommand),
    /// Customers' trials: start, show, activate, extend.
    #[command(subcommand)]
    Trials(billing::TrialsCommand),
    /// Customers' subscriptions: create, show, preview, change, cancel.
    #[command(subcommand)]
    Subscriptions(billing::SubscriptionsCommand),
    /// Test clocks (not in production): create, list, advance.
    #[command(subcommand, name = "test-clocks")]
    TestClocks(billing::TestClocksCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ProductCommand {
    /// Check a product file and report every problem in it.
    Check {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Add a new master key version (key file or development key) and rewrap every data key
    /// onto the newest version; with ONRAMP_MASTER_KEY, only rewrap onto its newest entry.
    RotateMasterKey,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Admin API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token; it is printed once and stored only as a hash.
    Create {
        /// admin, operator or viewer.
        #[arg(long)]
        role: Role,
        /// A name for people.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Output format (`json` prints {"token": ...}).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &[Role::Admin, Role::Operator, Role::Viewer]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        // The MCP SDK logs whole requests at debug, tool arguments (credential values) included:
        // whatever RUST_LOG asks for, its logs stop at info.
        .add_directive("rmcp=info".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses the command line, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    // Everything Onramp writes (the registry, datasets, key files, exports, and the files
    // SQLite makes beside them) is for its own user alone: files 0600, directories 0700.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            if let Err(message) = cli.config.apply_file(&matches) {
                eprintln!("error: {message}");
                return ExitCode::from(exit::CONFIG);
            }
            cli
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(
        if matches!(cli.command, Command::Serve { .. } | Command::Mcp { .. }) {
            "info,rmcp=warn"
        } else {
            "warn"
        },
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    runtime.block_on(commands::run(cli.config, cli.command))
}
