//! Rate limits on public and pre-authentication routes: one quota per key (the token exchange's
//! integration key id, read from the presented key without a look-up, so a flood of wrong secrets
//! for one key is stopped as well as a flood of good ones; a signup session's id) and one per
//! client address. GCRA buckets from `governor`; idle entries are
//! dropped every few thousand checks so the tables stay small.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests per minute allowed to each key and to each address; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Requests per minute per key.
    pub per_key_per_minute: u32,
    /// Requests per minute per client address.
    pub per_address_per_minute: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            per_key_per_minute: 60,
            per_address_per_minute: 600,
        }
    }
}

/// A route's limiters, shared by every request.
#[derive(Clone)]
pub struct QuotaLimiter {
    per_key: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    per_address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    clock: DefaultClock,
    checks: Arc<AtomicU64>,
}

/// Idle entries are dropped once every this many checks.
const SWEEP_EVERY: u64 = 4096;

/// Which quota ran out, and when the next request may come.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    /// `key` or `address`.
    pub by: &'static str,
    /// Whole seconds to wait (at least 1).
    pub retry_after_secs: u64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_minute: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
}

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and networks (`10.0.0.0/8,127.0.0.1,::1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("'{item}' is not an IP address or network (such as 10.0.0.0/8)")
                })?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&address))
    }

    /// The client a request comes from: the connection's peer, unless the peer is a trusted
    /// proxy; then the rightmost address of `X-Forwarded-For` that is not a trusted proxy (the
    /// one the nearest untrusted hop gave, which a client cannot forge by sending the header
    /// itself). A header that does not parse leaves the peer.
    pub fn client(&self, peer: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return Some(peer);
            };
            for hop in text.split(',').map(str::trim) {
                match hop.parse::<IpAddr>() {
                    Ok(a) => hops.push(a),
                    Err(_) => return Some(peer),
                }
            }
        }
        Some(
            hops.into_iter()
                .rev()
                .find(|a| !self.trusts(*a))
                .unwrap_or(peer),
        )
    }
}

/// The quota an address counts against: an IPv4 address alone, an IPv6 address with the rest
/// of its /64 (one host's usual allocation, so a client cannot take a new quota per address of
/// its own block); an IPv4-mapped IPv6 address as the IPv4 address it is.
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

impl QuotaLimiter {
    /// Limiters for `limits`.
    pub fn new(limits: Quotas) -> Self {
        Self {
            per_key: limiter(limits.per_key_per_minute),
            per_address: limiter(limits.per_address_per_minute),
            clock: DefaultClock::default(),
            checks: Arc::new(AtomicU64::new(0)),
        }
    }

    fn wait(&self, not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        not_until
            .wait_time_from(self.clock.now())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64
    }

    /// Counts one request from `address` (when known) for `key_id` (when the request names
    /// one); refuses when either quota is spent. The address is checked first, so one
    /// client cannot spend another's key quota with made-up key ids.
    pub fn check(&self, address: Option<IpAddr>, key_id: Option<&str>) -> Result<(), Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(l) = &self.per_address {
                l.retain_recent();
            }
            if let Some(l) = &self.per_key {
                l.retain_recent();
            }
        }
        if let (Some(l), Some(a)) = (&self.per_address, address.map(bucket)) {
            l.check_key(&a).map_err(|n| Limited {
                by: "address",
                retry_after_secs: self.wait(n),
            })?;
        }
        if let (Some(l), Some(k)) = (&self.per_key, key_id) {
            l.check_key(&k.to_owned()).map_err(|n| Limited {
                by: "key",
                retry_after_secs: self.wait(n),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let headers = |xff: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // Without trusted proxies the header is ignored.
        assert_eq!(
            none.client(Some(ip("127.0.0.1")), &headers("203.0.113.9")),
            Some(ip("127.0.0.1"))
        );
        // From a trusted proxy: the rightmost untrusted hop, not what the client wrote first.
        assert_eq!(
            proxies.client(
                Some(ip("127.0.0.1")),
                &headers("1.2.3.4, 203.0.113.9, 10.1.1.1")
            ),
            Some(ip("203.0.113.9"))
        );
        // From anyone else the header is ignored.
        assert_eq!(
            proxies.client(Some(ip("198.51.100.7")), &headers("1.2.3.4")),
            Some(ip("198.51.100.7"))
        );
        // A header that does not parse, or only proxies in it, leaves the peer.
        assert_eq!(
            proxies.client(Some(ip("127.0.0.1")), &headers("nonsense")),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            proxies.client(Some(ip("127.0.0.1")), &headers("10.0.0.5")),
            Some(ip("127.0.0.1"))
        );
        // A mapped IPv4 peer is its IPv4 address.
        assert_eq!(
            proxies.client(Some(ip("::ffff:127.0.0.1")), &headers("203.0.113.9")),
            Some(ip("203.0.113.9"))
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn an_ipv6_block_shares_one_quota() {
        let l = QuotaLimiter::new(Quotas {
            per_key_per_minute: 0,
            per_address_per_minute: 2,
        });
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_block: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_block: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check(Some(one), None).is_ok());
        assert!(l.check(Some(same_block), None).is_ok());
        assert_eq!(l.check(Some(one), None).unwrap_err().by, "address");
        assert!(l.check(Some(other_block), None).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(l.check(Some(mapped), None).is_ok());
        assert!(l.check(Some(v4), None).is_ok());
        assert_eq!(l.check(Some(v4), None).unwrap_err().by, "address");
    }

    #[test]
    fn each_key_and_address_has_its_own_quota() {
        let l = QuotaLimiter::new(Quotas {
            per_key_per_minute: 3,
            per_address_per_minute: 5,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(Some(a), Some("k1")).is_ok());
        }
        let limited = l.check(Some(a), Some("k1")).unwrap_err();
        assert_eq!(limited.by, "key");
        assert!(limited.retry_after_secs >= 1 && limited.retry_after_secs <= 20);
        // Another key from the same address still works until the address quota is spent.
        assert!(l.check(Some(a), Some("k2")).is_ok());
        assert_eq!(l.check(Some(a), Some("k3")).unwrap_err().by, "address");
        // Another address is unaffected, but key k1 stays limited wherever it comes from.
        assert_eq!(l.check(Some(b), Some("k1")).unwrap_err().by, "key");
        assert!(l.check(Some(b), Some("k4")).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let l = QuotaLimiter::new(Quotas {
            per_key_per_minute: 0,
            per_address_per_minute: 0,
        });
        for _ in 0..1000 {
            assert!(l
                .check(Some("10.0.0.1".parse().unwrap()), Some("k"))
                .is_ok());
        }
    }
}
