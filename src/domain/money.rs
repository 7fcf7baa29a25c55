//! Money and billing periods: amounts in integer minor units with their currency, the price of a
//! billing cycle with its discount, billing periods that follow the calendar, and proration to
//! the second for a change in the middle of a period.
//!
//! **Rounding, stated once**: every amount that is a fraction of another (a discounted cycle
//! price, the unused or remaining part of a period) is computed exactly in 128-bit integers and
//! rounded once, half away from zero, to the minor unit. Since a credit and a charge for the
//! same span use the same rule on the same numbers, a change and its reverse in the same second
//! net to exactly zero, and a credit never exceeds what was charged for the period.

use chrono::{DateTime, Datelike, Months, Utc};
use serde::{Deserialize, Serialize};

use super::Invalid;

/// An ISO 4217 currency code (`USD`, `EUR`), upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a three-letter code, in any case.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let b = s.trim().as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(Invalid::new(
                "invalid_currency",
                format!("'{}' is not a currency code such as USD or EUR", s.trim()),
            ));
        }
        Ok(Self([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII letters")
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| e.message)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in a currency's minor units (cents), signed: a credit is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units.
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

/// Why two amounts cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Their currencies differ.
    #[error("cannot add {0} to {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The sum does not fit.
    #[error("the amount is too large")]
    Overflow,
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// The sum, in the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(other.currency, self.currency));
        }
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// The amount with its sign turned.
    pub fn negate(self) -> Money {
        Money::new(-self.minor, self.currency)
    }

    /// `self × numerator ÷ denominator`, rounded once, half away from zero (see the module).
    pub fn fraction(self, numerator: i64, denominator: i64) -> Money {
        Money::new(ratio(self.minor, numerator, denominator), self.currency)
    }
}

/// `value × numerator ÷ denominator` exactly, rounded half away from zero; a zero denominator
/// gives zero.
pub fn ratio(value: i64, numerator: i64, denominator: i64) -> i64 {
    if denominator == 0 {
        return 0;
    }
    let n = i128::from(value) * i128::from(numerator);
    let d = i128::from(denominator);
    let (q, r) = (n / d, n % d);
    let rounded = if 2 * r.abs() >= d.abs() {
        q + if (n < 0) ^ (d < 0) { -1 } else { 1 }
    } else {
        q
    };
    rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A billing cycle: its length in months and its discount on the monthly price, in basis points
/// (PolicyCortex: quarterly 10% off is 1,000, annual 17% off is 1,700).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    /// Months in a period: 1, 3, 12...
    pub months: u32,
    /// Discount in basis points, 0 to 10,000.
    pub discount_bp: u32,
}

impl Cycle {
    /// The price of one period of this cycle for a monthly price: months × monthly, less the
    /// discount, rounded once.
    pub fn price(self, monthly: Money) -> Money {
        let full = monthly.minor.saturating_mul(i64::from(self.months));
        monthly_less(full, self.discount_bp, monthly.currency)
    }
}

fn monthly_less(full: i64, discount_bp: u32, currency: Currency) -> Money {
    Money::new(
        ratio(full, 10_000 - i64::from(discount_bp.min(10_000)), 10_000),
        currency,
    )
}

/// The end of the period that starts `n` periods of `months` after `anchor`: counted from the
/// anchor each time (never from the previous end), so a period anchored on the 31st ends on the
/// last day of shorter months and comes back to the 31st after them.
pub fn period_boundary(anchor: DateTime<Utc>, months: u32, n: u32) -> DateTime<Utc> {
    let total = u64::from(months) * u64::from(n);
    anchor
        .checked_add_months(Months::new(u32::try_from(total).unwrap_or(u32::MAX)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The period of `months` from `anchor` that holds `at`: its start and end (`start <= at < end`).
pub fn period_at(
    anchor: DateTime<Utc>,
    months: u32,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    if at < anchor || months == 0 {
        return (anchor, period_boundary(anchor, months.max(1), 1));
    }
    // A first guess from the calendar, then a step either way.
    let elapsed = (at.year() - anchor.year()) * 12 + at.month() as i32 - anchor.month() as i32;
    let mut n = u32::try_from(elapsed.max(0)).unwrap_or(0) / months;
    while n > 0 && period_boundary(anchor, months, n) > at {
        n -= 1;
    }
    while period_boundary(anchor, months, n + 1) <= at {
        n += 1;
    }
    (
        period_boundary(anchor, months, n),
        period_boundary(anchor, months, n + 1),
    )
}

/// The month of usage that holds `at`, counted from `anchor` both ways: after the anchor it is
/// [`period_at`]'s; before it (an event sent late, from before the subscription or trial
/// began), the month that many months before the anchor, so what happened before the anchor
/// never counts in the first period after it.
pub fn usage_month_at(anchor: DateTime<Utc>, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    if at >= anchor {
        return period_at(anchor, 1, at);
    }
    let back = |k: u32| {
        anchor
            .checked_sub_months(Months::new(k))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let mut k = 1u32;
    while back(k) > at && k < 1200 {
        k += 1;
    }
    (back(k), back(k - 1))
}

/// One line of a proration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProrationLine {
    /// What it is for.
    pub description: String,
    /// The amount: negative for a credit.
    pub amount: Money,
    /// The span it covers.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
}

/// An immediate change at `at` within the period `[start, end)`: the unused time credited at the
/// old period price, the rest charged at the new one, both by the second.
pub fn prorate(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
    old_price: Money,
    new_price: Money,
) -> Result<Vec<ProrationLine>, MoneyError> {
    if old_price.currency != new_price.currency {
        return Err(MoneyError::CurrencyMismatch(
            new_price.currency,
            old_price.currency,
        ));
    }
    let total = (end - start).num_seconds().max(0);
    let at = at.clamp(start, end);
    let remaining = (end - at).num_seconds().max(0);
    Ok(vec![
        ProrationLine {
            description: "unused time at the old price".into(),
            amount: old_price.fraction(remaining, total).negate(),
            from: at,
            to: end,
        },
        ProrationLine {
            description: "remaining time at the new price".into(),
            amount: new_price.fraction(remaining, total),
            from: at,
            to: end,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("usd").unwrap())
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn usage_before_the_anchor_falls_in_the_months_before_it() {
        let anchor = at(2026, 3, 31);
        assert_eq!(
            usage_month_at(anchor, at(2026, 3, 31)),
            (anchor, at(2026, 4, 30))
        );
        assert_eq!(
            usage_month_at(anchor, at(2026, 3, 30)),
            (at(2026, 2, 28), anchor)
        );
        assert_eq!(
            usage_month_at(anchor, at(2026, 2, 28)),
            (at(2026, 2, 28), anchor)
        );
        assert_eq!(
            usage_month_at(anchor, at(2026, 2, 27)),
            (at(2026, 1, 31), at(2026, 2, 28))
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero_once() {
        assert_eq!(ratio(5, 1, 2), 3);
        assert_eq!(ratio(-5, 1, 2), -3);
        assert_eq!(ratio(4, 1, 3), 1);
        assert_eq!(ratio(i64::MAX, 2, 1), i64::MAX, "saturates");
        assert_eq!(ratio(7, 1, 0), 0);
    }

    #[test]
    fn cycles_take_their_discount_from_the_monthly_price() {
        // PolicyCortex's Professional: $499 a month; annual 17% off, quarterly 10% off.
        let monthly = usd(49_900);
        let annual = Cycle {
            months: 12,
            discount_bp: 1_700,
        };
        let quarterly = Cycle {
            months: 3,
            discount_bp: 1_000,
        };
        assert_eq!(annual.price(monthly), usd(497_004));
        assert_eq!(quarterly.price(monthly), usd(134_730));
        assert_eq!(
            Cycle {
                months: 1,
                discount_bp: 0
            }
            .price(monthly),
            monthly
        );
    }

    #[test]
    fn periods_follow_the_calendar_from_their_anchor() {
        let anchor = at(2026, 1, 31);
        assert_eq!(period_boundary(anchor, 1, 1), at(2026, 2, 28));
        assert_eq!(period_boundary(anchor, 1, 2), at(2026, 3, 31));
        assert_eq!(period_boundary(at(2027, 12, 31), 1, 2), at(2028, 2, 29));
        assert_eq!(
            period_at(anchor, 1, at(2026, 3, 5)),
            (at(2026, 2, 28), at(2026, 3, 31))
        );
        assert_eq!(
            period_at(anchor, 12, at(2027, 6, 1)),
            (at(2027, 1, 31), at(2028, 1, 31))
        );
    }

    #[test]
    fn a_change_in_the_middle_credits_the_rest_and_charges_it_anew() {
        let lines = prorate(
            at(2026, 1, 1),
            at(2026, 1, 31),
            at(2026, 1, 16),
            usd(3_000),
            usd(6_000),
        )
        .unwrap();
        assert_eq!(lines[0].amount, usd(-1_500));
        assert_eq!(lines[1].amount, usd(3_000));
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        assert!(prorate(at(2026, 1, 1), at(2026, 2, 1), at(2026, 1, 2), usd(1), eur).is_err());
        assert!(Currency::parse("US").is_err() && Currency::parse("U$D").is_err());
        assert_eq!(usd(5).checked_add(usd(-7)), Ok(usd(-2)));
        assert!(matches!(
            usd(5).checked_add(eur),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), Err(MoneyError::Overflow));
    }

    fn moment() -> impl Strategy<Value = DateTime<Utc>> {
        // 2020 to 2040, to the second.
        (1_577_836_800i64..2_208_988_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
    }

    proptest! {
        /// A change and its reverse in the same second net to zero.
        #[test]
        fn a_change_and_its_reverse_net_to_zero(
            anchor in moment(),
            months in prop::sample::select(vec![1u32, 3, 12]),
            offset in 0i64..400 * 86_400,
            old in 0i64..10_000_000,
            new in 0i64..10_000_000,
        ) {
            let (start, end) = period_at(anchor, months, anchor + chrono::Duration::seconds(offset));
            let at = start + chrono::Duration::seconds(offset % (end - start).num_seconds().max(1));
            let there = prorate(start, end, at, usd(old), usd(new)).unwrap();
            let back = prorate(start, end, at, usd(new), usd(old)).unwrap();
            let net: i64 = there.iter().chain(&back).map(|l| l.amount.minor).sum();
            prop_assert_eq!(net, 0);
        }

        /// A credit never exceeds what the period was charged.
        #[test]
        fn a_credit_never_exceeds_the_charge(
            anchor in moment(),
            months in prop::sample::select(vec![1u32, 3, 12]),
            offset in 0i64..400 * 86_400,
            price in 0i64..100_000_000,
        ) {
            let (start, end) = period_at(anchor, months, anchor + chrono::Duration::seconds(offset));
            let at = start + chrono::Duration::seconds(offset % (end - start).num_seconds().max(1));
            let lines = prorate(start, end, at, usd(price), usd(0)).unwrap();
            prop_assert!(-lines[0].amount.minor <= price);
            prop_assert!(lines[0].amount.minor <= 0);
        }

        /// Periods tile time: each ends where the next starts, every moment lies in exactly one,
        /// and no period is shorter than its months' days allow.
        #[test]
        fn periods_tile_time_without_gaps(
            anchor in moment(),
            months in prop::sample::select(vec![1u32, 3, 12]),
            offset in 0i64..3 * 366 * 86_400,
        ) {
            let t = anchor + chrono::Duration::seconds(offset);
            let (start, end) = period_at(anchor, months, t);
            prop_assert!(start <= t && t < end);
            let (next_start, _) = period_at(anchor, months, end);
            prop_assert_eq!(next_start, end);
            let days = (end - start).num_days();
            prop_assert!(days >= 28 * i64::from(months) && days <= 31 * i64::from(months) + 1);
        }
    }
}
