//! A throwaway certificate authority and the certificates TLS tests need.
//!
//! [`TestCerts::generate`] makes, with `rcgen`, in a private directory that
//! is removed when the last clone is dropped:
//!
//! - `ca.crt`: the test CA (clients trust it with `sslrootcert` /
//!   `REDIS_TLS_CA_FILE`);
//! - `other-ca.crt`: a second CA that signed nothing the servers present
//!   (trusting only it is the "unknown CA" case);
//! - `server.crt` / `server.key`: valid for the name `localhost` **only**
//!   (no IP address), so connecting to `127.0.0.1` with host-name
//!   verification is a mismatch;
//! - `expired.crt` / `expired.key`: like `server.crt`, but valid only during
//!   2020;
//! - `soon.crt` / `soon.key`: like `server.crt`, expiring in 7 days (the
//!   doctor warns under 14);
//! - `client.crt` / `client.key`: a client certificate with CN `postgres`
//!   (the kit's PostgreSQL user), signed by the CA.
//!
//! Keys are ECDSA P-256, written with mode 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::{KitError, Result};
use crate::workdir;

/// Which server certificate a TLS test server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerCert {
    /// Valid, for `localhost` only.
    #[default]
    Valid,
    /// Expired (valid only during 2020).
    Expired,
    /// Valid, expiring in 7 days.
    ExpiresSoon,
}

impl ServerCert {
    fn stem(self) -> &'static str {
        match self {
            ServerCert::Valid => "server",
            ServerCert::Expired => "expired",
            ServerCert::ExpiresSoon => "soon",
        }
    }
}

/// The generated files (see the module docs). Cheap to clone; the directory
/// goes away with the last clone.
#[derive(Clone)]
pub struct TestCerts {
    dir: Arc<CertDir>,
}

struct CertDir(PathBuf);

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for TestCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCerts")
            .field("dir", &self.dir.0)
            .finish()
    }
}

/// The name every server certificate is valid for.
pub const TLS_HOST: &str = "localhost";
/// The common name of the client certificate (the kit's PostgreSQL user).
pub const CLIENT_CN: &str = "postgres";

fn err(step: &str) -> impl FnOnce(rcgen::Error) -> KitError + '_ {
    move |e| KitError::InvalidOption(format!("generating test certificates: {step}: {e}"))
}

fn ca(name: &str) -> Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().map_err(err("CA key"))?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err("CA params"))?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).map_err(err("CA certificate"))?;
    Ok((cert, key))
}

fn leaf(
    names: Vec<String>,
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    issuer: &(rcgen::Certificate, KeyPair),
) -> Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().map_err(err("key"))?;
    let mut p = CertificateParams::new(names).map_err(err("params"))?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![usage];
    if let Some((from, to)) = validity {
        p.not_before = from;
        p.not_after = to;
    }
    let cert = p
        .signed_by(&key, &issuer.0, &issuer.1)
        .map_err(err("signing"))?;
    Ok((cert, key))
}

impl TestCerts {
    /// Generates a fresh CA and every certificate in a new private directory.
    pub fn generate() -> Result<TestCerts> {
        let dir = workdir::new_server_dir("certs")?;
        let certs = TestCerts {
            dir: Arc::new(CertDir(dir)),
        };
        certs.write_all()?;
        Ok(certs)
    }

    fn write_all(&self) -> Result<()> {
        let authority = ca("pool-testkit CA")?;
        let (other, _) = ca("pool-testkit other CA")?;
        let now = time::OffsetDateTime::now_utc();
        let server = |validity| {
            leaf(
                vec![TLS_HOST.to_string()],
                TLS_HOST,
                ExtendedKeyUsagePurpose::ServerAuth,
                validity,
                &authority,
            )
        };
        let year2020 = Some((
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2020, 12, 31),
        ));
        let soon = Some((now - time::Duration::days(1), now + time::Duration::days(7)));
        self.write("ca.crt", &authority.0.pem(), false)?;
        self.write("other-ca.crt", &other.pem(), false)?;
        for (stem, validity) in [("server", None), ("expired", year2020), ("soon", soon)] {
            let (cert, key) = server(validity)?;
            self.write(&format!("{stem}.crt"), &cert.pem(), false)?;
            self.write(&format!("{stem}.key"), &key.serialize_pem(), true)?;
        }
        let (cert, key) = leaf(
            Vec::new(),
            CLIENT_CN,
            ExtendedKeyUsagePurpose::ClientAuth,
            None,
            &authority,
        )?;
        self.write("client.crt", &cert.pem(), false)?;
        self.write("client.key", &key.serialize_pem(), true)?;
        Ok(())
    }

    fn write(&self, name: &str, pem: &str, secret: bool) -> Result<()> {
        let path = self.dir.0.join(name);
        std::fs::write(&path, pem).map_err(KitError::io("certs", format!("writing {name}")))?;
        let mode = if secret { 0o600 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(KitError::io("certs", format!("chmod {name}")))
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The test CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.0.join("ca.crt")
    }

    /// A CA that signed nothing the servers present.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.0.join("other-ca.crt")
    }

    /// The client certificate (CN `postgres`).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.0.join("client.crt")
    }

    /// The client certificate's key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.0.join("client.key")
    }

    /// A server certificate and its key.
    pub fn server(&self, which: ServerCert) -> (PathBuf, PathBuf) {
        let stem = which.stem();
        (
            self.dir.0.join(format!("{stem}.crt")),
            self.dir.0.join(format!("{stem}.key")),
        )
    }

    /// Copies the server certificate `which`, its key and the CA into
    /// `dest` as `server.crt`, `server.key` (mode 0600) and `ca.crt`, so a
    /// server can own them (PostgreSQL insists that its key belongs to it).
    pub(crate) fn install_server(&self, which: ServerCert, dest: &Path) -> Result<ServerFiles> {
        let (crt, key) = self.server(which);
        let files = ServerFiles {
            cert: dest.join("server.crt"),
            key: dest.join("server.key"),
            ca: dest.join("ca.crt"),
        };
        for (from, to) in [
            (&crt, &files.cert),
            (&key, &files.key),
            (&self.ca(), &files.ca),
        ] {
            std::fs::copy(from, to)
                .map_err(KitError::io("certs", format!("copying {}", from.display())))?;
        }
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
            .map_err(KitError::io("certs", "chmod server.key"))?;
        Ok(files)
    }
}

/// Where a server's own copies of its certificate files are.
#[derive(Debug, Clone)]
pub(crate) struct ServerFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) ca: PathBuf,
}
