//! `tracing` setup: text or JSON on stderr; level and format both reloadable.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

use crate::config::{LogFormat, LogLevel, LoggingConfig};

type LevelLayer = reload::Layer<LevelFilter, Registry>;
type Base = Layered<LevelLayer, Registry>;
type BoxedFormat = Box<dyn Layer<Base> + Send + Sync>;

/// Changes the running log level and format (SIGHUP reload).
pub struct LogHandle {
    level: reload::Handle<LevelFilter, Registry>,
    format: reload::Handle<BoxedFormat, Base>,
}

fn level(l: LogLevel) -> LevelFilter {
    match l {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

fn format(f: LogFormat) -> BoxedFormat {
    // Logs always go to stderr: stdout belongs to the stdio transport.
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    match f {
        LogFormat::Text => base.with_ansi(false).boxed(),
        // JSON lines name their target, so the audit line (`chmcp::audit`) is one filter.
        LogFormat::Json => base.with_target(true).json().flatten_event(true).boxed(),
    }
}

/// Installs the global subscriber. Call once per process.
pub fn init(c: &LoggingConfig) -> LogHandle {
    // A global level filter (not a per-layer one): per-layer filters cannot be reloaded.
    let (level_layer, level_handle) = reload::Layer::new(level(c.level));
    let (format_layer, format_handle) = reload::Layer::new(format(c.format));
    let _ = tracing_subscriber::registry()
        .with(level_layer)
        .with(format_layer)
        .try_init();
    LogHandle {
        level: level_handle,
        format: format_handle,
    }
}

/// Sends panic reports through `tracing` instead of the default hook's raw stderr line:
/// a panic message may quote request text, so it is logged as an escaped field.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = ?message, location = %location, "a thread panicked (a bug)");
    }));
}

impl LogHandle {
    pub fn apply(&self, c: &LoggingConfig) {
        if let Err(e) = self.level.reload(level(c.level)) {
            tracing::warn!(error = %e, "could not apply logging.level");
        }
        if let Err(e) = self.format.reload(format(c.format)) {
            tracing::warn!(error = %e, "could not apply logging.format");
        }
    }
}
