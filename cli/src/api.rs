//! The pim API as the command line calls it: every call signed with SigV4 for
//! `execute-api`, with credentials from the standard AWS chain (`--profile`, `AWS_PROFILE`,
//! IAM Identity Center sessions, `credential_process`, environment variables, …), to the
//! endpoint from `--endpoint`, `PIM_ENDPOINT` or `pim configure`.
//!
//! Answers become JSON values on success, and [`Failure`]s that say what to do otherwise:
//! a policy refusal keeps the API's problem document; expired or unknown credentials, a
//! wrong endpoint or an unreachable one say which setting to fix.

use crate::config::FileConfig;
use crate::failure::{Exit, Failure, chain_of, exit_for_problem};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use serde_json::Value;
use std::time::SystemTime;

/// The service name API Gateway signatures are scoped to.
const SERVICE: &str = "execute-api";

/// Where and as whom to call.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--profile`.
    pub profile: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--endpoint` or `PIM_ENDPOINT`.
    pub endpoint: Option<String>,
}

/// A signed client of one pim API.
pub struct Api {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    credentials: SharedCredentialsProvider,
    profile: String,
}

/// One answer of the API, read whole.
struct Reply {
    status: u16,
    error_type: Option<String>,
    content_type: Option<String>,
    text: String,
}

impl Api {
    /// Resolves endpoint, region and credentials provider. Credentials themselves are
    /// fetched at the first call (and refreshed by the provider as they expire).
    pub async fn connect(target: &Target) -> Result<Self, Failure> {
        let file = crate::config::load()?;
        let endpoint = endpoint_of(target, &file)?;

        // The SDK's own HTTPS client (for SSO, credential refresh, IMDS) is pim's one client.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(pim::adapters::https_client());
        if let Some(profile) = &target.profile {
            loader = loader.profile_name(profile);
        }
        let region = target
            .region
            .clone()
            .or_else(|| region_of_endpoint(&endpoint))
            .or_else(|| file.region.clone());
        if let Some(region) = &region {
            loader = loader.region(Region::new(region.clone()));
        }
        let config = loader.load().await;
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| Failure::new(Exit::Other, "no AWS credential provider is configured"))?;
        let profile = target
            .profile
            .clone()
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".into());
        let http = reqwest::Client::builder()
            .user_agent(concat!("pim/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|err| Failure::new(Exit::Other, format!("cannot start HTTP: {err}")))?;
        let mut api = Self { http, endpoint, region: String::new(), credentials, profile };
        match config.region() {
            Some(region) => api.region = region.to_string(),
            None => {
                // A profile that does not exist has no region either: say that first.
                api.credentials().await?;
                return Err(Failure::usage("no AWS region for the API").hint(
                    "pass --region, run `pim configure --region REGION`, set AWS_REGION, or \
                     add `region` to your AWS profile",
                ));
            }
        }
        Ok(api)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `GET path` of an answer that is text of `media_type` (such as `text/csv`), not JSON.
    pub async fn get_text(&self, path: &str, media_type: &str) -> Result<String, Failure> {
        let method = reqwest::Method::GET;
        let reply = self.exchange(method.clone(), path, None).await?;
        let is_media_type = reply
            .content_type
            .as_deref()
            .is_some_and(|value| value.split(';').next().unwrap_or_default().trim() == media_type);
        if (200..=299).contains(&reply.status) && is_media_type {
            return Ok(reply.text);
        }
        match self.json_of(reply, &method, path) {
            Ok(_) => Err(Failure::new(
                Exit::Other,
                format!("{} answered {method} {path} without {media_type}", self.endpoint),
            )
            .hint(ENDPOINT_HINT)),
            Err(failure) => Err(failure),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let reply = self.exchange(method.clone(), path, body).await?;
        self.json_of(reply, &method, path)
    }

    /// Sends one signed request and reads the whole answer.
    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let url = self.url(path);
        let body =
            body.map(|b| serde_json::to_vec(b).expect("JSON serializes")).unwrap_or_default();
        let credentials = self.credentials().await?;

        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut headers = vec![("host", host.as_str())];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let signature = self.sign(&credentials, method.as_str(), url.as_str(), &headers, &body)?;
        let mut request = self.http.request(method, url).body(body);
        for (name, value) in headers.iter().skip(1) {
            request = request.header(*name, *value);
        }
        for (name, value) in signature {
            request = request.header(name, value);
        }

        let response = request.send().await.map_err(|err| {
            Failure::new(Exit::Other, format!("cannot reach {}: {}", self.endpoint, chain_of(&err)))
                .hint(ENDPOINT_HINT)
        })?;
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let status = response.status().as_u16();
        let error_type =
            header("x-amzn-errortype").map(|v| v.split(':').next().unwrap_or(&v).to_string());
        let content_type = header("content-type");
        let text = response.text().await.unwrap_or_default();
        Ok(Reply { status, error_type, content_type, text })
    }

    /// The JSON document of a successful answer, or the failure an unsuccessful one means.
    fn json_of(
        &self,
        reply: Reply,
        method: &reqwest::Method,
        path: &str,
    ) -> Result<Value, Failure> {
        let Reply { status, error_type, text, .. } = reply;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        match (status, json) {
            (200..=299, Some(json)) => Ok(json),
            (_, Some(problem)) if problem["code"].is_string() => {
                Err(self.problem_failure(status, problem))
            }
            (_, Some(json)) if json["message"].is_string() || error_type.is_some() => {
                Err(self.gateway_failure(status, error_type.as_deref(), &json, method, path))
            }
            _ => Err(Failure::new(
                Exit::Other,
                format!(
                    "{} answered {method} {path} with HTTP {status} and no pim answer: is it \
                     the pim API?",
                    self.endpoint
                ),
            )
            .hint(ENDPOINT_HINT)),
        }
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        url.set_path(&format!("{base}{path}"));
        url.set_query((!query.is_empty()).then_some(query));
        url
    }

    async fn credentials(&self) -> Result<Credentials, Failure> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|err| self.credentials_failure(err))?;
        if credentials.expiry().is_some_and(|expiry| expiry <= SystemTime::now()) {
            return Err(Failure::new(
                Exit::Other,
                format!("the AWS credentials of profile {} have expired", self.profile),
            )
            .hint(self.sign_in_hint()));
        }
        Ok(credentials)
    }

    fn sign(
        &self,
        credentials: &Credentials,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, Failure> {
        let identity = credentials.clone().into();
        let failed = |err: &dyn std::fmt::Display| {
            Failure::new(Exit::Other, format!("cannot sign the request: {err}"))
        };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| failed(&err))?
            .into();
        let signable =
            SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
                .map_err(|err| failed(&err))?;
        let (instructions, _) = sign(signable, &params).map_err(|err| failed(&err))?.into_parts();
        Ok(instructions.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }

    /// A problem document from pim (or from the local gateway's signature check).
    fn problem_failure(&self, status: u16, problem: Value) -> Failure {
        let code = problem["code"].as_str().unwrap_or_default().to_string();
        let detail = problem["detail"].as_str().unwrap_or("refused").to_string();
        let mut failure = match code.as_str() {
            "missing_signature"
            | "malformed_signature"
            | "signature_mismatch"
            | "unknown_access_key" => {
                Failure::new(Exit::Other, format!("the API did not accept the signature: {detail}"))
                    .hint(format!(
                        "check that profile {} holds the credentials for this API and region {}",
                        self.profile, self.region
                    ))
            }
            "signature_expired" => Failure::new(Exit::Other, detail),
            "unknown_requester" => Failure::new(Exit::Refused, detail).hint(format!(
                "profile {} signs as an identity the policy document does not know; use the \
                 profile of your own role",
                self.profile
            )),
            _ => Failure::new(exit_for_problem(status, &code), detail),
        };
        failure.document = Some(problem);
        failure
    }

    /// An answer of API Gateway itself: its IAM authorizer refused the call, or no route.
    fn gateway_failure(
        &self,
        status: u16,
        error_type: Option<&str>,
        json: &Value,
        method: &reqwest::Method,
        path: &str,
    ) -> Failure {
        let message = json["message"].as_str().unwrap_or("refused").to_string();
        match error_type.unwrap_or_default() {
            "ExpiredTokenException" => Failure::new(
                Exit::Other,
                format!("your AWS credentials (profile {}) have expired", self.profile),
            )
            .hint(self.sign_in_hint()),
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException" => Failure::new(
                Exit::Other,
                format!("API Gateway did not accept the signature: {message}"),
            )
            .hint(format!(
                "check that profile {} is valid and that region {} is the API's (--region)",
                self.profile, self.region
            )),
            "AccessDeniedException" => Failure::new(
                Exit::Other,
                format!("your identity may not call the pim API: {message}"),
            )
            .hint("ask for execute-api:Invoke on the pim API for your role"),
            _ if status == 404 => Failure::new(
                Exit::Other,
                format!("{} has no route {method} {path}: is it the pim API?", self.endpoint),
            )
            .hint(ENDPOINT_HINT),
            _ => {
                Failure::new(Exit::Other, format!("API Gateway answered HTTP {status}: {message}"))
            }
        }
    }

    fn credentials_failure(&self, err: CredentialsError) -> Failure {
        let detail = chain_of(&err);
        let message = match &err {
            CredentialsError::CredentialsNotLoaded(_) => {
                format!("no AWS credentials found for profile {}", self.profile)
            }
            _ if detail.to_ascii_lowercase().contains("expired") => {
                format!("the AWS sign-in of profile {} has expired: {detail}", self.profile)
            }
            _ => format!("cannot load AWS credentials of profile {}: {detail}", self.profile),
        };
        Failure::new(Exit::Other, message).hint(self.sign_in_hint())
    }

    fn sign_in_hint(&self) -> String {
        format!(
            "sign in again (`aws sso login --profile {0}` for IAM Identity Center), or choose \
             another profile with --profile or AWS_PROFILE",
            self.profile
        )
    }
}

const ENDPOINT_HINT: &str =
    "check --endpoint, PIM_ENDPOINT, or the URL `pim configure --endpoint URL` saved";

/// The endpoint from the flag or environment, else the settings file.
fn endpoint_of(target: &Target, file: &FileConfig) -> Result<reqwest::Url, Failure> {
    let text = target.endpoint.clone().or_else(|| file.endpoint.clone()).ok_or_else(|| {
        Failure::usage("no pim API endpoint is configured").hint(
            "pass --endpoint URL, set PIM_ENDPOINT, or run `pim configure --endpoint URL` once",
        )
    })?;
    let url = reqwest::Url::parse(&text).map_err(|err| {
        Failure::usage(format!("the endpoint '{text}' is not a URL: {err}")).hint(ENDPOINT_HINT)
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(Failure::usage(format!("the endpoint '{text}' is not an http(s) URL"))
            .hint(ENDPOINT_HINT));
    }
    Ok(url)
}

/// The region in an API Gateway host name (`abc.execute-api.eu-west-1.amazonaws.com`).
pub fn region_of_endpoint(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    let rest = host.split_once(".execute-api.")?.1;
    let region = rest.split('.').next()?;
    (!region.is_empty()).then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_read_from_an_api_gateway_host() {
        let url = |text: &str| reqwest::Url::parse(text).unwrap();
        assert_eq!(
            region_of_endpoint(&url("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")),
            Some("eu-west-1".into())
        );
        assert_eq!(region_of_endpoint(&url("http://127.0.0.1:8080")), None);
    }

    #[test]
    fn the_endpoint_must_be_an_http_url() {
        let target = |text: &str| Target { endpoint: Some(text.into()), ..Target::default() };
        let file = FileConfig::default();
        assert!(endpoint_of(&target("https://pim.example.com"), &file).is_ok());
        assert_eq!(endpoint_of(&target("pim.example.com"), &file).unwrap_err().exit, Exit::Usage);
        assert_eq!(endpoint_of(&target("ftp://x"), &file).unwrap_err().exit, Exit::Usage);
        let missing = endpoint_of(&Target::default(), &file).unwrap_err();
        assert!(missing.hint.unwrap().contains("pim configure"));
    }
}
