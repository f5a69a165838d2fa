//! Managed policies a catalog role names, as read from IAM.
//!
//! A role may have managed policies *rendered*: the statements of each policy's default
//! version are copied into the grant's own inline policy, every Allow statement bounded by
//! the grant's `aws:CurrentTime` conditions like the role's inline statements. The same
//! refusals apply as to inline statements (IAM, role assumption and Organizations actions,
//! pim's own resources), but they can only be applied once the document is read from IAM:
//! `pim policy check` works offline, so a managed policy granting a forbidden action is
//! refused when a request for the role is made, and again when the grant is put in place.
//!
//! Documents are read on first use and kept for the life of the process
//! ([`ManagedPolicies`]), not at cold start: a function must start in milliseconds and
//! without IAM (the revocation function never renders), and a policy nobody requests costs
//! nothing. AWS publishes a new default version of its policies rarely; a warm process keeps
//! the version it read until it is recycled, and the request and the grant may each read a
//! different one, which is why both check what they read.

use crate::catalog::check::{forbidden_action, forbidden_despite, protected_reached};
use crate::error::{PimError, Result};
use crate::ports::ManagedPolicySource;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The keys a statement of an identity policy may have; anything else is refused.
const STATEMENT_KEYS: &[&str] =
    &["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"];

/// One managed policy's default version, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedPolicy {
    /// The policy's ARN.
    pub arn: String,
    /// The default version's id (`v3`).
    pub version: String,
    /// Its statements as IAM holds them, each a JSON object.
    pub statements: Vec<Map<String, Value>>,
}

impl ManagedPolicy {
    /// Parses the JSON `document` of version `version` of `arn`.
    pub fn parse(arn: &str, version: &str, document: &str) -> Result<Self> {
        let unreadable = |why: &str| {
            PimError::refused(
                "managed_policy_refused",
                format!("the managed policy {arn} ({version}) cannot be rendered: {why}"),
            )
        };
        let value: Value =
            serde_json::from_str(document).map_err(|_| unreadable("it is not JSON"))?;
        let statements = match &value["Statement"] {
            Value::Array(items) => items.clone(),
            Value::Object(_) => vec![value["Statement"].clone()],
            _ => return Err(unreadable("it has no statements")),
        };
        let mut parsed = Vec::with_capacity(statements.len());
        for statement in statements {
            let Value::Object(statement) = statement else {
                return Err(unreadable("a statement is not an object"));
            };
            if let Some(key) = statement.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
                return Err(unreadable(&format!("a statement has the key {key}")));
            }
            if !matches!(statement.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
                return Err(unreadable("a statement's Effect is neither Allow nor Deny"));
            }
            parsed.push(statement);
        }
        Ok(Self { arn: arn.into(), version: version.into(), statements: parsed })
    }

    /// Why a grant may not carry this policy, if it may not: an Allow that grants a forbidden
    /// action or reaches one of the `protected` resource patterns.
    pub fn refusal(&self, protected: &[String]) -> Option<String> {
        for statement in self.statements.iter().filter(|s| is_allow(s)) {
            let actions = strings(statement.get("Action"));
            let not_actions = statement.get("NotAction").map(|v| strings(Some(v)));
            let forbidden = match &not_actions {
                Some(left_out) => forbidden_despite(left_out),
                None => actions.iter().find_map(|action| forbidden_action(action)),
            };
            if let Some(hit) = forbidden {
                return Some(format!("the managed policy {} would grant {hit}", self.arn));
            }
            // NotAction allows nearly everything and NotResource nearly everywhere: both are
            // judged as the widest pattern.
            let reaching = if not_actions.is_some() { vec!["*".to_string()] } else { actions };
            let resources = match statement.get("NotResource") {
                Some(_) => vec!["*".to_string()],
                None => strings(statement.get("Resource")),
            };
            for resource in &resources {
                if let Some(pattern) = protected_reached(&reaching, resource, protected) {
                    return Some(format!(
                        "the managed policy {} reaches pim's own resources ({pattern})",
                        self.arn
                    ));
                }
            }
        }
        None
    }

    /// The statements as a grant carries them: each Allow with `condition`'s operators merged
    /// into its own conditions, each Deny as it is, all with fresh Sids from `sid`.
    ///
    /// Fails when an Allow already has an `aws:CurrentTime` condition under one of those
    /// operators: merging would replace it and widen the statement.
    pub fn bounded_statements(
        &self,
        condition: &Map<String, Value>,
        sid: &mut dyn FnMut() -> String,
    ) -> Result<Vec<Value>> {
        let mut rendered = Vec::with_capacity(self.statements.len());
        for statement in &self.statements {
            let mut copy = statement.clone();
            copy.insert("Sid".into(), Value::String(sid()));
            if is_allow(statement) {
                let own = copy.entry("Condition").or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(own) = own else {
                    return Err(self.conflict("a Condition is not an object"));
                };
                for (operator, keys) in condition {
                    let entry =
                        own.entry(operator.clone()).or_insert_with(|| Value::Object(Map::new()));
                    let (Value::Object(entry), Value::Object(keys)) = (entry, keys) else {
                        return Err(self.conflict("a condition operator is not an object"));
                    };
                    for (key, value) in keys {
                        if entry.insert(key.clone(), value.clone()).is_some() {
                            return Err(self.conflict(&format!("it already bounds {key}")));
                        }
                    }
                }
            }
            rendered.push(Value::Object(copy));
        }
        Ok(rendered)
    }

    fn conflict(&self, why: &str) -> PimError {
        PimError::refused(
            "managed_policy_refused",
            format!("the managed policy {} cannot be time-bounded: {why}", self.arn),
        )
    }
}

fn is_allow(statement: &Map<String, Value>) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

/// A string-or-list field as a list.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => {
            many.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        _ => vec![],
    }
}

/// Managed policy documents, read from IAM on first use and kept for the process's life.
pub struct ManagedPolicies {
    source: Arc<dyn ManagedPolicySource>,
    read: Mutex<HashMap<String, Arc<ManagedPolicy>>>,
}

impl ManagedPolicies {
    /// Documents read through `source`.
    pub fn new(source: Arc<dyn ManagedPolicySource>) -> Self {
        Self { source, read: Mutex::new(HashMap::new()) }
    }

    /// The default version of `arn`, read once per process.
    pub async fn get(&self, arn: &str) -> Result<Arc<ManagedPolicy>> {
        if let Some(known) = self.read.lock().expect("cache lock").get(arn) {
            return Ok(known.clone());
        }
        let (version, document) = self.source.default_version(arn).await?;
        let policy = Arc::new(ManagedPolicy::parse(arn, &version, &document)?);
        tracing::debug!(policy_arn = arn, version = %policy.version, "managed policy read");
        self.read.lock().expect("cache lock").insert(arn.to_string(), policy.clone());
        Ok(policy)
    }

    /// Every policy of `arns`, each checked against the `protected` resource patterns: the
    /// first refusal fails the whole set.
    pub async fn checked(
        &self,
        arns: &[String],
        protected: &[String],
    ) -> Result<Vec<Arc<ManagedPolicy>>> {
        let mut policies = Vec::with_capacity(arns.len());
        for arn in arns {
            let policy = self.get(arn).await?;
            if let Some(why) = policy.refusal(protected) {
                return Err(PimError::refused("managed_policy_refused", why));
            }
            policies.push(policy);
        }
        Ok(policies)
    }
}

impl std::fmt::Debug for ManagedPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedPolicies").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::document::default_protected_resources;
    use serde_json::json;

    fn policy(statements: Value) -> ManagedPolicy {
        let document = json!({ "Version": "2012-10-17", "Statement": statements }).to_string();
        ManagedPolicy::parse("arn:aws:iam::aws:policy/Test", "v1", &document).unwrap()
    }

    #[test]
    fn refusals_match_those_of_inline_statements() {
        let protected = default_protected_resources();
        let cases: &[(Value, Option<&str>)] = &[
            (json!({"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}), None),
            (
                json!({"Effect": "Allow", "Action": "iam:*", "Resource": "*"}),
                Some("iam:PutRolePolicy"),
            ),
            (
                json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}),
                Some("sts:AssumeRole"),
            ),
            (json!({"Effect": "Allow", "Action": "*", "Resource": "*"}), Some("would grant")),
            (
                json!({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}),
                Some("sts:AssumeRole"),
            ),
            (
                json!({"Effect": "Allow", "NotAction": ["iam:*", "sts:*", "organizations:*"],
                    "Resource": "arn:aws:s3:::bucket/*"}),
                None,
            ),
            (
                json!({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}),
                Some("reaches pim's own resources"),
            ),
            (
                json!({"Effect": "Allow", "Action": "dynamodb:GetItem",
                    "NotResource": "arn:aws:dynamodb:*:*:table/orders"}),
                Some("reaches pim's own resources"),
            ),
            (
                json!({"Effect": "Allow", "Action": "dynamodb:GetItem",
                    "Resource": "arn:aws:dynamodb:*:*:table/orders"}),
                None,
            ),
            // A Deny only takes away: it is never a reason to refuse.
            (json!({"Effect": "Deny", "Action": "iam:*", "Resource": "*"}), None),
        ];
        for (statement, expected) in cases {
            let found = policy(json!([statement])).refusal(&protected);
            match (expected, &found) {
                (None, None) => {}
                (Some(part), Some(why)) if why.contains(part) => {}
                _ => panic!("{statement}: expected {expected:?}, found {found:?}"),
            }
        }
    }

    #[test]
    fn documents_that_are_not_identity_policies_are_refused() {
        let cases = [
            "not json",
            r#"{"Version": "2012-10-17"}"#,
            r#"{"Statement": [42]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}"#,
        ];
        for document in cases {
            let err = ManagedPolicy::parse("arn:aws:iam::aws:policy/X", "v1", document)
                .expect_err(document);
            assert_eq!(err.code(), "managed_policy_refused", "{document}");
        }
        let single = r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#;
        assert_eq!(ManagedPolicy::parse("a", "v1", single).unwrap().statements.len(), 1);
    }

    #[test]
    fn allows_are_bounded_and_keep_their_own_conditions_denies_stay_as_they_are() {
        let managed = policy(json!([
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"},
                           "DateLessThan": {"aws:EpochTime": "99"}}},
            {"Sid": "Keep", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
        ]));
        let condition = json!({
            "DateGreaterThan": {"aws:CurrentTime": "2026-12-03T18:00:00Z"},
            "DateLessThan": {"aws:CurrentTime": "2026-12-03T19:00:00Z"},
        });
        let mut n = 0;
        let rendered = managed
            .bounded_statements(condition.as_object().unwrap(), &mut || {
                n += 1;
                format!("S{n}")
            })
            .unwrap();
        assert_eq!(rendered[0]["Sid"], "S1");
        assert_eq!(rendered[0]["Condition"]["Bool"]["aws:SecureTransport"], "true");
        assert_eq!(rendered[0]["Condition"]["DateLessThan"]["aws:EpochTime"], "99");
        assert_eq!(
            rendered[0]["Condition"]["DateLessThan"]["aws:CurrentTime"],
            "2026-12-03T19:00:00Z"
        );
        assert_eq!(
            rendered[0]["Condition"]["DateGreaterThan"]["aws:CurrentTime"],
            "2026-12-03T18:00:00Z"
        );
        assert_eq!(rendered[1]["Sid"], "S2");
        assert!(rendered[1].get("Condition").is_none());

        let bounded_already = policy(json!([{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]));
        let err = bounded_already
            .bounded_statements(condition.as_object().unwrap(), &mut || "S".into())
            .unwrap_err();
        assert_eq!(err.code(), "managed_policy_refused");
    }
}
