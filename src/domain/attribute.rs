//! Attribute formats: the value rules a product can give a customer field beyond the core ones
//! (Google Ads and Meta account ids, email, country, timezone, URL, or the product's own regex).

use regex::Regex;
use serde::{Serialize, Serializer};
use std::str::FromStr;

use super::{Email, Invalid};

/// The rule one attribute value must follow.
#[derive(Debug, Clone)]
pub enum AttributeFormat {
    /// Any text of 1 to 1,000 characters without control characters.
    Text,
    /// A Google Ads customer id: `XXX-XXX-XXXX`, digits.
    GoogleAdsCustomerId,
    /// A Meta ad account id: `act_` followed by digits.
    MetaAdAccountId,
    /// An email address.
    Email,
    /// An ISO 3166-1 alpha-2 country code, upper case (`US`).
    Country,
    /// An IANA time zone name (`America/New_York`).
    Timezone,
    /// An absolute `http` or `https` URL.
    Url,
    /// The product's own regular expression; the product author anchors it.
    Pattern(Regex),
}

/// The longest URL a value may be, in its canonical form.
pub const MAX_URL_BYTES: usize = 2048;

/// The built-in format names a product file may use.
pub const BUILTIN_FORMATS: &[&str] = &[
    "text",
    "google_ads_customer_id",
    "meta_ad_account_id",
    "email",
    "country",
    "timezone",
    "url",
];

impl AttributeFormat {
    /// Looks up a built-in format by its product-file name.
    pub fn builtin(name: &str) -> Option<Self> {
        Some(match name {
            "text" => Self::Text,
            "google_ads_customer_id" => Self::GoogleAdsCustomerId,
            "meta_ad_account_id" => Self::MetaAdAccountId,
            "email" => Self::Email,
            "country" => Self::Country,
            "timezone" => Self::Timezone,
            "url" => Self::Url,
            _ => return None,
        })
    }

    /// Whether two formats apply the same rule.
    pub fn same_rule(&self, other: &AttributeFormat) -> bool {
        match (self, other) {
            (Self::Pattern(a), Self::Pattern(b)) => a.as_str() == b.as_str(),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    /// Checks one value, returning it in its canonical form.
    pub fn parse(&self, value: &str) -> Result<String, Invalid> {
        match self {
            Self::Text => {
                super::text::display_text("the value", value, 1000, true)
            }
            Self::GoogleAdsCustomerId => {
                let b = value.as_bytes();
                let ok = b.len() == 12
                    && b[3] == b'-'
                    && b[7] == b'-'
                    && b.iter().enumerate().all(|(i, c)| i == 3 || i == 7 || c.is_ascii_digit());
                if ok {
                    Ok(value.to_owned())
                } else {
                    Err(Invalid::new(
                        "invalid_google_ads_customer_id",
                        format!(
                            "Invalid Google Ads customer ID format: '{value}' must be XXX-XXX-XXXX \
                             (digits), e.g. 123-456-7890"
                        ),
                    ))
                }
            }
            Self::MetaAdAccountId => {
                let digits = value.strip_prefix("act_").unwrap_or("");
                if !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|c| c.is_ascii_digit()) {
                    Ok(value.to_owned())
                } else {
                    Err(Invalid::new(
                        "invalid_meta_ad_account_id",
                        format!(
                            "Invalid Meta ad account ID format: '{value}' must start with act_ \
                             followed by digits, e.g. act_12345678"
                        ),
                    ))
                }
            }
            Self::Email => Email::parse(value).map(|e| e.as_str().to_owned()),
            Self::Country => {
                let upper = value.to_ascii_uppercase();
                match isocountry::CountryCode::for_alpha2(&upper) {
                    Ok(_) if value.len() == 2 => Ok(upper),
                    _ => Err(Invalid::new(
                        "invalid_country",
                        format!("Invalid country '{value}': expected an ISO 3166-1 alpha-2 code such as US"),
                    )),
                }
            }
            Self::Timezone => chrono_tz::Tz::from_str(value)
                .map(|tz| tz.name().to_owned())
                .map_err(|_| {
                    Invalid::new(
                        "invalid_timezone",
                        format!("Invalid time zone '{value}': expected an IANA name such as America/New_York"),
                    )
                }),
            Self::Url => match url::Url::parse(value) {
                Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                    let url = u.to_string();
                    if url.len() > MAX_URL_BYTES {
                        return Err(Invalid::new(
                            "too_long",
                            format!("a URL must be at most {MAX_URL_BYTES} bytes"),
                        ));
                    }
                    Ok(url)
                }
                _ => Err(Invalid::new(
                    "invalid_url",
                    format!(
                        "Invalid URL '{}': expected an absolute http or https URL",
                        super::text::shorten(value, 64)
                    ),
                )),
            },
            Self::Pattern(re) => {
                if re.is_match(value) {
                    Ok(value.to_owned())
                } else {
                    Err(Invalid::new(
                        "invalid_format",
                        format!("'{value}' does not match {}", re.as_str()),
                    ))
                }
            }
        }
    }
}

/// A checked attribute value: one string, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// A single value.
    One(String),
    /// A list of values, in the order given.
    List(Vec<String>),
}

impl AttributeValue {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::One(s) => serde_json::Value::String(s.clone()),
            Self::List(items) => items
                .iter()
                .cloned()
                .map(serde_json::Value::String)
                .collect(),
        }
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(v) => s.serialize_str(v),
            Self::List(items) => s.collect_seq(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(format: &str, value: &str) -> Result<String, &'static str> {
        AttributeFormat::builtin(format)
            .unwrap()
            .parse(value)
            .map_err(|e| e.code)
    }

    #[test]
    fn google_ads_ids_follow_the_seed_examples() {
        assert_eq!(
            check("google_ads_customer_id", "123-456-7890"),
            Ok("123-456-7890".into())
        );
        for bad in [
            "1234567890",
            "123-4567-890",
            "abc-def-ghij",
            "123-456-78901",
            "",
        ] {
            assert_eq!(
                check("google_ads_customer_id", bad),
                Err("invalid_google_ads_customer_id"),
                "{bad}"
            );
        }
    }

    #[test]
    fn meta_ids_follow_the_seed_examples() {
        assert!(check("meta_ad_account_id", "act_12345678").is_ok());
        for bad in ["12345678", "account_12345", "act_", "act_12a", "ACT_123"] {
            assert_eq!(
                check("meta_ad_account_id", bad),
                Err("invalid_meta_ad_account_id"),
                "{bad}"
            );
        }
        let message = AttributeFormat::MetaAdAccountId
            .parse("12345678")
            .unwrap_err()
            .message;
        assert!(message.starts_with("Invalid Meta ad account ID format"));
    }

    #[test]
    fn countries_timezones_and_urls_are_checked_against_their_standards() {
        assert_eq!(check("country", "us"), Ok("US".into()));
        assert_eq!(check("country", "XX"), Err("invalid_country"));
        assert_eq!(check("country", "USA"), Err("invalid_country"));
        assert_eq!(
            check("timezone", "America/New_York"),
            Ok("America/New_York".into())
        );
        assert_eq!(check("timezone", "Mars/Olympus"), Err("invalid_timezone"));
        assert!(check("url", "https://example.com/x").is_ok());
        assert_eq!(check("url", "ftp://example.com"), Err("invalid_url"));
        assert_eq!(check("url", "example.com"), Err("invalid_url"));
        assert_eq!(check("email", "nope"), Err("invalid_email"));
    }

    #[test]
    fn a_product_pattern_is_applied_as_written() {
        let format = AttributeFormat::Pattern(Regex::new("^[A-Z]{3}$").unwrap());
        assert!(format.parse("ABC").is_ok());
        assert_eq!(format.parse("abcd").unwrap_err().code, "invalid_format");
    }

    proptest! {
        #[test]
        fn any_well_formed_google_ads_id_is_accepted(a in 0u32..1000, b in 0u32..1000, c in 0u32..10000) {
            let id = format!("{a:03}-{b:03}-{c:04}");
            prop_assert_eq!(check("google_ads_customer_id", &id), Ok(id.clone()));
        }

        #[test]
        fn format_checks_never_panic(s in "\\PC{0,40}") {
            for name in BUILTIN_FORMATS {
                let _ = AttributeFormat::builtin(name).unwrap().parse(&s);
            }
        }
    }
}
