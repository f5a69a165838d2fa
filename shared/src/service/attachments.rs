//! Managed policies attached to a role as they are, counted across overlapping grants.
//!
//! An attachment cannot carry the grant's time conditions, and IAM attaches a policy to a
//! role once however many grants want it. So one item per (role, policy ARN) in the ledger
//! ([`AttachmentLedger`]) lists the grants holding it, and is only ever changed by a write
//! conditioned on the version it was read at. The protocol:
//!
//! - **Hold** (activation, in the approval function): read the item; if a detachment is in
//!   progress (a live [`DetachLease`]), wait and read again; otherwise write the item with
//!   this grant added to the holders and `attached` set, and only after that write has
//!   committed call `AttachRolePolicy`.
//! - **Release** (expiry, in the revocation function): read the item and write it without
//!   the leaving grants. If holders remain, nothing else happens. If none remain, the same
//!   write also sets a lease naming the releaser; only after it committed is the policy
//!   detached, and then the item is written once more with the lease cleared and `attached`
//!   false. A detach that fails clears the lease but keeps `attached`, so the next release
//!   or the sweep detaches it.
//!
//! Why a grant ending and another starting at the same moment cannot leave the second
//! without its attachment: both change the one item with conditional writes, so one of
//! them commits first. If the hold commits first, the release sees a holder left and never
//! detaches. If the release commits first, it has set the lease in that same write, so the
//! hold sees the lease and waits until the detachment is finished before it writes, and its
//! attach comes after the detach. A detach therefore only ever happens inside a lease that
//! began when the holders were empty, and no hold is written while that lease is live.
//!
//! The lease lapses by itself ([`DETACH_LEASE_SECS`]) so a revocation that died mid-way
//! does not block the policy for ever. The lease is four times the revocation function's
//! timeout: by the time it lapses, the invocation that took it has ended, and with it any
//! detach it could still send. A hold that finds a lapsed lease takes the item over.
//!
//! A hold that keeps finding a live lease past its retry budget fails the grant with
//! `attachment_busy`: detaching is one IAM call, so that means something is wrong.

use super::Pim;
use crate::error::{PimError, Result};
use crate::ports::{Attachment, DetachLease, Removal};
use chrono::Duration;

/// How long a detachment's lease holds off new holders if its holder never clears it, in
/// seconds: four times the revocation function's 30-second timeout.
pub const DETACH_LEASE_SECS: i64 = 120;

/// What releasing an attachment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// pim holds no attachment of the policy to the role; nothing to do.
    NotHeld,
    /// Other grants still hold it; it stays attached.
    Kept(usize),
    /// The last holder left and the policy was detached (or was already gone).
    Detached(Removal),
    /// Another release is detaching it now.
    BeingDetached,
}

impl Released {
    /// A short word for audit records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotHeld => "not_held",
            Self::Kept(_) => "kept",
            Self::Detached(_) => "detached",
            Self::BeingDetached => "being_detached",
        }
    }
}

impl Pim {
    /// Adds `grant_id` to the holders of `policy_arn` on the role, waiting out a detachment
    /// in progress, then attaches the policy.
    pub(crate) async fn hold_attachment(
        &self,
        role_name: &str,
        policy_arn: &str,
        grant_id: &str,
    ) -> Result<()> {
        let attempts = self.backoff.attempts.max(1) + 2;
        for attempt in 0..attempts {
            if attempt > 0 {
                let wait = self.backoff.delay(attempt.min(self.backoff.attempts), 1.0);
                tokio::time::sleep(wait).await;
            }
            let now = self.clock.now();
            let stored = self.ledger.load_attachment(role_name, policy_arn).await?;
            let mut next = stored.unwrap_or_else(|| Attachment {
                role_name: role_name.into(),
                policy_arn: policy_arn.into(),
                holders: vec![],
                attached: false,
                detaching: None,
                version: 0,
            });
            if let Some(lease) = &next.detaching {
                if lease.until > now {
                    tracing::info!(role = role_name, policy_arn, by = %lease.by,
                        "waiting for a detachment in progress");
                    continue;
                }
                tracing::warn!(role = role_name, policy_arn, by = %lease.by,
                    "a detachment's lease lapsed; taking the attachment over");
            }
            next.detaching = None;
            if !next.holders.iter().any(|holder| holder == grant_id) {
                next.holders.push(grant_id.to_string());
            }
            next.attached = true;
            next.version += 1;
            match self.ledger.save_attachment(&next).await {
                Ok(()) => {}
                Err(PimError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
            self.binder.attach_managed_policy(role_name, policy_arn).await?;
            tracing::info!(
                role = role_name,
                policy_arn,
                grant_id,
                holders = next.holders.len(),
                "managed policy attached"
            );
            return Ok(());
        }
        Err(PimError::conflict(
            "attachment_busy",
            format!("{policy_arn} was being detached from {role_name} for too long"),
        ))
    }

    /// Removes `leaving` from the holders of `policy_arn` on the role and detaches the policy
    /// when no holder is left. With `expected`, acts only on that version of the item (the
    /// sweep's), and a changed item is the conflict `attachment_changed`.
    pub(crate) async fn release_attachment(
        &self,
        role_name: &str,
        policy_arn: &str,
        leaving: &[String],
        by: &str,
        expected: Option<u64>,
    ) -> Result<Released> {
        for _ in 0..self.backoff.attempts.max(1) + 2 {
            let Some(stored) = self.ledger.load_attachment(role_name, policy_arn).await? else {
                return Ok(Released::NotHeld);
            };
            if expected.is_some_and(|version| version != stored.version) {
                return Err(PimError::conflict("attachment_changed", "the attachment changed"));
            }
            let now = self.clock.now();
            let mut next = stored.clone();
            next.holders.retain(|holder| !leaving.contains(holder));
            next.version += 1;
            let someone_detaching = stored.detaching.as_ref().is_some_and(|l| l.until > now);
            let outcome = if someone_detaching {
                Released::BeingDetached
            } else if !next.holders.is_empty() {
                Released::Kept(next.holders.len())
            } else if !next.attached {
                Released::NotHeld
            } else {
                next.detaching = Some(DetachLease {
                    by: by.into(),
                    until: now + Duration::seconds(DETACH_LEASE_SECS),
                });
                match self.ledger.save_attachment(&next).await {
                    Ok(()) => return self.detach_under_lease(next).await.map(Released::Detached),
                    Err(PimError::Conflict { .. }) => continue,
                    Err(err) => return Err(err),
                }
            };
            if next.holders == stored.holders {
                return Ok(outcome);
            }
            match self.ledger.save_attachment(&next).await {
                Ok(()) => return Ok(outcome),
                Err(PimError::Conflict { .. }) if expected.is_none() => continue,
                Err(err) => return Err(err),
            }
        }
        Err(PimError::conflict("attachment_changed", "the attachment kept changing; retry"))
    }

    /// Detaches the policy of `leased` (whose lease is stored) and clears the lease; on
    /// failure the lease is cleared too but the item stays `attached` for the next try.
    async fn detach_under_lease(&self, leased: Attachment) -> Result<Removal> {
        let (role_name, policy_arn) = (leased.role_name.as_str(), leased.policy_arn.as_str());
        let retried =
            self.backoff.run(|| self.binder.detach_managed_policy(role_name, policy_arn)).await;
        let mut after = leased.clone();
        after.detaching = None;
        after.version += 1;
        after.attached = retried.result.is_err();
        if let Err(err) = self.ledger.save_attachment(&after).await {
            // The lease lapses by itself; until then holds of this policy wait.
            tracing::error!(role = role_name, policy_arn, error = ?err,
                "the detachment's lease could not be cleared");
        }
        match &retried.result {
            Ok(_) => tracing::info!(role = role_name, policy_arn, "managed policy detached"),
            Err(err) => tracing::error!(role = role_name, policy_arn, error = ?err,
                "managed policy could not be detached within the retry budget"),
        }
        retried.result
    }
}
