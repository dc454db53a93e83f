//! A throw-away certificate authority and a server certificate signed by it.
//!
//! For `lfr up`, the compose stack and the tests: traffic to NATS is encrypted and the server is
//! authenticated even on one box. The CA's private key is not kept: once the server certificate
//! is signed nobody, this program included, can issue another under it, so the CA certificate
//! given to clients trusts exactly one server key. A real deployment brings its own certificates
//! (the Helm chart takes them from a Secret or cert-manager).

use crate::credentials::{private_dir, write_private};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// The CA certificate clients verify the server with.
    pub ca: PathBuf,
    pub cert: PathBuf,
    /// The server's private key (mode 0600).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files as `generate` names them in `dir`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }
}

/// A new CA and a server certificate for `hosts` (DNS names or IP addresses), written to `dir`.
pub fn generate(dir: &Path, hosts: &[String]) -> anyhow::Result<TlsFiles> {
    anyhow::ensure!(!hosts.is_empty(), "a server certificate needs a host name");
    private_dir(dir)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "lfr throw-away NATS CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut server = CertificateParams::new(hosts.to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, hosts[0].as_str());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &ca)?;

    let files = TlsFiles::in_dir(dir);
    std::fs::write(&files.ca, ca.pem())?;
    std::fs::write(&files.cert, cert.pem())?;
    write_private(&files.key, key.serialize_pem().as_bytes())?;
    Ok(files)
}
