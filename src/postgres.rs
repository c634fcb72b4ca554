//! Ordinary SQL connections to the source database (catalog reads, snapshot
//! COPY, slot and publication admin, heartbeat), with TLS.
//!
//! The source URL follows libpq: `sslmode` is one of `disable`, `prefer`
//! (libpq's default), `require`, `verify-ca` or `verify-full`, and
//! `sslrootcert` names a PEM file of trusted CAs. tokio-postgres parses only
//! the first three modes, so this module takes both parameters out of the
//! URL, hands the rest to tokio-postgres, and builds the matching rustls
//! connector:
//!
//! | sslmode | encrypted | certificate chain checked | host name checked |
//! |---|---|---|---|
//! | disable | no | - | - |
//! | prefer | if the server offers it | no | no |
//! | require | yes | no | no |
//! | verify-ca | yes | yes | no |
//! | verify-full | yes | yes | yes |
//!
//! Roots for the verifying modes come from `sslrootcert`, else the system's
//! certificate store. The replication session (pgwire-replication) gets the
//! same settings through [`SourceUrl::replication_tls`].

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::Client;

use std::ops::Range;

/// libpq's TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Why a source URL or its TLS settings are unusable. User errors.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("source.url {url} is not a PostgreSQL connection URL: use postgres://user:password@host:port/db")]
    Invalid { url: String },
    #[error("sslmode={value} in source.url is not supported: use disable, prefer, require, verify-ca or verify-full")]
    SslMode { value: String },
    #[error("cannot read sslrootcert {path}: {message}")]
    RootCert { path: PathBuf, message: String },
    #[error("sslmode={mode} needs trusted CA certificates: set sslrootcert=<file> in source.url (none found in the system store either)")]
    NoRoots { mode: &'static str },
}

/// A parsed source URL: tokio-postgres settings plus the TLS mode.
#[derive(Clone)]
pub struct SourceUrl {
    pub config: tokio_postgres::Config,
    pub tls: TlsMode,
    pub root_cert: Option<PathBuf>,
}

impl SourceUrl {
    pub fn parse(url: &str) -> Result<SourceUrl, UrlError> {
        let invalid = || UrlError::Invalid {
            url: redact_url(url),
        };
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut take = |key: &str, value: &str| -> Result<bool, UrlError> {
            match key {
                "sslmode" => {
                    tls = match value {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(UrlError::SslMode {
                                value: other.to_owned(),
                            })
                        }
                    };
                    Ok(true)
                }
                "sslrootcert" => {
                    root_cert = Some(PathBuf::from(value));
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if is_url_form(url) {
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(key, value)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            let mut kept = Vec::new();
            for pair in key_value_pairs(url).ok_or_else(invalid)? {
                if !take(&pair.key, &pair.value)? {
                    kept.push(&url[pair.whole]);
                }
            }
            kept.join(" ")
        };
        let mut config: tokio_postgres::Config = rest.parse().map_err(|_| invalid())?;
        config.ssl_mode(match tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(SourceUrl {
            config,
            tls,
            root_cert,
        })
    }

    /// Connects; the connection task ends quietly (debug log) when dropped.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        let (client, connection) = if self.tls == TlsMode::Disable {
            let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "SQL connection ended");
                }
            });
            return Ok(client);
        } else {
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(self.rustls_config()?);
            self.config.connect(connector).await?
        };
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "SQL connection ended");
            }
        });
        Ok(client)
    }

    /// The rustls client configuration for this mode.
    pub fn rustls_config(&self) -> Result<ClientConfig, UrlError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| UrlError::RootCert {
                path: PathBuf::new(),
                message: e.to_string(),
            })?;
        let config = match self.tls {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LaxVerifier {
                    chain: None,
                    provider,
                }))
                .with_no_client_auth(),
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| UrlError::RootCert {
                        path: self.root_cert.clone().unwrap_or_default(),
                        message: e.to_string(),
                    })?;
                let verifier: Arc<dyn ServerCertVerifier> = if self.tls == TlsMode::VerifyCa {
                    Arc::new(LaxVerifier {
                        chain: Some(webpki),
                        provider,
                    })
                } else {
                    webpki
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            }
        };
        Ok(config)
    }

    fn roots(&self) -> Result<RootCertStore, UrlError> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| UrlError::RootCert {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(UrlError::RootCert {
                        path: path.clone(),
                        message: "no PEM certificate in it".into(),
                    });
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                if roots.is_empty() {
                    let mode = if self.tls == TlsMode::VerifyCa {
                        "verify-ca"
                    } else {
                        "verify-full"
                    };
                    return Err(UrlError::NoRoots { mode });
                }
            }
        }
        Ok(roots)
    }

    /// The same TLS settings for the replication session.
    pub fn replication_tls(&self) -> pgwire_replication::TlsConfig {
        use pgwire_replication::TlsConfig;
        match self.tls {
            TlsMode::Disable => TlsConfig::disabled(),
            TlsMode::Prefer => TlsConfig {
                mode: pgwire_replication::SslMode::Prefer,
                ..TlsConfig::default()
            },
            TlsMode::Require => TlsConfig::require(),
            TlsMode::VerifyCa => TlsConfig::verify_ca(self.root_cert.clone()),
            TlsMode::VerifyFull => TlsConfig::verify_full(self.root_cert.clone()),
        }
    }
}

/// Whether `url` is a `postgres://` URL rather than a libpq
/// `key=value` connection string.
fn is_url_form(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// One `key = value` pair of a libpq connection string.
struct KeyValue {
    key: String,
    /// The value, quotes and backslash escapes removed.
    value: String,
    /// Where the raw value (quotes included) is in the string.
    raw_value: Range<usize>,
    /// Where the whole pair is in the string.
    whole: Range<usize>,
}

/// The pairs of a libpq `key=value` string (spaces around `=` allowed,
/// values single-quoted with `\'` and `\\` escapes); `None` if malformed.
fn key_value_pairs(text: &str) -> Option<Vec<KeyValue>> {
    let bytes = text.as_bytes();
    let skip_spaces = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut pairs = Vec::new();
    let mut i = skip_spaces(0);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_owned();
        i = skip_spaces(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_spaces(i + 1);
        let (value, end) = key_value_value(text, i)?;
        pairs.push(KeyValue {
            key,
            value,
            raw_value: i..end,
            whole: start..end,
        });
        i = skip_spaces(end);
    }
    Some(pairs)
}

/// The value starting at `start` (quoted or bare) and where it ends.
fn key_value_value(text: &str, start: usize) -> Option<(String, usize)> {
    let quoted = text[start..].starts_with('\'');
    let mut value = String::new();
    let mut chars = text[start..].char_indices().skip(usize::from(quoted));
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '\'' if quoted => return Some((value, start + offset + 1)),
            c if c.is_whitespace() && !quoted => return Some((value, start + offset)),
            c => value.push(c),
        }
    }
    (!quoted).then_some((value, text.len()))
}

/// GUCs pinned on the replication and SQL sessions so text output is in the
/// shapes `encode` parses (ISO dates, UTC offsets, hex bytea, exact floats).
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("datestyle", "ISO,MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("bytea_output", "hex"),
    ("extra_float_digits", "3"),
];

/// The server's message of a tokio-postgres error (its Display is generic).
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A connection URL or libpq `key=value` string with every password
/// replaced by `***`, safe to print and log.
pub fn redact_url(url: &str) -> String {
    redact_connection_string(url)
}

/// The marker a redacted password is replaced with.
pub const REDACTED: &str = "***";

/// A connection string (URL or libpq `key=value`) with every password
/// replaced by `***`: the URL's `user:password@`, a `password=` query
/// parameter, a `password=` pair. A string too malformed to parse keeps
/// nothing after the first `password`.
pub fn redact_connection_string(text: &str) -> String {
    if is_url_form(text) {
        return redact_url_form(text);
    }
    match key_value_pairs(text) {
        Some(pairs) => {
            let mut out = text.to_owned();
            for pair in pairs.iter().rev().filter(|p| p.key == "password") {
                out.replace_range(pair.raw_value.clone(), REDACTED);
            }
            out
        }
        None => redact_after_password(text),
    }
}

fn redact_url_form(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let mut out = match base.rfind('@').filter(|at| *at > scheme_end) {
        Some(at) => match base[scheme_end..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:{REDACTED}{}", &base[..scheme_end], &base[at..]),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{key}={REDACTED}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

fn redact_after_password(text: &str) -> String {
    match text.to_ascii_lowercase().find("password") {
        Some(at) => format!("{}password={REDACTED} (rest not shown)", &text[..at]),
        None => text.to_owned(),
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

impl ConnectError {
    /// One line: the server's message and SQLSTATE, or the error with its
    /// causes (a TLS failure says why the certificate was refused).
    pub fn describe(&self) -> String {
        match self {
            ConnectError::Url(e) => e.to_string(),
            ConnectError::Postgres(e) => match e.as_db_error() {
                Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                None => {
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(e);
                    while let Some(cause) = source {
                        text.push_str(": ");
                        text.push_str(&cause.to_string());
                        source = cause.source();
                    }
                    text
                }
            },
        }
    }
}

/// The certificate checks of libpq's weaker modes: `prefer` / `require`
/// (`chain: None`: encrypt, trust any certificate) and `verify-ca`
/// (`chain: Some`: the chain must lead to a trusted CA; the name is not
/// checked). Signatures are always verified with the provider's algorithms.
#[derive(Debug)]
struct LaxVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

/// Short names for the signature checks' parameters (one line each).
type Cert<'a> = CertificateDer<'a>;
type Dss = DigitallySignedStruct;
type Signature = Result<HandshakeSignatureValid, rustls::Error>;

impl LaxVerifier {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for LaxVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(&self, msg: &[u8], cert: &Cert<'_>, dss: &Dss) -> Signature {
        verify_tls12_signature(msg, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &Cert<'_>, dss: &Dss) -> Signature {
        verify_tls13_signature(msg, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_ssl_modes_tokio_postgres_lacks_are_taken_out_of_the_url() {
        let url = SourceUrl::parse(
            "postgres://u:p@db:5433/app?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(url.tls, TlsMode::VerifyFull);
        assert_eq!(url.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(url.config.get_dbname(), Some("app"));
        assert_eq!(
            url.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        assert_eq!(
            url.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn the_default_is_prefer_like_libpq_and_key_value_strings_work_too() {
        assert_eq!(
            SourceUrl::parse("postgres://u@h/db").unwrap().tls,
            TlsMode::Prefer
        );
        let kv = SourceUrl::parse("host=h user=u dbname=db sslmode=verify-ca").unwrap();
        assert_eq!(kv.tls, TlsMode::VerifyCa);
        assert_eq!(kv.config.get_dbname(), Some("db"));
    }

    #[test]
    fn an_unknown_sslmode_is_a_clear_error() {
        let err = SourceUrl::parse("postgres://u@h/db?sslmode=bogus")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("sslmode=bogus") && err.contains("verify-full"),
            "{err}"
        );
    }

    #[test]
    fn every_form_of_password_is_redacted() {
        for (given, shown) in [
            ("postgres://u:hunter2@h:5/db", "postgres://u:***@h:5/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgresql://u@h/db?sslmode=require&password=hunter2",
                "postgresql://u@h/db?sslmode=require&password=***",
            ),
            (
                "postgres://u:a@b@h/db?PASSWORD=hunter2",
                "postgres://u:***@h/db?PASSWORD=***",
            ),
            (
                "host=h password=hunter2 user=u",
                "host=h password=*** user=u",
            ),
            ("host=h password = hunter2", "host=h password = ***"),
            (
                "host=h password='hun ter\\'2' dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "host=h password='unterminated",
                "host=h password=*** (rest not shown)",
            ),
        ] {
            assert_eq!(redact_connection_string(given), shown, "{given}");
        }
    }

    #[test]
    fn quoted_key_value_passwords_reach_the_connection_settings() {
        let kv = SourceUrl::parse("host=h user=u password='a b\\'c' sslmode=disable").unwrap();
        assert_eq!(kv.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(kv.tls, TlsMode::Disable);
        assert!(SourceUrl::parse("host=h password='open").is_err());
    }
}
