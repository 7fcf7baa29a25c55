//! The product's email templates (`[email] templates = "DIR"`): for each message
//! ([`EmailKind`]) a subject, a text part and an HTML part, written in MiniJinja. Onramp ships a
//! default of each; a product overrides any of them with a file of the same name in its
//! templates directory (`signup_verification.subject`, `signup_verification.txt`,
//! `signup_verification.html`...). Every template is compiled and rendered against a sample of
//! its message's variables when the product loads, so a typo or an unknown variable is a
//! problem `onramp product check` reports, not a failed delivery. HTML parts escape what they
//! insert.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;
use toml::Spanned;

use super::parse::Checker;
use crate::domain::email::EmailKind;

/// The longest subject a message goes out with (a longer one is shortened).
const MAX_SUBJECT: usize = 200;
/// The largest template file read.
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    templates: Option<Spanned<String>>,
}

/// A message's three parts, each a template.
const PARTS: [&str; 3] = ["subject", "txt", "html"];

/// The shipped template of `kind`'s `part`.
fn default_source(kind: EmailKind, part: &str) -> &'static str {
    macro_rules! parts {
        ($name:literal) => {
            match part {
                "subject" => include_str!(concat!("emails/", $name, ".subject")),
                "txt" => include_str!(concat!("emails/", $name, ".txt")),
                _ => include_str!(concat!("emails/", $name, ".html")),
            }
        };
    }
    match kind {
        EmailKind::SignupVerification => parts!("signup_verification"),
        EmailKind::SignupReceived => parts!("signup_received"),
        EmailKind::OnboardingSummary => parts!("onboarding_summary"),
        EmailKind::Test => parts!("test"),
        EmailKind::Welcome => parts!("welcome"),
        EmailKind::Invitation => parts!("invitation"),
        EmailKind::PasswordReset => parts!("password_reset"),
        EmailKind::TrialEndingSoon => parts!("trial_ending_soon"),
    }
}

/// The variables a message of `kind` is rendered with, as a sample: every template is tried
/// against it at load. The delivery supplies the same names with real values; `product` and
/// `public_url` come with every message.
pub fn sample(kind: EmailKind) -> serde_json::Value {
    let mut v = match kind {
        EmailKind::SignupVerification => serde_json::json!({
            "company_name": "Acme Corp",
            "code": "123456",
            "verify_url": "https://onramp.example.com/signup/verify?session=su_1&token=onr_sv_1",
            "expires_minutes": 30,
        }),
        EmailKind::SignupReceived => serde_json::json!({ "company_name": "Acme Corp" }),
        EmailKind::OnboardingSummary => serde_json::json!({
            "customer_id": "acme",
            "customer_name": "Acme Corp",
            "tier": "starter",
            "completed_at": "2026-01-01T00:00:00Z",
            "steps": ["register", "provision_dataset", "verify_dataset"],
        }),
        EmailKind::Test => serde_json::json!({}),
        EmailKind::Welcome => serde_json::json!({
            "customer_name": "Acme Corp",
            "email": "jane@acme.example",
            "temporary_password": "Abcd-efgh-2345-6789",
            "set_password_url": "",
            "expires_at": "2026-01-08T00:00:00Z",
        }),
        EmailKind::Invitation => serde_json::json!({
            "customer_name": "Acme Corp",
            "email": "sam@acme.example",
            "role": "member",
            "accept_url": "https://onramp.example.com/portal/invitation?token=onr_ul_1",
            "expires_at": "2026-01-08T00:00:00Z",
        }),
        EmailKind::PasswordReset => serde_json::json!({
            "customer_name": "Acme Corp",
            "email": "jane@acme.example",
            "reset_url": "https://onramp.example.com/portal/reset?token=onr_ul_1",
            "expires_minutes": 60,
        }),
        EmailKind::TrialEndingSoon => serde_json::json!({
            "customer_id": "acme",
            "customer_name": "Acme Corp",
            "plan": "professional",
            "plan_name": "Professional",
            "ends_at": "2026-01-15T09:00:00Z",
            "days_left": 2,
        }),
    };
    v["product"] = "Example".into();
    v["public_url"] = "https://onramp.example.com".into();
    v
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// The text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The templates in force: the shipped defaults with the product's overrides.
#[derive(Clone)]
pub struct MailTemplates {
    env: minijinja::Environment<'static>,
    overridden: BTreeSet<String>,
}

impl std::fmt::Debug for MailTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailTemplates")
            .field("overridden", &self.overridden)
            .finish_non_exhaustive()
    }
}

impl Default for MailTemplates {
    fn default() -> Self {
        Self::with_overrides(Vec::new()).expect("the shipped email templates are valid")
    }
}

impl MailTemplates {
    /// The defaults, with `overrides` (file name, source) in their place; every problem found.
    fn with_overrides(overrides: Vec<(String, String)>) -> Result<Self, Vec<String>> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let mut problems = Vec::new();
        let mut overridden = BTreeSet::new();
        for (name, source) in overrides {
            if let Err(e) = env.add_template_owned(name.clone(), source) {
                problems.push(format!("email template {name}: {}", describe(&e)));
            }
            overridden.insert(name);
        }
        for kind in EmailKind::ALL {
            for part in PARTS {
                let name = format!("{}.{part}", kind.as_str());
                if !overridden.contains(&name) {
                    env.add_template_owned(name, default_source(kind, part))
                        .expect("the shipped email templates compile");
                }
            }
        }
        let templates = Self { env, overridden };
        if problems.is_empty() {
            for kind in EmailKind::ALL {
                if let Err(e) = templates.render(kind, &sample(kind)) {
                    problems.push(e);
                }
            }
        }
        if problems.is_empty() {
            Ok(templates)
        } else {
            Err(problems)
        }
    }

    /// The names of the templates the product overrides.
    pub fn overridden(&self) -> Vec<String> {
        self.overridden.iter().cloned().collect()
    }

    /// Renders `kind` with `vars` (its variables, `product` and `public_url`).
    pub fn render(&self, kind: EmailKind, vars: &serde_json::Value) -> Result<Rendered, String> {
        let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
        let part = |part: &str| {
            let name = format!("{}.{part}", kind.as_str());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx.clone()))
                .map_err(|e| format!("email template {name}: {}", describe(&e)))
        };
        let subject = part("subject")?;
        let subject = subject.trim();
        if subject.is_empty() || subject.contains(['\r', '\n']) {
            return Err(format!(
                "email template {}.subject: a subject is one line, not empty",
                kind.as_str()
            ));
        }
        // A long value (a company's name) shortens the subject rather than failing the message.
        let subject = match subject.chars().count() > MAX_SUBJECT {
            true => crate::domain::text::shorten(subject, MAX_SUBJECT - 3),
            false => subject.to_owned(),
        };
        Ok(Rendered {
            subject,
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

/// An error with its line, without the debug dump of the template.
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("line {line}: {}", e.detail().unwrap_or(&e.to_string())),
        None => e.detail().map_or_else(|| e.to_string(), str::to_owned),
    }
}

/// Reads `[email]`: the templates directory (relative to the product file) and its overrides.
pub(super) fn templates(
    c: &mut Checker<'_>,
    raw: &Spanned<RawEmail>,
    base_dir: Option<&Path>,
) -> MailTemplates {
    let Some(dir_name) = &raw.get_ref().templates else {
        return MailTemplates::default();
    };
    let dir = Path::new(dir_name.get_ref());
    let dir = match base_dir {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir.to_owned(),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            c.at(
                dir_name,
                format!("email.templates '{}' cannot be read: {e}", dir.display()),
            );
            return MailTemplates::default();
        }
    };
    let known: Vec<String> = EmailKind::ALL
        .iter()
        .flat_map(|k| PARTS.iter().map(move |p| format!("{}.{p}", k.as_str())))
        .collect();
    let mut overrides = Vec::new();
    let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        if !known.contains(&name) {
            c.at(
                dir_name,
                format!(
                    "email.templates: '{name}' is not a template Onramp sends; the names are <message>.subject, .txt or .html for the messages {}",
                    EmailKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            );
            continue;
        }
        let read = std::fs::metadata(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.len() > MAX_TEMPLATE_BYTES {
                    Err(format!("larger than {MAX_TEMPLATE_BYTES} bytes"))
                } else {
                    std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())
                }
            });
        match read {
            Ok(source) => overrides.push((name, source)),
            Err(e) => c.at(dir_name, format!("email template {name}: {e}")),
        }
    }
    match MailTemplates::with_overrides(overrides) {
        Ok(t) => t,
        Err(problems) => {
            for p in problems {
                c.at(dir_name, p);
            }
            MailTemplates::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_render_and_escape_html() {
        let t = MailTemplates::default();
        let mut vars = sample(EmailKind::SignupVerification);
        vars["company_name"] = "<b>Acme</b> & Co".into();
        let r = t.render(EmailKind::SignupVerification, &vars).unwrap();
        assert_eq!(r.subject, "Verify your email for Example");
        // A stranger's text stays out of a message a stranger can have sent to anyone.
        assert!(
            !r.text.contains("Acme") && !r.html.contains("Acme"),
            "{}",
            r.text
        );
        assert!(r
            .text
            .contains("https://onramp.example.com/signup/verify?session="));
        let mut vars = sample(EmailKind::SignupReceived);
        vars["company_name"] = "<b>Acme</b> & Co".into();
        let r = t.render(EmailKind::SignupReceived, &vars).unwrap();
        assert!(r.text.contains("<b>Acme</b> & Co"), "{}", r.text);
        assert!(
            r.html.contains("&lt;b&gt;Acme&lt;&#x2f;b&gt; &amp; Co"),
            "{}",
            r.html
        );
        vars["company_name"] = "x".repeat(300).into();
        let r = t.render(EmailKind::SignupReceived, &vars).unwrap();
        assert_eq!(
            r.subject.chars().count(),
            200,
            "a long name shortens the subject"
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let mut vars = sample(EmailKind::SignupVerification);
        vars.as_object_mut().unwrap().remove("code");
        let e = MailTemplates::default()
            .render(EmailKind::SignupVerification, &vars)
            .unwrap_err();
        assert!(e.contains("signup_verification.txt"), "{e}");
    }

    #[test]
    fn overrides_are_checked_against_the_sample() {
        let bad = MailTemplates::with_overrides(vec![(
            "test.txt".into(),
            "Hello {{ custmer_name }}".into(),
        )])
        .unwrap_err();
        assert!(bad[0].starts_with("email template test.txt"), "{bad:?}");
        let broken = MailTemplates::with_overrides(vec![("test.html".into(), "{% if %}".into())])
            .unwrap_err();
        assert!(broken[0].contains("line 1"), "{broken:?}");
        let two_lines = MailTemplates::with_overrides(vec![("test.subject".into(), "a\nb".into())])
            .unwrap_err();
        assert!(two_lines[0].contains("one line"), "{two_lines:?}");
        let good = MailTemplates::with_overrides(vec![(
            "test.txt".into(),
            "Hi from {{ product }}".into(),
        )])
        .unwrap();
        assert_eq!(good.overridden(), vec!["test.txt".to_owned()]);
        let r = good
            .render(EmailKind::Test, &sample(EmailKind::Test))
            .unwrap();
        assert_eq!(r.text, "Hi from Example");
    }
}
