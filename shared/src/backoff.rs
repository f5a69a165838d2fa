//! Capped, jittered exponential backoff for AWS calls that must eventually succeed.
//!
//! The policy is a value so the revocation path retries within one invocation and tests
//! give it a budget of a few milliseconds. Delays use "full jitter": a uniform draw between
//! zero and the capped exponential step, so many revocations throttled together spread out
//! instead of retrying in lockstep. Only errors that say a retry can help are retried.

use crate::error::Result;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Calls in total, the first included; at least one.
    pub attempts: u32,
    /// The first step; each later step doubles it.
    pub base: Duration,
    /// No single wait is longer than this.
    pub cap: Duration,
}

/// The result of a retried call and how many retries it took.
#[derive(Debug)]
pub struct Retried<T> {
    /// The last call's result.
    pub result: Result<T>,
    /// Calls made after the first.
    pub retries: u32,
}

impl Backoff {
    /// The revocation budget: six calls, waits of at most 100 ms, 200 ms, 400 ms, 800 ms and
    /// 1.6 s, about three seconds at worst, well inside the function's timeout.
    pub const REVOCATION: Self =
        Self { attempts: 6, base: Duration::from_millis(100), cap: Duration::from_secs(2) };

    /// The upper bound of the wait before retry number `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry number `retry`, given a uniform draw `unit` in `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Calls `operation` until it succeeds, fails for good, or the budget is spent.
    pub async fn run<T, F, Fut>(&self, mut operation: F) -> Retried<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retries = 0;
        loop {
            let result = operation().await;
            let retry_can_help = matches!(&result, Err(err) if err.is_retryable());
            if !retry_can_help || retries + 1 >= self.attempts.max(1) {
                return Retried { result, retries };
            }
            retries += 1;
            tokio::time::sleep(self.delay(retries, rand::random::<f64>())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PimError;
    use std::sync::atomic::{AtomicU32, Ordering};

    const TINY: Backoff =
        Backoff { attempts: 4, base: Duration::from_millis(1), cap: Duration::from_millis(2) };

    fn throttled() -> PimError {
        PimError::aws("iam:DeleteRolePolicy", true, "throttled")
    }

    #[test]
    fn steps_double_up_to_the_cap_and_jitter_stays_below_the_step() {
        let policy = Backoff::REVOCATION;
        let steps: Vec<u128> = (1..=7).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(3, 0.5), Duration::from_millis(200));
        assert!(policy.delay(40, 0.999) <= policy.cap);
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success_within_the_budget() {
        let calls = AtomicU32::new(0);
        let outcome = TINY
            .run(|| async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 { Err(throttled()) } else { Ok(n) }
            })
            .await;
        assert_eq!(outcome.result.unwrap(), 3);
        assert_eq!(outcome.retries, 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_budget_and_never_retries_a_refusal() {
        let calls = AtomicU32::new(0);
        let outcome: Retried<()> = TINY
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(throttled())
            })
            .await;
        assert!(outcome.result.is_err());
        assert_eq!((calls.load(Ordering::SeqCst), outcome.retries), (4, 3));

        let calls = AtomicU32::new(0);
        let outcome: Retried<()> = TINY
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(PimError::refused("not_eligible", "no"))
            })
            .await;
        assert_eq!((calls.load(Ordering::SeqCst), outcome.retries), (1, 0));
    }
}
