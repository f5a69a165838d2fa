//! The settings every function reads once, at cold start, from environment variables.
//! A missing or malformed setting stops the function at start with the variable's name.

use crate::error::{PimError, Result};

/// The names of the environment variables, in one place so the template test can hold
/// the template to them.
pub mod vars {
    /// DynamoDB table of requests, audit records and link ids.
    pub const TABLE: &str = "PIM_TABLE";
    /// Path of the policy document bundled with the function.
    pub const POLICY_FILE: &str = "PIM_POLICY_FILE";
    /// KMS HMAC key that signs approval links.
    pub const LINK_KEY_ID: &str = "PIM_LINK_KEY_ID";
    /// Public base URL of the API; approval links start with it.
    pub const PUBLIC_URL: &str = "PIM_PUBLIC_URL";
    /// Verified SES sender address.
    pub const SENDER: &str = "PIM_SENDER";
    /// EventBridge Scheduler group of the expiry schedules.
    pub const SCHEDULE_GROUP: &str = "PIM_SCHEDULE_GROUP";
    /// ARN of the revocation function, the schedules' target.
    pub const REVOCATION_ARN: &str = "PIM_REVOCATION_ARN";
    /// Role the scheduler assumes to invoke the revocation function.
    pub const SCHEDULER_ROLE_ARN: &str = "PIM_SCHEDULER_ROLE_ARN";
    /// SQS queue that receives expiry deliveries the scheduler gave up on.
    pub const SCHEDULE_DLQ_ARN: &str = "PIM_SCHEDULE_DLQ_ARN";

    /// IAM path of the roles grants may land on, which the sweep inspects. Optional:
    /// [`super::DEFAULT_ELIGIBLE_ROLE_PATH`] when unset.
    pub const ELIGIBLE_ROLE_PATH: &str = "PIM_ELIGIBLE_ROLE_PATH";

    /// KMS symmetric key that encrypts people's TOTP secrets. Optional: without it nobody
    /// can enrol, and a role or rule that requires MFA refuses every request or approval.
    pub const MFA_KEY_ID: &str = "PIM_MFA_KEY_ID";

    /// CloudWatch Logs group of the audit stream (the audit shipper and `pim audit`).
    pub const AUDIT_LOG_GROUP: &str = "PIM_AUDIT_LOG_GROUP";
    /// KMS asymmetric key that signs audit chain checkpoints (the audit shipper).
    pub const CHECKPOINT_KEY_ID: &str = "PIM_CHECKPOINT_KEY_ID";

    /// EventBridge bus the audit shipper puts lifecycle events on.
    pub const EVENT_BUS: &str = "PIM_EVENT_BUS";

    /// The variables of the audit shipper.
    pub const AUDIT: &[&str] = &[TABLE, AUDIT_LOG_GROUP, CHECKPOINT_KEY_ID, EVENT_BUS];

    /// Every variable of the request, approval and revocation functions.
    pub const ALL: &[&str] = &[
        TABLE,
        POLICY_FILE,
        LINK_KEY_ID,
        PUBLIC_URL,
        SENDER,
        SCHEDULE_GROUP,
        REVOCATION_ARN,
        SCHEDULER_ROLE_ARN,
        SCHEDULE_DLQ_ARN,
    ];
}

/// The IAM path of eligible roles when [`vars::ELIGIBLE_ROLE_PATH`] is unset.
pub const DEFAULT_ELIGIBLE_ROLE_PATH: &str = "/pim/";

/// The typed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// DynamoDB table name.
    pub table: String,
    /// Path of the policy document.
    pub policy_file: String,
    /// KMS key id or ARN of the link-signing HMAC key.
    pub link_key_id: String,
    /// Base URL of the API, without a trailing slash.
    pub public_url: String,
    /// Sender address of all mail.
    pub sender: String,
    /// Scheduler group name.
    pub schedule_group: String,
    /// Revocation function ARN.
    pub revocation_arn: String,
    /// Scheduler execution role ARN.
    pub scheduler_role_arn: String,
    /// IAM path prefix of the requesters' roles (`/pim/`), what the sweep lists.
    pub eligible_role_path: String,
    /// Dead-letter queue ARN of the expiry schedules.
    pub schedule_dlq_arn: String,
    /// KMS key id or ARN that encrypts TOTP secrets, when MFA is set up.
    pub mfa_key_id: Option<String>,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| -> Result<String> {
            match lookup(name).map(|value| value.trim().to_string()) {
                Some(value) if !value.is_empty() => Ok(value),
                _ => Err(PimError::Config(format!("{name} is not set"))),
            }
        };
        let public_url = get(vars::PUBLIC_URL)?.trim_end_matches('/').to_string();
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            return Err(PimError::Config(format!(
                "{} must be an http(s) URL, found '{public_url}'",
                vars::PUBLIC_URL
            )));
        }
        let eligible_role_path = lookup(vars::ELIGIBLE_ROLE_PATH)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| DEFAULT_ELIGIBLE_ROLE_PATH.into());
        if !(eligible_role_path.starts_with('/') && eligible_role_path.ends_with('/')) {
            return Err(PimError::Config(format!(
                "{} must start and end with '/', found '{eligible_role_path}'",
                vars::ELIGIBLE_ROLE_PATH
            )));
        }
        Ok(Self {
            table: get(vars::TABLE)?,
            policy_file: get(vars::POLICY_FILE)?,
            link_key_id: get(vars::LINK_KEY_ID)?,
            public_url,
            sender: get(vars::SENDER)?,
            schedule_group: get(vars::SCHEDULE_GROUP)?,
            revocation_arn: get(vars::REVOCATION_ARN)?,
            scheduler_role_arn: get(vars::SCHEDULER_ROLE_ARN)?,
            eligible_role_path,
            schedule_dlq_arn: get(vars::SCHEDULE_DLQ_ARN)?,
            mfa_key_id: lookup(vars::MFA_KEY_ID)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty()),
        })
    }
}

/// The settings of the audit shipper: where the chain is, where it goes, what signs it,
/// and the bus its lifecycle events go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// DynamoDB table holding the chain.
    pub table: String,
    /// CloudWatch Logs group of the audit stream.
    pub log_group: String,
    /// KMS key id or ARN of the checkpoint-signing asymmetric key.
    pub checkpoint_key_id: String,
    /// Name or ARN of the EventBridge bus of lifecycle events.
    pub event_bus: String,
}

impl AuditSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| -> Result<String> {
            match lookup(name).map(|value| value.trim().to_string()) {
                Some(value) if !value.is_empty() => Ok(value),
                _ => Err(PimError::Config(format!("{name} is not set"))),
            }
        };
        Ok(Self {
            table: get(vars::TABLE)?,
            log_group: get(vars::AUDIT_LOG_GROUP)?,
            checkpoint_key_id: get(vars::CHECKPOINT_KEY_ID)?,
            event_bus: get(vars::EVENT_BUS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        vars::ALL.iter().map(|name| (*name, format!("value-of-{name}"))).collect()
    }

    #[test]
    fn a_missing_setting_is_named() {
        for missing in vars::ALL {
            let mut env = full();
            env.insert(vars::PUBLIC_URL, "https://pim.example.com/".into());
            env.remove(missing);
            let err = Settings::from_lookup(|name| env.get(name).cloned()).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn a_missing_audit_setting_is_named() {
        for missing in vars::AUDIT {
            let env: HashMap<&str, String> = vars::AUDIT
                .iter()
                .filter(|name| *name != missing)
                .map(|name| (*name, "x".to_string()))
                .collect();
            let err = AuditSettings::from_lookup(|name| env.get(name).cloned()).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn the_public_url_must_be_http_and_loses_its_trailing_slash() {
        let mut env = full();
        env.insert(vars::PUBLIC_URL, "https://pim.example.com/".into());
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();
        assert_eq!(settings.public_url, "https://pim.example.com");
        env.insert(vars::PUBLIC_URL, "javascript:alert(1)".into());
        assert!(Settings::from_lookup(|name| env.get(name).cloned()).is_err());
    }

    #[test]
    fn the_eligible_role_path_defaults_and_must_be_a_path() {
        let mut env = full();
        env.insert(vars::PUBLIC_URL, "https://pim.example.com".into());
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();
        assert_eq!(settings.eligible_role_path, "/pim/");
        env.insert(vars::ELIGIBLE_ROLE_PATH, "/teams/pim/".into());
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();
        assert_eq!(settings.eligible_role_path, "/teams/pim/");
        env.insert(vars::ELIGIBLE_ROLE_PATH, "pim".into());
        let err = Settings::from_lookup(|name| env.get(name).cloned()).unwrap_err();
        assert!(err.to_string().contains(vars::ELIGIBLE_ROLE_PATH), "{err}");
    }
}
