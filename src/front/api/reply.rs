//! Supervisor replies in HTTP terms: the one place a `CommandError` gets
//! its status and a `Done` its JSON body. The API and the proxy both ask
//! here; they differ only in how a failed exec reads (`Via`).

use std::time::SystemTime;

use serde_json::{json, Value};

use super::instance::instance_json;
use super::Response;
use crate::supervisor::{CommandError, Done, Reply};

/// Who relays the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The management API: a failed exec is the caller's command failing.
    Api,
    /// A proxied request that autospawned: a failed exec is the upstream
    /// side failing.
    Proxy,
}

/// The HTTP status for `e`.
pub fn error_status(e: &CommandError, via: Via) -> u16 {
    match e {
        CommandError::UnknownInstance(_) | CommandError::UnknownToken(_) => 404,
        CommandError::UnknownService(_) | CommandError::BadConfig(_) | CommandError::Refused(_) => {
            400
        }
        CommandError::Exists(_) | CommandError::MaxInstances { .. } | CommandError::Conflict(_) => {
            409
        }
        CommandError::SpawnFailed(_) => match via {
            Via::Api => 400,
            Via::Proxy => 502,
        },
        CommandError::NoFreePort { .. }
        | CommandError::ShuttingDown
        | CommandError::Failed { .. }
        | CommandError::Exited { .. }
        | CommandError::Stopping
        | CommandError::Stopped
        | CommandError::Unavailable(_) => 503,
        CommandError::TimedOut { .. } => 504,
        CommandError::Internal(_) => 500,
        // An app's visitors are not told about our disk.
        CommandError::Storage { .. } if via == Via::Proxy => 503,
        CommandError::Storage { full: true, .. } => 507,
        CommandError::Storage { full: false, .. } => 500,
    }
}

/// The JSON body for what a command did.
pub fn done_json(done: &Done, now: SystemTime) -> Value {
    match done {
        Done::Instance(view) => instance_json(view, now),
        Done::Stopped(key) => json!({ "stopped": key.to_string() }),
        Done::Routed { from, to } => json!({
            "service": from.service,
            "from": instance_json(from, now),
            "to": instance_json(to, now),
        }),
        Done::Reloaded => json!({ "reloaded": true }),
        Done::Revoked {
            record,
            removed_api_token,
        } => json!({
            "revoked": record.public_json(None),
            "removed_api_token": removed_api_token,
        }),
        Done::Nothing => json!({}),
    }
}

/// The response for a supervisor reply to an `Action::Ask`.
pub fn reply_response(reply: Reply, success_status: u16) -> Response {
    match reply {
        Reply::Stream(_) | Reply::Instance(_) => Response::error(500, "unexpected stream message"),
        Reply::Body { content_type, body } => Response {
            status: success_status,
            content_type,
            headers: Vec::new(),
            body,
        },
        // 204 (a stop, as the original tenement answered it): no body.
        Reply::Done(_) if success_status == 204 => Response {
            status: 204,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
        },
        Reply::Done(done) => Response::json(success_status, &done_json(&done, SystemTime::now())),
        Reply::Ready(addr) => Response::json(success_status, &json!({ "ready": addr.to_string() })),
        Reply::Error(e) => Response::error(error_status(&e, Via::Api), &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::InstanceKey;

    #[test]
    fn a_failed_exec_is_the_command_via_the_api_and_the_upstream_via_the_proxy() {
        let e = CommandError::SpawnFailed("cannot execute".into());
        assert_eq!(error_status(&e, Via::Api), 400);
        assert_eq!(error_status(&e, Via::Proxy), 502);
        let key = InstanceKey {
            service: "api".into(),
            id: "a".into(),
        };
        for e in [
            CommandError::UnknownInstance(key.clone()),
            CommandError::Exists(key),
            CommandError::ShuttingDown,
        ] {
            assert_eq!(error_status(&e, Via::Api), error_status(&e, Via::Proxy));
        }
    }

    #[test]
    fn a_change_that_could_not_be_saved_is_507_when_the_disk_is_full_else_500() {
        let state = |errno: i32| crate::state::StateError::Io {
            path: "/srv/ten/.tenement/.state.tmp.1.2".into(),
            op: "write",
            source: std::io::Error::from_raw_os_error(errno),
        };
        for (errno, status) in [(libc::ENOSPC, 507), (libc::EDQUOT, 507), (libc::EIO, 500)] {
            let e = CommandError::storage("weight api:a", &state(errno));
            assert_eq!(error_status(&e, Via::Api), status, "errno {errno}");
            assert_eq!(error_status(&e, Via::Proxy), 503);
            let r = reply_response(Reply::Error(e), 200);
            assert_eq!(r.status, status);
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let text = body["error"].as_str().unwrap();
            assert!(
                text.starts_with("weight api:a refused: write /srv/ten/.tenement/.state.tmp.1.2: "),
                "{text}"
            );
            assert!(
                text.ends_with(&format!("(os error {errno})")),
                "the OS error is in the answer: {text}"
            );
        }
    }

    #[test]
    fn errors_answer_with_their_status_and_message() {
        let e = CommandError::NoFreePort {
            lo: 30000,
            hi: 30010,
        };
        let r = reply_response(Reply::Error(e), 200);
        assert_eq!(r.status, 503);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "no free port in 30000-30010");
        let r = reply_response(Reply::Done(Done::Reloaded), 200);
        assert_eq!(r.status, 200);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({ "reloaded": true }));
    }
}
