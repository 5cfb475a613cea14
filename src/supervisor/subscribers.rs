//! Server-Sent Events subscribers: `/api/events` (lifecycle events and
//! instance changes) and `/api/logs/stream` (live log lines).
//!
//! Owned by the supervisor thread. Each message is framed here as one SSE
//! message and sent to the subscriber's front loop, which relays it as a
//! chunk. A subscriber that went away is removed by `Unsubscribe`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::msg::{Reply, ReplyTo, Subscription};
use super::snapshot::InstanceView;
use crate::names::InstanceKey;

struct Subscriber {
    id: u64,
    what: Subscription,
    to: ReplyTo,
}

/// What was last announced of an instance, to send only changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: &'static str,
    health: &'static str,
    weight: u8,
    pid: Option<u32>,
    restarts: u32,
}

#[derive(Default)]
pub struct Subscribers {
    list: Vec<Subscriber>,
    seen: HashMap<String, Seen>,
}

/// Frames one SSE message. `data` is one line of JSON (no newlines).
pub fn sse(event: &str, data: &serde_json::Value) -> Vec<u8> {
    format!("event: {event}\ndata: {data}\n\n").into_bytes()
}

impl Subscribers {
    /// Takes a subscription and confirms it with a first comment message.
    /// Everything is announced again at the next `changes`, so the new
    /// subscriber learns every instance's current state.
    pub fn add(&mut self, id: u64, what: Subscription, to: ReplyTo) {
        to.clone().send(Reply::Stream(b": subscribed\n\n".to_vec()));
        self.list.push(Subscriber { id, what, to });
        self.seen.clear();
    }

    pub fn remove(&mut self, id: u64) {
        self.list.retain(|s| s.id != id);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A lifecycle line ("spawned pid 12 port 30001", "exited with code 1, ...")
    /// written to the instance log at `time`.
    pub fn lifecycle(&self, key: &InstanceKey, time: &str, message: &str) {
        if self.list.is_empty() {
            return;
        }
        let data = json!({
            "instance": key.to_string(),
            "service": key.service,
            "id": key.id,
            "time": time,
            "message": message,
        });
        let bytes = sse("lifecycle", &data);
        for s in &self.list {
            if let Subscription::Events { tenant } = &s.what {
                if tenant.as_ref().is_none_or(|t| *t == key.id) {
                    s.to.clone().send(Reply::Stream(bytes.clone()));
                }
            }
        }
        let line = json!({
            "instance": key.to_string(),
            "time": data["time"],
            "stream": "ten",
            "line": message,
        });
        self.log_line(key, "ten", message, &line);
    }

    /// One line of an instance's output, written to its log at `time` (the
    /// live copy carries the file's time: see `ten logs -f`).
    pub fn output(&self, key: &InstanceKey, time: &str, stream: &str, text: &str) {
        if self.list.is_empty() {
            return;
        }
        let line = json!({
            "instance": key.to_string(),
            "time": time,
            "stream": stream,
            "line": text,
        });
        self.log_line(key, stream, text, &line);
    }

    fn log_line(&self, key: &InstanceKey, stream: &str, text: &str, line: &serde_json::Value) {
        let mut bytes = None;
        for s in &self.list {
            let Subscription::Logs {
                service,
                id,
                search,
                stream: want,
                tenant,
            } = &s.what
            else {
                continue;
            };
            let matches = service.as_ref().is_none_or(|v| *v == key.service)
                && id.as_ref().is_none_or(|v| *v == key.id)
                && tenant.as_ref().is_none_or(|v| *v == key.id)
                && want.as_ref().is_none_or(|v| v == stream)
                && search.as_ref().is_none_or(|v| text.contains(v.as_str()));
            if matches {
                let b = bytes.get_or_insert_with(|| sse("log", line));
                s.to.clone().send(Reply::Stream(b.clone()));
            }
        }
    }

    /// After a publish: an `instance` event (the view itself; the front
    /// makes its JSON) for every instance whose state, health, weight, pid
    /// or restart count changed, and `removed` for those that are gone.
    pub fn changes(&mut self, instances: &[Arc<InstanceView>]) {
        let mut current = HashMap::with_capacity(instances.len());
        for v in instances {
            let seen = Seen {
                state: v.state.as_str(),
                health: v.health.as_str(),
                weight: v.weight,
                pid: v.pid,
                restarts: v.restarts,
            };
            let name = v.key();
            if self.seen.get(&name) != Some(&seen) {
                let view = v.clone();
                self.send_events(&v.id, || Reply::Instance(view.clone()));
            }
            current.insert(name, seen);
        }
        for name in self.seen.keys() {
            if !current.contains_key(name) {
                if let Ok(key) = InstanceKey::parse(name) {
                    let data = json!({ "instance": name, "service": key.service, "id": key.id });
                    let bytes = sse("removed", &data);
                    self.send_events(&key.id, || Reply::Stream(bytes.clone()));
                }
            }
        }
        self.seen = current;
    }

    /// Sends `reply()` to every events subscriber that may see instance id `id`.
    fn send_events(&self, id: &str, reply: impl Fn() -> Reply) {
        for s in &self.list {
            if let Subscription::Events { tenant } = &s.what {
                if tenant.as_ref().is_none_or(|t| t == id) {
                    s.to.clone().send(reply());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::State;
    use std::sync::mpsc::channel;

    fn reply_to(waker: &Arc<mio::Waker>) -> (ReplyTo, std::sync::mpsc::Receiver<(usize, Reply)>) {
        let (tx, rx) = channel();
        (
            ReplyTo {
                tx,
                waker: waker.clone(),
                conn: 7,
            },
            rx,
        )
    }

    fn texts(rx: &std::sync::mpsc::Receiver<(usize, Reply)>) -> Vec<String> {
        rx.try_iter()
            .map(|(_, r)| match r {
                Reply::Stream(b) => String::from_utf8(b).unwrap(),
                Reply::Instance(v) => format!("instance {} {}", v.key(), v.state.as_str()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn tenants_see_only_their_own_events_and_logs() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(1)).unwrap());
        let mut subs = Subscribers::default();
        let (admin, admin_rx) = reply_to(&waker);
        let (alice, alice_rx) = reply_to(&waker);
        let (logs, logs_rx) = reply_to(&waker);
        subs.add(1, Subscription::Events { tenant: None }, admin);
        subs.add(
            2,
            Subscription::Events {
                tenant: Some("alice".into()),
            },
            alice,
        );
        subs.add(
            3,
            Subscription::Logs {
                service: Some("notes".into()),
                id: None,
                search: Some("boom".into()),
                stream: None,
                tenant: None,
            },
            logs,
        );
        let a = InstanceKey::new("notes", "alice").unwrap();
        let b = InstanceKey::new("notes", "bob").unwrap();
        subs.lifecycle(&a, "2026-01-01T00:00:00.000Z", "spawned pid 1 port 30000");
        subs.lifecycle(&b, "2026-01-01T00:00:00.000Z", "spawned pid 2 port 30001");
        subs.output(&b, "2026-01-01T00:00:01.234Z", "stderr", "boom: it failed");
        subs.output(&b, "2026-01-01T00:00:00.000Z", "stdout", "all fine");
        let admin_msgs = texts(&admin_rx);
        assert_eq!(admin_msgs.len(), 3, "{admin_msgs:?}");
        assert!(admin_msgs[0].starts_with(": subscribed"));
        let alice_msgs = texts(&alice_rx);
        assert_eq!(alice_msgs.len(), 2);
        assert!(
            alice_msgs[1].contains("notes:alice")
                && alice_msgs[1].starts_with("event: lifecycle\n")
        );
        let log_msgs = texts(&logs_rx);
        assert_eq!(log_msgs.len(), 2, "{log_msgs:?}");
        assert!(
            log_msgs[1].starts_with("event: log\ndata: {")
                && log_msgs[1].contains("boom: it failed")
        );
        // The live copy carries the time the line was written to the file.
        assert!(
            log_msgs[1].contains(r#""time":"2026-01-01T00:00:01.234Z""#),
            "{}",
            log_msgs[1]
        );
        subs.remove(1);
        subs.lifecycle(&a, "2026-01-01T00:00:00.000Z", "stopped");
        assert!(texts(&admin_rx).is_empty());
    }

    #[test]
    fn changes_announce_only_what_changed() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(1)).unwrap());
        let mut subs = Subscribers::default();
        let (to, rx) = reply_to(&waker);
        subs.add(1, Subscription::Events { tenant: None }, to);
        let (alice_to, alice_rx) = reply_to(&waker);
        subs.add(
            2,
            Subscription::Events {
                tenant: Some("alice".into()),
            },
            alice_to,
        );
        let mut v = InstanceView::for_test("api", "prod", State::Running, 30000);
        v.pid = Some(5);
        subs.changes(&[Arc::new(v.clone())]);
        // Only the uptime moved (a later publish): nothing to announce.
        v.started_at = Some(std::time::SystemTime::UNIX_EPOCH);
        subs.changes(&[Arc::new(v.clone())]);
        v.state = State::Stopping;
        subs.changes(&[Arc::new(v.clone())]);
        subs.changes(&[]);
        let msgs = texts(&rx);
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert_eq!(msgs[1], "instance api:prod running");
        assert_eq!(msgs[2], "instance api:prod stopping");
        assert!(msgs[3].starts_with("event: removed\n"), "{msgs:?}");
        // A tenant hears of its own id only.
        assert_eq!(texts(&alice_rx), [": subscribed\n\n"]);
    }
}
