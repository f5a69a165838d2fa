//! The evaluated parts of a role: who matches (subjects), when (time windows), what a
//! request must carry (constraints), and who must approve (approval rules, strictest wins).

use crate::catalog::glob_matches;
use crate::identity::Principal;
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use regex_lite::Regex;
use std::collections::BTreeSet;

/// A resolved set of people and principal patterns (groups expanded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectSet {
    /// Person ids.
    pub people: BTreeSet<String>,
    /// Principal patterns (`*` and `?` wildcards, case-insensitive).
    pub patterns: Vec<String>,
}

impl SubjectSet {
    /// Whether the person (by id) or the authenticated principal is in the set.
    pub fn contains(&self, person_id: &str, principal: &Principal) -> bool {
        self.people.contains(person_id)
            || self.patterns.iter().any(|pattern| glob_matches(pattern, principal.as_str()))
    }

    /// Whether the set names nobody.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty() && self.patterns.is_empty()
    }
}

/// Weekdays and hours in a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// The zone the window is read in.
    pub time_zone: Tz,
    /// The days it is open; all when empty.
    pub weekdays: Vec<Weekday>,
    /// Minutes since midnight: open from the first, closed from the second. A window whose
    /// end is before its start runs over midnight.
    pub hours: Option<(u32, u32)>,
}

impl TimeWindow {
    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.time_zone);
        let minute = local.hour() * 60 + local.minute();
        let (day, in_hours) = match self.hours {
            None => (local.weekday(), true),
            Some((start, end)) if start <= end => {
                (local.weekday(), start <= minute && minute < end)
            }
            // Overnight: the part after midnight belongs to the day the window opened.
            Some((start, _)) if minute >= start => (local.weekday(), true),
            Some((_, end)) => (local.weekday().pred(), minute < end),
        };
        in_hours && (self.weekdays.is_empty() || self.weekdays.contains(&day))
    }
}

/// Parses `mon` … `sun`.
pub fn parse_weekday(text: &str) -> Option<Weekday> {
    match text.to_ascii_lowercase().as_str() {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

/// Parses `HH:MM-HH:MM` into minutes since midnight; `24:00` ends a day.
pub fn parse_hours(text: &str) -> Option<(u32, u32)> {
    let (start, end) = text.split_once('-')?;
    let minutes = |part: &str| -> Option<u32> {
        let (h, m) = part.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start != end && start < 24 * 60).then_some((start, end))
}

/// What a request for a role must satisfy.
#[derive(Debug, Clone)]
pub struct Constraints {
    /// Shortest justification, in characters.
    pub justification_min: usize,
    /// Pattern the justification must match.
    pub justification_pattern: Option<Regex>,
    /// Pattern the ticket must match; a ticket is required when set.
    pub ticket_pattern: Option<Regex>,
    /// Grants of the role one person may hold at once.
    pub max_active_grants: Option<u32>,
    /// How long approvers have, in seconds.
    pub pending_lifetime_secs: u64,
    /// The requester must prove a second factor.
    pub requester_mfa: bool,
}

/// One approval rule, validated.
#[derive(Debug, Clone)]
pub struct ApprovalRule {
    /// The rule's name, recorded with decisions.
    pub name: String,
    /// Grants without approvers.
    pub auto_approve: bool,
    /// Person ids who may approve.
    pub approvers: BTreeSet<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Each approval needs the approver's one-time code.
    pub approver_mfa: bool,
    /// Applies only to requests of at most this many seconds.
    pub max_secs: Option<u64>,
    /// Applies only to requests of more than this many seconds.
    pub longer_than_secs: Option<u64>,
    /// Applies only to these requesters.
    pub requester_in: Option<SubjectSet>,
    /// Applies only to requesters outside this set.
    pub requester_not_in: Option<SubjectSet>,
    /// Applies only inside this window.
    pub window: Option<TimeWindow>,
    /// Applies only outside this window.
    pub outside_window: Option<TimeWindow>,
}

impl ApprovalRule {
    /// A rule without conditions; conditions are set on the returned value.
    pub fn unconditional(
        name: &str,
        auto_approve: bool,
        approvers: BTreeSet<String>,
        quorum: u32,
    ) -> Self {
        Self {
            name: name.into(),
            auto_approve,
            approvers,
            quorum,
            approver_mfa: false,
            max_secs: None,
            longer_than_secs: None,
            requester_in: None,
            requester_not_in: None,
            window: None,
            outside_window: None,
        }
    }

    /// Whether the rule applies to this request.
    pub fn applies(
        &self,
        person_id: &str,
        principal: &Principal,
        secs: u64,
        at: DateTime<Utc>,
    ) -> bool {
        self.max_secs.is_none_or(|max| secs <= max)
            && self.longer_than_secs.is_none_or(|min| secs > min)
            && self.requester_in.as_ref().is_none_or(|set| set.contains(person_id, principal))
            && self.requester_not_in.as_ref().is_none_or(|set| !set.contains(person_id, principal))
            && self.window.as_ref().is_none_or(|window| window.contains(at))
            && self.outside_window.as_ref().is_none_or(|window| !window.contains(at))
    }

    /// Orders rules by strictness: any rule that needs approvers beats auto-approval, then
    /// the larger quorum wins, then the rule that asks approvers for a second factor.
    pub fn strictness(&self) -> (bool, u32, bool) {
        let quorum = if self.auto_approve { 0 } else { self.quorum };
        (!self.auto_approve, quorum, self.approver_mfa)
    }

    /// Whether the rule has no condition at all.
    pub fn is_unconditional(&self) -> bool {
        self.max_secs.is_none()
            && self.longer_than_secs.is_none()
            && self.requester_in.is_none()
            && self.requester_not_in.is_none()
            && self.window.is_none()
            && self.outside_window.is_none()
    }
}

/// A role's access reviews, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPolicy {
    /// Person ids who decide in the role's campaigns.
    pub reviewers: BTreeSet<String>,
    /// Seconds between scheduled campaigns; on demand only when `None`.
    pub every_secs: Option<u64>,
    /// Seconds reviewers have to decide.
    pub deadline_secs: u64,
}

/// The thresholds of the usage alerts, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertThresholds {
    /// Activations of one role by one person that make an alert ...
    pub frequent_count: u32,
    /// ... within this many seconds.
    pub frequent_within_secs: u64,
    /// An eligible person not granted a role for this many seconds is a removal candidate.
    pub unused_after_secs: u64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            frequent_count: 10,
            frequent_within_secs: 7 * 86_400,
            unused_after_secs: 90 * 86_400,
        }
    }
}

/// Parses a period of whole days, `P90D` or `90d`, from 1 to 3650 days, into seconds.
pub fn parse_days(text: &str) -> Option<u64> {
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix('P')
        .and_then(|rest| rest.strip_suffix('D'))
        .or_else(|| trimmed.strip_suffix('d'))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 4 {
        return None;
    }
    let days: u64 = digits.parse().ok()?;
    (1..=3650).contains(&days).then_some(days * 86_400)
}

/// Emergency self-activation of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// Longest break-glass grant, in seconds.
    pub max_secs: u64,
    /// Shortest justification, in characters.
    pub justification_min: usize,
}

/// The strictest of the rules that apply, in document order among equals.
pub fn strictest<'a>(rules: impl Iterator<Item = &'a ApprovalRule>) -> Option<&'a ApprovalRule> {
    rules.fold(None, |best: Option<&ApprovalRule>, rule| match best {
        Some(best) if best.strictness() >= rule.strictness() => Some(best),
        _ => Some(rule),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn windows_read_hours_and_days_in_their_zone() {
        let office = TimeWindow {
            time_zone: "Europe/Berlin".parse().unwrap(),
            weekdays: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            hours: parse_hours("08:00-18:00"),
        };
        // 2026-12-03 is a Thursday; Berlin is UTC+1 in December.
        assert!(office.contains(at("2026-12-03T07:00:00Z")));
        assert!(!office.contains(at("2026-12-03T06:59:00Z")));
        assert!(!office.contains(at("2026-12-03T17:00:00Z")));
        assert!(!office.contains(at("2026-12-05T10:00:00Z")), "Saturday");

        let night = TimeWindow {
            time_zone: chrono_tz::UTC,
            weekdays: vec![Weekday::Fri],
            hours: parse_hours("22:00-06:00"),
        };
        assert!(night.contains(at("2026-12-04T23:00:00Z")), "Friday night");
        assert!(
            night.contains(at("2026-12-05T05:59:00Z")),
            "early Saturday belongs to Friday's window"
        );
        assert!(!night.contains(at("2026-12-05T23:00:00Z")), "Saturday night");
    }

    #[test]
    fn the_strictest_rule_prefers_approvers_then_quorum_then_approver_mfa() {
        let rule = |name: &str, auto: bool, quorum: u32, mfa: bool| {
            let mut rule = ApprovalRule::unconditional(name, auto, BTreeSet::new(), quorum);
            rule.approver_mfa = mfa;
            rule
        };
        let cases = [
            (vec![rule("auto", true, 1, false), rule("one", false, 1, false)], "one"),
            (vec![rule("two", false, 2, false), rule("one-mfa", false, 1, true)], "two"),
            (vec![rule("one", false, 1, false), rule("one-mfa", false, 1, true)], "one-mfa"),
            (vec![rule("one-mfa", false, 1, true), rule("one", false, 1, false)], "one-mfa"),
            (vec![rule("a", false, 1, false), rule("b", false, 1, false)], "a"),
        ];
        for (rules, expected) in cases {
            assert_eq!(strictest(rules.iter()).unwrap().name, expected);
        }
    }

    #[test]
    fn periods_are_whole_days() {
        assert_eq!(parse_days("P90D"), Some(90 * 86_400));
        assert_eq!(parse_days("14d"), Some(14 * 86_400));
        for bad in ["P0D", "PT90D", "90", "P3651D", "P1.5D", "d", "P-1D", "P90DD"] {
            assert_eq!(parse_days(bad), None, "{bad}");
        }
    }

    #[test]
    fn hours_and_weekdays_parse_strictly() {
        assert_eq!(parse_hours("08:00-18:30"), Some((480, 1110)));
        assert_eq!(parse_hours("00:00-24:00"), Some((0, 1440)));
        for bad in ["8-18", "08:00", "25:00-26:00", "08:60-09:00", "09:00-09:00", "24:00-02:00"] {
            assert_eq!(parse_hours(bad), None, "{bad}");
        }
        assert_eq!(parse_weekday("Sat"), Some(Weekday::Sat));
        assert_eq!(parse_weekday("saturday"), None);
    }

    fn rule(name: &str, auto: bool, quorum: u32) -> ApprovalRule {
        ApprovalRule::unconditional(name, auto, BTreeSet::new(), quorum)
    }

    #[test]
    fn the_strictest_rule_wins_and_ties_keep_document_order() {
        let rules = [
            rule("auto", true, 1),
            rule("one", false, 1),
            rule("two", false, 2),
            rule("two-b", false, 2),
        ];
        assert_eq!(strictest(rules.iter()).unwrap().name, "two");
        assert_eq!(strictest(rules[..2].iter()).unwrap().name, "one");
        assert_eq!(strictest(rules[..1].iter()).unwrap().name, "auto");
        assert!(strictest(std::iter::empty()).is_none());
    }
}
