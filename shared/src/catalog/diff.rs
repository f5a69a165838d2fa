//! The change an access review proposes to the policy document, written as the document's
//! owners would apply it: the text after the change, and a unified diff against the text
//! deployed now. The policy stays the source of truth in git; pim never edits it.
//!
//! People removed by a review are added to the role's `deny` list, which wins over
//! `requesters`, groups and principal patterns alike, so the change is exact however the
//! person was eligible, and touches no other role. A `deny` written as a flow list on one
//! line (`deny: [dave]`) gains the names in place; a block list gains one item line each;
//! a role without `deny` gains `deny: [...]` after its `requesters`.

use super::locate::Locations;
use crate::error::{PimError, Result};

/// The document after adding `people` to the `deny` list of `role`.
pub fn deny_people(source: &str, role: &str, people: &[String]) -> Result<String> {
    let document: super::document::Document = serde_yaml::from_str(source)
        .map_err(|err| PimError::Config(format!("policy document: {err}")))?;
    let index = document
        .roles
        .iter()
        .position(|r| r.name == role)
        .ok_or_else(|| PimError::Config(format!("policy document has no role {role}")))?;
    let already = &document.roles[index].deny;
    let added: Vec<&String> = people.iter().filter(|p| !already.contains(p)).collect();
    if added.is_empty() {
        return Ok(source.to_string());
    }
    let locations = Locations::index(source);
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    let unplaced = || PimError::Config(format!("cannot place a deny list in role {role}"));
    let exact = |path: &str| locations.find(path).filter(|_| locations.has(path));
    let names = added.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");

    if let Some(at) = exact(&format!("roles[{index}].deny")) {
        let line = &mut lines[at.line - 1];
        if let (Some(open), Some(close)) = (line.find('['), line.rfind(']')) {
            let inside = line[open + 1..close].trim();
            let joined = if inside.is_empty() { names } else { format!("{inside}, {names}") };
            *line = format!("{}[{joined}]{}", &line[..open], &line[close + 1..]);
        } else {
            let last = (0..already.len())
                .filter_map(|n| exact(&format!("roles[{index}].deny[{n}]")))
                .max()
                .ok_or_else(unplaced)?;
            let indent = leading_space(&lines[last.line - 1]);
            let items: Vec<String> = added.iter().map(|p| format!("{indent}- {p}")).collect();
            lines.splice(last.line..last.line, items);
        }
    } else {
        let key = exact(&format!("roles[{index}].requesters")).ok_or_else(unplaced)?;
        let requesters = document.roles[index].requesters.len();
        let last_line = (0..requesters)
            .filter_map(|n| exact(&format!("roles[{index}].requesters[{n}]")))
            .map(|p| p.line)
            .chain([key.line])
            .max()
            .unwrap_or(key.line);
        let indent = " ".repeat(key.column - 1);
        lines.insert(last_line, format!("{indent}deny: [{names}]"));
    }
    let mut after = lines.join("\n");
    if source.ends_with('\n') {
        after.push('\n');
    }
    Ok(after)
}

fn leading_space(line: &str) -> String {
    line.chars().take_while(|c| *c == ' ').collect()
}

/// A unified diff (three lines of context) from `before` to `after`, naming the file
/// `name`; empty when they are equal. The change is one region, as [`deny_people`] makes
/// it, found by the lines the two texts share at their start and end.
pub fn unified_diff(before: &str, after: &str, name: &str) -> String {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    if old == new {
        return String::new();
    }
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let limit = old.len().min(new.len()) - prefix;
    let suffix =
        old.iter().rev().zip(new.iter().rev()).take(limit).take_while(|(a, b)| a == b).count();
    let context = 3;
    let start = prefix.saturating_sub(context);
    let old_end = (old.len() - suffix + context).min(old.len());
    let new_end = (new.len() - suffix + context).min(new.len());

    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    out.push_str(&format!(
        "@@ -{},{} +{},{} @@\n",
        start + 1,
        old_end - start,
        start + 1,
        new_end - start
    ));
    for line in &old[start..prefix] {
        out.push_str(&format!(" {line}\n"));
    }
    for line in &old[prefix..old.len() - suffix] {
        out.push_str(&format!("-{line}\n"));
    }
    for line in &new[prefix..new.len() - suffix] {
        out.push_str(&format!("+{line}\n"));
    }
    for line in &old[old.len() - suffix..old_end] {
        out.push_str(&format!(" {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::service::visibility::eligibility_of;

    const EXAMPLE: &str = include_str!("../../../infra/policy.example.yaml");

    fn eligible(source: &str, role: &str, person: &str) -> bool {
        let catalog = Catalog::from_yaml(source).unwrap();
        eligibility_of(catalog.role(role).unwrap(), catalog.person(person).unwrap()).is_some()
    }

    #[test]
    fn a_flow_deny_list_gains_the_names_in_place() {
        let after = deny_people(EXAMPLE, "prod-admin", &["alice".into()]).unwrap();
        assert!(!eligible(&after, "prod-admin", "alice"));
        assert!(eligible(&after, "prod-admin", "bob"));
        assert!(eligible(&after, "prod-readonly", "alice"), "other roles are untouched");
        let diff = unified_diff(EXAMPLE, &after, "policy.yaml");
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .collect();
        assert_eq!(changed, ["-    deny: [dave]", "+    deny: [dave, alice]"]);
        assert_eq!(diff.lines().filter(|l| l.starts_with(' ')).count(), 6, "{diff}");
    }

    #[test]
    fn a_role_without_deny_gains_one_after_its_requesters() {
        let after = deny_people(EXAMPLE, "prod-readonly", &["bob".into(), "alice".into()]).unwrap();
        assert!(!eligible(&after, "prod-readonly", "alice"));
        assert!(!eligible(&after, "prod-readonly", "bob"));
        assert!(eligible(&after, "prod-admin", "bob"), "the group is untouched");
        let diff = unified_diff(EXAMPLE, &after, "policy.yaml");
        assert!(
            diff.contains("\n     requesters: [group:engineers]\n+    deny: [bob, alice]\n"),
            "{diff}"
        );
        assert!(diff.starts_with("--- a/policy.yaml\n+++ b/policy.yaml\n@@ -"), "{diff}");
    }

    #[test]
    fn a_block_deny_list_gains_item_lines() {
        let block = EXAMPLE.replace("    deny: [dave]\n", "    deny:\n      - dave\n");
        let after = deny_people(&block, "prod-admin", &["bob".into()]).unwrap();
        assert!(after.contains("    deny:\n      - dave\n      - bob\n"), "{after}");
        assert!(!eligible(&after, "prod-admin", "bob"));
        assert_eq!(deny_people(&block, "prod-admin", &["dave".into()]).unwrap(), block);
        assert_eq!(unified_diff(&block, &block, "p"), "");
    }

    #[test]
    fn hunk_headers_count_the_lines_they_show() {
        let before = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let after = "a\nb\nc\nd\nX\ne\nf\ng\nh\n";
        let diff = unified_diff(before, after, "f");
        assert_eq!(diff, "--- a/f\n+++ b/f\n@@ -2,6 +2,7 @@\n b\n c\n d\n+X\n e\n f\n g\n");
    }
}
