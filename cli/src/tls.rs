//! TLS for the CLI's PostgreSQL connections (rustls, with the `ring` provider), driven by the
//! libpq parameters in the database URL:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers TLS | no (libpq's behaviour) |
//! | `require` | yes, or fail | no; with `sslrootcert`, the chain (as libpq) |
//! | `verify-ca` | yes | the chain, against `sslrootcert` or the system roots |
//! | `verify-full` | yes | the chain and the host name |
//!
//! `sslrootcert=PATH` names a PEM file of trusted certificates; `sslrootcert=system` (as in
//! libpq 16) or no `sslrootcert` with `verify-ca`/`verify-full` uses the operating system's
//! roots. tokio-postgres knows neither `sslrootcert` nor the `verify-*` modes, so they are taken
//! out of the URL here and become the rustls configuration; the driver sees `sslmode=require`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Nothing but the handshake's signatures (libpq's `prefer` / `require`).
    Nothing,
    /// The chain up to a trusted root (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    System,
    File(String),
}

/// The TLS settings taken out of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    verify: Verify,
    roots: Option<Roots>,
}

/// Takes `sslrootcert` and the `verify-*` modes out of `url` (URL or key=value form); returns
/// the string the driver can parse and the TLS settings.
fn split(url: &str) -> (String, Settings) {
    let mut mode = None;
    let mut rootcert = None;
    let rewritten = if url.contains("://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((head, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    match k {
                        "sslrootcert" => rootcert = Some(percent_decode(v)),
                        "sslmode" if v == "verify-ca" || v == "verify-full" => {
                            mode = Some(v.to_owned());
                            kept.push("sslmode=require".to_owned());
                        }
                        "sslmode" => {
                            mode = Some(v.to_owned());
                            kept.push(pair.to_owned());
                        }
                        _ => kept.push(pair.to_owned()),
                    }
                }
                if kept.is_empty() {
                    head.to_owned()
                } else {
                    format!("{head}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            match token.split_once('=') {
                Some(("sslrootcert", v)) => rootcert = Some(v.trim_matches('\'').to_owned()),
                Some(("sslmode", v)) if v == "verify-ca" || v == "verify-full" => {
                    mode = Some(v.to_owned());
                    kept.push("sslmode=require".to_owned());
                }
                Some(("sslmode", v)) => {
                    mode = Some(v.to_owned());
                    kept.push(token.to_owned());
                }
                _ => kept.push(token.to_owned()),
            }
        }
        kept.join(" ")
    };
    let verify = match mode.as_deref() {
        Some("verify-full") => Verify::Full,
        Some("verify-ca") => Verify::Chain,
        // libpq: with a root certificate file, `require` checks the chain.
        _ if rootcert.as_deref().is_some_and(|r| r != "system") => Verify::Chain,
        _ => Verify::Nothing,
    };
    let roots = match (rootcert, verify) {
        (Some(r), _) if r == "system" => Some(Roots::System),
        (Some(r), _) => Some(Roots::File(r)),
        (None, Verify::Nothing) => None,
        (None, _) => Some(Roots::System),
    };
    (rewritten, Settings { verify, roots })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connection string for the driver and the TLS connector for it.
pub(crate) fn configure(url: &str) -> Result<(String, MakeRustlsConnect), String> {
    let (rewritten, settings) = split(url);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let roots = match &settings.roots {
        None => None,
        Some(r) => Some(Arc::new(load_roots(r)?)),
    };
    let config = match (settings.verify, roots) {
        (Verify::Full, Some(roots)) => builder.with_root_certificates(roots).with_no_client_auth(),
        (Verify::Chain, Some(roots)) => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                .with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck { provider }))
            .with_no_client_auth(),
    };
    Ok((rewritten, MakeRustlsConnect::new(config)))
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(format!(
                    "TLS: no system root certificates found ({:?}); give sslrootcert=PATH",
                    found.errors
                ));
            }
        }
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("TLS: cannot read sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("TLS: sslrootcert {path}: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("TLS: sslrootcert {path}: {e}"))?;
            }
            if store.is_empty() {
                return Err(format!("TLS: sslrootcert {path} holds no certificate"));
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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

/// `prefer` / `require` without a root certificate: encrypted, the certificate not checked
/// (libpq's behaviour for those modes); the handshake's signatures still are.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
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
    fn takes_the_libpq_parameters_out_of_urls() {
        let (u, s) =
            split("postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&x=1");
        assert_eq!(u, "postgres://u:p@h/db?sslmode=require&x=1");
        assert_eq!(
            s,
            Settings {
                verify: Verify::Full,
                roots: Some(Roots::File("/tmp/ca.pem".into()))
            }
        );
        let (u, s) = split("postgres://h/db?sslmode=require");
        assert_eq!(u, "postgres://h/db?sslmode=require");
        assert_eq!((s.verify, s.roots), (Verify::Nothing, None));
        let (_, s) = split("postgres://h/db?sslmode=require&sslrootcert=/ca.pem");
        assert_eq!(
            s.verify,
            Verify::Chain,
            "libpq: a root file makes require check the chain"
        );
        let (_, s) = split("postgres://h/db?sslmode=verify-ca");
        assert_eq!((s.verify, s.roots), (Verify::Chain, Some(Roots::System)));
        let (u, s) = split("host=h sslmode=verify-full sslrootcert=system user=u");
        assert_eq!(u, "host=h sslmode=require user=u");
        assert_eq!((s.verify, s.roots), (Verify::Full, Some(Roots::System)));
        assert_eq!(split("postgres://h/db").0, "postgres://h/db");
    }
}
