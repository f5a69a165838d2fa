//! [`PolicyBinder`] on IAM inline role policies: one policy per grant, named after it, so
//! overlapping grants of one role never remove each other. Managed policies are attached
//! and detached as they are; who holds them is counted elsewhere
//! ([`crate::service::attachments`]). [`ManagedPolicySource`] reads managed policies'
//! default versions.

use super::{aws_error, error_code};
use crate::error::{PimError, Result};
use crate::ports::{ManagedPolicySource, PolicyBinder, Removal, RolePolicies};
use async_trait::async_trait;

/// Writes grant policies with `PutRolePolicy` and removes them with `DeleteRolePolicy`.
#[derive(Debug, Clone)]
pub struct IamInlinePolicyBinder {
    client: aws_sdk_iam::Client,
}

impl IamInlinePolicyBinder {
    /// A binder using `client`.
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl PolicyBinder for IamInlinePolicyBinder {
    async fn put_grant_policy(
        &self,
        role_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        self.client
            .put_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|err| aws_error("iam:PutRolePolicy", err))?;
        Ok(())
    }

    async fn delete_grant_policy(&self, role_name: &str, policy_name: &str) -> Result<Removal> {
        let outcome = self
            .client
            .delete_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Removal::Deleted),
            Err(err) if error_code(&err) == Some("NoSuchEntity") => Ok(Removal::AlreadyGone),
            Err(err) => Err(aws_error("iam:DeleteRolePolicy", err)),
        }
    }

    async fn inline_policy(&self, role_name: &str, policy_name: &str) -> Result<Option<String>> {
        let outcome = self
            .client
            .get_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .send()
            .await;
        match outcome {
            // IAM returns the document URL-encoded (RFC 3986).
            Ok(policy) => Ok(Some(
                percent_encoding::percent_decode_str(policy.policy_document())
                    .decode_utf8_lossy()
                    .into_owned(),
            )),
            Err(err) if error_code(&err) == Some("NoSuchEntity") => Ok(None),
            Err(err) => Err(aws_error("iam:GetRolePolicy", err)),
        }
    }

    async fn eligible_roles(&self, path_prefix: &str) -> Result<Vec<RolePolicies>> {
        let roles: Vec<_> = self
            .client
            .list_roles()
            .path_prefix(path_prefix)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("iam:ListRoles", err))?;
        let mut found = Vec::with_capacity(roles.len());
        for role in roles {
            let inline: Vec<String> = self
                .client
                .list_role_policies()
                .role_name(role.role_name())
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<_, _>>()
                .await
                .map_err(|err| aws_error("iam:ListRolePolicies", err))?;
            let attached: Vec<_> = self
                .client
                .list_attached_role_policies()
                .role_name(role.role_name())
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<_, _>>()
                .await
                .map_err(|err| aws_error("iam:ListAttachedRolePolicies", err))?;
            found.push(RolePolicies {
                role_name: role.role_name().to_string(),
                role_arn: role.arn().to_string(),
                inline,
                attached: attached.iter().filter_map(|p| p.policy_arn().map(Into::into)).collect(),
            });
        }
        Ok(found)
    }

    async fn attach_managed_policy(&self, role_name: &str, policy_arn: &str) -> Result<()> {
        self.client
            .attach_role_policy()
            .role_name(role_name)
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(|err| aws_error("iam:AttachRolePolicy", err))?;
        Ok(())
    }

    async fn detach_managed_policy(&self, role_name: &str, policy_arn: &str) -> Result<Removal> {
        let outcome = self
            .client
            .detach_role_policy()
            .role_name(role_name)
            .policy_arn(policy_arn)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Removal::Deleted),
            Err(err) if error_code(&err) == Some("NoSuchEntity") => Ok(Removal::AlreadyGone),
            Err(err) => Err(aws_error("iam:DetachRolePolicy", err)),
        }
    }

    async fn attached_policies(&self, role_name: &str) -> Result<Vec<String>> {
        let attached: Vec<_> = self
            .client
            .list_attached_role_policies()
            .role_name(role_name)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("iam:ListAttachedRolePolicies", err))?;
        Ok(attached.iter().filter_map(|p| p.policy_arn().map(Into::into)).collect())
    }
}

/// Reads managed policies with `GetPolicy` (for the default version's id) and
/// `GetPolicyVersion` (for its document).
#[derive(Debug, Clone)]
pub struct IamManagedPolicySource {
    client: aws_sdk_iam::Client,
}

impl IamManagedPolicySource {
    /// A source using `client`.
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ManagedPolicySource for IamManagedPolicySource {
    async fn default_version(&self, policy_arn: &str) -> Result<(String, String)> {
        let not_found = || {
            PimError::refused(
                "managed_policy_not_found",
                format!("the managed policy {policy_arn} does not exist"),
            )
        };
        let policy = match self.client.get_policy().policy_arn(policy_arn).send().await {
            Ok(output) => output.policy,
            Err(err) if error_code(&err) == Some("NoSuchEntity") => return Err(not_found()),
            Err(err) => return Err(aws_error("iam:GetPolicy", err)),
        };
        let version =
            policy.and_then(|p| p.default_version_id).ok_or_else(|| PimError::Corrupt {
                key: policy_arn.into(),
                reason: "the policy has no default version".into(),
            })?;
        let output = self
            .client
            .get_policy_version()
            .policy_arn(policy_arn)
            .version_id(&version)
            .send()
            .await
            .map_err(|err| aws_error("iam:GetPolicyVersion", err))?;
        let encoded = output.policy_version.and_then(|v| v.document).unwrap_or_default();
        // IAM returns policy documents URL-encoded.
        let document =
            percent_encoding::percent_decode_str(&encoded).decode_utf8_lossy().into_owned();
        Ok((version, document))
    }
}
