//! Fires due schedules (grant expiries, request timers, cleanups), because the emulator
//! never does: each schedule in the group whose `at()` time has come is delivered to the
//! revocation function's handler with its own input, then deleted, as EventBridge Scheduler does with
//! `ActionAfterCompletion: DELETE`. A delivery that fails is left for the next round, as
//! the scheduler's retry policy would.

use chrono::{DateTime, Utc};
use pim::adapters::scheduler::parse_at_expression;
use pim::service::Pim;

/// One schedule that was delivered.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The schedule's name.
    pub name: String,
    /// What it delivered: the schedule's input.
    pub event: serde_json::Value,
    /// What revocation answered.
    pub outcome: Result<serde_json::Value, String>,
}

/// Delivers every schedule of `group` due at `now`.
pub async fn fire_due(
    scheduler: &aws_sdk_scheduler::Client,
    group: &str,
    pim: &Pim,
    now: DateTime<Utc>,
) -> Result<Vec<Fired>, String> {
    let mut fired = Vec::new();
    let listed = scheduler
        .list_schedules()
        .group_name(group)
        .send()
        .await
        .map_err(|err| format!("cannot list schedules: {err:?}"))?;
    for summary in listed.schedules() {
        let Some(name) = summary.name() else { continue };
        let schedule = scheduler
            .get_schedule()
            .group_name(group)
            .name(name)
            .send()
            .await
            .map_err(|err| format!("cannot read schedule {name}: {err:?}"))?;
        let due = schedule
            .schedule_expression()
            .and_then(parse_at_expression)
            .is_some_and(|at| at <= now);
        if !due {
            continue;
        }
        let input =
            schedule.target().map(|target| target.input().unwrap_or_default()).unwrap_or_default();
        let event: serde_json::Value = match serde_json::from_str(input) {
            Ok(event) => event,
            Err(err) => {
                fired.push(Fired {
                    name: name.into(),
                    event: serde_json::Value::Null,
                    outcome: Err(format!("bad input: {err}")),
                });
                continue;
            }
        };
        let outcome =
            pim_revocation::handle_event(pim, event.clone()).await.map_err(|err| err.to_string());
        if outcome.is_ok() {
            scheduler
                .delete_schedule()
                .group_name(group)
                .name(name)
                .send()
                .await
                .map_err(|err| format!("cannot delete schedule {name}: {err:?}"))?;
        }
        fired.push(Fired { name: name.into(), event, outcome });
    }
    Ok(fired)
}
