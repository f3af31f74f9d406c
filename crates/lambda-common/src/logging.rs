//! One JSON object per log line, so CloudWatch Logs Insights can filter on fields
//! (`tenant`, `error`) without parsing text.

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init`: tests may call this more than once in one process.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        // CloudWatch stamps every line itself.
        .without_time()
        .with_ansi(false)
        .try_init();
}
