//! The IAM policy document of a grant.
//!
//! Every Allow statement carries the grant window as `aws:CurrentTime` conditions
//! (`DateGreaterThan` the start, `DateLessThan` the end, both in UTC). IAM itself then stops
//! honouring the policy at the end of the window, even if every revocation path fails; the
//! scheduled revocation only cleans up a policy that no longer grants anything.
//!
//! Managed policies the role names for rendering join the same document after the role's
//! own statements: their Allow statements get the same two conditions, merged with their
//! own, and their Deny statements are kept as they are (see [`crate::managed`]).

use crate::catalog::CatalogRole;
use crate::error::{PimError, Result};
use crate::managed::ManagedPolicy;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

/// IAM's limit on the inline policies of one role, in characters without white space.
pub const INLINE_POLICY_LIMIT: usize = 10_240;

/// The time window of a grant; the policy is honoured strictly inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantWindow {
    /// The first second of access.
    pub starts_at: DateTime<Utc>,
    /// The moment access ends; the schedule fires at this time.
    pub ends_at: DateTime<Utc>,
}

/// Formats a time the way IAM conditions and the API show it: `2026-12-03T19:00:00Z`.
pub fn iam_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Renders the inline policy of a grant of `role` for `window`, as compact JSON, with the
/// statements of `managed` (the role's managed policies to render, read from IAM) after the
/// role's own.
///
/// Fails with `policy_too_large` when the document would exceed IAM's inline size limit,
/// and with `managed_policy_refused` when a managed policy cannot be time-bounded.
pub fn render_grant_policy(
    role: &CatalogRole,
    window: GrantWindow,
    managed: &[Arc<ManagedPolicy>],
) -> Result<String> {
    let condition = json!({
        "DateGreaterThan": { "aws:CurrentTime": iam_time(window.starts_at) },
        "DateLessThan": { "aws:CurrentTime": iam_time(window.ends_at) },
    });
    let mut statements: Vec<Value> = role
        .statements
        .iter()
        .enumerate()
        .map(|(index, statement)| {
            json!({
                "Sid": format!("PimGrant{index}"),
                "Effect": "Allow",
                "Action": statement.actions,
                "Resource": statement.resources,
                "Condition": condition,
            })
        })
        .collect();
    let mut next = 0;
    let mut sid = || {
        next += 1;
        format!("PimManaged{next}")
    };
    for policy in managed {
        let bounded = condition.as_object().expect("the condition is an object");
        statements.extend(policy.bounded_statements(bounded, &mut sid)?);
    }
    let document = json!({ "Version": "2012-10-17", "Statement": statements }).to_string();

    if document.len() > INLINE_POLICY_LIMIT {
        return Err(PimError::refused(
            "policy_too_large",
            format!(
                "the grant policy of {} is {} characters; IAM allows {INLINE_POLICY_LIMIT}",
                role.name,
                document.len()
            ),
        ));
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Statement;
    use proptest::prelude::*;

    fn role(statements: Vec<Statement>) -> CatalogRole {
        let policy = "version: 1
people: [{id: a, email: a@x.io, principals: ['arn:aws:iam::123456789012:user/a'], role_arn: 'arn:aws:iam::123456789012:role/pim/a'},
         {id: b, email: b@x.io, principals: ['arn:aws:iam::123456789012:user/b'], role_arn: 'arn:aws:iam::123456789012:role/pim/b'}]
roles:
  - {name: r, description: d, statements: [{actions: ['s3:GetObject'], resources: ['*']}],
     default_duration: PT1M, max_duration: PT1M, requesters: [a], approvers: [b]}
";
        let catalog = crate::catalog::Catalog::from_yaml(policy).unwrap();
        CatalogRole { statements, ..catalog.role("r").unwrap().clone() }
    }

    fn window() -> GrantWindow {
        let start: DateTime<Utc> = "2026-12-03T18:00:00Z".parse().unwrap();
        GrantWindow { starts_at: start, ends_at: start + chrono::Duration::hours(1) }
    }

    #[test]
    fn every_statement_is_bounded_by_the_window_in_utc() {
        let statements = vec![
            Statement { actions: vec!["s3:GetObject".into()], resources: vec!["*".into()] },
            Statement { actions: vec!["logs:Get*".into()], resources: vec!["arn:x".into()] },
        ];
        let document: Value =
            serde_json::from_str(&render_grant_policy(&role(statements), window(), &[]).unwrap())
                .unwrap();
        let rendered = document["Statement"].as_array().unwrap();
        assert_eq!(rendered.len(), 2);
        for statement in rendered {
            assert_eq!(statement["Effect"], "Allow");
            let condition = &statement["Condition"];
            assert_eq!(condition["DateGreaterThan"]["aws:CurrentTime"], "2026-12-03T18:00:00Z");
            assert_eq!(condition["DateLessThan"]["aws:CurrentTime"], "2026-12-03T19:00:00Z");
        }
    }

    #[test]
    fn oversized_policies_are_refused_before_anything_is_written() {
        let actions: Vec<String> = (0..800).map(|i| format!("s3:GetObjectVersion{i}")).collect();
        let statements = vec![Statement { actions, resources: vec!["*".into()] }];
        let err = render_grant_policy(&role(statements), window(), &[]).unwrap_err();
        assert_eq!(err.code(), "policy_too_large");
    }

    proptest! {
        #[test]
        fn no_rendered_allow_lacks_either_time_condition(
            groups in proptest::collection::vec(
                (proptest::collection::vec("[a-z0-9]{1,8}:[A-Za-z*]{1,12}", 1..4),
                 proptest::collection::vec("[a-z:*/0-9-]{1,30}", 1..3)),
                1..6),
            offset in 0i64..10_000_000,
            length in 1i64..604_800,
        ) {
            let statements = groups
                .into_iter()
                .map(|(actions, resources)| Statement { actions, resources })
                .collect();
            let start = DateTime::<Utc>::from_timestamp(1_700_000_000 + offset, 0).unwrap();
            let window = GrantWindow { starts_at: start, ends_at: start + chrono::Duration::seconds(length) };
            let document: Value =
                serde_json::from_str(&render_grant_policy(&role(statements), window, &[]).unwrap()).unwrap();
            for statement in document["Statement"].as_array().unwrap() {
                prop_assert_eq!(&statement["Effect"], "Allow");
                prop_assert_eq!(
                    statement["Condition"]["DateGreaterThan"]["aws:CurrentTime"].as_str().unwrap(),
                    iam_time(window.starts_at));
                prop_assert_eq!(
                    statement["Condition"]["DateLessThan"]["aws:CurrentTime"].as_str().unwrap(),
                    iam_time(window.ends_at));
            }
        }
    }
}
