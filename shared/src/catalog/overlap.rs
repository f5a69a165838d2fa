//! Which catalog roles a policy written outside pim grants too: the test the sweep applies
//! to standing access, so that privilege held permanently stands out from a harmless policy.
//!
//! The comparison is by action only, and errs towards reporting. Two action patterns
//! overlap when the service parts match each other and the names match each other, each
//! compared both ways with IAM's wildcards (`ec2:*` overlaps `ec2:StartInstances`, `*`
//! overlaps everything). Resources and conditions are not compared: a standing policy on
//! one bucket that shares an action with a catalog role is reported as holding it. A
//! statement with `NotAction` is taken to grant everything it does not name, so it overlaps
//! every role. Two patterns that share only a middle (`ec2:Describe*` and `ec2:*Images`)
//! are not seen as overlapping.

use super::{Catalog, glob_matches};
use serde_json::Value;

/// The names of the catalog roles, in catalog order, that share at least one action with an
/// Allow statement of `document` (an IAM policy document as JSON). A document that is not
/// JSON of a policy's shape is `None`.
pub fn catalog_roles_granted_by(catalog: &Catalog, document: &str) -> Option<Vec<String>> {
    let allowed = allowed_actions(document)?;
    let roles = catalog
        .roles()
        .iter()
        .filter(|role| {
            role.statements.iter().flat_map(|s| &s.actions).any(|catalog_action| {
                allowed.iter().any(|granted| granted.overlaps(catalog_action))
            })
        })
        .map(|role| role.name.clone())
        .collect();
    Some(roles)
}

/// What an Allow statement grants, as far as actions go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Granted {
    /// The actions matching this pattern.
    Action(String),
    /// Everything but some actions (`NotAction`).
    AllBut,
}

impl Granted {
    fn overlaps(&self, catalog_action: &str) -> bool {
        match self {
            Self::AllBut => true,
            Self::Action(action) => actions_overlap(action, catalog_action),
        }
    }
}

fn allowed_actions(document: &str) -> Option<Vec<Granted>> {
    let document: Value = serde_json::from_str(document).ok()?;
    let statements = match document.get("Statement")? {
        Value::Array(statements) => statements.clone(),
        statement @ Value::Object(_) => vec![statement.clone()],
        _ => return None,
    };
    let mut granted = Vec::new();
    for statement in statements.iter().filter(|s| s.get("Effect") == Some(&"Allow".into())) {
        if statement.get("NotAction").is_some() {
            granted.push(Granted::AllBut);
        }
        match statement.get("Action") {
            Some(Value::String(action)) => granted.push(Granted::Action(action.clone())),
            Some(Value::Array(actions)) => granted.extend(
                actions.iter().filter_map(Value::as_str).map(|a| Granted::Action(a.into())),
            ),
            _ => {}
        }
    }
    Some(granted)
}

/// Whether some action matches both patterns, judged part by part as the module says.
fn actions_overlap(left: &str, right: &str) -> bool {
    if left == "*" || right == "*" {
        return true;
    }
    let (Some((left_service, left_name)), Some((right_service, right_name))) =
        (left.split_once(':'), right.split_once(':'))
    else {
        return false;
    };
    let either_way = |a: &str, b: &str| glob_matches(a, b) || glob_matches(b, a);
    either_way(left_service, right_service) && either_way(left_name, right_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: 1
people: [{id: a, email: a@x.io, principals: ['arn:aws:iam::123456789012:user/a'], role_arn: 'arn:aws:iam::123456789012:role/pim/a'},
         {id: b, email: b@x.io, principals: ['arn:aws:iam::123456789012:user/b'], role_arn: 'arn:aws:iam::123456789012:role/pim/b'}]
roles:
  - {name: reader, description: d, statements: [{actions: ['s3:GetObject', 'ec2:Describe*'], resources: ['*']}],
     default_duration: PT1M, max_duration: PT1M, requesters: [a], approvers: [b]}
  - {name: admin, description: d, statements: [{actions: ['ec2:*', 'rds:RebootDBInstance'], resources: ['*']}],
     default_duration: PT1M, max_duration: PT1M, requesters: [a], approvers: [b]}
";

    fn granted_by(document: &str) -> Option<Vec<String>> {
        catalog_roles_granted_by(&Catalog::from_yaml(POLICY).unwrap(), document)
    }

    #[test]
    fn standing_policies_are_matched_to_the_catalog_roles_they_overlap() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
                &["reader", "admin"],
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*"}]}"#,
                &["admin"],
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":["EC2:DescribeImages"],"Resource":"*"}]}"#,
                &["reader", "admin"],
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::logs/*"}]}"#,
                &["reader"],
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"rds:Reboot*","Resource":"*"}]}"#,
                &["admin"],
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#,
                &["reader"],
            ),
            // Any service's GetObject could be one of admin's ec2 actions: it errs to report.
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*:GetObject","Resource":"*"}]}"#,
                &["reader", "admin"],
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
                &["reader", "admin"],
            ),
            (r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#, &[]),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"*"}]}"#,
                &[],
            ),
            (r#"{"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}"#, &[]),
            (r#"{"Statement":[]}"#, &[]),
        ];
        for (document, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(granted_by(document), Some(expected), "{document}");
        }
    }

    #[test]
    fn a_document_that_is_not_a_policy_is_none() {
        for document in
            ["", "not json", "[]", r#"{"Statement":"x"}"#, r#"{"Version":"2012-10-17"}"#]
        {
            assert_eq!(granted_by(document), None, "{document}");
        }
    }

    #[test]
    fn patterns_sharing_only_a_middle_are_not_seen_as_overlapping() {
        assert!(!actions_overlap("ec2:Describe*", "ec2:*Images"));
        assert!(actions_overlap("ec2:Describe*", "ec2:DescribeImages"));
        assert!(!actions_overlap("ec2", "ec2:DescribeImages"));
    }
}
