//! `onramp bench`: the benchmarks behind the figures in README.

use clap::Subcommand;

use super::Config;
use crate::services::Services;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Registry throughput and latency.
    Registry {
        /// How many customers to register.
        #[arg(long, default_value_t = 100_000)]
        customers: u32,
    },
}

pub(super) async fn run(
    _services: &Services,
    _config: &Config,
    _command: BenchCommand,
) -> anyhow::Result<u8> {
    anyhow::bail!("not yet")
}
