//! Validation of the policy document. Every problem is collected, not just the first, and
//! each names its path, line and column and says what is wrong in a sentence. Errors refuse
//! the document; warnings flag what is allowed but deserves a second look.

use super::document::{ApprovalRuleDoc, Document, RoleDoc, WindowDoc};
use super::locate::{Locations, Position};
use super::rules::{
    AlertThresholds, ApprovalRule, BreakGlass, Constraints, ReviewPolicy, SubjectSet, TimeWindow,
    parse_days, parse_hours, parse_weekday,
};
use super::{Catalog, CatalogRole, DOCUMENT_VERSION, Person, glob_matches, role_name_of};
use crate::duration::{format_iso, parse_duration};
use crate::identity::Principal;
use crate::render::{GrantWindow, render_grant_policy};
use crate::service::requests::{MAX_JUSTIFICATION_CHARS, MIN_JUSTIFICATION_CHARS};
use chrono_tz::Tz;
use regex_lite::Regex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Actions no role may grant: IAM itself, role assumption and the organization. A pattern is
/// refused when it matches any of these, so `iam:*`, `i*:Put*` and `*` all fail.
const FORBIDDEN_ACTIONS: &[&str] = &[
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:PassRole",
    "iam:CreateAccessKey",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateAssumeRolePolicy",
    "sts:AssumeRole",
    "organizations:LeaveOrganization",
];

/// The forbidden action an action pattern would grant, if any: the same refusal for inline
/// statements and for managed policies read from IAM.
pub fn forbidden_action(action: &str) -> Option<&'static str> {
    FORBIDDEN_ACTIONS.iter().find(|forbidden| glob_matches(action, forbidden)).copied()
}

/// The forbidden action an Allow with `NotAction` would grant: one its patterns leave out.
pub fn forbidden_despite(not_actions: &[String]) -> Option<&'static str> {
    FORBIDDEN_ACTIONS
        .iter()
        .find(|forbidden| !not_actions.iter().any(|pattern| glob_matches(pattern, forbidden)))
        .copied()
}

/// The protected resource pattern that `resource` reaches through one of `actions` (whose
/// service matches the pattern's), if any.
pub fn protected_reached<'a>(
    actions: &[String],
    resource: &str,
    protected: &'a [String],
) -> Option<&'a String> {
    protected.iter().find(|pattern| {
        let service = pattern.split(':').nth(2).unwrap_or("");
        let action_reaches =
            actions.iter().any(|a| glob_matches(a.split(':').next().unwrap_or(""), service));
        action_reaches && (glob_matches(resource, pattern) || glob_matches(pattern, resource))
    })
}

/// Whether `arn` names a managed policy: AWS's (`arn:aws:iam::aws:policy/…`) or an
/// account's own (`arn:aws:iam::<account>:policy/…`).
pub fn is_managed_policy_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(owner), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let owner_ok =
        owner == "aws" || (owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = name.strip_prefix("policy/").is_some_and(|rest| {
        !rest.is_empty()
            && !rest.ends_with('/')
            && rest.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_/-".contains(c))
    });
    partition.starts_with("aws") && owner_ok && name_ok
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The document is refused.
    Error,
    /// Allowed, but worth a reviewer's attention.
    Warning,
}

/// One problem found in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The field's path (`roles[1].approval[0].quorum`).
    pub path: String,
    /// What is wrong, as a sentence.
    pub message: String,
    /// Where the field is, when known.
    pub position: Option<Position>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.position {
            Some(p) => {
                write!(f, "{}:{}: {severity}: {}: {}", p.line, p.column, self.path, self.message)
            }
            None => write!(f, "{severity}: {}: {}", self.path, self.message),
        }
    }
}

/// The outcome of checking a document.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every problem, in document order.
    pub problems: Vec<Problem>,
    /// The catalog, when the document could be read at all (it may still have errors).
    pub catalog: Option<Catalog>,
}

impl Report {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The problems as lines prefixed with `file:`.
    pub fn render(&self, file: &str) -> String {
        self.problems.iter().map(|p| format!("{file}:{p}\n")).collect()
    }
}

/// Checks a policy document and builds its catalog.
pub fn check_document(source: &str) -> Report {
    let document: Document = match serde_yaml::from_str(source) {
        Ok(document) => document,
        Err(err) => return unreadable(&err),
    };
    let locations = Locations::index(source);
    let mut checker = Checker::default();
    let catalog = checker.build(&document);
    let mut problems = checker.problems;
    for problem in &mut problems {
        problem.position = locations.find(&problem.path);
    }
    problems
        .sort_by_key(|p| (p.position.map_or((usize::MAX, 0), |p| (p.line, p.column)), p.severity));
    Report { problems, catalog: Some(catalog) }
}

fn unreadable(err: &serde_yaml::Error) -> Report {
    let text = err.to_string();
    let (path, rest) = match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => ("document".to_string(), text.clone()),
    };
    // The position is reported separately; drop serde_yaml's " at line L column C".
    let message = match rest.find(" at line ") {
        Some(start) => {
            let tail = &rest[start + " at line ".len()..];
            let after_column = tail
                .find("column ")
                .map(|c| {
                    tail[c + "column ".len()..].trim_start_matches(|ch: char| ch.is_ascii_digit())
                })
                .unwrap_or("");
            format!("{}{after_column}", &rest[..start])
        }
        None => rest,
    };
    let position = err.location().map(|l| Position { line: l.line(), column: l.column() });
    let problem = Problem { severity: Severity::Error, path, message, position };
    Report { problems: vec![problem], catalog: None }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    groups: BTreeMap<String, SubjectSet>,
    people: HashSet<String>,
}

impl Checker {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            position: None,
        });
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
            position: None,
        });
    }

    fn duration(&mut self, text: &str, path: &str) -> u64 {
        parse_duration(text).unwrap_or_else(|err| {
            self.error(path, err.to_string());
            0
        })
    }

    fn time_zone(&mut self, text: &str, path: &str) -> Tz {
        text.parse().unwrap_or_else(|_| {
            self.error(path, format!("'{text}' is not an IANA time zone"));
            chrono_tz::UTC
        })
    }

    fn regex(&mut self, pattern: &Option<String>, path: &str) -> Option<Regex> {
        let pattern = pattern.as_ref()?;
        match Regex::new(pattern) {
            Ok(regex) => Some(regex),
            Err(err) => {
                let reason = err.to_string();
                let reason = reason.lines().last().unwrap_or("").trim_start_matches("error: ");
                self.error(path, format!("not a valid regular expression: {reason}"));
                None
            }
        }
    }

    fn build(&mut self, document: &Document) -> Catalog {
        if document.version != DOCUMENT_VERSION {
            self.error(
                "version",
                format!("expected {DOCUMENT_VERSION}, found {}", document.version),
            );
        }
        let settings = &document.settings;
        let pending_lifetime_secs =
            self.duration(&settings.pending_lifetime, "settings.pending_lifetime");
        if settings.managed_policy_quota == 0 {
            self.error("settings.managed_policy_quota", "IAM lets every role have at least one");
        }
        if settings.requests_per_hour == 0 {
            self.error("settings.requests_per_hour", "must allow at least one request an hour");
        }
        let time_zone = self.time_zone(&settings.time_zone, "settings.time_zone");
        let (people, person_by_principal) = self.people(&document.people);
        self.groups(&document.groups);

        let mut names = HashSet::new();
        let mut roles = Vec::new();
        for (index, raw) in document.roles.iter().enumerate() {
            let path = format!("roles[{index}]");
            if !names.insert(raw.name.as_str()) {
                self.error(
                    format!("{path}.name"),
                    format!("the name '{}' is used twice", raw.name),
                );
            }
            let before = self.error_count();
            let role = self.role(raw, &path, time_zone, pending_lifetime_secs, settings);
            if self.error_count() == before {
                roles.push(role);
            }
        }
        let administrators =
            self.subjects(&document.administrators, "administrators", false).people;
        let alerts = self.alerts(&document.alerts);
        Catalog {
            pending_lifetime_secs,
            time_zone,
            protected_resources: settings.protected_resources.clone(),
            managed_policy_quota: settings.managed_policy_quota,
            requests_per_hour: settings.requests_per_hour,
            people,
            roles,
            person_by_principal,
            administrators,
            alerts,
            source: String::new(),
        }
    }

    fn days(&mut self, text: &str, path: &str) -> u64 {
        parse_days(text).unwrap_or_else(|| {
            self.error(
                path,
                format!("'{text}' is not a whole number of days (P90D, 90d) from 1 to 3650"),
            );
            0
        })
    }

    fn alerts(&mut self, doc: &super::document::AlertsDoc) -> AlertThresholds {
        let frequent = &doc.frequent_activations;
        if frequent.count < 2 {
            self.error(
                "alerts.frequent_activations.count",
                "at least 2: one activation is not a pattern",
            );
        }
        AlertThresholds {
            frequent_count: frequent.count,
            frequent_within_secs: self.days(&frequent.within, "alerts.frequent_activations.within"),
            unused_after_secs: self.days(&doc.unused_after, "alerts.unused_after"),
        }
    }

    fn review(&mut self, doc: &super::document::ReviewDoc, path: &str) -> ReviewPolicy {
        let reviewers = self.subjects(&doc.reviewers, &format!("{path}.reviewers"), false).people;
        if reviewers.is_empty() {
            self.error(format!("{path}.reviewers"), "a review needs at least one reviewer");
        }
        let every_secs = doc.every.as_ref().map(|every| self.days(every, &format!("{path}.every")));
        let deadline_secs = self.days(&doc.deadline, &format!("{path}.deadline"));
        if every_secs.is_some_and(|every| every > 0 && deadline_secs >= every) {
            self.error(
                format!("{path}.deadline"),
                "the deadline must be shorter than the time between campaigns",
            );
        }
        ReviewPolicy { reviewers, every_secs, deadline_secs }
    }

    fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }

    fn people(
        &mut self,
        docs: &[super::document::PersonDoc],
    ) -> (Vec<Person>, HashMap<Principal, usize>) {
        let mut index = HashMap::new();
        let mut people = Vec::new();
        for (position, doc) in docs.iter().enumerate() {
            let path = format!("people[{position}]");
            let valid_id = !doc.id.is_empty()
                && doc.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid_id || !self.people.insert(doc.id.clone()) {
                self.error(
                    format!("{path}.id"),
                    format!("'{}' is empty, malformed or used twice", doc.id),
                );
            }
            if !doc.email.contains('@') || doc.email.chars().any(char::is_whitespace) {
                self.error(
                    format!("{path}.email"),
                    format!("'{}' is not an email address", doc.email),
                );
            }
            if !is_role_arn(&doc.role_arn) {
                self.error(
                    format!("{path}.role_arn"),
                    format!("'{}' is not an IAM role ARN", doc.role_arn),
                );
            }
            for (n, text) in doc.principals.iter().enumerate() {
                let here = format!("{path}.principals[{n}]");
                match Principal::from_policy(text) {
                    Ok(principal) => {
                        if index.insert(principal, position).is_some() {
                            self.error(here, format!("'{text}' belongs to two people"));
                        }
                    }
                    Err(_) => self.error(here, format!("'{text}' is not a principal")),
                }
            }
            people.push(Person {
                id: doc.id.clone(),
                email: doc.email.clone(),
                principals: doc.principals.clone(),
                role_arn: doc.role_arn.clone(),
            });
        }
        (people, index)
    }

    fn groups(&mut self, groups: &BTreeMap<String, Vec<String>>) {
        for (name, members) in groups {
            let path = format!("groups.{name}");
            let mut set = SubjectSet::default();
            for (n, member) in members.iter().enumerate() {
                if member.starts_with("group:") {
                    self.error(format!("{path}[{n}]"), "groups cannot contain groups");
                } else if is_pattern(member) {
                    set.patterns.push(member.clone());
                } else if self.people.contains(member) {
                    set.people.insert(member.clone());
                } else {
                    self.error(
                        format!("{path}[{n}]"),
                        format!("'{member}' is not a person of this document"),
                    );
                }
            }
            if set.is_empty() {
                self.warn(&path, "the group is empty");
            }
            self.groups.insert(name.clone(), set);
        }
    }

    /// Resolves person ids, `group:<name>` and (where allowed) principal patterns.
    fn subjects(&mut self, entries: &[String], path: &str, patterns_allowed: bool) -> SubjectSet {
        let mut set = SubjectSet::default();
        for (n, entry) in entries.iter().enumerate() {
            let here = format!("{path}[{n}]");
            if let Some(group) = entry.strip_prefix("group:") {
                match self.groups.get(group).cloned() {
                    Some(members) if !patterns_allowed && !members.patterns.is_empty() => {
                        self.error(
                            here,
                            format!(
                                "group {group} holds principal patterns; approvers must be people"
                            ),
                        );
                    }
                    Some(members) => {
                        set.people.extend(members.people);
                        set.patterns.extend(members.patterns);
                    }
                    None => self.error(here, format!("there is no group '{group}'")),
                }
            } else if is_pattern(entry) {
                if patterns_allowed {
                    set.patterns.push(entry.clone());
                } else {
                    self.error(
                        here,
                        "approvers must be people or groups of people, not principal patterns",
                    );
                }
            } else if self.people.contains(entry) {
                set.people.insert(entry.clone());
            } else {
                self.error(here, format!("'{entry}' is not a person of this document"));
            }
        }
        set
    }

    fn window(&mut self, doc: &WindowDoc, path: &str, default_zone: Tz) -> TimeWindow {
        let time_zone = match &doc.time_zone {
            Some(zone) => self.time_zone(zone, &format!("{path}.time_zone")),
            None => default_zone,
        };
        let mut weekdays = Vec::new();
        for (n, day) in doc.weekdays.iter().enumerate() {
            match parse_weekday(day) {
                Some(day) => weekdays.push(day),
                None => self.error(
                    format!("{path}.weekdays[{n}]"),
                    format!("'{day}' is not one of mon, tue, wed, thu, fri, sat, sun"),
                ),
            }
        }
        let hours = doc.hours.as_ref().and_then(|text| {
            let parsed = parse_hours(text);
            if parsed.is_none() {
                self.error(
                    format!("{path}.hours"),
                    format!("'{text}' is not a range like 08:00-18:00"),
                );
            }
            parsed
        });
        TimeWindow { time_zone, weekdays, hours }
    }

    fn role(
        &mut self,
        raw: &RoleDoc,
        path: &str,
        zone: Tz,
        default_pending: u64,
        settings: &super::document::Settings,
    ) -> CatalogRole {
        let protected = &settings.protected_resources;
        let valid_name = !raw.name.is_empty()
            && raw.name.len() <= 64
            && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !valid_name {
            self.error(
                format!("{path}.name"),
                "a role name is 1 to 64 letters, digits, '-' or '_'",
            );
        }
        let default_secs =
            self.duration(&raw.default_duration, &format!("{path}.default_duration"));
        let max_secs = self.duration(&raw.max_duration, &format!("{path}.max_duration"));
        if default_secs > max_secs && max_secs > 0 {
            self.error(
                format!("{path}.default_duration"),
                format!(
                    "{} is longer than max_duration {}",
                    format_iso(default_secs),
                    format_iso(max_secs)
                ),
            );
        }
        self.statements(raw, path, protected);
        self.managed_policies(raw, path, settings.managed_policy_quota);

        let requesters = self.subjects(&raw.requesters, &format!("{path}.requesters"), true);
        if requesters.is_empty() {
            self.error(format!("{path}.requesters"), "nobody may request this role");
        }
        let deny = self.subjects(&raw.deny, &format!("{path}.deny"), true);
        let request_window = raw
            .request_window
            .as_ref()
            .map(|w| self.window(w, &format!("{path}.request_window"), zone));
        let constraints = self.constraints(raw, path, default_pending);
        let rules = self.rules(raw, path, zone, &requesters, max_secs);
        let break_glass = raw.break_glass.as_ref().map(|doc| {
            let here = format!("{path}.break_glass");
            let secs = self.duration(&doc.max_duration, &format!("{here}.max_duration"));
            if secs > max_secs {
                self.error(format!("{here}.max_duration"), format!("{} is longer than the role's max_duration", format_iso(secs)));
            }
            if doc.justification_min_length < MIN_JUSTIFICATION_CHARS {
                self.error(format!("{here}.justification_min_length"), format!("break-glass needs at least {MIN_JUSTIFICATION_CHARS} characters of justification"));
            }
            self.warn(&here, "break-glass grants skip approval; each is a high-severity audit record, alerts every approver and must be reviewed");
            BreakGlass { max_secs: secs, justification_min: doc.justification_min_length }
        });
        let review = raw.review.as_ref().map(|doc| self.review(doc, &format!("{path}.review")));

        let role = CatalogRole {
            name: raw.name.clone(),
            description: raw.description.clone(),
            statements: raw.statements.clone(),
            managed_policies: raw.managed_policies.clone(),
            attached_policies: raw.attached_policies.clone(),
            default_secs,
            max_secs,
            tags: raw.tags.clone(),
            requesters,
            deny,
            request_window,
            constraints,
            rules,
            break_glass,
            review,
        };
        if max_secs > 0 && !raw.statements.is_empty() {
            let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            let window = GrantWindow {
                starts_at: start,
                ends_at: start + chrono::Duration::seconds(max_secs as i64),
            };
            // Managed policies to render are read from IAM at request time; offline, only the
            // inline statements can be measured.
            if let Err(err) = render_grant_policy(&role, window, &[]) {
                self.error(format!("{path}.statements"), err.to_string());
            }
        }
        role
    }

    fn statements(&mut self, raw: &RoleDoc, path: &str, protected: &[String]) {
        let grants_nothing = raw.statements.is_empty()
            && raw.managed_policies.is_empty()
            && raw.attached_policies.is_empty();
        if grants_nothing {
            self.error(format!("{path}.statements"), "the role grants nothing");
        }
        for (index, statement) in raw.statements.iter().enumerate() {
            let here = format!("{path}.statements[{index}]");
            if statement.actions.is_empty() || statement.resources.is_empty() {
                self.error(&here, "actions and resources must both be listed");
            }
            for (n, action) in statement.actions.iter().enumerate() {
                if let Some(hit) = forbidden_action(action) {
                    self.error(
                        format!("{here}.actions[{n}]"),
                        format!("'{action}' would grant {hit}"),
                    );
                }
            }
            for (n, resource) in statement.resources.iter().enumerate() {
                if let Some(pattern) = protected_reached(&statement.actions, resource, protected) {
                    self.error(
                        format!("{here}.resources[{n}]"),
                        format!("'{resource}' reaches pim's own resources ({pattern})"),
                    );
                }
            }
        }
    }

    /// Managed policy ARNs: well formed, each named once, and the attached ones within the
    /// role's quota. Their documents live in IAM, which this check does not read.
    fn managed_policies(&mut self, raw: &RoleDoc, path: &str, quota: u32) {
        let mut seen = HashSet::new();
        let lists = [
            ("managed_policies", &raw.managed_policies),
            ("attached_policies", &raw.attached_policies),
        ];
        for (field, arns) in lists {
            for (n, arn) in arns.iter().enumerate() {
                let here = format!("{path}.{field}[{n}]");
                if !is_managed_policy_arn(arn) {
                    self.error(&here, format!("'{arn}' is not a managed policy ARN"));
                } else if !seen.insert(arn.as_str()) {
                    self.error(&here, format!("'{arn}' is named twice"));
                }
            }
        }
        if raw.attached_policies.len() > quota as usize {
            self.error(
                format!("{path}.attached_policies"),
                format!(
                    "{} policies exceed the quota of {quota} attached to one role",
                    raw.attached_policies.len()
                ),
            );
        }
        if !raw.attached_policies.is_empty() {
            self.warn(
                format!("{path}.attached_policies"),
                "attached policies cannot expire by themselves in IAM: access lasts until pim \
                 detaches them at the grant's end (or the sweep does), and pim's own \
                 resources are kept out only by the permissions boundary",
            );
        }
    }

    fn constraints(&mut self, raw: &RoleDoc, path: &str, default_pending: u64) -> Constraints {
        let doc = &raw.constraints;
        let here = format!("{path}.constraints");
        let justification_min = doc.justification_min_length.unwrap_or(MIN_JUSTIFICATION_CHARS);
        if !(MIN_JUSTIFICATION_CHARS..=MAX_JUSTIFICATION_CHARS).contains(&justification_min) {
            self.error(
                format!("{here}.justification_min_length"),
                format!("must be {MIN_JUSTIFICATION_CHARS} to {MAX_JUSTIFICATION_CHARS}"),
            );
        }
        if doc.max_active_grants == Some(0) {
            self.error(
                format!("{here}.max_active_grants"),
                "0 would forbid every grant; remove the role instead",
            );
        }
        let pending_lifetime_secs = match &doc.pending_lifetime {
            Some(text) => self.duration(text, &format!("{here}.pending_lifetime")),
            None => default_pending,
        };
        Constraints {
            justification_min,
            justification_pattern: self
                .regex(&doc.justification_pattern, &format!("{here}.justification_pattern")),
            ticket_pattern: self.regex(&doc.ticket_pattern, &format!("{here}.ticket_pattern")),
            max_active_grants: doc.max_active_grants,
            pending_lifetime_secs,
            requester_mfa: doc.requester_mfa,
        }
    }

    fn rules(
        &mut self,
        raw: &RoleDoc,
        path: &str,
        zone: Tz,
        requesters: &SubjectSet,
        max_secs: u64,
    ) -> Vec<ApprovalRule> {
        let shorthand;
        let (docs, base): (&[ApprovalRuleDoc], String) =
            match (raw.approvers.is_empty(), raw.approval.is_empty()) {
                (false, false) => {
                    self.error(
                        format!("{path}.approvers"),
                        "give either approvers or approval rules, not both",
                    );
                    return Vec::new();
                }
                (true, true) => {
                    self.error(
                    format!("{path}.approval"),
                    "the role has no approval rule; say auto_approve explicitly if none is needed",
                );
                    return Vec::new();
                }
                (false, true) => {
                    shorthand = [ApprovalRuleDoc {
                        name: "approvers".into(),
                        auto_approve: false,
                        approvers: raw.approvers.clone(),
                        quorum: 1,
                        approver_mfa: false,
                        when: None,
                    }];
                    (&shorthand[..], format!("{path}.approvers"))
                }
                (true, false) => (&raw.approval[..], format!("{path}.approval")),
            };
        let shorthand_used = !raw.approvers.is_empty();

        let mut rules: Vec<ApprovalRule> = Vec::new();
        for (index, doc) in docs.iter().enumerate() {
            let here = if shorthand_used { base.clone() } else { format!("{base}[{index}]") };
            if rules.iter().any(|r| r.name == doc.name) || doc.name.is_empty() {
                self.error(
                    format!("{here}.name"),
                    format!("the rule name '{}' is empty or used twice", doc.name),
                );
            }
            let approvers_path =
                if shorthand_used { here.clone() } else { format!("{here}.approvers") };
            let approvers = self.subjects(&doc.approvers, &approvers_path, false).people;
            if doc.auto_approve && !approvers.is_empty() {
                self.error(&approvers_path, "an auto-approving rule has no approvers");
            }
            if !doc.auto_approve {
                if approvers.is_empty() {
                    self.error(&approvers_path, "nobody could approve under this rule");
                } else if doc.quorum == 0 || doc.quorum as usize > approvers.len() {
                    self.error(
                        format!("{here}.quorum"),
                        format!(
                            "a quorum of {} cannot be met by {} approvers",
                            doc.quorum,
                            approvers.len()
                        ),
                    );
                } else {
                    for person in &requesters.people {
                        let others = approvers.iter().filter(|a| *a != person).count();
                        if others < doc.quorum as usize {
                            self.error(&approvers_path, format!("when {person} requests, only {others} other approvers remain for a quorum of {}; nobody approves their own request", doc.quorum));
                        }
                    }
                }
            }
            if doc.auto_approve && doc.approver_mfa {
                self.error(
                    format!("{here}.approver_mfa"),
                    "an auto-approving rule has no approvers to ask for a code",
                );
            }
            let mut rule =
                ApprovalRule::unconditional(&doc.name, doc.auto_approve, approvers, doc.quorum);
            rule.approver_mfa = doc.approver_mfa;
            if let Some(when) = &doc.when {
                let at = format!("{here}.when");
                rule.max_secs = when
                    .max_duration
                    .as_ref()
                    .map(|t| self.duration(t, &format!("{at}.max_duration")));
                if rule.max_secs.is_some_and(|m| m >= max_secs && max_secs > 0) {
                    self.warn(
                        format!("{at}.max_duration"),
                        "not shorter than the role's max_duration, so it restricts nothing",
                    );
                }
                rule.longer_than_secs = when
                    .longer_than
                    .as_ref()
                    .map(|t| self.duration(t, &format!("{at}.longer_than")));
                if let (Some(min), Some(max)) = (rule.longer_than_secs, rule.max_secs)
                    && min >= max
                {
                    self.error(
                        format!("{at}.longer_than"),
                        "no duration is both longer than this and at most max_duration",
                    );
                }
                rule.requester_in = (!when.requester_in.is_empty()).then(|| {
                    self.subjects(&when.requester_in, &format!("{at}.requester_in"), true)
                });
                rule.requester_not_in = (!when.requester_not_in.is_empty()).then(|| {
                    self.subjects(&when.requester_not_in, &format!("{at}.requester_not_in"), true)
                });
                rule.window =
                    when.window.as_ref().map(|w| self.window(w, &format!("{at}.window"), zone));
                rule.outside_window = when
                    .outside_window
                    .as_ref()
                    .map(|w| self.window(w, &format!("{at}.outside_window"), zone));
            }
            if rule.auto_approve && rule.is_unconditional() {
                self.warn(&here, "every request is granted without approval");
            }
            rules.push(rule);
        }
        self.contradictions(&rules, &base, shorthand_used);
        let always_needs_approval = rules.iter().any(|r| !r.auto_approve && r.is_unconditional());
        for (index, rule) in rules.iter().enumerate().filter(|(_, r)| r.auto_approve) {
            if always_needs_approval {
                self.warn(
                    format!("{base}[{index}]"),
                    format!("rule {} never decides: an unconditional rule needing approval always applies and is stricter", rule.name),
                );
            }
        }
        rules
    }

    fn contradictions(&mut self, rules: &[ApprovalRule], base: &str, shorthand: bool) {
        for (i, a) in rules.iter().enumerate() {
            let later = &rules[i + 1..];
            for (offset, b) in later.iter().enumerate() {
                let j = i + 1 + offset;
                let same_conditions = a.max_secs == b.max_secs
                    && a.longer_than_secs == b.longer_than_secs
                    && a.requester_in == b.requester_in
                    && a.requester_not_in == b.requester_not_in
                    && a.window == b.window
                    && a.outside_window == b.outside_window;
                if same_conditions {
                    let here = if shorthand { base.to_string() } else { format!("{base}[{j}]") };
                    self.error(here, format!("rules {} and {} apply to exactly the same requests; only the strictest would ever count", a.name, b.name));
                }
            }
        }
    }
}

fn is_pattern(entry: &str) -> bool {
    entry.starts_with("arn:") || entry.starts_with("oidc:")
}

fn is_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[5].starts_with("role/")
        && !role_name_of(text).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid document; each case below breaks one thing in it.
    const BASE: &str = "version: 1
people:
  - {id: a, email: a@x.io, principals: ['arn:aws:iam::123456789012:user/a'], role_arn: 'arn:aws:iam::123456789012:role/pim/a'}
  - {id: b, email: b@x.io, principals: ['arn:aws:iam::123456789012:user/b'], role_arn: 'arn:aws:iam::123456789012:role/pim/b'}
  - {id: c, email: c@x.io, principals: ['arn:aws:iam::123456789012:user/c'], role_arn: 'arn:aws:iam::123456789012:role/pim/c'}
groups:
  ops: [a, b]
roles:
  - name: r
    description: d
    statements: [{actions: ['s3:GetObject'], resources: ['arn:aws:s3:::bucket/*']}]
    default_duration: PT1H
    max_duration: PT2H
    requesters: [a]
    approvers: [b]
";

    fn errors(source: &str) -> Vec<String> {
        check_document(source)
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_base_and_the_example_are_clean() {
        assert_eq!(errors(BASE), Vec::<String>::new());
        let example = include_str!("../../../infra/policy.example.yaml");
        assert_eq!(errors(example), Vec::<String>::new());
    }

    #[test]
    fn each_problem_is_found_with_its_path_and_line() {
        let cases: &[(&str, &str, &str)] = &[
            ("version: 1", "version: 2", "1:1: error: version: expected 1, found 2"),
            (
                "version: 1",
                "version: 1\nsettings: {requests_per_hour: 0}",
                "settings.requests_per_hour: must allow at least one request an hour",
            ),
            (
                "description: d",
                "description: d\n    surprise: 1",
                "roles[0]: unknown field `surprise`",
            ),
            (
                "max_duration: PT2H",
                "max_duration: 2 hours",
                "roles[0].max_duration: '2 hours' is not a duration",
            ),
            (
                "max_duration: PT2H",
                "max_duration: P8D",
                "roles[0].max_duration: the duration must be at most P7D",
            ),
            (
                "default_duration: PT1H",
                "default_duration: PT3H",
                "default_duration: PT3H is longer than max_duration PT2H",
            ),
            ("approvers: [b]", "approvers: [zed]", "roles[0].approvers[0]: 'zed' is not a person"),
            ("approvers: [b]", "approvers: [a]", "when a requests, only 0 other approvers remain"),
            ("approvers: [b]", "approvers: [group:nobody]", "there is no group 'nobody'"),
            (
                "approvers: [b]",
                "approvers: ['arn:aws:iam::123456789012:user/*']",
                "approvers must be people",
            ),
            (
                "requesters: [a]",
                "requesters: []",
                "roles[0].requesters: nobody may request this role",
            ),
            ("['s3:GetObject']", "['iam:*']", "'iam:*' would grant iam:PutRolePolicy"),
            ("['s3:GetObject']", "['*']", "'*' would grant"),
            ("['s3:GetObject']", "['sts:Assume*']", "would grant sts:AssumeRole"),
            (
                "['s3:GetObject']",
                "['organizations:*']",
                "would grant organizations:LeaveOrganization",
            ),
            (
                "['s3:GetObject'], resources: ['arn:aws:s3:::bucket/*']",
                "['dynamodb:PutItem'], resources: ['*']",
                "reaches pim's own resources",
            ),
            (
                "approvers: [b]",
                "approval: [{name: x, approvers: [b, c], quorum: 3}]",
                "a quorum of 3 cannot be met by 2 approvers",
            ),
            (
                "approvers: [b]",
                "approval: [{name: x, approvers: [b]}, {name: y, approvers: [c]}]",
                "rules x and y apply to exactly the same requests",
            ),
            (
                "approvers: [b]",
                "approval: [{name: x, auto_approve: true, approvers: [b]}]",
                "an auto-approving rule has no approvers",
            ),
            (
                "approvers: [b]",
                "approval: [{name: x, auto_approve: true, approver_mfa: true}]",
                "an auto-approving rule has no approvers to ask for a code",
            ),
            (
                "approvers: [b]",
                "approvers: [b]\n    constraints: {requester_mfa: 'yes'}",
                "requester_mfa",
            ),
            (
                "approvers: [b]",
                "approvers: [b]\n    approval: [{name: x, approvers: [b]}]",
                "give either approvers or approval rules",
            ),
            ("approvers: [b]", "approvers: []", "the role has no approval rule"),
            (
                "approvers: [b]",
                "approvers: [b]\n    request_window: {hours: '9-5'}",
                "'9-5' is not a range like 08:00-18:00",
            ),
            (
                "approvers: [b]",
                "approvers: [b]\n    request_window: {time_zone: Mars/Olympus}",
                "'Mars/Olympus' is not an IANA time zone",
            ),
            (
                "approvers: [b]",
                "approvers: [b]\n    constraints: {ticket_pattern: '(unclosed'}",
                "not a valid regular expression",
            ),
            (
                "approvers: [b]",
                "approvers: [b]\n    constraints: {max_active_grants: 0}",
                "0 would forbid every grant",
            ),
            (
                "approvers: [b]",
                "approvers: [b]\n    break_glass: {max_duration: PT3H}",
                "longer than the role's max_duration",
            ),
            ("email: a@x.io", "email: nobody", "'nobody' is not an email address"),
            (
                "principals: ['arn:aws:iam::123456789012:user/b']",
                "principals: ['arn:aws:iam::123456789012:user/A']",
                "belongs to two people",
            ),
            ("ops: [a, b]", "ops: [a, zed]", "groups.ops[1]: 'zed' is not a person"),
        ];
        for (from, to, expected) in cases {
            assert!(BASE.contains(from), "the case must change something: {from}");
            let broken = BASE.replacen(from, to, 1);
            let found = errors(&broken);
            assert!(
                found.iter().any(|line| line.contains(expected)),
                "expected '{expected}' for '{to}', found {found:#?}"
            );
            assert!(
                found.iter().all(|line| line.chars().next().is_some_and(|c| c.is_ascii_digit())),
                "{found:?} all located"
            );
        }
    }

    #[test]
    fn reviews_and_alert_thresholds_are_read_and_checked() {
        let reviewed = BASE.replacen(
            "approvers: [b]",
            "approvers: [b]\n    review: {reviewers: [group:ops, c], every: P90D, deadline: 14d}",
            1,
        ) + "alerts:\n  frequent_activations: {count: 3, within: P1D}\n  unused_after: P30D\n";
        let catalog = Catalog::from_yaml(&reviewed).unwrap();
        let review = catalog.role("r").unwrap().review.clone().unwrap();
        assert_eq!(review.reviewers.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!((review.every_secs, review.deadline_secs), (Some(90 * 86_400), 14 * 86_400));
        assert_eq!(catalog.alerts.frequent_count, 3);
        assert_eq!(catalog.alerts.frequent_within_secs, 86_400);
        assert_eq!(catalog.alerts.unused_after_secs, 30 * 86_400);
        let defaults = Catalog::from_yaml(BASE).unwrap();
        assert_eq!(defaults.alerts, AlertThresholds::default());
        assert!(defaults.role("r").unwrap().review.is_none());

        let cases = [
            ("review: {reviewers: []}", "roles[0].review.reviewers: a review needs at least one"),
            ("review: {reviewers: [zed]}", "roles[0].review.reviewers[0]: 'zed' is not a person"),
            ("review: {reviewers: [b], every: P10D, deadline: P10D}", "must be shorter than"),
            (
                "review: {reviewers: [b], every: PT1H}",
                "roles[0].review.every: 'PT1H' is not a whole",
            ),
            ("review: {reviewers: [b], often: P1D}", "unknown field `often`"),
        ];
        for (review, expected) in cases {
            let broken =
                BASE.replacen("approvers: [b]", &format!("approvers: [b]\n    {review}"), 1);
            let found = errors(&broken);
            assert!(found.iter().any(|l| l.contains(expected)), "{review}: {found:#?}");
        }
        for (alerts, expected) in [
            ("alerts: {frequent_activations: {count: 1}}", "at least 2"),
            ("alerts: {unused_after: 90 days}", "alerts.unused_after: '90 days'"),
        ] {
            let found = errors(&format!("{BASE}{alerts}\n"));
            assert!(found.iter().any(|l| l.contains(expected)), "{alerts}: {found:#?}");
        }
    }

    #[test]
    fn warnings_do_not_refuse_the_document() {
        let open =
            BASE.replacen("approvers: [b]", "approval: [{name: open, auto_approve: true}]", 1);
        let report = check_document(&open);
        assert!(!report.has_errors(), "{:?}", report.problems);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.message == "every request is granted without approval")
        );
        assert!(Catalog::from_yaml(&open).is_ok());
    }

    proptest::proptest! {
        /// Whatever actions and resources a document names, an accepted document never
        /// grants IAM, role assumption or the organization, and every statement it renders
        /// carries both time conditions.
        #[test]
        fn accepted_documents_never_grant_iam_and_always_expire(
            actions in proptest::collection::vec("(iam|sts|s3|ec2|organizations|\\*|i\\*|s\\?s)(:[A-Za-z*?]{1,12})?", 1..4),
            resource in "(\\*|arn:aws:s3:::[a-z*]{1,8})",
        ) {
            let quoted: Vec<String> = actions.iter().map(|a| format!("'{a}'")).collect();
            let source = BASE.replacen(
                "['s3:GetObject'], resources: ['arn:aws:s3:::bucket/*']",
                &format!("[{}], resources: ['{resource}']", quoted.join(", ")),
                1,
            );
            let Ok(catalog) = Catalog::from_yaml(&source) else { return Ok(()) };
            let role = catalog.role("r").unwrap();
            for action in role.statements.iter().flat_map(|s| &s.actions) {
                for forbidden in FORBIDDEN_ACTIONS {
                    proptest::prop_assert!(!glob_matches(action, forbidden), "{action} grants {forbidden}");
                }
            }
            let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            let window = GrantWindow { starts_at: start, ends_at: start + chrono::Duration::hours(1) };
            let document: serde_json::Value = serde_json::from_str(&render_grant_policy(role, window, &[]).unwrap()).unwrap();
            for statement in document["Statement"].as_array().unwrap() {
                proptest::prop_assert!(statement["Condition"]["DateGreaterThan"]["aws:CurrentTime"].is_string());
                proptest::prop_assert!(statement["Condition"]["DateLessThan"]["aws:CurrentTime"].is_string());
            }
        }
    }

    #[test]
    fn an_oversized_grant_is_refused_at_check_time() {
        let actions: Vec<String> = (0..700).map(|i| format!("'s3:GetObjectVersion{i}'")).collect();
        let huge = BASE.replacen("['s3:GetObject']", &format!("[{}]", actions.join(", ")), 1);
        assert!(
            errors(&huge).iter().any(|line| line.contains("IAM allows 10240")),
            "{:?}",
            errors(&huge)
        );
    }

    #[test]
    fn managed_policy_arns_are_told_apart_from_everything_else() {
        let cases = [
            ("arn:aws:iam::aws:policy/SecurityAudit", true),
            ("arn:aws:iam::aws:policy/job-function/ViewOnlyAccess", true),
            ("arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess", true),
            ("arn:aws:iam::123456789012:policy/team/reader", true),
            ("arn:aws:iam::aws:role/SecurityAudit", false),
            ("arn:aws:iam::aws:policy/", false),
            ("arn:aws:iam::aws:policy/trailing/", false),
            ("arn:aws:iam::12345:policy/short-account", false),
            ("arn:aws:s3:::aws:policy/x", false),
            ("arn:aws:iam:us-east-1:aws:policy/x", false),
            ("arn:aws:iam::aws:policy/has space", false),
            ("SecurityAudit", false),
        ];
        for (arn, expected) in cases {
            assert_eq!(is_managed_policy_arn(arn), expected, "{arn}");
        }
    }

    #[test]
    fn a_role_may_grant_through_managed_policies_alone() {
        let managed = BASE.replacen(
            "statements: [{actions: ['s3:GetObject'], resources: ['arn:aws:s3:::bucket/*']}]",
            "attached_policies: [arn:aws:iam::aws:policy/SecurityAudit]",
            1,
        );
        assert_ne!(managed, BASE, "the base document has the statement replaced");
        let report = check_document(&managed);
        assert!(!report.has_errors(), "{:?}", report.problems);
        let role = &report.catalog.unwrap().roles[0];
        assert!(!role.renders_inline());
        assert_eq!(role.attached_policies, ["arn:aws:iam::aws:policy/SecurityAudit"]);
        let warned = report.problems.iter().any(|p| {
            p.severity == Severity::Warning && p.message.contains("cannot expire by themselves")
        });
        assert!(warned, "{:?}", report.problems);
    }
}
