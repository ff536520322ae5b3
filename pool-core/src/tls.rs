//! TLS for both backends: libpq's `sslmode` semantics, certificate files,
//! the rustls client configuration, and the one diagnosis of handshake
//! failures.
//!
//! - [`SslMode`]: `disable` | `allow` | `prefer` (default) | `require` |
//!   `verify-ca` | `verify-full`, with libpq's meaning (see its docs).
//! - [`TlsSettings`]: what was configured, each value with where it came
//!   from (a URL parameter or a variable such as `DB_SSLROOTCERT` /
//!   `REDIS_TLS_CA_FILE`); [`TlsSettings::load`] reads the files and turns
//!   it into [`TlsOptions`]. A missing or unreadable file is an error naming
//!   the variable and the file.
//! - [`client_config`]: the rustls configuration for a mode: `require` and
//!   weaker verify nothing (as libpq), `verify-ca` checks the chain,
//!   `verify-full` the chain and the host name.
//! - [`diagnose`]: finds the rustls error behind a driver error and names
//!   the cause (unknown CA, host name mismatch, expired certificate) with a
//!   hint.
//!
//! rustls 0.23 panics when asked for "the" crypto provider in a build that
//! has both `ring` and `aws-lc-rs` (a dependency may bring the other one);
//! [`install_crypto_provider`] installs `ring` as the process default
//! first (a no-op if the application installed one), and our own
//! configurations name their provider explicitly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

use crate::error::SettingsError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS only if the server refuses a plaintext login.
    Allow,
    /// TLS if the server offers it, plaintext if it refuses TLS (libpq's
    /// default). Nothing is verified.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not verified (unless a root
    /// certificate is given: then as `verify-ca`, as libpq).
    Require,
    /// TLS; the certificate chain must lead to a trusted root.
    VerifyCa,
    /// TLS; the chain must be trusted and the certificate valid for the
    /// host name connected to.
    VerifyFull,
}

impl SslMode {
    /// All modes, as written.
    pub const NAMES: &'static [&'static str] = &[
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];

    /// Parses a mode as libpq writes it.
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s.trim() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode as libpq writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the connection is always encrypted (`require` or stronger).
    pub fn at_least_require(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Whether the server's certificate chain is checked.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured value and where it came from, for error messages
/// (`DB_SSLROOTCERT`, `sslrootcert in DATABASE_URL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced {
    /// The value as given.
    pub value: String,
    /// The variable or URL parameter that holds it.
    pub origin: String,
}

impl Sourced {
    /// A value from `origin`.
    pub fn new(value: impl Into<String>, origin: impl Into<String>) -> Sourced {
        Sourced {
            value: value.into(),
            origin: origin.into(),
        }
    }
}

/// TLS as configured, before the files are read. File paths are not
/// secret; the files' contents never appear anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsSettings {
    /// `sslmode` (`DB_SSLMODE`).
    pub mode: Option<Sourced>,
    /// The CA file, or `system` (`DB_SSLROOTCERT`, `REDIS_TLS_CA_FILE`).
    pub root_cert: Option<Sourced>,
    /// The client certificate file (`DB_SSLCERT`, `REDIS_TLS_CERT_FILE`).
    pub cert: Option<Sourced>,
    /// The client key file (`DB_SSLKEY`, `REDIS_TLS_KEY_FILE`).
    pub key: Option<Sourced>,
}

/// Which roots a verifying connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The certificates in this PEM file.
    File(PathBuf),
    /// The operating system's roots (`sslrootcert=system`, as libpq 16).
    System,
}

/// TLS ready to use: the mode, the roots read, the client identity read.
#[derive(Clone)]
pub struct TlsOptions {
    /// The mode.
    pub mode: SslMode,
    /// Where the mode came from (`default` when not set).
    pub mode_origin: String,
    /// The roots and where they were configured; `None` = not configured.
    pub roots: Option<(Roots, String)>,
    root_store: Option<Arc<RootCertStore>>,
    root_pem: Option<Vec<u8>>,
    client: Option<ClientIdentity>,
}

/// A client certificate chain and its key (never shown).
#[derive(Clone)]
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("mode", &self.mode)
            .field("roots", &self.roots.as_ref().map(|(r, _)| r))
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// Plaintext only.
    pub fn disabled() -> TlsOptions {
        TlsOptions {
            mode: SslMode::Disable,
            mode_origin: "default".into(),
            roots: None,
            root_store: None,
            root_pem: None,
            client: None,
        }
    }

    /// Whether a client certificate is configured.
    pub fn has_client_cert(&self) -> bool {
        self.client.is_some()
    }

    /// The CA file's PEM text, when a file is configured (redis-rs takes
    /// it as bytes).
    pub fn root_pem(&self) -> Option<&[u8]> {
        self.root_pem.as_deref()
    }

    /// The client certificate and key as PEM (for redis-rs); never print
    /// them.
    pub fn client_pem(&self) -> Option<(&[u8], &[u8])> {
        self.client
            .as_ref()
            .map(|c| (c.cert_pem.as_slice(), c.key_pem.as_slice()))
    }

    /// The mode that is really applied: `require` with a root certificate
    /// verifies the chain, as in libpq.
    pub fn effective_mode(&self) -> SslMode {
        match (self.mode, &self.roots) {
            (SslMode::Require, Some((Roots::File(_), _))) => SslMode::VerifyCa,
            (m, _) => m,
        }
    }
}

fn file_error(origin: &str, path: &Path, reason: impl std::fmt::Display) -> SettingsError {
    SettingsError::File {
        variable: origin.to_string(),
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_file(s: &Sourced) -> Result<(PathBuf, Vec<u8>), SettingsError> {
    let path = PathBuf::from(s.value.trim());
    let bytes = std::fs::read(&path).map_err(|e| file_error(&s.origin, &path, e))?;
    Ok((path, bytes))
}

fn parse_certs(
    s: &Sourced,
) -> Result<(PathBuf, Vec<u8>, Vec<CertificateDer<'static>>), SettingsError> {
    let (path, pem) = read_file(s)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            file_error(
                &s.origin,
                &path,
                format!("not a PEM certificate file ({e})"),
            )
        })?;
    if certs.is_empty() {
        return Err(file_error(
            &s.origin,
            &path,
            "no PEM certificate in the file",
        ));
    }
    Ok((path, pem, certs))
}

/// The libpq URL parameters that are TLS settings (handled here, never
/// passed to tokio-postgres, which knows only some of them).
pub const URL_PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsSettings {
    /// Merges the TLS parameters of a URL (held in `url_var`) into the
    /// settings from variables. A URL parameter and a variable that
    /// disagree is an error naming both.
    pub fn with_url_params<'a>(
        &self,
        url_var: &str,
        param: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<TlsSettings, SettingsError> {
        let mut out = self.clone();
        let slots = [
            &mut out.mode,
            &mut out.root_cert,
            &mut out.cert,
            &mut out.key,
        ];
        for (name, slot) in URL_PARAMS.into_iter().zip(slots) {
            let Some(value) = param(name).map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            let from_url = Sourced::new(value, format!("{name} in {url_var}"));
            if let Some(var) = slot.as_ref().filter(|v| v.value != value) {
                return Err(SettingsError::Invalid {
                    variable: var.origin.clone(),
                    value: var.value.clone(),
                    expected: format!(
                        "the same value as {} ({value:?}), or only one of the two",
                        from_url.origin
                    ),
                });
            }
            *slot = Some(from_url);
        }
        Ok(out)
    }

    /// Reads the files and checks the combination. `default_mode` applies
    /// when no mode is set (`prefer` for PostgreSQL; Redis decides by the
    /// URL scheme).
    pub fn load(&self, default_mode: SslMode) -> Result<TlsOptions, SettingsError> {
        let (mode, mode_origin) = match &self.mode {
            Some(m) => (
                SslMode::parse(&m.value).ok_or_else(|| SettingsError::Invalid {
                    variable: m.origin.clone(),
                    value: m.value.clone(),
                    expected: format!("one of {}", SslMode::NAMES.join(", ")),
                })?,
                m.origin.clone(),
            ),
            None => (default_mode, "default".to_string()),
        };
        let mut opts = TlsOptions {
            mode,
            mode_origin,
            ..TlsOptions::disabled()
        };
        if let Some(r) = &self.root_cert {
            if r.value.trim() == "system" {
                let found = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(SettingsError::Invalid {
                        variable: r.origin.clone(),
                        value: r.value.clone(),
                        expected: "a CA file: `system` found no usable root certificates on this machine (install ca-certificates)".into(),
                    });
                }
                opts.roots = Some((Roots::System, r.origin.clone()));
                opts.root_store = Some(Arc::new(store));
            } else {
                let (path, pem, certs) = parse_certs(r)?;
                let mut store = RootCertStore::empty();
                for c in certs {
                    store.add(c).map_err(|e| {
                        file_error(
                            &r.origin,
                            &path,
                            format!("not a usable CA certificate ({e})"),
                        )
                    })?;
                }
                opts.roots = Some((Roots::File(path), r.origin.clone()));
                opts.root_store = Some(Arc::new(store));
                opts.root_pem = Some(pem);
            }
        }
        match (&self.cert, &self.key) {
            (None, None) => {}
            (Some(c), None) => {
                return Err(SettingsError::Invalid {
                    variable: c.origin.clone(),
                    value: c.value.clone(),
                    expected:
                        "a client certificate together with its key file (the key is not set)"
                            .into(),
                })
            }
            (None, Some(k)) => return Err(SettingsError::Invalid {
                variable: k.origin.clone(),
                value: k.value.clone(),
                expected:
                    "a client key together with its certificate file (the certificate is not set)"
                        .into(),
            }),
            (Some(c), Some(k)) => {
                let (_, cert_pem, chain) = parse_certs(c)?;
                let (key_path, key_pem) = read_file(k)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                    // The parser's message could quote the file: name it only.
                    file_error(&k.origin, &key_path, "no PEM private key in the file")
                })?;
                opts.client = Some(ClientIdentity {
                    chain,
                    key: Arc::new(key),
                    cert_pem,
                    key_pem,
                });
            }
        }
        if mode.verifies() && opts.root_store.is_none() {
            let origin = self
                .mode
                .as_ref()
                .map(|m| m.origin.clone())
                .unwrap_or_default();
            return Err(SettingsError::Invalid {
                variable: origin,
                value: mode.to_string(),
                expected: "a root certificate to verify against: set sslrootcert (DB_SSLROOTCERT) to the CA file, or to `system` for the OS roots".into(),
            });
        }
        Ok(opts)
    }
}

/// The crypto provider our configurations use (`ring`).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs `ring` as the process-wide rustls provider unless one is
/// installed already, so libraries that ask rustls for "the" provider
/// (redis-rs does) never panic in a build that has both `ring` and
/// `aws-lc-rs`.
pub fn install_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The rustls client configuration for `opts` (see the module docs for
/// what each mode verifies).
pub fn client_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, SettingsError> {
    install_crypto_provider();
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::Source(format!("TLS: {e}")))?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(server_verifier(opts)?);
    let config = match &opts.client {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|e| SettingsError::Source(format!("TLS client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// What checks the server's certificate for `opts` (the one
/// [`client_config`] uses): nothing for `require` and weaker, the chain for
/// `verify-ca`, chain and host name for `verify-full`. `wait-for-db doctor`
/// wraps it to see the certificate and the verdict.
pub fn server_verifier(opts: &TlsOptions) -> Result<Arc<dyn ServerCertVerifier>, SettingsError> {
    let provider = crypto_provider();
    Ok(match opts.effective_mode() {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let store = opts
                .root_store
                .clone()
                .ok_or_else(|| SettingsError::Source("TLS: no root certificates".into()))?;
            let webpki = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                .build()
                .map_err(|e| SettingsError::Source(format!("TLS: {e}")))?;
            if opts.effective_mode() == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(NoVerification(provider)),
    })
}

/// `require` and weaker: encryption without authentication of the server
/// (libpq's meaning). Handshake signatures are still checked, so the
/// server must hold the key of the certificate it presents.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check except the host name. webpki checks
/// the chain (trust, validity dates, usage) before the name, so a name
/// error means the chain passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Why a TLS handshake failed, as far as the client can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The chain does not lead to a trusted root.
    UnknownCa,
    /// The certificate is not valid for the name connected to.
    HostNameMismatch,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The server asked for a client certificate and got none (or
    /// rejected the one it got).
    ClientCertRejected,
    /// The server closed the connection at the start of a direct TLS
    /// handshake (`sslnegotiation=direct`): it does not support direct TLS.
    DirectUnsupported,
    /// Any other TLS failure (the rustls error's text).
    Other(String),
}

impl TlsProblem {
    /// Whether waiting cannot fix it: every certificate problem is fatal.
    pub fn is_fatal(&self) -> bool {
        true
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            TlsProblem::UnknownCa => "unknown CA: the server's certificate is not signed by a CA you trust; point sslrootcert / DB_SSLROOTCERT / REDIS_TLS_CA_FILE at the CA that signed it (managed databases publish theirs), or use `system` for a public CA",
            TlsProblem::HostNameMismatch => "host name mismatch: the server's certificate is not valid for the host you connect to; connect by a name the certificate lists (an IP address rarely is), or use sslmode=verify-ca to check the chain only",
            TlsProblem::Expired => "expired certificate: the server's certificate has expired; it must be renewed on the server, waiting will not fix this",
            TlsProblem::NotYetValid => "certificate not yet valid: check the clocks of this machine and the server",
            TlsProblem::ClientCertRejected => "the server requires a client certificate signed by a CA it trusts: set sslcert and sslkey (DB_SSLCERT, DB_SSLKEY or REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE)",
            TlsProblem::DirectUnsupported => "sslnegotiation=direct needs PostgreSQL 17 or later (or a pooler that supports it): remove sslnegotiation=direct to ask the server for TLS first (the default, sslnegotiation=postgres)",
            TlsProblem::Other(_) => "the TLS handshake failed; check that the server speaks TLS on this port and the TLS settings",
        }
    }
}

fn problem_of(e: &rustls::Error) -> TlsProblem {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsProblem::UnknownCa
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsProblem::HostNameMismatch
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsProblem::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsProblem::NotYetValid
            }
            other => TlsProblem::Other(format!("invalid peer certificate: {other:?}")),
        },
        rustls::Error::AlertReceived(A::CertificateRequired | A::BadCertificate | A::UnknownCA) => {
            TlsProblem::ClientCertRejected
        }
        other => TlsProblem::Other(other.to_string()),
    }
}

/// A direct TLS handshake (`sslnegotiation=direct`) that the server ended
/// before answering: PostgreSQL before 17 reads the TLS hello as a bad
/// startup packet and closes the connection. [`diagnose`] names it
/// [`TlsProblem::DirectUnsupported`].
#[derive(Debug)]
pub struct DirectTlsRefused(pub std::io::Error);

impl DirectTlsRefused {
    /// Whether `e`, from a direct handshake, means the server hung up on
    /// it (end of stream, reset, broken pipe).
    pub fn is_refusal(e: &std::io::Error) -> bool {
        use std::io::ErrorKind as K;
        matches!(
            e.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted
        )
    }
}

impl std::fmt::Display for DirectTlsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server closed the connection at the start of a direct TLS handshake (sslnegotiation=direct): {}",
            self.0
        )
    }
}

impl std::error::Error for DirectTlsRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Finds the rustls error in `e`'s source chain (looking inside
/// `io::Error`s, whose `source()` skips their payload) and names the
/// problem; `None` if TLS is not involved.
pub fn diagnose(e: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(problem_of(t));
        }
        if err.downcast_ref::<DirectTlsRefused>().is_some() {
            return Some(TlsProblem::DirectUnsupported);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                    return Some(problem_of(t));
                }
            }
        }
        next = err.source();
    }
    None
}

/// Names the problem from an error's text, for drivers that keep only the
/// text of the I/O error that carried the rustls error (redis-rs does).
/// Matches rustls 0.23's `Display` of its errors only.
pub fn diagnose_message(msg: &str) -> Option<TlsProblem> {
    let (_, rest) = msg
        .split_once("invalid peer certificate: ")
        .or_else(|| msg.split_once("received fatal alert: "))?;
    let known = [
        ("UnknownIssuer", TlsProblem::UnknownCa),
        ("BadSignature", TlsProblem::UnknownCa),
        ("NotValidForName", TlsProblem::HostNameMismatch),
        (
            "certificate not valid for name",
            TlsProblem::HostNameMismatch,
        ),
        ("certificate expired", TlsProblem::Expired),
        ("Expired", TlsProblem::Expired),
        ("certificate not valid yet", TlsProblem::NotYetValid),
        ("NotValidYet", TlsProblem::NotYetValid),
        ("CertificateRequired", TlsProblem::ClientCertRejected),
        ("BadCertificate", TlsProblem::ClientCertRejected),
        ("UnknownCA", TlsProblem::ClientCertRejected),
    ];
    Some(
        known
            .into_iter()
            .find(|(prefix, _)| rest.starts_with(prefix))
            .map(|(_, p)| p)
            .unwrap_or_else(|| TlsProblem::Other(rest.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_libpq_writes_them() {
        for name in SslMode::NAMES {
            assert_eq!(SslMode::parse(name).unwrap().as_str(), *name);
        }
        assert_eq!(SslMode::parse("verify-ful"), None);
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn url_parameters_and_variables_must_agree() {
        let vars = TlsSettings {
            mode: Some(Sourced::new("require", "DB_SSLMODE")),
            ..TlsSettings::default()
        };
        let url = |k: &str| (k == "sslmode").then_some("verify-full");
        let e = vars
            .with_url_params("DATABASE_URL", url)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DB_SSLMODE") && e.contains("sslmode in DATABASE_URL"),
            "{e}"
        );
        let same = |k: &str| (k == "sslmode").then_some("require");
        let merged = vars.with_url_params("DATABASE_URL", same).unwrap();
        assert_eq!(merged.mode.unwrap().value, "require");
        let root = |k: &str| (k == "sslrootcert").then_some("/ca.pem");
        let merged = vars.with_url_params("DATABASE_URL", root).unwrap();
        assert_eq!(
            merged.root_cert.unwrap().origin,
            "sslrootcert in DATABASE_URL"
        );
    }

    #[test]
    fn missing_files_name_the_variable_and_the_file() {
        let s = TlsSettings {
            root_cert: Some(Sourced::new("/nonexistent/ca.pem", "DB_SSLROOTCERT")),
            ..TlsSettings::default()
        };
        let e = s.load(SslMode::Prefer).unwrap_err().to_string();
        assert!(
            e.contains("DB_SSLROOTCERT") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn verify_modes_need_roots() {
        let s = TlsSettings {
            mode: Some(Sourced::new("verify-full", "DB_SSLMODE")),
            ..TlsSettings::default()
        };
        let e = s.load(SslMode::Prefer).unwrap_err().to_string();
        assert!(e.contains("DB_SSLMODE") && e.contains("sslrootcert"), "{e}");
        let bad = TlsSettings {
            mode: Some(Sourced::new("verify-ful", "DB_SSLMODE")),
            ..TlsSettings::default()
        };
        let e = bad.load(SslMode::Prefer).unwrap_err().to_string();
        assert!(e.contains("verify-full") && e.contains("verify-ful"), "{e}");
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_named_without_its_content() {
        let dir = std::env::temp_dir().join(format!("pool-core-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("client.key");
        std::fs::write(&key, "SECRETSTUFF not a pem").unwrap();
        let s = TlsSettings {
            cert: Some(Sourced::new(key.display().to_string(), "DB_SSLCERT")),
            key: Some(Sourced::new(key.display().to_string(), "DB_SSLKEY")),
            ..TlsSettings::default()
        };
        let e = s.load(SslMode::Prefer).unwrap_err().to_string();
        assert!(e.contains("DB_SSLCERT"), "{e}");
        assert!(!e.contains("SECRETSTUFF"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn diagnosis_looks_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        assert_eq!(diagnose(&io), Some(TlsProblem::UnknownCa));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(diagnose(&plain), None);
    }

    #[test]
    fn diagnosis_by_text_matches_what_rustls_prints() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                TlsProblem::UnknownCa,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                TlsProblem::HostNameMismatch,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                TlsProblem::Expired,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(2_000_000_000)),
                    not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                        1_000_000_000,
                    )),
                }),
                TlsProblem::Expired,
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                TlsProblem::ClientCertRejected,
            ),
        ];
        for (err, want) in cases {
            let text = format!("connect failed: {err}");
            assert_eq!(diagnose_message(&text), Some(want.clone()), "{text}");
            assert_eq!(diagnose(&err), Some(want));
        }
        assert_eq!(diagnose_message("Connection refused"), None);
    }
}
