//! Moving an instance's data dir to another node: the wire format
//! (`frame.rs`), the data dir on disk (`tree.rs`: manifest, plan, apply),
//! and one pass of sending (`send`, here).
//!
//! A pass asks the target for its manifest of the instance's data dir,
//! plans what differs (size, mtime, mode, kind; what the source lacks is
//! deleted) and sends it in bodies of at most `BODY_MAX` bytes. The first
//! pass, while the instance runs, sends nearly everything; the second, once
//! it is stopped, only what changed since. Nothing here knows about HTTP:
//! the caller's `Peer` carries the bodies.

pub mod frame;
pub mod tree;

use std::io;
use std::path::Path;

use frame::{Kind, Record};
use tree::Entry;

/// The largest body sent: the API reads at most 1 MiB per request.
pub const BODY_MAX: usize = 1024 * 1024;
/// The largest piece of a file in one record.
const PIECE_MAX: usize = BODY_MAX - 8 * 1024;

/// The other end of a transfer.
pub trait Peer {
    /// The target's manifest of the instance's data dir.
    fn manifest(&mut self) -> Result<Vec<Entry>, String>;
    /// Applies one body of records on the target.
    fn send(&mut self, body: &[u8]) -> Result<(), String>;
}

/// What one pass sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Files sent whole.
    pub files: u64,
    /// Files that changed while being read (sent again by the next pass).
    pub changed: u64,
    pub deleted: u64,
    pub bytes: u64,
    pub bodies: u64,
}

/// One pass from `root` to `peer`. Blocks for the whole copy.
pub fn send(root: &Path, peer: &mut dyn Peer) -> Result<Sent, String> {
    let ours = tree::manifest(root).map_err(|e| format!("read {}: {e}", root.display()))?;
    let theirs = peer.manifest()?;
    let plan = tree::plan(&ours, &theirs);
    let mut sent = Sent {
        deleted: plan.delete.len() as u64,
        ..Sent::default()
    };
    let mut body = Vec::with_capacity(BODY_MAX);
    tree::encode_tree_changes(&mut body, &plan);
    let mut buf = Vec::with_capacity(PIECE_MAX);
    for f in &plan.files {
        let path = root.join(&f.path);
        let mut offset = 0u64;
        loop {
            let room = BODY_MAX.saturating_sub(body.len() + frame::overhead(&f.path));
            if room
                < PIECE_MAX
                    .min(usize::try_from(f.size - offset).unwrap_or(PIECE_MAX))
                    .max(1)
            {
                flush(peer, &mut body, &mut sent)?;
                continue;
            }
            let want = usize::try_from(f.size - offset)
                .unwrap_or(usize::MAX)
                .min(room)
                .min(PIECE_MAX);
            match tree::read_piece(&path, offset, want, &mut buf) {
                Ok(()) => {}
                // Deleted while we read: the next pass deletes it there too.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    sent.changed += 1;
                    break;
                }
                Err(e) => return Err(format!("read {}: {e}", path.display())),
            }
            if buf.len() < want {
                // It shrank while we read: the next pass sends it again.
                sent.changed += 1;
                break;
            }
            frame::encode(
                &mut body,
                &Record {
                    kind: Kind::File,
                    path: f.path.clone(),
                    mode: f.mode,
                    size: f.size,
                    offset,
                    mtime_ns: f.mtime_ns,
                    data: &buf,
                },
            );
            offset += buf.len() as u64;
            sent.bytes += buf.len() as u64;
            if offset >= f.size {
                sent.files += 1;
                break;
            }
        }
    }
    if !body.is_empty() {
        flush(peer, &mut body, &mut sent)?;
    }
    Ok(sent)
}

fn flush(peer: &mut dyn Peer, body: &mut Vec<u8>, sent: &mut Sent) -> Result<(), String> {
    peer.send(body)?;
    body.clear();
    sent.bodies += 1;
    Ok(())
}

#[cfg(test)]
mod tests;
