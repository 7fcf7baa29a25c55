//! Core customer values: each has a private field and a constructor that parses or refuses,
//! so code past the edge never re-checks them.

use regex::Regex;
use serde::{Serialize, Serializer};
use std::fmt;

use super::Invalid;

/// The default customer id rule: a lowercase letter, then 1 to 62 lowercase letters, digits,
/// `_` or `-`.
pub const DEFAULT_CUSTOMER_ID_PATTERN: &str = "^[a-z][a-z0-9_-]{1,62}$";

/// The longest customer id any product may allow: ids are parts of dataset names and keys.
pub const MAX_CUSTOMER_ID_LEN: usize = 63;

/// A product's rule for customer ids: a regular expression, anchored by the product author.
#[derive(Debug, Clone)]
pub struct CustomerIdRule {
    pattern: Regex,
}

impl CustomerIdRule {
    /// Compiles a product's customer id pattern.
    pub fn new(pattern: &str) -> Result<Self, Invalid> {
        Regex::new(pattern)
            .map(|pattern| Self { pattern })
            .map_err(|e| {
                Invalid::new(
                    "invalid_pattern",
                    format!("not a valid regular expression: {e}"),
                )
            })
    }

    /// The pattern as written in the product file.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }
}

impl Default for CustomerIdRule {
    fn default() -> Self {
        Self::new(DEFAULT_CUSTOMER_ID_PATTERN).expect("the default pattern compiles")
    }
}

/// A customer's unique, immutable identifier (`acme_corp`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomerId(String);

impl CustomerId {
    /// Parses an id under the product's rule.
    pub fn parse(s: &str, rule: &CustomerIdRule) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new("required", "customer_id is required"));
        }
        if s.len() > MAX_CUSTOMER_ID_LEN {
            return Err(Invalid::new(
                "too_long",
                format!("customer_id must be at most {MAX_CUSTOMER_ID_LEN} characters"),
            ));
        }
        if !rule.pattern.is_match(s) {
            return Err(Invalid::new(
                "invalid_format",
                format!(
                    "Invalid customer ID format: '{s}' does not match {}",
                    rule.pattern()
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Rebuilds an id the store already holds; the store only holds ids that were parsed.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CustomerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A customer's display name (`Topgolf Entertainment`): trimmed, NFC, 1 to 200 characters, no
/// control, bidirectional-control or invisible characters (see [`super::text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    /// Parses a display name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        super::text::display_text("customer_name", s, MAX_NAME_CHARS, true).map(Self)
    }

    /// The folded form used to find customers with names a person could mistake for this one.
    pub fn folded(&self) -> String {
        super::text::fold_name(&self.0)
    }

    /// Rebuilds a name the store already holds.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for CustomerName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An email address, as RFC 5321/5322 allow it (checked by the `email_address` crate), with a
/// domain that has at least one dot; stored as given, compared case-insensitively by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an email address.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let refuse = || {
            Invalid::new(
                "invalid_email",
                format!("Invalid email address '{s}': expected name@example.com"),
            )
        };
        let parsed = email_address::EmailAddress::parse_with_options(
            s,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| refuse())?;
        if !parsed.domain().contains('.') || parsed.domain().starts_with('[') {
            return Err(refuse());
        }
        Ok(Self(s.to_owned()))
    }

    /// Rebuilds an address the store already holds.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`, lowercased.
    pub fn domain(&self) -> String {
        self.0
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A classification tag (`enterprise`, `q1_2025`): 1 to 64 lowercase letters, digits, `_`, `-`,
/// `.` or `:`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

/// The most tags one customer may carry.
pub const MAX_TAGS: usize = 32;

impl Tag {
    /// Parses one tag.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok_first = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.:".contains(c));
        if s.is_empty() || s.len() > 64 || !ok_first || !ok_rest {
            return Err(Invalid::new(
                "invalid_tag",
                format!(
                    "Invalid tag '{s}': 1 to 64 lowercase letters, digits, '_', '-', '.' or ':', \
                     starting with a letter or digit"
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A customer's tags: each valid, no duplicates (kept in first-seen order), at most 32.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Parses a list of tags, reporting every bad one at `field[i]`.
    pub fn parse<S: AsRef<str>>(field: &str, items: &[S]) -> Result<Self, Vec<super::FieldError>> {
        let mut errors = Vec::new();
        let mut tags: Vec<Tag> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match Tag::parse(item.as_ref()) {
                Ok(tag) if !tags.contains(&tag) => tags.push(tag),
                Ok(_) => {}
                Err(e) => errors.push(e.at(format!("{field}[{i}]"))),
            }
        }
        if tags.len() > MAX_TAGS {
            errors.push(Invalid::new("too_many", format!("at most {MAX_TAGS} tags")).at(field));
        }
        if errors.is_empty() {
            Ok(Self(tags))
        } else {
            Err(errors)
        }
    }

    /// Rebuilds tags the store already holds.
    pub fn from_trusted(items: Vec<String>) -> Self {
        Self(items.into_iter().map(Tag).collect())
    }

    /// The tags in order.
    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    /// Whether the set holds `tag`.
    pub fn contains(&self, tag: &str) -> bool {
        self.0.iter().any(|t| t.0 == tag)
    }

    /// The tags as plain strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|t| t.0.clone()).collect()
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|t| t.0.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn customer_ids_follow_the_default_rule() {
        let rule = CustomerIdRule::default();
        for ok in ["acme_corp", "topgolf", "medcorp_a", "a1", "new-client"] {
            assert!(CustomerId::parse(ok, &rule).is_ok(), "{ok}");
        }
        let cases = [
            ("", "required"),
            ("A", "invalid_format"),
            ("1abc", "invalid_format"),
            ("a", "invalid_format"),
            ("acme corp", "invalid_format"),
            ("Acme", "invalid_format"),
        ];
        for (bad, code) in cases {
            assert_eq!(
                CustomerId::parse(bad, &rule).unwrap_err().code,
                code,
                "{bad}"
            );
        }
        assert_eq!(
            CustomerId::parse(&"a".repeat(64), &rule).unwrap_err().code,
            "too_long"
        );
    }

    #[test]
    fn a_product_pattern_replaces_the_default_one() {
        let rule = CustomerIdRule::new("^[a-z][a-z0-9_]{1,62}$").unwrap();
        assert!(CustomerId::parse("acme_corp", &rule).is_ok());
        assert!(CustomerId::parse("acme-corp", &rule).is_err());
        assert!(CustomerIdRule::new("([").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            CustomerName::parse("  Acme Corporation ").unwrap().as_str(),
            "Acme Corporation"
        );
        assert_eq!(CustomerName::parse("   ").unwrap_err().code, "required");
        assert_eq!(
            CustomerName::parse(&"x".repeat(201)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            CustomerName::parse("a\u{0}b").unwrap_err().code,
            "invalid_characters"
        );
        assert!(CustomerName::parse("Café Ünïcode 東京").is_ok());
    }

    #[test]
    fn emails_need_a_user_and_a_dotted_domain() {
        for ok in ["john@newclient.com", "contact@customer.co.uk", "a.b+c@x.io"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "john",
            "john@",
            "@x.com",
            "john@localhost",
            "a b@x.com",
            "John <j@x.com>",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code,
                "invalid_email",
                "{bad}"
            );
        }
        assert_eq!(
            Email::parse("Ann@Example.COM").unwrap().domain(),
            "example.com"
        );
    }

    #[test]
    fn tags_are_deduplicated_and_every_bad_one_is_named() {
        let tags = Tags::parse("tags", &["enterprise", "q1_2025", "enterprise"]).unwrap();
        assert_eq!(tags.to_strings(), ["enterprise", "q1_2025"]);
        let errors = Tags::parse("tags", &["ok", "Bad", "", "also ok", "fine"]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["tags[1]", "tags[2]", "tags[3]"]);
        let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        assert_eq!(Tags::parse("tags", &many).unwrap_err()[0].code, "too_many");
    }

    proptest! {
        #[test]
        fn every_accepted_id_matches_the_pattern_and_length(s in "\\PC{0,70}") {
            let rule = CustomerIdRule::default();
            if let Ok(id) = CustomerId::parse(&s, &rule) {
                prop_assert!(id.as_str().len() <= MAX_CUSTOMER_ID_LEN);
                prop_assert!(Regex::new(DEFAULT_CUSTOMER_ID_PATTERN).unwrap().is_match(id.as_str()));
            }
        }

        #[test]
        fn every_generated_valid_id_is_accepted(s in "[a-z][a-z0-9_-]{1,62}") {
            prop_assert!(CustomerId::parse(&s, &CustomerIdRule::default()).is_ok());
        }

        #[test]
        fn tag_parsing_never_panics_and_accepts_only_the_alphabet(s in "\\PC{0,80}") {
            if let Ok(tag) = Tag::parse(&s) {
                prop_assert!(tag.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.:".contains(c)));
            }
        }
    }
}
