//! Native TLS (`serve --tls-cert --tls-key`): HTTPS with a generated certificate, `Secure`
//! cookies, and the certificate reloaded on SIGHUP without a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::{Server, temp_dir};

struct Pki {
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "latchkey test CA");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// Writes a leaf certificate for localhost/127.0.0.1 named `cn`; returns its DER.
fn write_leaf(pki: &Pki, cn: &str, dir: &Path) -> Vec<u8> {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    // Replace both files in one step each, as a certificate renewal tool would.
    std::fs::write(dir.join("cert.pem.new"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem.new"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    cert.der().to_vec()
}

/// GET over TLS, trusting only the test CA; returns the raw response and the server's
/// certificate.
fn https_get(server: &Server, ca: &CertificateDer<'static>, path: &str) -> (String, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    // A close_notify or a plain close both end the response.
    let _ = tls.read_to_end(&mut out);
    let peer = tls.conn.peer_certificates().unwrap()[0].to_vec();
    (String::from_utf8_lossy(&out).into_owned(), peer)
}

#[test]
fn serves_https_sets_secure_cookies_and_reloads_the_certificate_on_sighup() {
    let dir = temp_dir("tls");
    let pki = pki();
    let first = write_leaf(&pki, "first", &dir);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let server = Server::start_with(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        |_| {},
    );

    let (resp, peer) = https_get(&server, &pki.ca_der, "/healthz");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains(r#""status":"ok""#), "{resp}");
    assert_eq!(peer, first);

    // The default issuer is https, so cookies are Secure and __Host- prefixed.
    let (resp, _) = https_get(&server, &pki.ca_der, "/.well-known/openid-configuration");
    assert!(
        resp.contains(&format!(r#""issuer":"https://{}""#, server.addr)),
        "{resp}"
    );
    let (login, _) = https_get(&server, &pki.ca_der, "/login");
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {login}"));
    assert!(cookie.contains("__Host-latchkey-csrf="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP on the TLS port gets no answer in clear text.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));

    // Renew the certificate and send SIGHUP: new connections get the new one.
    let second = write_leaf(&pki, "second", &dir);
    assert_ne!(first, second);
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (resp, peer) = https_get(&server, &pki.ca_der, "/healthz");
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        if peer == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the certificate was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.logs().contains("TLS certificate reloaded"));

    // A broken renewal keeps the working certificate.
    std::fs::write(&cert, "not a certificate").unwrap();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (resp, peer) = https_get(&server, &pki.ca_der, "/healthz");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert_eq!(peer, second);
}

#[test]
fn tls_flags_go_together() {
    let dir = temp_dir("tls-flags").join("data");
    let out = crate::support::latchkey(
        &dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::support::latchkey(
        &dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));
}
