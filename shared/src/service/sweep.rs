//! The reconciliation sweep: a periodic pass that makes the store, IAM and the scheduler
//! agree, and reports access that bypasses pim.
//!
//! One pass, in this order:
//!
//! 1. List the eligible roles (IAM path [`Pim::eligible_role_path`]) with their policies,
//!    and read the ledger's item of every managed policy attached to them.
//! 2. Read every live grant (approved or active) from the store.
//! 3. List the expiry schedules.
//!
//! Attached managed policies are looked at first: they cannot expire by themselves in IAM.
//! One that pim attached (its ledger item says so) but that no live grant holds is detached
//! through the reference count's own release ([`super::attachments`]), conditioned on the
//! ledger item being unchanged since step 1; holders whose grant has ended are dropped. The
//! order makes this safe: a grant holds an attachment only once it is approved, so a holder
//! read in step 1 whose grant is live is in step 2's read, and a hold written after step 1
//! changes the item, which the conditional release then refuses. An attached policy pim
//! never attached (no ledger item, or one pim has detached since) is standing access.
//!
//! The order is what makes removing an orphan safe: a grant's policy is written only after
//! its approval committed, so any policy seen in step 1 whose grant is live is in step 2's
//! read. A policy named as a grant (`pim-grant-…`) with no live grant behind it is therefore
//! an orphan, whatever raced with the sweep. Likewise an active grant's schedule exists
//! before the grant becomes active, so listing schedules after the store read sees it.
//!
//! Then:
//!
//! - live grants past their end are ended as their schedule would have (policy removed,
//!   `grant.expired` by the sweep);
//! - orphan grant policies are removed and recorded once (`sweep.orphan_removed`);
//! - an active grant whose policy is gone is checked once more against IAM, then marked on
//!   the request with `sweep.drift_found` (the sweep cannot write policies: only the
//!   approval function may);
//! - an active grant without its expiry schedule gets it back (`sweep.schedule_recreated`);
//! - every other policy on an eligible role (inline, or a managed policy attached that pim
//!   did not attach) is standing access pim did not write: it is recorded once (`sweep.standing_access_found`),
//!   counted in a metric on every pass, and never touched.
//!
//! A second pass over an unchanged world changes nothing: ended grants are no longer live,
//! orphans are gone, drift is marked once, and findings are keyed so they are written once.
//! One item's failure does not stop the pass; it is reported and the next pass tries again.
//!
//! Standing access is reported by the policy's presence: a harmless policy on an eligible
//! role is reported too. For an inline policy the finding also names the catalog roles whose
//! actions it grants (`catalog_roles`, see [`crate::catalog::overlap`]); when it names any,
//! catalog permissions are held permanently and the record carries `severity: high`. An
//! attached managed policy is reported by its ARN without that comparison.

use super::Pim;
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::overlap::catalog_roles_granted_by;
use crate::catalog::role_name_of;
use crate::error::Result;
use crate::metrics::{Unit, names};
use crate::model::{AccessRequest, ExpiryEvent, RequestState};
use crate::ports::{Attachment, Removal, RolePolicies};
use crate::service::ExpiryOutcome;
use crate::service::attachments::Released;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Every grant policy's name starts with this; nothing else pim writes does.
pub const GRANT_POLICY_PREFIX: &str = "pim-grant-";

/// What one pass did. Entries name a grant id, or `role/policy` for policies.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Managed policies pim attached that no live grant held, detached (`role/arn`).
    pub attachments_detached: Vec<String>,
    /// Live grants past their end that the pass ended.
    pub overdue_ended: Vec<String>,
    /// Grant policies with no live grant, removed.
    pub orphans_removed: Vec<String>,
    /// Active grants newly found without their policy.
    pub missing_policies: Vec<String>,
    /// Active grants whose expiry schedule was created again.
    pub schedules_recreated: Vec<String>,
    /// Standing access newly found on eligible roles.
    pub standing_access: Vec<String>,
    /// Standing access seen in this pass, new or not.
    pub standing_access_seen: usize,
    /// What the pass could not do, with the reason; the next pass tries again.
    pub failures: Vec<String>,
}

impl SweepReport {
    /// Whether the pass changed nothing and found nothing new.
    pub fn changed_nothing(&self) -> bool {
        self.overdue_ended.is_empty()
            && self.attachments_detached.is_empty()
            && self.orphans_removed.is_empty()
            && self.missing_policies.is_empty()
            && self.schedules_recreated.is_empty()
            && self.standing_access.is_empty()
            && self.failures.is_empty()
    }
}

impl Pim {
    /// Runs one reconciliation pass. Fails only if the inventory itself cannot be read;
    /// failures on single items are in the report.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let roles = self.binder.eligible_roles(&self.eligible_role_path).await?;
        let mut ledger = HashMap::new();
        for role in &roles {
            for arn in &role.attached {
                let item = self.ledger.load_attachment(&role.role_name, arn).await?;
                ledger.insert((role.role_name.clone(), arn.clone()), item);
            }
        }
        let live = self.store.live_grants().await?;
        let schedules = self.scheduler.scheduled_names().await?;
        let now = self.clock.now();
        let mut report = SweepReport::default();

        let live_ids: HashSet<&str> =
            live.iter().filter_map(|r| r.grant.as_ref()).map(|g| g.id.as_str()).collect();
        for role in &roles {
            for arn in &role.attached {
                match ledger.remove(&(role.role_name.clone(), arn.clone())).flatten() {
                    Some(item) if item.attached || !item.holders.is_empty() => {
                        self.reconcile_attachment(role, item, &live_ids, &mut report).await;
                    }
                    _ => self.report_standing(role, "managed", arn, &mut report).await,
                }
            }
        }

        let (overdue, current): (Vec<_>, Vec<_>) = live
            .iter()
            .filter(|request| request.grant.is_some())
            .partition(|request| request.grant.as_ref().is_some_and(|g| g.ends_at <= now));
        for request in overdue {
            self.end_overdue(request, &mut report).await;
        }

        let live_policies: HashSet<(String, String)> = live
            .iter()
            .filter_map(|request| {
                let grant = request.grant.as_ref()?;
                Some((role_name_of(&request.target_role_arn).to_string(), grant.policy_name()))
            })
            .collect();
        for role in &roles {
            self.reconcile_role(role, &live_policies, &mut report).await;
        }

        for request in current.into_iter().filter(|r| r.state == RequestState::Active) {
            let request = self.check_policy_present(request, &roles, &mut report).await;
            self.check_schedule_present(&request, &schedules, &mut report).await;
        }

        self.observe_sweep(&report);
        tracing::info!(
            overdue = report.overdue_ended.len(),
            detached = report.attachments_detached.len(),
            orphans = report.orphans_removed.len(),
            missing = report.missing_policies.len(),
            recreated = report.schedules_recreated.len(),
            standing = report.standing_access_seen,
            failures = report.failures.len(),
            "sweep done"
        );
        Ok(report)
    }

    async fn end_overdue(&self, request: &AccessRequest, report: &mut SweepReport) {
        let Some(grant) = &request.grant else { return };
        let event = ExpiryEvent::for_grant(&request.id, grant);
        match self.end_grant(&event, Source::Sweep).await {
            Ok(ExpiryOutcome::Expired { .. }) => report.overdue_ended.push(grant.id.clone()),
            Ok(_) => {}
            Err(err) => report.failures.push(format!("ending {}: {err}", grant.id)),
        }
    }

    async fn reconcile_role(
        &self,
        role: &RolePolicies,
        live: &HashSet<(String, String)>,
        report: &mut SweepReport,
    ) {
        for policy in &role.inline {
            if !policy.starts_with(GRANT_POLICY_PREFIX) {
                self.report_standing(role, "inline", policy, report).await;
                continue;
            }
            if !live.contains(&(role.role_name.clone(), policy.clone())) {
                self.remove_orphan(role, policy, report).await;
            }
        }
    }

    /// Drops holders of a pim attachment whose grants ended, and detaches the policy when no
    /// live grant holds it, only if the ledger item is as read before the live grants.
    async fn reconcile_attachment(
        &self,
        role: &RolePolicies,
        item: Attachment,
        live: &HashSet<&str>,
        report: &mut SweepReport,
    ) {
        let ended: Vec<String> =
            item.holders.iter().filter(|h| !live.contains(h.as_str())).cloned().collect();
        let held = item.holders.len() > ended.len();
        if held && ended.is_empty() {
            return;
        }
        let label = format!("{}/{}", role.role_name, item.policy_arn);
        let released = self
            .release_attachment(
                &role.role_name,
                &item.policy_arn,
                &ended,
                "sweep",
                Some(item.version),
            )
            .await;
        match released {
            Ok(Released::Detached(_)) => {}
            Ok(_) | Err(crate::PimError::Conflict { code: "attachment_changed", .. }) => return,
            Err(err) => return report.failures.push(format!("detaching {label}: {err}")),
        }
        tracing::warn!(role = %role.role_name, policy_arn = %item.policy_arn, ended = ?ended,
            "detached a managed policy no live grant holds");
        report.attachments_detached.push(label.clone());
        let record = self
            .sweep_record(AuditAction::SweepAttachmentDetached, Outcome::Success)
            .with("role_arn", role.role_arn.clone())
            .with("policy_arn", item.policy_arn.clone())
            .with("ended_holders", ended);
        let key = format!("DETACHED#{}#{}#{}", role.role_name, item.policy_arn, item.version);
        if let Err(err) = self.store.record_finding(&key, &record).await {
            report.failures.push(format!("recording the detachment of {label}: {err}"));
        }
    }

    async fn remove_orphan(&self, role: &RolePolicies, policy: &str, report: &mut SweepReport) {
        let label = format!("{}/{policy}", role.role_name);
        match self.remove_grant_policy(&role.role_name, policy).await {
            Ok(Removal::Deleted) => {}
            Ok(Removal::AlreadyGone) => return,
            Err(err) => {
                report.failures.push(format!("removing {label}: {err}"));
                return;
            }
        }
        tracing::warn!(role = %role.role_name, policy, "removed a grant policy with no live grant");
        report.orphans_removed.push(label);
        let mut record = self.sweep_record(AuditAction::SweepOrphanRemoved, Outcome::Success);
        record.grant_id = policy.strip_prefix("pim-").map(Into::into);
        let record = record.with("role_arn", role.role_arn.clone()).with("policy_name", policy);
        let key = format!("ORPHAN#{}#{policy}", role.role_name);
        if let Err(err) = self.store.record_finding(&key, &record).await {
            report
                .failures
                .push(format!("recording the removal of {}/{policy}: {err}", role.role_name));
        }
    }

    async fn report_standing(
        &self,
        role: &RolePolicies,
        kind: &str,
        policy: &str,
        report: &mut SweepReport,
    ) {
        report.standing_access_seen += 1;
        let mut record = self
            .sweep_record(AuditAction::SweepStandingAccessFound, Outcome::Success)
            .with("role_arn", role.role_arn.clone())
            .with("policy_kind", kind)
            .with("policy", policy);
        let catalog_roles = match kind {
            "inline" => match self.binder.inline_policy(&role.role_name, policy).await {
                Ok(Some(document)) => catalog_roles_granted_by(&self.catalog, &document),
                // Removed since the listing: nothing stands any more.
                Ok(None) => return,
                Err(err) => {
                    let label = format!("{}/{policy}", role.role_name);
                    return report.failures.push(format!("reading {label}: {err}"));
                }
            },
            _ => None,
        };
        if let Some(catalog_roles) = &catalog_roles {
            record = record.with("catalog_roles", catalog_roles.clone());
            if !catalog_roles.is_empty() {
                record = record.with("severity", "high");
            }
        }
        let key = format!("STANDING#{}#{kind}#{policy}", role.role_name);
        match self.store.record_finding(&key, &record).await {
            Ok(true) if catalog_roles.as_ref().is_some_and(|held| !held.is_empty()) => {
                tracing::error!(role = %role.role_name, kind, policy, catalog_roles = ?catalog_roles,
                    "catalog permissions held permanently on an eligible role");
                report.standing_access.push(format!("{}/{policy}", role.role_name));
            }
            Ok(true) => {
                tracing::warn!(role = %role.role_name, kind, policy, "standing access on an eligible role");
                report.standing_access.push(format!("{}/{policy}", role.role_name));
            }
            Ok(false) => {}
            Err(err) => {
                report.failures.push(format!("recording {}/{policy}: {err}", role.role_name))
            }
        }
    }

    /// Marks an active grant whose policy is gone; returns the request as stored after.
    async fn check_policy_present(
        &self,
        request: &AccessRequest,
        roles: &[RolePolicies],
        report: &mut SweepReport,
    ) -> AccessRequest {
        let unchanged = request.clone();
        let Some(grant) = &request.grant else { return unchanged };
        if request.drift.is_some() {
            return unchanged;
        }
        let role_name = role_name_of(&request.target_role_arn);
        let policy = grant.policy_name();
        if !grant.inline_policy {
            return unchanged;
        }
        let listed = roles.iter().any(|r| r.role_name == role_name && r.inline.contains(&policy));
        if listed {
            return unchanged;
        }
        // The listing may predate the grant's activation: ask IAM about this one policy.
        match self.binder.inline_policy(role_name, &policy).await {
            Ok(Some(_)) => return unchanged,
            Ok(None) => {}
            Err(err) => {
                report.failures.push(format!("checking {role_name}/{policy}: {err}"));
                return unchanged;
            }
        }
        let now = self.clock.now();
        let what = "the grant policy is missing from the role";
        let marked = match request.mark_drift(what, now) {
            Ok(marked) => marked,
            Err(err) => {
                report.failures.push(format!("marking {}: {err}", grant.id));
                return unchanged;
            }
        };
        let record = self
            .sweep_record(AuditAction::SweepDriftFound, Outcome::Failure)
            .about(&marked)
            .because("grant_policy_missing", what)
            .with("policy_name", policy.clone())
            .with("role_arn", request.target_role_arn.clone());
        match self.store.commit_transition(&marked, &record, None).await {
            Ok(()) => {
                tracing::error!(request_id = %request.id, grant_id = %grant.id, role = role_name,
                    "active grant without its policy");
                report.missing_policies.push(grant.id.clone());
                marked
            }
            Err(err) => {
                report.failures.push(format!("marking {}: {err}", grant.id));
                unchanged
            }
        }
    }

    async fn check_schedule_present(
        &self,
        request: &AccessRequest,
        schedules: &HashSet<String>,
        report: &mut SweepReport,
    ) {
        let Some(grant) = &request.grant else { return };
        if schedules.contains(&grant.schedule_name()) {
            return;
        }
        let noted = request.note(self.clock.now());
        let record = self
            .sweep_record(AuditAction::SweepScheduleRecreated, Outcome::Success)
            .about(&noted)
            .with("schedule_name", grant.schedule_name())
            .with("ends_at", crate::render::iam_time(grant.ends_at));
        if let Err(err) = self.store.commit_transition(&noted, &record, None).await {
            return report.failures.push(format!("recording {}: {err}", grant.schedule_name()));
        }
        let event = ExpiryEvent::for_grant(&request.id, grant);
        match self.scheduler.schedule_expiry(&grant.schedule_name(), grant.ends_at, &event).await {
            Ok(()) => {
                tracing::warn!(request_id = %request.id, grant_id = %grant.id,
                    "recreated a missing expiry schedule");
                report.schedules_recreated.push(grant.id.clone());
            }
            Err(err) => report.failures.push(format!("creating {}: {err}", grant.schedule_name())),
        }
    }

    fn sweep_record(&self, action: AuditAction, outcome: Outcome) -> AuditRecord {
        AuditRecord::new(action, outcome, Actor::system("sweep"), Source::Sweep, self.clock.now())
    }

    fn observe_sweep(&self, report: &SweepReport) {
        let count = |items: &[String]| items.len() as f64;
        self.observe(names::OVERDUE_GRANTS, count(&report.overdue_ended), Unit::Count);
        self.observe(names::ATTACHMENTS_DETACHED, count(&report.attachments_detached), Unit::Count);
        self.observe(names::ORPHANS_REMOVED, count(&report.orphans_removed), Unit::Count);
        self.observe(names::MISSING_POLICIES, count(&report.missing_policies), Unit::Count);
        self.observe(names::SCHEDULES_RECREATED, count(&report.schedules_recreated), Unit::Count);
        self.observe(names::STANDING_ACCESS, report.standing_access_seen as f64, Unit::Count);
        self.observe(names::SWEEP_FAILURES, count(&report.failures), Unit::Count);
    }
}
