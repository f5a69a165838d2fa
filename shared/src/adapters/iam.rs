//! [`PolicyBinder`] on IAM inline role policies: one policy per grant, named after it, so
//! overlapping grants of one role never remove each other.

use super::{aws_error, error_code};
use crate::error::Result;
use crate::ports::{PolicyBinder, Removal};
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
}
