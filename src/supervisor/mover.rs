//! The mover: one thread per `ten move`, at the source. It drives the
//! phases of `supervisor::moving` against the target node's API (an admin
//! token for it comes with the command) and asks the supervisor to enter
//! each phase before taking it; the supervisor persists it, holds and stops
//! the instance, and forwards requests once it is moved.
//!
//! Blocking (HTTP to the target, reading the data dir): it never runs on
//! the supervisor's thread or an event loop. It writes nothing locally.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::moving::{MoveMsg, Phase};
use crate::cli::client::{self, Client, ClientError, Endpoint};
use crate::names::InstanceKey;
use crate::transfer::{self, tree::Entry, Peer};

/// How long one body of a transfer may take to be applied.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the supervisor may take to enter a phase (a stop waits up to
/// `stop_timeout`, at most 3600 s).
const PHASE_TIMEOUT: Duration = Duration::from_secs(3700);
/// How long the target may take to get the instance ready.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything a mover needs.
pub struct Job {
    pub key: InstanceKey,
    /// The target's API URL (`http://host:port`).
    pub to: String,
    /// An admin token of the target.
    pub token: String,
    /// The instance's data dir here.
    pub dir: PathBuf,
    /// The weight it gets on the target.
    pub weight: u8,
    /// The phase a previous attempt reached (`Copy` for a new move).
    pub from: Phase,
    pub tx: Sender<MoveMsg>,
    pub waker: Arc<mio::Waker>,
}

/// Starts the mover thread. Err: the thread could not be created.
pub fn start(job: Job) -> Result<(), String> {
    std::thread::Builder::new()
        .name("ten-move".into())
        .spawn(move || {
            let result = run(&job);
            let key = job.key.clone();
            if job.tx.send(MoveMsg::Ended { key, result }).is_ok() {
                let _ = job.waker.wake();
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the mover thread: {e}"))
}

fn run(job: &Job) -> Result<(), String> {
    let url = client::parse_url(&job.to).map_err(|e| e.to_string())?;
    let addr = resolve(&url.host, url.port)?;
    let target = Target {
        client: Client::new(Endpoint::Tcp(url), Some(job.token.clone())),
        key: job.key.clone(),
        to: job.to.clone(),
    };
    let there = target.state()?;
    if job.from.target_may_run() {
        // A re-run after an interruption: what does the target have?
        match there.as_deref() {
            Some("running") => {
                return job.phase(Phase::Moved, Some(addr), "it already runs there".into())
            }
            Some("starting" | "backoff") => {
                target.wait_ready()?;
                return job.phase(Phase::Moved, Some(addr), "it became ready there".into());
            }
            // Never started there: nothing ran since the last copy.
            None | Some("moved") => {}
            Some(other) => return Err(format!("{} is {other} on {}", job.key, job.to)),
        }
    } else {
        match there.as_deref() {
            None | Some("moved") => {}
            Some(s) => return Err(format!("{} already exists on {} ({s})", job.key, job.to)),
        }
        job.phase(Phase::Copy, Some(addr), String::new())?;
        let t = Instant::now();
        let sent = transfer::send(&job.dir, &mut target.peer())?;
        job.phase(Phase::Stop, None, summary(&sent, t.elapsed()))?;
    }
    job.phase(Phase::Sync, Some(addr), String::new())?;
    let t = Instant::now();
    let sent = transfer::send(&job.dir, &mut target.peer())?;
    job.phase(Phase::Start, None, summary(&sent, t.elapsed()))?;
    let t = Instant::now();
    if let Err(e) = target.spawn(job.weight) {
        // Refused outright (it does not exist there): safe to run it here
        // again. Anything else (a timeout) may have left it starting there.
        if target.state()?.is_none_or(|s| s == "moved") {
            job.phase(Phase::Sync, None, String::new())?;
        }
        return Err(e);
    }
    let detail = format!("ready there after {} ms", t.elapsed().as_millis());
    job.phase(Phase::Moved, Some(addr), detail)
}

impl Job {
    /// Asks the supervisor to enter `phase` and waits for its answer.
    fn phase(&self, phase: Phase, addr: Option<SocketAddr>, detail: String) -> Result<(), String> {
        let (done, answer) = mpsc::channel();
        let msg = MoveMsg::Phase {
            key: self.key.clone(),
            phase,
            addr,
            detail,
            done,
        };
        self.tx
            .send(msg)
            .map_err(|_| "the server is shutting down".to_string())?;
        let _ = self.waker.wake();
        answer
            .recv_timeout(PHASE_TIMEOUT)
            .map_err(|_| format!("no answer from the supervisor for phase {}", phase.as_str()))?
    }
}

/// "12 files, 10485760 bytes in 312 ms".
fn summary(sent: &transfer::Sent, took: Duration) -> String {
    format!(
        "{} files, {} bytes, {} deleted in {} ms",
        sent.files,
        sent.bytes,
        sent.deleted,
        took.as_millis()
    )
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// The target node's API, for one instance.
struct Target {
    client: Client,
    key: InstanceKey,
    to: String,
}

impl Target {
    fn path(&self) -> String {
        format!("/api/transfer/{}", self.key)
    }

    /// The instance's state on the target, None if it has none.
    fn state(&self) -> Result<Option<String>, String> {
        let list = self.client.get("/api/instances").map_err(|e| self.err(e))?;
        let name = self.key.to_string();
        Ok(list.as_array().and_then(|items| {
            items
                .iter()
                .find(|o| o["instance"] == name.as_str())
                .and_then(|o| o["state"].as_str().map(str::to_string))
        }))
    }

    /// Spawns it there with `weight` and waits until it is ready.
    fn spawn(&self, weight: u8) -> Result<(), String> {
        let body = json!({
            "service": self.key.service,
            "id": self.key.id,
            "weight": weight,
            "wait": true,
        });
        match self
            .client
            .call("POST", "/api/instances/spawn", Some(&body), READY_TIMEOUT)
        {
            Ok(_) => Ok(()),
            // Spawned by an earlier attempt that lost its answer.
            Err(ClientError::Api { status: 409, .. }) => self.wait_ready(),
            Err(e) => Err(self.err(e)),
        }
    }

    fn wait_ready(&self) -> Result<(), String> {
        let end = Instant::now() + READY_TIMEOUT;
        loop {
            match self.state()?.as_deref() {
                Some("running") => return Ok(()),
                Some("starting" | "backoff") if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => {
                    return Err(format!(
                        "{} did not become ready on {} (state {})",
                        self.key,
                        self.to,
                        other.unwrap_or("none")
                    ))
                }
            }
        }
    }

    fn peer(&self) -> HttpPeer<'_> {
        HttpPeer { target: self }
    }

    fn err(&self, e: ClientError) -> String {
        format!("{}: {}", self.to, crate::cli::chain(&e))
    }
}

/// `transfer::Peer` over the target's `/api/transfer/{svc:id}`.
struct HttpPeer<'a> {
    target: &'a Target,
}

impl Peer for HttpPeer<'_> {
    fn manifest(&mut self) -> Result<Vec<Entry>, String> {
        let t = self.target;
        let v: Value = t.client.get(&t.path()).map_err(|e| t.err(e))?;
        serde_json::from_value(v["entries"].clone())
            .map_err(|e| format!("{}: the manifest does not parse: {e}", t.to))
    }

    fn send(&mut self, body: &[u8]) -> Result<(), String> {
        let t = self.target;
        let resp = t
            .client
            .send("POST", &t.path(), Some(body), BODY_TIMEOUT)
            .map_err(|e| t.err(e))?;
        client::decode_json(&t.to, resp)
            .map(|_| ())
            .map_err(|e| t.err(e))
    }
}
