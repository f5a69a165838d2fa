//! [`ExpiryScheduler`] on EventBridge Scheduler: one one-time `at()` schedule per grant, in
//! UTC, with no flexible window, deleted after it fires, targeting the revocation function
//! with the grant's [`ExpiryEvent`] as input; likewise one per pending request's
//! [`RequestTimer`] (the reminder, then the deadline). A delivery that still fails after the retry
//! policy goes to the dead-letter queue, where an alarm watches for it.

use super::{aws_error, error_code};
use crate::error::{PimError, Result};
use crate::model::{ExpiryEvent, RequestTimer};
use crate::ports::ExpiryScheduler;
use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, ScheduleState, Target,
};
use chrono::{DateTime, Utc};

/// How often the scheduler retries a failed delivery, and for how long.
const RETRY_ATTEMPTS: i32 = 20;
const MAX_EVENT_AGE_SECS: i32 = 3600;

/// Creates and deletes expiry schedules in one schedule group.
#[derive(Debug, Clone)]
pub struct EventBridgeExpiryScheduler {
    client: aws_sdk_scheduler::Client,
    group: String,
    target_arn: String,
    role_arn: String,
    dead_letter_arn: String,
}

impl EventBridgeExpiryScheduler {
    /// A scheduler writing into `group`, invoking `target_arn` as `role_arn`, with failed
    /// deliveries sent to the SQS queue `dead_letter_arn`.
    pub fn new(
        client: aws_sdk_scheduler::Client,
        group: impl Into<String>,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
        dead_letter_arn: impl Into<String>,
    ) -> Self {
        Self {
            client,
            group: group.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
            dead_letter_arn: dead_letter_arn.into(),
        }
    }
}

/// The one-time schedule expression for `at`: `at(2026-12-03T19:00:00)`, read in UTC.
pub fn at_expression(at: DateTime<Utc>) -> String {
    format!("at({})", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// Reads back an expression written by [`at_expression`]; anything else is `None`.
pub fn parse_at_expression(expression: &str) -> Option<DateTime<Utc>> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    let naive = chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S").ok()?;
    Some(naive.and_utc())
}

impl EventBridgeExpiryScheduler {
    /// The target delivering `input` to the revocation function, with the retry policy and
    /// the dead-letter queue, and the window (off) every schedule here uses.
    fn definition(
        &self,
        operation: &'static str,
        input: String,
    ) -> Result<(Target, FlexibleTimeWindow)> {
        let retry = RetryPolicy::builder()
            .maximum_retry_attempts(RETRY_ATTEMPTS)
            .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECS)
            .build();
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .retry_policy(retry)
            .dead_letter_config(DeadLetterConfig::builder().arn(&self.dead_letter_arn).build())
            .build()
            .map_err(|err| PimError::aws(operation, false, err))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|err| PimError::aws(operation, false, err))?;
        Ok((target, window))
    }

    /// Creates the one-time schedule `name` delivering `input` at `at`; one that exists
    /// already is success.
    async fn create(&self, name: &str, at: DateTime<Utc>, input: String) -> Result<()> {
        let (target, window) = self.definition("scheduler:CreateSchedule", input)?;
        let outcome = self
            .client
            .create_schedule()
            .name(name)
            .group_name(&self.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .state(ScheduleState::Enabled)
            .target(target)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(err) if error_code(&err) == Some("ConflictException") => Ok(()),
            Err(err) => Err(aws_error("scheduler:CreateSchedule", err)),
        }
    }
}

#[async_trait]
impl ExpiryScheduler for EventBridgeExpiryScheduler {
    async fn schedule_expiry(
        &self,
        name: &str,
        at: DateTime<Utc>,
        event: &ExpiryEvent,
    ) -> Result<()> {
        self.create(name, at, serde_json::to_string(event).expect("event serializes")).await
    }

    async fn reschedule_expiry(
        &self,
        name: &str,
        at: DateTime<Utc>,
        event: &ExpiryEvent,
    ) -> Result<()> {
        let input = serde_json::to_string(event).expect("event serializes");
        let (target, window) = self.definition("scheduler:UpdateSchedule", input.clone())?;
        let outcome = self
            .client
            .update_schedule()
            .name(name)
            .group_name(&self.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .state(ScheduleState::Enabled)
            .target(target)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => {
                self.create(name, at, input).await
            }
            Err(err) => Err(aws_error("scheduler:UpdateSchedule", err)),
        }
    }

    async fn schedule_timer(
        &self,
        name: &str,
        at: DateTime<Utc>,
        timer: &RequestTimer,
    ) -> Result<()> {
        self.create(name, at, serde_json::to_string(timer).expect("timer serializes")).await
    }

    async fn cancel_expiry(&self, name: &str) -> Result<()> {
        let outcome = self.client.delete_schedule().name(name).group_name(&self.group).send().await;
        match outcome {
            Ok(_) => Ok(()),
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => Ok(()),
            Err(err) => Err(aws_error("scheduler:DeleteSchedule", err)),
        }
    }

    async fn scheduled_names(&self) -> Result<std::collections::HashSet<String>> {
        let schedules: Vec<_> = self
            .client
            .list_schedules()
            .group_name(&self.group)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("scheduler:ListSchedules", err))?;
        Ok(schedules.iter().filter_map(|s| s.name().map(Into::into)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_expressions_are_utc_to_the_second_and_read_back() {
        let at: DateTime<Utc> = "2026-12-03T19:05:07Z".parse().unwrap();
        assert_eq!(at_expression(at), "at(2026-12-03T19:05:07)");
        assert_eq!(parse_at_expression(&at_expression(at)), Some(at));
        assert_eq!(parse_at_expression("rate(5 minutes)"), None);
        assert_eq!(parse_at_expression("at(2026-13-03T19:05:07)"), None);
    }
}
