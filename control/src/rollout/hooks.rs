//! The rollout's webhooks. Notification hooks (`--notify`) get every event, fire and forget:
//! each hook has its own sender thread, so a hook that is down or slow delays nothing but its
//! own queue, and a failure is a warning. Gate hooks (`--gate-step`, `--gate-promote`) are asked
//! and waited for: a 2xx approves, anything else refuses. A gate's redirect is an answer, not
//! a place to go: a gate behind a sign-in proxy answers 302 to its login page, whose 200 would
//! otherwise approve.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The body a notification hook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// The event's JSON object, as `rollout --json` prints it.
    Json,
    /// `{"text": "..."}`, one line for people (Slack's incoming webhooks, Mattermost, …).
    Slack,
}

/// What to do when a gate refuses too often or does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnGateFailure {
    /// Set the canary's weight to 0.
    Rollback,
    /// Stop, leaving the weight where it is.
    Stop,
}

/// An HTTP client that takes any status as an answer and gives up after `timeout`; with
/// `follow_redirects` false, a 3xx is the answer (ureq follows none with a limit of 0).
fn agent(timeout: Duration, follow_redirects: bool) -> ureq::Agent {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout));
    let builder = if follow_redirects {
        builder
    } else {
        builder.max_redirects(0)
    };
    builder.build().into()
}

/// One notification hook's queue.
struct Hook {
    url: String,
    queue: mpsc::Sender<String>,
    done: mpsc::Receiver<()>,
}

/// The notification hooks.
pub struct Notifier {
    hooks: Vec<Hook>,
    format: NotifyFormat,
    timeout: Duration,
    /// Notifications queued and not yet sent or given up, over all hooks.
    pending: Arc<AtomicUsize>,
}

impl Notifier {
    /// One sender thread per URL; each POST gives up after `timeout`.
    pub fn new(urls: &[String], format: NotifyFormat, timeout: Duration) -> Notifier {
        let pending = Arc::new(AtomicUsize::new(0));
        let hooks = urls
            .iter()
            .map(|url| {
                let (queue, bodies) = mpsc::channel::<String>();
                let (finished, done) = mpsc::channel();
                let agent = agent(timeout, true);
                let target = url.clone();
                let pending = Arc::clone(&pending);
                thread::spawn(move || {
                    for body in bodies {
                        let sent = agent
                            .post(&target)
                            .header("content-type", "application/json")
                            .send(&body);
                        match sent {
                            Ok(reply) if reply.status().is_success() => {}
                            Ok(reply) => eprintln!(
                                "canaryctl: warning: notification hook {target} answered {}",
                                reply.status().as_u16()
                            ),
                            Err(err) => eprintln!(
                                "canaryctl: warning: notification hook {target}: {err} \
                                 (the rollout goes on)"
                            ),
                        }
                        pending.fetch_sub(1, Ordering::SeqCst);
                    }
                    let _ = finished.send(());
                });
                Hook {
                    url: url.clone(),
                    queue,
                    done,
                }
            })
            .collect();
        Notifier {
            hooks,
            format,
            timeout,
            pending,
        }
    }

    /// Queues the event for every hook: `record` is its JSON object, `text` its line for people.
    pub fn send<T: Serialize>(&self, record: &T, text: &str) {
        let body = match self.format {
            NotifyFormat::Json => serde_json::to_string(record),
            NotifyFormat::Slack => serde_json::to_string(&serde_json::json!({ "text": text })),
        };
        let Ok(body) = body else {
            return;
        };
        for hook in &self.hooks {
            self.pending.fetch_add(1, Ordering::SeqCst);
            if hook.queue.send(body.clone()).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Gives the queued notifications up to one timeout to go out, then leaves the rest,
    /// saying how many were not sent.
    pub fn finish(self) {
        let deadline = Instant::now() + self.timeout;
        let Notifier { hooks, pending, .. } = self;
        let mut waiting = Vec::new();
        for Hook { url, queue, done } in hooks {
            drop(queue);
            waiting.push((url, done));
        }
        for (url, done) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                eprintln!("canaryctl: warning: notification hook {url} is still sending");
            }
        }
        let unsent = pending.load(Ordering::SeqCst);
        if unsent > 0 {
            eprintln!("canaryctl: warning: {unsent} notification(s) not sent before exit");
        }
    }
}

/// A gate hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAnswer {
    /// 2xx, with its status.
    Approved(u16),
    /// Another status (a redirect included), or the hook could not be reached: ask again
    /// later.
    Refused(String),
    /// No answer within the gate's timeout.
    TimedOut(String),
}

/// A gate hook.
pub struct Gate {
    /// Its URL.
    pub url: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl Gate {
    /// A gate at `url` that has `timeout` to answer each request.
    pub fn new(url: &str, timeout: Duration) -> Gate {
        Gate {
            url: url.to_string(),
            timeout,
            agent: agent(timeout, false),
        }
    }

    /// POSTs `context` as JSON and waits for the answer.
    pub fn ask<T: Serialize>(&self, context: &T) -> GateAnswer {
        let body = match serde_json::to_string(context) {
            Ok(body) => body,
            Err(err) => return GateAnswer::Refused(format!("cannot encode the context: {err}")),
        };
        match self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(&body)
        {
            Ok(reply) if reply.status().is_success() => {
                GateAnswer::Approved(reply.status().as_u16())
            }
            Ok(reply) if reply.status().is_redirection() => {
                let location = reply
                    .headers()
                    .get("location")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("nowhere");
                GateAnswer::Refused(format!(
                    "answered {} (a redirect to {location}; gates do not follow redirects: \
                     a sign-in page is no approval)",
                    reply.status().as_u16()
                ))
            }
            Ok(mut reply) => {
                let status = reply.status().as_u16();
                let text = reply
                    .body_mut()
                    .with_config()
                    .limit(512)
                    .read_to_string()
                    .unwrap_or_default();
                let text = text.trim();
                GateAnswer::Refused(if text.is_empty() {
                    format!("answered {status}")
                } else {
                    format!("answered {status}: {text}")
                })
            }
            Err(ureq::Error::Timeout(_)) => GateAnswer::TimedOut(format!(
                "no answer within {} (--gate-timeout)",
                humantime::format_duration(self.timeout)
            )),
            Err(err) => GateAnswer::Refused(format!("unreachable: {err}")),
        }
    }
}
