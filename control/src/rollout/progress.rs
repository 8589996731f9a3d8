//! The rollout's live progress on standard error: a redrawn line (indicatif) on a terminal,
//! plain lines at a fixed cadence otherwise (logs, pipes, CI), so that standard output stays
//! the rollout's own lines or, with `--json`, its events alone.

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::counts::Counts;

/// One live display: an interval or the settle wait.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    plain_every: Duration,
    /// When the last plain line was printed; `None` before the first.
    last_plain: Option<Instant>,
}

impl Progress {
    /// A display for a wait of `total`, labelled `label`; when standard error is no terminal,
    /// plain lines every `plain_every`, the first at once if `plain_at_once` (else after
    /// `plain_every`).
    pub fn new(
        label: String,
        total: Duration,
        plain_every: Duration,
        plain_at_once: bool,
    ) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            // A wait of unknown length (a pause) spins instead of filling a bar.
            let (bar, template) = if total.is_zero() {
                (
                    ProgressBar::new_spinner(),
                    "  {prefix} {spinner} {wide_msg}",
                )
            } else {
                let length = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
                (ProgressBar::new(length), "  {prefix} {bar:20} {wide_msg}")
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label.clone());
            bar
        });
        Progress {
            bar,
            label,
            plain_every,
            last_plain: (!plain_at_once).then(Instant::now),
        }
    }

    /// Shows `message` at `elapsed`: redrawn on a terminal, else a plain line when the cadence
    /// is due.
    pub fn show(&mut self, elapsed: Duration, message: &str) {
        match &self.bar {
            Some(bar) => {
                if bar.length().is_some() {
                    bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                } else {
                    bar.tick();
                }
                bar.set_message(message.to_string());
            }
            None => {
                if self
                    .last_plain
                    .is_none_or(|last| last.elapsed() >= self.plain_every)
                {
                    // A closed standard error (the terminal gone: SIGHUP) must not stop the
                    // rollout's ending.
                    let _ = writeln!(std::io::stderr(), "  {}: {message}", self.label);
                    self.last_plain = Some(Instant::now());
                }
            }
        }
    }

    /// Clears the redrawn line.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// How often plain progress lines come for a wait of `total`: three a wait, 1 s to 30 s apart.
pub fn plain_cadence(total: Duration) -> Duration {
    (total / 3).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// What an interval has counted so far: `canary 120 req 0.83% 5xx p50 2.0 p99 9.9 ms`.
pub fn side(name: &str, counts: &Counts) -> String {
    let ms = |q| {
        counts
            .latency_quantile(q)
            .map_or("-".into(), |v: f64| format!("{v:.1}"))
    };
    format!(
        "{name} {} req {:.2}% 5xx p50 {} p99 {} ms",
        counts.answered(),
        counts.error_rate(),
        ms(0.5),
        ms(0.99)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_three_a_wait_within_bounds() {
        assert_eq!(
            plain_cadence(Duration::from_secs(60)),
            Duration::from_secs(20)
        );
        assert_eq!(
            plain_cadence(Duration::from_millis(1500)),
            Duration::from_secs(1)
        );
        assert_eq!(
            plain_cadence(Duration::from_secs(600)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_side_names_counts_rate_and_latency() {
        let counts = Counts {
            requests: 100,
            responses: [0, 99, 0, 0, 1],
            latency: vec![(1.0, 50), (10.0, 100)],
        };
        assert_eq!(
            side("canary", &counts),
            "canary 100 req 1.00% 5xx p50 1.0 p99 9.8 ms"
        );
    }
}
