//! Whether a signup's email domain can receive mail: its MX records, looked up with
//! hickory-resolver through the system's resolver or the one `ONRAMP_DNS_RESOLVER` names, each
//! answer kept ten minutes. A lookup that fails is an answer too (`Failed`), never an error
//! that stops a signup.

use async_trait::async_trait;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(600);
/// How long a failure is kept (so a flood of signups does not become a flood of lookups).
const KEEP_FAILURE: Duration = Duration::from_secs(30);
/// Domains remembered at most.
const CACHE_ENTRIES: usize = 10_000;

/// What the DNS says about a domain's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// Mail servers (by preference).
    Hosts(Vec<String>),
    /// No mail server, and why (no MX record, a null MX, no such domain).
    NoMail(String),
    /// The lookup failed (timeout, server failure, no resolver reachable).
    Failed(String),
    /// Lookups are turned off (`ONRAMP_DNS_RESOLVER=off`).
    Skipped,
}

/// Looks up a domain's mail servers.
#[async_trait]
pub trait MxLookup: Send + Sync {
    /// The MX answer for `domain` (lower case, no trailing dot).
    async fn mx(&self, domain: &str) -> MxAnswer;
}

/// `ONRAMP_DNS_RESOLVER`: where MX lookups go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// The system's resolver (`/etc/resolv.conf`).
    #[default]
    System,
    /// This resolver (an `ip:port`, or an ip for port 53).
    At(SocketAddr),
    /// No lookups: the review has no MX signal.
    Off,
}

impl Resolver {
    /// Parses `off`, `system`, `IP` or `IP:PORT`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "system" => Ok(Self::System),
            "off" => Ok(Self::Off),
            other => other
                .parse::<SocketAddr>()
                .or_else(|_| other.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map(Self::At)
                .map_err(|_| {
                    "ONRAMP_DNS_RESOLVER is an IP address with an optional port (127.0.0.1:53), `system` or `off`"
                        .to_owned()
                }),
        }
    }
}

/// The lookups `resolver` calls for. Without a system configuration (a bare container) every
/// lookup fails saying so, a `dns_error` reason, and the server still starts; a named resolver
/// that cannot be set up stops the start.
pub fn lookups(resolver: Resolver) -> Result<Arc<dyn MxLookup>, String> {
    match resolver {
        Resolver::Off => Ok(Arc::new(NoLookups)),
        Resolver::At(addr) => Ok(Arc::new(DnsMx::new(Some(addr))?)),
        Resolver::System => match DnsMx::new(None) {
            Ok(dns) => Ok(Arc::new(dns)),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS resolver for the signup risk review's MX lookups; set ONRAMP_DNS_RESOLVER");
                Ok(Arc::new(Unresolvable(e)))
            }
        },
    }
}

/// Lookups without a resolver: each fails, saying why.
struct Unresolvable(String);

#[async_trait]
impl MxLookup for Unresolvable {
    async fn mx(&self, _domain: &str) -> MxAnswer {
        MxAnswer::Failed(self.0.clone())
    }
}

/// Lookups turned off.
pub struct NoLookups;

#[async_trait]
impl MxLookup for NoLookups {
    async fn mx(&self, _domain: &str) -> MxAnswer {
        MxAnswer::Skipped
    }
}

/// MX lookups through hickory-resolver, with a cache.
pub struct DnsMx {
    resolver: TokioResolver,
    cache: Mutex<HashMap<String, (Instant, MxAnswer)>>,
}

impl DnsMx {
    /// A resolver for `at` (the system's when `None`).
    pub fn new(at: Option<SocketAddr>) -> Result<Self, String> {
        let mut builder = match at {
            Some(addr) => {
                let connection = |mut c: ConnectionConfig| {
                    c.port = addr.port();
                    c
                };
                let server = NameServerConfig::new(
                    addr.ip(),
                    true,
                    vec![
                        connection(ConnectionConfig::udp()),
                        connection(ConnectionConfig::tcp()),
                    ],
                );
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
        };
        let options = builder.options_mut();
        options.timeout = LOOKUP_TIMEOUT;
        options.attempts = 1;
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        Ok(Self {
            resolver,
            cache: Mutex::new(HashMap::new()),
        })
    }

    async fn lookup(&self, domain: &str) -> MxAnswer {
        // Fully qualified: no search domains.
        let name = format!("{domain}.");
        let lookup = tokio::time::timeout(
            LOOKUP_TIMEOUT.saturating_mul(2),
            self.resolver.mx_lookup(name.as_str()),
        )
        .await;
        match lookup {
            Err(_) => MxAnswer::Failed("the lookup timed out".into()),
            Ok(Ok(found)) => {
                let mut hosts: Vec<(u16, String)> = found
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                hosts.sort();
                match hosts.as_slice() {
                    [] => MxAnswer::NoMail("the domain has no MX record".into()),
                    [(_, host)] if host == "." => MxAnswer::NoMail(
                        "the domain publishes a null MX: it accepts no mail".into(),
                    ),
                    _ => MxAnswer::Hosts(hosts.into_iter().map(|(_, h)| h).collect()),
                }
            }
            Ok(Err(e)) if e.is_nx_domain() => MxAnswer::NoMail("the domain does not exist".into()),
            Ok(Err(e)) if e.is_no_records_found() => {
                MxAnswer::NoMail("the domain has no MX record".into())
            }
            Ok(Err(e)) => MxAnswer::Failed(crate::domain::text::shorten(&e.to_string(), 200)),
        }
    }
}

#[async_trait]
impl MxLookup for DnsMx {
    async fn mx(&self, domain: &str) -> MxAnswer {
        let now = Instant::now();
        if let Some((at, answer)) = self.cache.lock().expect("cache lock").get(domain) {
            let keep = match answer {
                MxAnswer::Failed(_) => KEEP_FAILURE,
                _ => KEEP,
            };
            if now.duration_since(*at) < keep {
                return answer.clone();
            }
        }
        let answer = self.lookup(domain).await;
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(domain.to_owned(), (now, answer.clone()));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_setting_parses() {
        assert_eq!(Resolver::parse("off"), Ok(Resolver::Off));
        assert_eq!(Resolver::parse(""), Ok(Resolver::System));
        assert_eq!(
            Resolver::parse("127.0.0.1:5353"),
            Ok(Resolver::At("127.0.0.1:5353".parse().unwrap()))
        );
        assert_eq!(
            Resolver::parse("10.0.0.2"),
            Ok(Resolver::At("10.0.0.2:53".parse().unwrap()))
        );
        assert!(Resolver::parse("dns.example.com").is_err());
    }
}
