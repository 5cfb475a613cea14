//! `GET` and `POST /api/transfer/{svc:id}` (admin only): the receiving end
//! of `ten move`. GET answers the manifest of this node's copy of the
//! instance's data dir (`{data_dir}/{service}/{id}`); POST applies one body
//! of records in the `transfer::frame` format to it. Both are refused (409)
//! while the instance exists here with a process that may write there: a
//! data dir never has two writers.
//!
//! `POST /api/instances/{svc:id}/move` (admin only) starts a move at the
//! source: `{"to": URL, "token": T}`, or `{"flipped": true}` once the edge
//! sends the instance's host to its new node.
//!
//! The disk work runs on the offload `Transfer` lane, never on the loop;
//! paths outside the data dir, bad sizes and bad checksums are refused (400)
//! before anything is written.

use super::offload::{Job, Lane};
use super::params::known_service;
use super::{Action, Answer, Response};
use crate::names::InstanceKey;
use crate::supervisor::{Command, CommandError, Reply, Snapshot};
use crate::transfer::{frame, tree};

/// The action for `method` on `/api/transfer/{segment}`.
pub fn answer(
    method: &str,
    segment: &str,
    body: &[u8],
    snap: &Snapshot,
    data_dir: &std::path::Path,
) -> Answer<Action> {
    let key = InstanceKey::parse(segment).map_err(|e| Response::error(400, &e.to_string()))?;
    known_service(snap, &key.service)?;
    if let Some(view) = snap.get(&key.service, &key.id) {
        if !receivable(view.state) {
            return Err(Response::error(
                409,
                &format!(
                    "{key} is {} on this node: its data dir has a writer here",
                    view.state.as_str()
                ),
            ));
        }
    }
    let dir = crate::state::layout::instance_dir(data_dir, &key.service, &key.id);
    let job = if method == "POST" {
        let body = body.to_vec();
        Job::new(Lane::Transfer, move || receive(&dir, &body))
    } else {
        Job::new(Lane::Transfer, move || match tree::manifest(&dir) {
            Ok(entries) => json_body(&serde_json::json!({
                "instance": key.to_string(),
                "entries": entries,
            })),
            Err(e) => Reply::Error(CommandError::Internal(format!(
                "read {}: {e}",
                dir.display()
            ))),
        })
    };
    Ok(Action::Offload {
        job,
        success_status: 200,
    })
}

/// Whether data may be written for an instance in `state` here: only when
/// it was moved away (no process of it runs here).
fn receivable(state: crate::supervisor::State) -> bool {
    state == crate::supervisor::State::Moved
}

/// `POST /api/instances/{svc:id}/move`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    flipped: bool,
}

/// The supervisor command for a move request, and the status of success.
pub fn move_command(key: InstanceKey, body: &[u8]) -> Answer<(Command, u16)> {
    let body: MoveBody = super::params::parse_body(body)?;
    match body {
        MoveBody {
            flipped: true,
            to: None,
            token: None,
        } => Ok((Command::MoveFlipped { key }, 200)),
        MoveBody {
            flipped: false,
            to: Some(to),
            token: Some(token),
        } => {
            crate::cli::client::parse_url(&to)
                .map_err(|e| Response::error(400, &format!("`to`: {e}")))?;
            if token.is_empty() || token.len() > 256 || token.bytes().any(|b| !b.is_ascii_graphic())
            {
                return Err(Response::error(
                    400,
                    "`token` must be the target's admin token",
                ));
            }
            Ok((Command::Move { key, to, token }, 202))
        }
        _ => Err(Response::error(
            400,
            "expected {\"to\": URL, \"token\": T} or {\"flipped\": true}",
        )),
    }
}

/// Decodes and applies one body. Blocks: Transfer lane only.
fn receive(dir: &std::path::Path, body: &[u8]) -> Reply {
    let records = match frame::decode(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(CommandError::Refused(e.to_string())),
    };
    match tree::apply(dir, &records) {
        Ok(done) => json_body(&serde_json::json!({
            "records": done.records,
            "bytes": done.bytes,
        })),
        Err(tree::ApplyError::Io { path, source }) => Reply::Error(CommandError::Internal(
            format!("write {}: {source}", path.display()),
        )),
        Err(e) => Reply::Error(CommandError::Refused(e.to_string())),
    }
}

fn json_body(v: &serde_json::Value) -> Reply {
    Reply::Body {
        content_type: "application/json",
        body: Response::json(200, v).body,
    }
}
