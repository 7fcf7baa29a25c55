//! The risk review of a completed signup: each signal found is a reason with a weight, the
//! weights add up to a score, and the product's policy maps the score (and its signup mode) to
//! approve, review or reject. Pure rules; finding the signals (lists, DNS, the registry) is the
//! signup capability's.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

use super::signup::SignupMode;

/// Something about a signup that makes it riskier.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The email's domain is a disposable-mail service.
    DisposableDomain,
    /// The email's domain is on the product's deny list.
    DeniedDomain,
    /// The email's domain has no MX record (or does not exist): it cannot receive mail.
    NoMx,
    /// The MX lookup failed (timeout, server failure): unknown, not absent.
    DnsError,
    /// The company's name is, once folded, a customer's or another live signup's.
    DuplicateName,
    /// A free-mail address where the product sells to businesses.
    FreeMail,
    /// The email already belongs to a customer's contact or account.
    ExistingAccount,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 7] = [
        Self::DisposableDomain,
        Self::DeniedDomain,
        Self::NoMx,
        Self::DnsError,
        Self::DuplicateName,
        Self::FreeMail,
        Self::ExistingAccount,
    ];

    /// Its name in the API, the product file and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DisposableDomain => "disposable_domain",
            Self::DeniedDomain => "denied_domain",
            Self::NoMx => "no_mx",
            Self::DnsError => "dns_error",
            Self::DuplicateName => "duplicate_name",
            Self::FreeMail => "free_mail",
            Self::ExistingAccount => "existing_account",
        }
    }

    /// The signal a name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Its weight unless the product says otherwise.
    pub fn default_weight(self) -> u32 {
        match self {
            Self::DisposableDomain | Self::DeniedDomain => 100,
            Self::NoMx => 60,
            Self::DuplicateName | Self::ExistingAccount => 50,
            Self::FreeMail => 40,
            Self::DnsError => 20,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal found, with its weight and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    /// The signal.
    pub signal: Signal,
    /// Its weight in the score.
    pub weight: u32,
    /// What was seen, for the operator.
    pub detail: String,
}

/// What the review decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The signup becomes a customer.
    Approve,
    /// An operator decides.
    Review,
    /// The signup is turned down.
    Reject,
}

/// The product's review policy (`[signup.review]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskPolicy {
    /// A score at or above this goes to an operator (in `open` mode).
    pub review_at: u32,
    /// A score at or above this is rejected.
    pub reject_at: u32,
    /// The weights that differ from the defaults.
    pub weights: BTreeMap<Signal, u32>,
    /// Whether the product sells to businesses (free-mail addresses are a signal).
    pub b2b: bool,
    /// Domains never counted disposable or free-mail (a customer's own, a partner's).
    pub allow_domains: BTreeSet<String>,
    /// Domains always refused (a `denied_domain` reason).
    pub deny_domains: BTreeSet<String>,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        Self {
            review_at: 30,
            reject_at: 100,
            weights: BTreeMap::new(),
            b2b: false,
            allow_domains: BTreeSet::new(),
            deny_domains: BTreeSet::new(),
        }
    }
}

impl RiskPolicy {
    /// The weight `signal` counts for.
    pub fn weight(&self, signal: Signal) -> u32 {
        self.weights
            .get(&signal)
            .copied()
            .unwrap_or_else(|| signal.default_weight())
    }

    /// A reason for `signal` with its weight.
    pub fn reason(&self, signal: Signal, detail: impl Into<String>) -> Reason {
        Reason {
            signal,
            weight: self.weight(signal),
            detail: detail.into(),
        }
    }

    /// What a signup with these reasons comes to under `mode`: in `open` mode the score decides
    /// (below `review_at` approved, from `reject_at` rejected, between them reviewed); in
    /// `review` and `invite` mode an operator decides every one, except that a score from
    /// `reject_at` is rejected outright.
    pub fn decide(&self, mode: SignupMode, reasons: &[Reason]) -> (u32, Decision) {
        let score = score(reasons);
        let decision = if score >= self.reject_at {
            Decision::Reject
        } else if mode == SignupMode::Open && score < self.review_at {
            Decision::Approve
        } else {
            Decision::Review
        };
        (score, decision)
    }

    /// Whether `domain` or a domain it is under is in `set`.
    pub fn listed(set: &BTreeSet<String>, domain: &str) -> bool {
        parents(domain).any(|d| set.contains(d))
    }
}

/// The sum of the reasons' weights.
pub fn score(reasons: &[Reason]) -> u32 {
    reasons
        .iter()
        .fold(0u32, |sum, r| sum.saturating_add(r.weight))
}

/// `domain` and each domain it is under, down to the last two labels
/// (`a.b.example.com`, `b.example.com`, `example.com`).
pub fn parents(domain: &str) -> impl Iterator<Item = &str> {
    let labels = domain.split('.').count();
    domain
        .match_indices('.')
        .map(|(i, _)| i + 1)
        .take(labels.saturating_sub(2))
        .map(move |i| &domain[i..])
        .chain(std::iter::once(domain))
        .filter(|d| d.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(signal: Signal) -> Reason {
        RiskPolicy::default().reason(signal, "")
    }

    #[test]
    fn open_mode_lets_the_score_decide_and_review_mode_asks_an_operator() {
        let p = RiskPolicy::default();
        assert_eq!(p.decide(SignupMode::Open, &[]), (0, Decision::Approve));
        assert_eq!(
            p.decide(SignupMode::Open, &[r(Signal::DnsError)]),
            (20, Decision::Approve)
        );
        assert_eq!(
            p.decide(SignupMode::Open, &[r(Signal::FreeMail)]),
            (40, Decision::Review)
        );
        assert_eq!(
            p.decide(SignupMode::Open, &[r(Signal::NoMx), r(Signal::FreeMail)]),
            (100, Decision::Reject)
        );
        assert_eq!(p.decide(SignupMode::Review, &[]), (0, Decision::Review));
        assert_eq!(
            p.decide(SignupMode::Review, &[r(Signal::DisposableDomain)]),
            (100, Decision::Reject)
        );
    }

    #[test]
    fn weights_can_be_changed_and_never_overflow() {
        let mut p = RiskPolicy::default();
        p.weights.insert(Signal::FreeMail, 0);
        assert_eq!(p.decide(SignupMode::Open, &[r(Signal::FreeMail)]).0, 40);
        assert_eq!(
            p.decide(SignupMode::Open, &[p.reason(Signal::FreeMail, "")])
                .0,
            0
        );
        let huge = Reason {
            signal: Signal::NoMx,
            weight: u32::MAX,
            detail: String::new(),
        };
        assert_eq!(score(&[huge.clone(), huge]), u32::MAX);
    }

    #[test]
    fn a_domain_is_listed_through_its_parents() {
        let set: BTreeSet<String> = ["mailinator.com".to_owned()].into();
        assert!(RiskPolicy::listed(&set, "mailinator.com"));
        assert!(RiskPolicy::listed(&set, "eu.mailinator.com"));
        assert!(!RiskPolicy::listed(&set, "notmailinator.com"));
        assert!(!RiskPolicy::listed(&set, "com"));
        let all: Vec<&str> = parents("a.b.example.co").collect();
        assert_eq!(all, vec!["b.example.co", "example.co", "a.b.example.co"]);
        for s in Signal::ALL {
            assert_eq!(Signal::parse(s.as_str()), Some(s));
        }
    }
}
