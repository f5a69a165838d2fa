//! Who is calling the local stack: local access keys, one per person of the policy document,
//! and the verification of the SigV4 signature API Gateway's IAM authorizer would check.
//!
//! The local stack issues each person with an IAM principal a random access key id and
//! secret, bound to that person's first IAM ARN, and writes them as one profile per person
//! into an AWS credentials file and config file ([`KeyRing::write_aws_files`]), where the
//! SDK's standard credential chain (and so `pim --profile alice`) finds them. The gateway
//! then verifies every API call's `Authorization` header ([`KeyRing::verify`]): the
//! signature over method, path, query, the signed headers (which must include `host` and
//! `x-amz-date`) and the body's SHA-256, for the service `execute-api` and the stack's
//! region, dated within [`CLOCK_SKEW_SECS`] of the gateway's clock. Only a verified call
//! reaches a function, carrying the key's principal as the authorizer's `userArn`.
//!
//! What this does not do, unlike AWS: session tokens are not checked (local keys are
//! long-lived and have none), and presigned URLs (signature in the query) are refused.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use pim::catalog::Catalog;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The service name a signature must be scoped to, as for API Gateway.
pub const SERVICE: &str = "execute-api";

/// How far a request's `x-amz-date` may be from the gateway's clock, either way.
pub const CLOCK_SKEW_SECS: i64 = 300;

/// The only signing algorithm accepted.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Characters SigV4 leaves unencoded: letters, digits and `-._~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The same, keeping `/` between path segments.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

/// One person's local access key.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalKey {
    /// The profile name in the written files: the person's id.
    pub profile: String,
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret: String,
    /// The IAM ARN a verified call is made as.
    pub principal: String,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Why a call was not let through: a stable code and a sentence that says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `missing_signature`, `malformed_signature`, `unknown_access_key`, `signature_expired`
    /// or `signature_mismatch`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl Rejection {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Everyone's local keys, and the region signatures must name.
#[derive(Debug, Clone)]
pub struct KeyRing {
    region: String,
    keys: BTreeMap<String, LocalKey>,
}

/// Where [`KeyRing::write_aws_files`] put the files.
#[derive(Debug, Clone)]
pub struct AwsFiles {
    /// For `AWS_SHARED_CREDENTIALS_FILE`.
    pub credentials: PathBuf,
    /// For `AWS_CONFIG_FILE`.
    pub config: PathBuf,
}

impl KeyRing {
    /// Fresh random keys for every person of `catalog` with an IAM principal.
    pub fn issue(catalog: &Catalog, region: &str) -> Self {
        let keys = catalog.people().iter().filter_map(|person| {
            let principal = person.principals.iter().find(|p| p.starts_with("arn:aws"))?;
            Some(LocalKey {
                profile: person.id.clone(),
                access_key_id: format!(
                    "AKIALOCAL{}",
                    random_text(11, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                ),
                secret: random_text(
                    40,
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                ),
                principal: principal.clone(),
            })
        });
        Self::from_keys(region, keys)
    }

    /// A key ring of the given keys.
    pub fn from_keys(region: &str, keys: impl IntoIterator<Item = LocalKey>) -> Self {
        let keys = keys.into_iter().map(|key| (key.access_key_id.clone(), key)).collect();
        Self { region: region.to_string(), keys }
    }

    /// The region signatures must be scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The key of the person `profile`, if they have one.
    pub fn key_of(&self, profile: &str) -> Option<&LocalKey> {
        self.keys.values().find(|key| key.profile == profile)
    }

    /// Writes `credentials` and `config` into `dir` (readable by the owner only): one
    /// profile per person, with the region. Point `AWS_SHARED_CREDENTIALS_FILE` and
    /// `AWS_CONFIG_FILE` at them and choose a person with `--profile` or `AWS_PROFILE`.
    pub fn write_aws_files(&self, dir: &Path) -> std::io::Result<AwsFiles> {
        std::fs::create_dir_all(dir)?;
        let mut credentials =
            String::from("# Local keys of the pim local stack; new each start.\n");
        let mut config = String::from("# Profiles of the pim local stack.\n");
        for key in self.keys.values() {
            credentials.push_str(&format!(
                "\n[{}]\n# {}\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                key.profile, key.principal, key.access_key_id, key.secret
            ));
            config.push_str(&format!("\n[profile {}]\nregion = {}\n", key.profile, self.region));
        }
        let files = AwsFiles { credentials: dir.join("credentials"), config: dir.join("config") };
        write_private(&files.credentials, &credentials)?;
        write_private(&files.config, &config)?;
        Ok(files)
    }

    /// Verifies the SigV4 signature of a call at `now` and returns the key it was signed
    /// with, or why it is refused.
    pub fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<&LocalKey, Rejection> {
        let header = parts.headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
            Rejection::new(
                "missing_signature",
                "the request is not signed: sign it with SigV4 for the service execute-api \
                 (pim does; with curl use --aws-sigv4 'aws:amz:REGION:execute-api')",
            )
        })?;
        let header = header.to_str().map_err(|_| {
            Rejection::new("malformed_signature", "the Authorization header is not text")
        })?;
        let auth = Authorization::parse(header)?;

        let key = self.keys.get(auth.access_key_id).ok_or_else(|| {
            Rejection::new(
                "unknown_access_key",
                format!(
                    "the access key {} is not one of this local stack's keys; use the profiles \
                     it wrote (they change at every start)",
                    auth.access_key_id
                ),
            )
        })?;
        let date = signed_date(parts)?;
        self.check_scope(&auth, date)?;
        let skew = (now - date).num_seconds();
        if skew.abs() > CLOCK_SKEW_SECS {
            return Err(Rejection::new(
                "signature_expired",
                format!(
                    "the signature is dated {} but the gateway's clock says {}: more than {} \
                     seconds apart; check your clock or sign again",
                    date.format("%Y%m%dT%H%M%SZ"),
                    now.format("%Y%m%dT%H%M%SZ"),
                    CLOCK_SKEW_SECS
                ),
            ));
        }

        let canonical = canonical_request(parts, &auth.signed_headers, body)?;
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            date.format("%Y%m%dT%H%M%SZ"),
            auth.scope,
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let signing_key = signing_key(&key.secret, auth.scope_date, &self.region);
        let mut mac = HmacSha256::new_from_slice(&signing_key).expect("any key length");
        mac.update(string_to_sign.as_bytes());
        let given = unhex(auth.signature).ok_or_else(|| {
            Rejection::new("malformed_signature", "the signature is not 64 hexadecimal digits")
        })?;
        mac.verify_slice(&given).map_err(|_| {
            Rejection::new(
                "signature_mismatch",
                "the signature does not match the request: it was changed after signing, or \
                 signed with another secret, region or service",
            )
        })?;
        Ok(key)
    }

    fn check_scope(&self, auth: &Authorization<'_>, date: DateTime<Utc>) -> Result<(), Rejection> {
        let day = date.format("%Y%m%d").to_string();
        let expected = format!("{day}/{}/{SERVICE}/aws4_request", self.region);
        if auth.scope != expected {
            return Err(Rejection::new(
                "malformed_signature",
                format!(
                    "the credential scope is {} but this gateway expects {expected} (region {}, \
                     service {SERVICE}, the day of x-amz-date)",
                    auth.scope, self.region
                ),
            ));
        }
        Ok(())
    }
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…`.
#[derive(Debug)]
struct Authorization<'a> {
    access_key_id: &'a str,
    /// `date/region/service/aws4_request`.
    scope: &'a str,
    scope_date: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Result<Self, Rejection> {
        let malformed = |what: &str| {
            Rejection::new("malformed_signature", format!("the Authorization header {what}"))
        };
        let rest = header
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| malformed("is not AWS4-HMAC-SHA256"))?;
        let mut fields = BTreeMap::new();
        for field in rest.split(',') {
            let (name, value) =
                field.trim().split_once('=').ok_or_else(|| malformed("has a field without '='"))?;
            if fields.insert(name, value).is_some() {
                return Err(malformed("repeats a field"));
            }
        }
        let field = |name: &str| {
            fields.get(name).copied().ok_or_else(|| malformed(&format!("lacks {name}")))
        };
        let credential = field("Credential")?;
        let (access_key_id, scope) =
            credential.split_once('/').ok_or_else(|| malformed("has no credential scope"))?;
        let scope_date = scope.split('/').next().unwrap_or_default();
        let signed_headers: Vec<&str> = field("SignedHeaders")?.split(';').collect();
        let sorted = signed_headers.windows(2).all(|pair| pair[0] < pair[1]);
        let lowercase =
            signed_headers.iter().all(|h| !h.is_empty() && *h == h.to_ascii_lowercase());
        if !sorted || !lowercase {
            return Err(malformed("lists SignedHeaders out of order, repeated, or not lowercase"));
        }
        for required in ["host", "x-amz-date"] {
            if !signed_headers.contains(&required) {
                return Err(malformed(&format!("does not sign the {required} header")));
            }
        }
        Ok(Self {
            access_key_id,
            scope,
            scope_date,
            signed_headers,
            signature: field("Signature")?,
        })
    }
}

/// The request's `x-amz-date`.
fn signed_date(parts: &http::request::Parts) -> Result<DateTime<Utc>, Rejection> {
    let text =
        parts.headers.get("x-amz-date").and_then(|value| value.to_str().ok()).ok_or_else(|| {
            Rejection::new("malformed_signature", "the request has no x-amz-date header")
        })?;
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").map(|naive| naive.and_utc()).map_err(
        |_| Rejection::new("malformed_signature", "x-amz-date is not like 20261204T101500Z"),
    )
}

/// The canonical request of SigV4: method, path, query, signed headers and body hash.
fn canonical_request(
    parts: &http::request::Parts,
    signed_headers: &[&str],
    body: &[u8],
) -> Result<String, Rejection> {
    let path = parts.uri.path();
    if path.split('/').skip(1).any(|segment| matches!(segment, "" | "." | "..")) && path != "/" {
        return Err(Rejection::new(
            "malformed_signature",
            "paths with empty, '.' or '..' segments are not accepted",
        ));
    }
    let canonical_path = utf8_percent_encode(path, PATH_UNRESERVED).to_string();

    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode_query_part(name), encode_query_part(value))
        })
        .collect();
    if query.iter().any(|(name, _)| name.eq_ignore_ascii_case("X-Amz-Signature")) {
        return Err(Rejection::new(
            "malformed_signature",
            "presigned URLs are not accepted; sign the Authorization header",
        ));
    }
    query.sort();
    let canonical_query: Vec<String> =
        query.iter().map(|(name, value)| format!("{name}={value}")).collect();

    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = parts
            .headers
            .get_all(*name)
            .iter()
            .map(|value| collapse_spaces(&String::from_utf8_lossy(value.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(Rejection::new(
                "malformed_signature",
                format!("the signed header {name} is not in the request"),
            ));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }

    let body_hash = hex(&Sha256::digest(body));
    if let Some(claimed) = parts.headers.get("x-amz-content-sha256")
        && claimed.as_bytes() != body_hash.as_bytes()
    {
        return Err(Rejection::new(
            "signature_mismatch",
            "x-amz-content-sha256 does not match the body (unsigned payloads are refused)",
        ));
    }
    Ok(format!(
        "{}\n{canonical_path}\n{}\n{headers}\n{}\n{body_hash}",
        parts.method.as_str(),
        canonical_query.join("&"),
        signed_headers.join(";")
    ))
}

/// A query name or value as SigV4 writes it: decoded (`+` is a space), then encoded.
fn encode_query_part(text: &str) -> String {
    let spaced = text.replace('+', " ");
    let decoded = percent_decode_str(&spaced).decode_utf8_lossy();
    utf8_percent_encode(&decoded, UNRESERVED).to_string()
}

/// A header value trimmed, with runs of spaces made one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `kSigning` of SigV4: the secret, chained through date, region, service and terminator.
fn signing_key(secret: &str, date: &str, region: &str) -> Vec<u8> {
    let step = |key: &[u8], data: &str| {
        let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let date_key = step(format!("AWS4{secret}").as_bytes(), date);
    let region_key = step(&date_key, region);
    let service_key = step(&region_key, SERVICE);
    step(&service_key, "aws4_request")
}

/// The headers that sign a call with `key` at `at` (`authorization`, `x-amz-date`), made
/// by the SDK's own signer; `headers` are those to sign besides them, `host` among them.
pub fn signature_headers(
    key: &LocalKey,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    at: DateTime<Utc>,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let credentials = aws_credential_types::Credentials::new(
        &key.access_key_id,
        &key.secret,
        None,
        None,
        "pim-local",
    );
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(std::time::SystemTime::from(at))
        .settings(SigningSettings::default())
        .build()
        .expect("all signing parameters are set")
        .into();
    let signable =
        SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
            .expect("the request is signable");
    let (instructions, _) = sign(signable, &params).expect("signing succeeds").into_parts();
    instructions.headers().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

fn random_text(length: usize, alphabet: &[u8]) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..length).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// The people of `catalog` without an IAM principal: they get no local key.
pub fn people_without_keys(catalog: &Catalog) -> Vec<String> {
    catalog
        .people()
        .iter()
        .filter(|person| !person.principals.iter().any(|p| p.starts_with("arn:aws")))
        .map(|person| person.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: &str = "us-east-1";

    fn ring() -> KeyRing {
        KeyRing::from_keys(
            REGION,
            [LocalKey {
                profile: "alice".into(),
                access_key_id: "AKIALOCALTESTKEY0001".into(),
                secret: "local-secret-of-alice".into(),
                principal: "arn:aws:sts::123456789012:assumed-role/engineer/alice".into(),
            }],
        )
    }

    /// A request signed by the SDK's own signer with `secret`, at `at`.
    fn signed(
        method: &str,
        uri: &str,
        body: &[u8],
        secret: &str,
        at: DateTime<Utc>,
    ) -> http::request::Parts {
        let key = LocalKey { secret: secret.into(), ..ring().keys.into_values().next().unwrap() };
        let headers = [("host", "127.0.0.1:8080"), ("content-type", "application/json")];
        let signature = signature_headers(&key, REGION, method, uri, &headers, body, at);
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        for (name, value) in signature {
            request = request.header(name, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn now() -> DateTime<Utc> {
        "2026-12-04T10:15:00Z".parse().unwrap()
    }

    const URI: &str = "http://127.0.0.1:8080/requests?state=active&mine=true";
    const BODY: &[u8] = br#"{"role":"prod-readonly"}"#;

    #[test]
    fn a_request_signed_by_the_sdk_signer_is_the_keys_principal() {
        let parts = signed("POST", URI, BODY, "local-secret-of-alice", now());
        let keys = ring();
        let key = keys.verify(&parts, BODY, now()).unwrap();
        assert_eq!(key.principal, "arn:aws:sts::123456789012:assumed-role/engineer/alice");
        // Within the allowed skew either way.
        assert!(ring().verify(&parts, BODY, now() + chrono::Duration::seconds(299)).is_ok());
        assert!(ring().verify(&parts, BODY, now() - chrono::Duration::seconds(299)).is_ok());
    }

    #[test]
    fn a_changed_body_path_query_or_method_is_refused() {
        let parts = signed("POST", URI, BODY, "local-secret-of-alice", now());
        let tampered = br#"{"role":"prod-admin"}"#;
        assert_eq!(ring().verify(&parts, tampered, now()).unwrap_err().code, "signature_mismatch");

        for other in [
            "http://127.0.0.1:8080/requests/other?state=active&mine=true",
            "http://127.0.0.1:8080/requests?state=pending&mine=true",
        ] {
            let mut moved = parts.clone();
            moved.uri = other.parse().unwrap();
            assert_eq!(ring().verify(&moved, BODY, now()).unwrap_err().code, "signature_mismatch");
        }
        let mut method = parts.clone();
        method.method = http::Method::PUT;
        assert_eq!(ring().verify(&method, BODY, now()).unwrap_err().code, "signature_mismatch");

        let mut host = parts;
        host.headers.insert("host", "evil.example:8080".parse().unwrap());
        assert_eq!(ring().verify(&host, BODY, now()).unwrap_err().code, "signature_mismatch");
    }

    #[test]
    fn a_signature_made_with_another_secret_is_refused() {
        let parts = signed("POST", URI, BODY, "a-guessed-secret", now());
        let rejection = ring().verify(&parts, BODY, now()).unwrap_err();
        assert_eq!(rejection.code, "signature_mismatch");
    }

    #[test]
    fn a_stale_or_future_signature_is_refused() {
        let parts = signed("POST", URI, BODY, "local-secret-of-alice", now());
        for offset in [301, -301, 3600] {
            let at = now() + chrono::Duration::seconds(offset);
            let rejection = ring().verify(&parts, BODY, at).unwrap_err();
            assert_eq!(rejection.code, "signature_expired", "{offset}");
            assert!(rejection.message.contains("check your clock"), "{}", rejection.message);
        }
    }

    #[test]
    fn unsigned_unknown_and_malformed_authorizations_are_refused() {
        let mut parts = signed("GET", URI, b"", "local-secret-of-alice", now());
        let original = parts.headers.get("authorization").unwrap().to_str().unwrap().to_string();

        let mut unsigned = parts.clone();
        unsigned.headers.remove("authorization");
        assert_eq!(ring().verify(&unsigned, b"", now()).unwrap_err().code, "missing_signature");

        let unknown = original.replace("AKIALOCALTESTKEY0001", "AKIALOCALTESTKEY0002");
        parts.headers.insert("authorization", unknown.parse().unwrap());
        assert_eq!(ring().verify(&parts, b"", now()).unwrap_err().code, "unknown_access_key");

        let other_service = original.replace("/execute-api/", "/s3/");
        parts.headers.insert("authorization", other_service.parse().unwrap());
        assert_eq!(ring().verify(&parts, b"", now()).unwrap_err().code, "malformed_signature");

        let without_host = original.replace("host;", "");
        parts.headers.insert("authorization", without_host.parse().unwrap());
        let rejection = ring().verify(&parts, b"", now()).unwrap_err();
        assert_eq!(rejection.code, "malformed_signature");
        assert!(rejection.message.contains("host"), "{}", rejection.message);

        parts.headers.insert("authorization", "Basic YWxpY2U6c2VjcmV0".parse().unwrap());
        assert_eq!(ring().verify(&parts, b"", now()).unwrap_err().code, "malformed_signature");
    }

    #[test]
    fn the_written_files_hold_one_profile_per_person_for_the_owner_only() {
        let catalog = Catalog::from_yaml(crate::provision::EXAMPLE_POLICY).unwrap();
        let ring = KeyRing::issue(&catalog, REGION);
        let dir = std::env::temp_dir().join(format!("pim-keys-{}", uuid::Uuid::new_v4()));
        let files = ring.write_aws_files(&dir).unwrap();
        let credentials = std::fs::read_to_string(&files.credentials).unwrap();
        let config = std::fs::read_to_string(&files.config).unwrap();
        for person in ["alice", "bob", "carol", "dave", "erin"] {
            let key = ring.key_of(person).unwrap();
            assert!(credentials.contains(&format!("[{person}]")));
            assert!(credentials.contains(&key.secret));
            assert!(config.contains(&format!("[profile {person}]")));
        }
        assert_ne!(ring.key_of("alice").unwrap().secret, ring.key_of("bob").unwrap().secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.credentials).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
