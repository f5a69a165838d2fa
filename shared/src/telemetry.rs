//! Logging set-up shared by the functions: JSON lines, fields first, level from
//! `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default `info`).
//!
//! The setting is one level for everything (`debug`, `info`, ...), not per-module
//! directives: directive filtering would bring a regex engine into every package, which
//! must stay under 3 MB.

use tracing_subscriber::filter::LevelFilter;

/// Installs the JSON subscriber once; later calls do nothing.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let filter = level.parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
