//! Operational metrics in CloudWatch embedded metric format (EMF): one JSON line per
//! metric on stdout, which Lambda ships to CloudWatch Logs, where CloudWatch extracts the
//! metric. No SDK call and no extra permission is needed, and nothing is lost if the
//! metrics service is slow.
//!
//! Every metric lands in the `pim` namespace with one dimension, `Function`. The alarms in
//! the template watch these names, so they are part of the contract: see [`names`].

use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Mutex;

/// The metric names the template's alarms refer to.
pub mod names {
    /// Seconds from a grant's scheduled end to its policy being gone.
    pub const REVOCATION_LAG: &str = "RevocationLag";
    /// Retries spent removing grant policies.
    pub const REVOCATION_RETRIES: &str = "RevocationRetries";
    /// Revocations that gave up after their retry budget.
    pub const REVOCATION_FAILURES: &str = "RevocationFailures";
    /// Grant policies found on roles with no live grant, and removed.
    pub const ORPHANS_REMOVED: &str = "OrphanGrantPolicies";
    /// Managed policies pim attached that no live grant held, detached by the sweep.
    pub const ATTACHMENTS_DETACHED: &str = "OrphanAttachments";
    /// Active grants whose policy was missing from the role.
    pub const MISSING_POLICIES: &str = "MissingGrantPolicies";
    /// Expiry schedules that were missing and were created again.
    pub const SCHEDULES_RECREATED: &str = "RecreatedSchedules";
    /// Grants past their end that the sweep had to end.
    pub const OVERDUE_GRANTS: &str = "OverdueGrants";
    /// Policies on eligible roles that pim did not write (standing access).
    pub const STANDING_ACCESS: &str = "StandingAccessPolicies";
    /// Sweeps that could not finish.
    pub const SWEEP_FAILURES: &str = "SweepFailures";
}

/// The namespace every metric is published in.
pub const NAMESPACE: &str = "pim";

/// The unit of a metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration in seconds.
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
        }
    }
}

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// One of [`names`].
    pub name: &'static str,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

/// Where metrics go.
pub trait MetricSink: Send + Sync {
    /// Records one observation made at `at`.
    fn emit(&self, metric: Metric, at: DateTime<Utc>);
}

/// Writes EMF lines to stdout, as Lambda expects.
#[derive(Debug, Clone)]
pub struct EmfStdout {
    function: String,
}

impl EmfStdout {
    /// A sink labelling every metric with `function` (e.g. `revocation`).
    pub fn new(function: impl Into<String>) -> Self {
        Self { function: function.into() }
    }
}

/// The EMF document of one observation.
pub fn emf_line(function: &str, metric: &Metric, at: DateTime<Utc>) -> String {
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [{ "Name": metric.name, "Unit": metric.unit.as_str() }],
            }],
        },
        "Function": function,
        metric.name: metric.value,
    })
    .to_string()
}

impl MetricSink for EmfStdout {
    fn emit(&self, metric: Metric, at: DateTime<Utc>) {
        println!("{}", emf_line(&self.function, &metric, at));
    }
}

/// Keeps observations in memory, for tests of the domain.
#[derive(Debug, Default)]
pub struct RecordedMetrics {
    seen: Mutex<Vec<Metric>>,
}

impl RecordedMetrics {
    /// The sum of every value recorded under `name`.
    pub fn total(&self, name: &str) -> f64 {
        self.seen
            .lock()
            .expect("metrics lock")
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.value)
            .sum()
    }

    /// Every value recorded under `name`, in order.
    pub fn values(&self, name: &str) -> Vec<f64> {
        let seen = self.seen.lock().expect("metrics lock");
        seen.iter().filter(|m| m.name == name).map(|m| m.value).collect()
    }
}

impl MetricSink for RecordedMetrics {
    fn emit(&self, metric: Metric, _at: DateTime<Utc>) {
        self.seen.lock().expect("metrics lock").push(metric);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metric_and_carries_the_value() {
        let at: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        let metric = Metric { name: names::REVOCATION_LAG, value: 42.0, unit: Unit::Seconds };
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("revocation", &metric, at)).unwrap();
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], at.timestamp_millis());
        assert_eq!(declared["Namespace"], "pim");
        assert_eq!(declared["Dimensions"][0][0], "Function");
        assert_eq!(declared["Metrics"][0]["Name"], "RevocationLag");
        assert_eq!(declared["Metrics"][0]["Unit"], "Seconds");
        assert_eq!(line["Function"], "revocation");
        assert_eq!(line["RevocationLag"], 42.0);
    }
}
