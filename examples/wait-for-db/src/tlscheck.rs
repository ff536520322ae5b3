//! The doctor's `tls` layer: a TLS handshake of its own, with the TLS
//! settings the target's connections use, to show what was negotiated
//! (protocol version and cipher suite), whether the server's certificate
//! was verified (and how), the certificate's subject and the days left
//! before it expires (a warning under [`EXPIRY_WARNING_DAYS`]).
//!
//! PostgreSQL: the `SSLRequest` of the wire protocol (or nothing with
//! `sslnegotiation=direct`), then the handshake (offering ALPN
//! `postgresql`, as the connections do); a server that answers `N`
//! refused TLS ("not negotiated", which `sslmode=prefer` accepts). Redis:
//! `rediss://` shakes hands at once (then listens briefly for a rejection
//! of the client certificate, see [`rejected_after`]); `redis://` is
//! plaintext. The connection is closed right after (no login).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pool_core::startup::Endpoint;
use pool_core::tls::{DirectTlsRefused, SslMode, TlsOptions, TlsProblem};
use pool_postgres::PgProbe;
use pool_redis::RedisProbe;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::SslNegotiation;
use x509_cert::der::Decode;

use crate::doctor::Layer;

/// A certificate expiring in fewer days than this is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// What the server's certificate says (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CertFacts {
    /// The subject, RFC 4514 (`CN=db.example.com`).
    subject: String,
    /// The last day of validity, `YYYY-MM-DD` (UTC).
    not_after: String,
    /// Whole days from now to the end of validity (negative: expired).
    days_left: i64,
}

impl CertFacts {
    fn parse(der: &[u8], now: SystemTime) -> Option<CertFacts> {
        let cert = x509_cert::Certificate::from_der(der).ok()?;
        let tbs = &cert.tbs_certificate;
        let end = tbs.validity.not_after;
        let date = end.to_date_time();
        let end_secs = i64::try_from(end.to_unix_duration().as_secs()).ok()?;
        let now_secs = i64::try_from(now.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
        Some(CertFacts {
            subject: tbs.subject.to_string(),
            not_after: format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
            days_left: (end_secs - now_secs).div_euclid(86_400),
        })
    }

    fn describe(&self) -> String {
        if self.days_left < 0 {
            format!(
                "certificate {}, expired {} day(s) ago ({})",
                self.subject, -self.days_left, self.not_after
            )
        } else {
            format!(
                "certificate {}, expires in {} day(s) ({})",
                self.subject, self.days_left, self.not_after
            )
        }
    }
}

/// Wraps the verifier the connections use, keeping the certificate the
/// server presented (so a rejected one can still be described).
#[derive(Debug)]
struct Observing {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Observing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.clone().into_owned());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the verification of a negotiated connection covered, in words.
fn verification(opts: &TlsOptions, label: &str) -> String {
    match (opts.effective_mode(), opts.mode) {
        (SslMode::VerifyFull, _) => format!("chain and host name verified ({label})"),
        (SslMode::VerifyCa, SslMode::Require) => {
            format!("chain verified, host name not checked ({label} with a root certificate: as verify-ca)")
        }
        (SslMode::VerifyCa, _) => format!("chain verified, host name not checked ({label})"),
        _ => format!("certificate not verified ({label})"),
    }
}

/// One handshake over `stream` with the connections' TLS settings.
async fn handshake(
    stream: TcpStream,
    host: &str,
    opts: &TlsOptions,
    label: &str,
    alpn: Option<&[u8]>,
    direct: bool,
    listen: bool,
) -> Layer {
    let built = pool_core::tls::client_config(opts)
        .and_then(|c| Ok((c, pool_core::tls::server_verifier(opts)?)));
    let (mut config, inner) = match built {
        Ok(b) => b,
        Err(e) => return Layer::failed("tls", e.to_string(), None),
    };
    let observing = Arc::new(Observing {
        inner,
        seen: Mutex::new(None),
    });
    config
        .dangerous()
        .set_certificate_verifier(observing.clone());
    if let Some(protocol) = alpn {
        config.alpn_protocols = vec![protocol.to_vec()];
    }
    let name = match ServerName::try_from(host.to_string()) {
        Ok(n) => n,
        Err(e) => {
            return Layer::failed(
                "tls",
                format!("'{host}' cannot be a TLS server name ({e})"),
                None,
            )
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let now = SystemTime::now();
    let started = Instant::now();
    match connector.connect(name, stream).await {
        Ok(mut tls) => {
            let (_, conn) = tls.get_ref();
            let protocol = conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .map(|v| v.replace('_', "."))
                .unwrap_or_else(|| "TLS".into());
            let suite = conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("?");
            let cert = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| CertFacts::parse(c, now));
            let head = format!(
                "negotiated {protocol} ({suite}); {}",
                verification(opts, label)
            );
            if listen {
                if let Some(layer) = rejected_after(&mut tls, started.elapsed(), &head).await {
                    return layer;
                }
            }
            let _ = tls.shutdown().await;
            match cert {
                None => Layer::warn(
                    "tls",
                    format!("{head}; the certificate could not be read"),
                    "the server presented no certificate this check can parse",
                ),
                Some(c) if c.days_left < 0 => Layer::warn(
                    "tls",
                    format!("{head}; {}", c.describe()),
                    format!(
                        "the server's certificate expired on {}: renew it (verify-ca / verify-full would reject it)",
                        c.not_after
                    ),
                ),
                Some(c) if c.days_left < EXPIRY_WARNING_DAYS => Layer::warn(
                    "tls",
                    format!("{head}; {}", c.describe()),
                    format!(
                        "the server's certificate expires in under {EXPIRY_WARNING_DAYS} days ({}): renew it before then, or verifying connections will fail",
                        c.not_after
                    ),
                ),
                Some(c) => Layer::ok("tls", format!("{head}; {}", c.describe())),
            }
        }
        Err(e) => {
            let seen = observing
                .seen
                .lock()
                .ok()
                .and_then(|s| s.as_ref().and_then(|c| CertFacts::parse(c, now)));
            let problem = if direct && DirectTlsRefused::is_refusal(&e) {
                Some(TlsProblem::DirectUnsupported)
            } else {
                pool_core::tls::diagnose(&e)
            };
            let mut detail = format!("handshake failed: {e}");
            if let Some(c) = seen {
                detail.push_str(&format!("; {}", c.describe()));
            }
            Layer::failed(
                "tls",
                detail,
                Some(problem.map(|p| p.hint().to_string()).unwrap_or_else(|| {
                    "check that the server speaks TLS on this port and the TLS settings".into()
                })),
            )
        }
    }
}

/// With TLS 1.3 a server that rejects the client's certificate (Redis's
/// `tls-auth-clients yes`) says so only after the client finished its
/// handshake. Sending nothing, wait a little (three handshake times, within
/// 100 ms to 1 s) for such an alert or a hang-up; a server that accepted
/// the client stays quiet, waiting for a command.
async fn rejected_after<S>(
    tls: &mut tokio_rustls::client::TlsStream<S>,
    handshake: Duration,
    head: &str,
) -> Option<Layer>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let wait = (handshake * 3).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, tls.read(&mut byte)).await {
        Err(_) | Ok(Ok(1..)) => None,
        Ok(Ok(0)) => Some(Layer::failed(
            "tls",
            format!("{head}; then the server closed the connection"),
            Some(TlsProblem::ClientCertRejected.hint().into()),
        )),
        Ok(Err(e)) => {
            let hint = pool_core::tls::diagnose(&e)
                .map(|p| p.hint().to_string())
                .unwrap_or_else(|| {
                    "the server ended the connection right after the handshake".into()
                });
            Some(Layer::failed(
                "tls",
                format!("{head}; then the server rejected the connection: {e}"),
                Some(hint),
            ))
        }
    }
}

async fn connect(ep: &Endpoint) -> Result<TcpStream, Layer> {
    TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| {
            Layer::failed(
                "tls",
                format!("{}:{}: {e}", ep.host, ep.port),
                Some("the TCP connection failed on a second try: the server is flapping".into()),
            )
        })
}

/// The `tls` layer of a PostgreSQL target, checked against `ep`.
pub async fn postgres(probe: &PgProbe, ep: &Endpoint) -> Layer {
    let opts = probe.tls().options();
    let label = format!("sslmode={}", opts.mode);
    match opts.mode {
        SslMode::Disable => return Layer::ok("tls", format!("not negotiated: {label}, plaintext")),
        SslMode::Allow => {
            return Layer::ok(
                "tls",
                format!(
                    "not negotiated: {label} logs in without TLS unless the server refuses that"
                ),
            )
        }
        _ => {}
    }
    let mut stream = match connect(ep).await {
        Ok(s) => s,
        Err(l) => return l,
    };
    let direct = probe.config().get_ssl_negotiation() == SslNegotiation::Direct;
    if !direct {
        let mut answer = [0u8];
        let asked = async {
            stream.write_all(&SSL_REQUEST).await?;
            stream.read_exact(&mut answer).await
        };
        if let Err(e) = asked.await {
            return Layer::failed(
                "tls",
                format!("no answer to the TLS request: {e}"),
                Some("is this a PostgreSQL server?".into()),
            );
        }
        if answer[0] != b'S' {
            return if opts.mode == SslMode::Prefer {
                Layer::ok(
                    "tls",
                    format!("not negotiated: the server refused TLS, the connection is plaintext ({label})"),
                )
            } else {
                Layer::failed(
                    "tls",
                    format!("not negotiated: the server refused TLS, and {label} does not fall back to plaintext"),
                    Some("turn ssl on in the server's postgresql.conf, or connect to one that has it".into()),
                )
            };
        }
    }
    let alpn = Some(pool_postgres::tls::ALPN);
    handshake(stream, &ep.host, opts, &label, alpn, direct, false).await
}

/// The `tls` layer of a Redis target, checked against `ep`.
pub async fn redis(probe: &RedisProbe, ep: &Endpoint) -> Layer {
    let opts = match probe.tls_options() {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Layer::ok(
                "tls",
                "not negotiated: redis:// is plaintext (rediss:// for TLS)",
            )
        }
        Err(e) => return Layer::failed("tls", e.to_string(), None),
    };
    let label = if opts.mode == SslMode::VerifyFull {
        "rediss://"
    } else {
        "#insecure"
    };
    match connect(ep).await {
        Ok(stream) => handshake(stream, &ep.host, &opts, label, None, false, true).await,
        Err(l) => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_testkit::{ServerCert, TestCerts};
    use rustls::pki_types::pem::PemObject;

    fn facts(which: ServerCert) -> CertFacts {
        let certs = TestCerts::generate().unwrap();
        let der = CertificateDer::from_pem_file(certs.server(which).0).unwrap();
        CertFacts::parse(&der, SystemTime::now()).unwrap()
    }

    #[test]
    fn certificates_show_subject_and_days_left() {
        let soon = facts(ServerCert::ExpiresSoon);
        assert_eq!(soon.subject, "CN=localhost");
        // Made to expire 7 days from now: 6 whole days and some hours.
        assert!((6..=7).contains(&soon.days_left), "{soon:?}");
        assert!(soon.describe().contains("expires in"), "{soon:?}");
        let expired = facts(ServerCert::Expired);
        assert!(expired.not_after.starts_with("2020-"), "{expired:?}");
        assert!(expired.days_left < -300, "{expired:?}");
        assert!(expired.describe().contains("expired"), "{expired:?}");
        let valid = facts(ServerCert::Valid);
        assert!(valid.days_left >= EXPIRY_WARNING_DAYS, "{valid:?}");
    }
}
