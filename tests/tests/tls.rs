//! The HTTPS client every pim process uses (`pim::adapters::https_client`: rustls on the
//! *ring* provider) against local TLS servers: it completes a handshake with a server whose
//! certificate chains to a trusted root, and refuses an untrusted certificate, a certificate
//! for another name, and a server that offers nothing newer than TLS 1.1.
//!
//! The emulator speaks plain HTTP, so this is the one place TLS itself is exercised. The
//! servers are Python's `ssl` module with certificates the `openssl` command makes; the
//! trusted roots are this test's own CA, given as `SSL_CERT_FILE` as on any Linux host.
//! The client reads the roots once per process, which is why this is a test binary of its
//! own with a single test.

use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_types::retry::RetryConfig;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// Answers every POST with an empty DynamoDB `ListTables` result, over TLS.
const SERVER: &str = r#"
import http.server, ssl, sys
cert, key, oldest_only, port_file = sys.argv[1:5]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = b'{"TableNames": []}'
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
if oldest_only == "yes":
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
context.load_cert_chain(cert, key)
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

fn run(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA named `name`: `name.pem` and `name.key` in `dir`.
fn ca(dir: &Path, name: &str) {
    let (key, pem, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={name}"));
    run(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    run(
        dir,
        &["req", "-x509", "-new", "-key", &key, "-out", &pem, "-days", "2", "-subj", &subject],
    );
}

/// A server certificate for `host` issued by the CA `issuer`: `name.pem` and `name.key`.
fn leaf(dir: &Path, name: &str, host: &str, issuer: &str) {
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    run(dir, &["req", "-new", "-key", &key, "-out", &csr, "-subj", &format!("/CN={host}")]);
    let (ca_pem, ca_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
    run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// A TLS server presenting the certificate `name`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(dir: &Path, name: &str, oldest_only: bool) -> Server {
    let port_file = dir.join(format!("{name}-{oldest_only}.port"));
    let child = Command::new("python3")
        .arg("-c")
        .arg(SERVER)
        .arg(dir.join(format!("{name}.pem")))
        .arg(dir.join(format!("{name}.key")))
        .arg(if oldest_only { "yes" } else { "no" })
        .arg(&port_file)
        .spawn()
        .expect("python3");
    let mut server = Server { child, port: 0 };
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            server.port = text.parse().unwrap();
            return server;
        }
        assert!(server.child.try_wait().unwrap().is_none(), "the TLS server {name} exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the TLS server {name} did not start");
}

/// `ListTables` at `https://{host}:{port}` through pim's configuration; the error chain as
/// text when it fails.
async fn list_tables(host: &str, port: u16) -> Result<usize, String> {
    let config = pim::adapters::sdk_config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("https://{host}:{port}"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tls-test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    match client.list_tables().send().await {
        Ok(output) => Ok(output.table_names().len()),
        Err(err) => {
            let mut text = String::new();
            let mut source: Option<&dyn std::error::Error> = Some(&err);
            while let Some(cause) = source {
                text.push_str(&format!("{cause}; "));
                source = cause.source();
            }
            Err(text)
        }
    }
}

#[tokio::test]
async fn the_https_client_verifies_certificates_and_refuses_tls_before_1_2() {
    let dir = std::env::temp_dir().join(format!("pim-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    ca(&dir, "trusted-ca");
    ca(&dir, "other-ca");
    leaf(&dir, "good", "localhost", "trusted-ca");
    leaf(&dir, "stranger", "localhost", "other-ca");
    leaf(&dir, "elsewhere", "elsewhere.example", "trusted-ca");
    // SAFETY: set before any client exists, in a test binary with this one test, so no
    // other thread reads the environment meanwhile.
    unsafe { std::env::set_var("SSL_CERT_FILE", dir.join("trusted-ca.pem")) };
    unsafe { std::env::set_var("SSL_CERT_DIR", dir.join("no-such-directory")) };

    let good = serve(&dir, "good", false).await;
    assert_eq!(list_tables("localhost", good.port).await, Ok(0), "a trusted chain is accepted");

    let stranger = serve(&dir, "stranger", false).await;
    let refused = list_tables("localhost", stranger.port).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "an untrusted issuer: {refused}");

    let elsewhere = serve(&dir, "elsewhere", false).await;
    let refused = list_tables("localhost", elsewhere.port).await.unwrap_err();
    assert!(refused.contains("not valid for name"), "another host's certificate: {refused}");

    let old = serve(&dir, "good", true).await;
    let refused = list_tables("localhost", old.port).await.unwrap_err();
    println!("TLS 1.1 server: {refused}");
    assert!(
        refused.contains("ProtocolVersion") || refused.contains("TlsVersion"),
        "TLS 1.1 at most: {refused}"
    );

    drop((good, stranger, elsewhere, old));
    std::fs::remove_dir_all(&dir).unwrap();
}
