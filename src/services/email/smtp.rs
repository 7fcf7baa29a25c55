//! The way out: `ONRAMP_SMTP_URL` parsed into a pooled lettre transport, and one message sent
//! through it. The URL's password is held as a secret and never printed: the transport
//! describes itself as `smtp://user@host:port (starttls)`.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use crate::product::email::Rendered;

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP (a local relay; `smtp://` without `tls`).
    Plain,
    /// STARTTLS, required (`smtp://...?tls=starttls`, or `tls=required`).
    StartTls,
    /// STARTTLS when the server offers it (`smtp://...?tls=opportunistic`).
    Opportunistic,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

impl Security {
    fn as_str(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::StartTls => "starttls",
            Security::Opportunistic => "opportunistic starttls",
            Security::Tls => "tls",
        }
    }
}

/// `ONRAMP_SMTP_URL`, parsed.
#[derive(Clone)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    security: Security,
    user: Option<String>,
    password: Option<SecretString>,
    /// Connections kept open at most.
    pool_size: u32,
    /// How long one SMTP command may take.
    timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SmtpSettings {
    /// Parses `smtp://[user[:password]@]host[:port][?tls=starttls|opportunistic]` or
    /// `smtps://...`; percent-encoded user and password are decoded. The error never repeats
    /// the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let u = url::Url::parse(url).map_err(|e| {
            format!("ONRAMP_SMTP_URL is not a URL ({e}); write smtp://user:password@host:port")
        })?;
        let mut tls = None;
        // lettre writes a message's final dot on its own after the body, so each message
        // waits out the peer's delayed ACK (about 40 ms on Linux) on its connection: throughput
        // comes from connections in parallel.
        let mut pool_size = 16;
        let mut timeout = Duration::from_secs(30);
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "tls" => tls = Some(v.into_owned()),
                "pool" => {
                    pool_size = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or("ONRAMP_SMTP_URL: pool is a number of connections from 1 to 64")?
                }
                "timeout" => {
                    timeout = v
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=300).contains(n))
                        .map(Duration::from_secs)
                        .ok_or("ONRAMP_SMTP_URL: timeout is seconds from 1 to 300")?
                }
                other => {
                    return Err(format!(
                        "ONRAMP_SMTP_URL: unknown parameter '{}' (known: tls, pool, timeout)",
                        crate::domain::text::shorten(other, 32)
                    ))
                }
            }
        }
        let (security, default_port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None | Some("none")) => (Security::Plain, 25),
            ("smtp", Some("starttls" | "required")) => (Security::StartTls, 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic, 587),
            ("smtps", None | Some("tls")) => (Security::Tls, 465),
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!(
                    "ONRAMP_SMTP_URL: tls is starttls, opportunistic or none for smtp://, not '{}' (smtps:// is TLS from the start)",
                    crate::domain::text::shorten(other, 32)
                ))
            }
            (scheme, _) => {
                return Err(format!(
                    "ONRAMP_SMTP_URL must start with smtp:// or smtps://, not '{}://'",
                    crate::domain::text::shorten(scheme, 16)
                ))
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("ONRAMP_SMTP_URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str, what: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("ONRAMP_SMTP_URL: the {what} is not UTF-8 once decoded"))
        };
        let user = match u.username() {
            "" => None,
            name => Some(decode(name, "user")?),
        };
        let password = u
            .password()
            .map(|p| decode(p, "password").map(SecretString::from))
            .transpose()?;
        if password.is_some() && user.is_none() {
            return Err("ONRAMP_SMTP_URL has a password but no user".into());
        }
        // A password goes over the wire only encrypted, except to a relay on this machine.
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if password.is_some()
            && matches!(security, Security::Plain | Security::Opportunistic)
            && !loopback
        {
            return Err(
                "ONRAMP_SMTP_URL sends a password: use ?tls=starttls or smtps:// (plain and opportunistic connections are for a relay on this machine)"
                    .into(),
            );
        }
        Ok(Self {
            host,
            port: u.port().unwrap_or(default_port),
            security,
            user,
            password,
            pool_size,
            timeout,
        })
    }

    /// The server as people may see it: no password.
    pub fn describe(&self) -> String {
        let scheme = if self.security == Security::Tls {
            "smtps"
        } else {
            "smtp"
        };
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        format!(
            "{scheme}://{user}{}:{} ({})",
            self.host,
            self.port,
            self.security.as_str()
        )
    }
}

/// Why a message did not leave.
#[derive(Debug, Clone)]
pub struct SendError {
    /// Whether trying again cannot help (the server refused for good, or the message is bad).
    pub permanent: bool,
    /// What went wrong (no secret: the server's answer or the connection's error).
    pub message: String,
}

/// The transport with the sender's address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    settings: SmtpSettings,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mailer({}, from {})",
            self.settings.describe(),
            self.from
        )
    }
}

impl Mailer {
    /// A pooled transport for `settings`, sending as `from` (`ONRAMP_MAIL_FROM`:
    /// `Name <address>` or an address).
    pub fn new(settings: SmtpSettings, from: &str) -> Result<Self, String> {
        let from: Mailbox = from.trim().parse().map_err(|e| {
            format!(
                "ONRAMP_MAIL_FROM is not an address like 'Onramp <onboarding@example.com>': {e}"
            )
        })?;
        let tls = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|e| format!("ONRAMP_SMTP_URL: cannot set up TLS for the host: {e}"))
        };
        let security = match settings.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls()?),
            Security::Opportunistic => Tls::Opportunistic(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(security)
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(settings.pool_size)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            settings,
        })
    }

    /// The server, without its password.
    pub fn describe(&self) -> String {
        self.settings.describe()
    }

    /// The sender's address.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// How many messages may be in flight at once (the pool's size).
    pub fn concurrency(&self) -> usize {
        self.settings.pool_size as usize
    }

    /// Sends `message` to `to` with `message_id` (`<id@domain>`).
    pub async fn send(
        &self,
        to: &str,
        message_id: &str,
        message: &Rendered,
    ) -> Result<(), SendError> {
        let permanent = |message: String| SendError {
            permanent: true,
            message,
        };
        let to: Mailbox = to
            .parse()
            .map_err(|e| permanent(format!("the recipient is not an address: {e}")))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(message_id.to_owned()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(message.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(message.html.clone()),
                    ),
            )
            .map_err(|e| permanent(format!("the message cannot be built: {e}")))?;
        // The whole exchange is bounded: a server that stops answering mid-message is a
        // transient failure, not a stuck delivery.
        let bound = self.settings.timeout.saturating_mul(2);
        match tokio::time::timeout(bound, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
            Err(_) => Err(SendError {
                permanent: false,
                message: format!(
                    "the mail server did not answer within {} s",
                    bound.as_secs()
                ),
            }),
        }
    }

    /// Opens a connection and says hello, to check the settings.
    pub async fn check(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "{} did not answer as a mail server",
                self.describe()
            )),
            Err(e) => Err(format!("{}: {e}", self.describe())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms_and_never_shows_the_password() {
        let s = SmtpSettings::parse("smtp://mailer:s3cr%40t@mail.example.com:2525?tls=starttls")
            .unwrap();
        assert_eq!(s.security, Security::StartTls);
        assert_eq!(s.port, 2525);
        assert_eq!(s.user.as_deref(), Some("mailer"));
        assert_eq!(s.password.as_ref().unwrap().expose_secret(), "s3cr@t");
        let shown = format!("{s:?} {}", s.describe());
        assert!(!shown.contains("s3cr"), "{shown}");
        assert_eq!(
            s.describe(),
            "smtp://mailer@mail.example.com:2525 (starttls)"
        );
        let s = SmtpSettings::parse("smtps://mail.example.com").unwrap();
        assert_eq!((s.security, s.port), (Security::Tls, 465));
        let s = SmtpSettings::parse("smtp://127.0.0.1:1025").unwrap();
        assert_eq!((s.security, s.port), (Security::Plain, 1025));
        let s = SmtpSettings::parse("smtp://h?tls=opportunistic&pool=2&timeout=5").unwrap();
        assert_eq!(
            (s.security, s.port, s.pool_size),
            (Security::Opportunistic, 587, 2)
        );
        let s = SmtpSettings::parse("smtp://u:p@127.0.0.1:2525").unwrap();
        assert_eq!(
            s.security,
            Security::Plain,
            "a local relay may take a password in plain"
        );
    }

    #[test]
    fn refuses_what_it_cannot_use_without_echoing_the_url() {
        for (url, says) in [
            ("http://user:hunter2@h", "must start with smtp://"),
            ("smtp://user:hunter2@h?tls=maybe", "tls is starttls"),
            ("smtp://:hunter2@h", "no user"),
            ("smtp://h?pool=0", "pool is a number"),
            ("smtp://h?colour=blue", "unknown parameter 'colour'"),
            ("smtp://user:hunter2@mail.example.com", "use ?tls=starttls"),
            (
                "smtp://user:hunter2@mail.example.com?tls=opportunistic",
                "use ?tls=starttls",
            ),
            ("not a url hunter2", "not a URL"),
        ] {
            let e = SmtpSettings::parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn the_sender_must_be_an_address() {
        let s = SmtpSettings::parse("smtp://127.0.0.1:1025").unwrap();
        assert!(Mailer::new(s.clone(), "Onramp <onboarding@example.com>").is_ok());
        let e = Mailer::new(s, "onboarding at example").unwrap_err();
        assert!(e.starts_with("ONRAMP_MAIL_FROM"), "{e}");
    }
}
