//! The management API (`/api/*`), `/health`, `/metrics` and the dashboard on
//! the root domain and on `ten.sock`.
//!
//! Pure request -> action: a handler either answers from the snapshot at once
//! or names the supervisor command whose reply becomes the answer. The
//! event loop owns the sockets; nothing here blocks or does socket I/O.
//! The two answers that read many files, `/api/logs` (log files) and
//! `.../storage` (walking a data dir), are `Action::Offload` jobs that run on
//! a helper thread (`offload.rs`); storage answers from a recent measurement
//! at once.
//!
//! `HEAD` is accepted wherever `GET` is, except on the event streams, and
//! answers the same head without the body.
//!
//! Order of checks for every request: path (404), method (405 with `Allow`),
//! token (401 with `WWW-Authenticate: Bearer`), principal (403), then the
//! request itself (400, 404). A tenant token asking about another tenant's
//! instance gets 403 whether or not that instance exists, so it learns
//! nothing about other tenants.
//!
//! This file owns the request and response types, the endpoint table and the
//! dispatch from endpoint to action. `auth.rs` says who is asking and what a
//! tenant may touch, `params.rs` checks bodies, path segments and query
//! parameters, `storage.rs` measures data dirs; `logs.rs`, `metrics.rs` and
//! `dashboard.rs` and `export.rs` build those answers; `transfer.rs`
//! receives a moved instance's data dir; `offload.rs` runs the blocking ones.
//! Tests are in `tests.rs`.

pub mod allowed;
mod auth;
pub mod dashboard;
pub mod export;
pub mod instance;
pub mod logs;
pub mod metrics;
pub mod offload;
mod params;
pub mod reply;
pub mod storage;
pub mod throttle;
mod transfer;
pub mod url;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::bounds;
use crate::names::InstanceKey;
use crate::state::{Principal, TokenStore};
use crate::supervisor::{Command, InstanceView, Reply, Snapshot};
use auth::{admin_only, may_see};
use instance::InstanceJson;
use params::{
    bounded, existing_instance, known_service, log_query, parse_body, path_instance, valid_id,
    weight, DeployBody, RouteBody, SpawnBody, WeightBody,
};
pub use reply::reply_response;

/// An API request, already read whole (bodies are capped by the loop).
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    /// The query string without `?` (may be empty).
    pub query: &'a str,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
    /// Came in on `ten.sock`: no token needed, file permissions guard it.
    pub local: bool,
    /// The client's address (meaningless when `local`): the TCP peer, or
    /// the one a peer in `trusted_proxies` forwarded for
    /// (`http::client_address`). Failed authentications are counted per it.
    pub client: std::net::IpAddr,
}

/// A complete response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (e.g. WWW-Authenticate, Retry-After).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(&serde_json::json!({ "error": message }))
                .map(|mut b| {
                    b.push(b'\n');
                    b
                })
                .expect("a json object with a string serialises"),
        }
    }

    /// `body` as is, with `content_type`.
    pub fn text(status: u16, content_type: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds one header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// `value` as JSON with `status`.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let mut body = ShortCopies(Vec::new());
        serde_json::to_writer(&mut body, value).expect("a json value serialises");
        let mut body = body.0;
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }
}

/// A `Vec` written to in the short pieces a JSON serializer writes (a
/// quote, a key, a number) without a `memcpy` call for each: the static
/// musl build's is slow to start, and a list of 10,000 instances is a
/// million such pieces.
struct ShortCopies(Vec<u8>);

impl std::io::Write for ShortCopies {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        crate::http::append::append(&mut self.0, bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        crate::http::append::append(&mut self.0, bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the loop does with a request.
pub enum Action {
    Respond(Response),
    /// Send `cmd` to the supervisor; turn its reply into the response with
    /// `reply_response(reply, success_status)`.
    Ask {
        cmd: Command,
        success_status: u16,
    },
    /// Answer `200 text/event-stream` and relay the supervisor's messages
    /// for this subscription until the client goes away, or until the token
    /// it was opened with (the id given; None on `ten.sock`) is revoked:
    /// the loop checks `Api::token_valid`.
    Stream(crate::supervisor::msg::Subscription, Option<String>),
    /// Blocking work: `job.submit(reply_to)`, then turn its reply into the
    /// response like `Ask`'s, with `reply_response(reply, success_status)`.
    Offload {
        job: offload::Job,
        success_status: u16,
    },
}

/// One loop's API state: the token store (reloaded when its file changes),
/// where to read logs and storage from, and what to show as the config.
pub struct Api {
    pub tokens: TokenStore,
    /// The data dir: instance data dirs and `.tenement/logs` are read from here.
    pub data_dir: PathBuf,
    /// Front-wide counters for `/metrics`, shared by every loop.
    pub front: std::sync::Arc<crate::front::stats::FrontStats>,
    /// Failed authentications per client address, shared by every loop.
    pub throttle: std::sync::Arc<throttle::Throttle>,
    /// Asks of `/api/tls/allowed` per client address, shared by every loop.
    pub asks: std::sync::Arc<allowed::AskLimit>,
    /// The certificates in use, with `[settings.tls]`.
    pub tls: Option<std::sync::Arc<crate::front::tls::Certs>>,
    /// Upgrades in place: their status, and how to ask for one.
    pub upgrade: Option<std::sync::Arc<crate::upgrade::Control>>,
}

/// An endpoint, with the raw `{svc:id}` path segment where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Dashboard,
    Health,
    Metrics,
    List,
    Spawn,
    Stop(&'a str),
    Restart(&'a str),
    Weight(&'a str),
    InstanceHealth(&'a str),
    Storage(&'a str),
    Deploy,
    Route,
    Logs,
    LogsStream,
    Events,
    Config,
    Reload,
    Upgrade,
    TlsStatus,
    Tls,
    TlsAllowed,
    Tokens,
    RevokeToken(&'a str),
    Export,
    Transfer(&'a str),
    Move(&'a str),
}

const GET: &[&str] = &["GET"];
const POST: &[&str] = &["POST"];

/// The endpoint for a path and the methods it allows. None: no such path.
fn route(path: &str) -> Option<(Endpoint<'_>, &'static [&'static str])> {
    use Endpoint::*;
    Some(match path {
        "/" => (Dashboard, GET),
        "/health" => (Health, GET),
        "/metrics" => (Metrics, GET),
        "/api/instances" => (List, GET),
        "/api/instances/spawn" => (Spawn, POST),
        "/api/deploy" => (Deploy, POST),
        "/api/route" => (Route, POST),
        "/api/logs" => (Logs, GET),
        "/api/logs/stream" => (LogsStream, GET),
        "/api/events" => (Events, GET),
        "/api/config" => (Config, GET),
        "/api/reload" => (Reload, POST),
        "/api/upgrade" => (Upgrade, &["GET", "POST"]),
        "/api/tls/status" => (TlsStatus, GET),
        "/api/tls" => (Tls, GET),
        "/api/tls/allowed" => (TlsAllowed, GET),
        "/api/tokens" => (Tokens, GET),
        "/api/export" => (Export, GET),
        _ if path.starts_with("/api/transfer/") => {
            let seg = &path["/api/transfer/".len()..];
            if seg.is_empty() || seg.contains('/') {
                return None;
            }
            (Transfer(seg), &["GET", "POST"])
        }
        _ if path.starts_with("/api/tokens/") => {
            let id = &path["/api/tokens/".len()..];
            if id.is_empty() || id.contains('/') {
                return None;
            }
            (RevokeToken(id), &["DELETE"])
        }
        _ => {
            let rest = path.strip_prefix("/api/instances/")?;
            match rest.split_once('/') {
                None if !rest.is_empty() => (Stop(rest), &["DELETE"]),
                Some((seg, action)) if !seg.is_empty() => match action {
                    "restart" => (Restart(seg), POST),
                    "weight" => (Weight(seg), &["PUT"]),
                    "health" => (InstanceHealth(seg), GET),
                    "storage" => (Storage(seg), GET),
                    "move" => (Move(seg), POST),
                    _ => return None,
                },
                _ => return None,
            }
        }
    })
}

/// Weight a deploy sets when the body names none.
const DEPLOY_WEIGHT: u8 = 100;
/// How long a deploy waits for health when the body names no timeout.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60);

/// Early exits of the handlers: every error is a finished response.
type Answer<T> = Result<T, Response>;

impl Api {
    /// An API for one loop. `GET /api/config` and `metrics_public` come from
    /// the snapshot, so they follow reloads.
    pub fn new(data_dir: PathBuf) -> Api {
        metrics::mark_start();
        Api {
            tokens: TokenStore::new(&data_dir),
            data_dir,
            front: Default::default(),
            throttle: Default::default(),
            asks: Default::default(),
            tls: None,
            upgrade: None,
        }
    }

    /// Handles one request for the management surface. Never blocks on the
    /// network; may stat the tokens file and read a few small `/proc` files.
    pub fn handle(&mut self, req: &ApiRequest<'_>, snap: &Snapshot) -> Action {
        self.handle_at(req, snap, SystemTime::now())
    }

    /// `handle` with the wall clock passed in (uptimes and `since=` use it).
    pub fn handle_at(&mut self, req: &ApiRequest<'_>, snap: &Snapshot, now: SystemTime) -> Action {
        match self.dispatch(req, snap, now) {
            Ok(action) => action,
            Err(response) => Action::Respond(response),
        }
    }

    fn dispatch(
        &mut self,
        req: &ApiRequest<'_>,
        snap: &Snapshot,
        now: SystemTime,
    ) -> Answer<Action> {
        let Some((endpoint, allowed)) = route(req.path) else {
            return Err(Response::error(
                404,
                &format!("no such endpoint: {}", req.path),
            ));
        };
        // RFC 9110 9.3.2: HEAD is GET without the body (the loop leaves the
        // body out); the event streams never end, so they have no HEAD.
        let head_too =
            allowed == GET && !matches!(endpoint, Endpoint::LogsStream | Endpoint::Events);
        let method_ok = allowed.contains(&req.method) || (head_too && req.method == "HEAD");
        if !method_ok {
            let message = format!("method {} not allowed on {}", req.method, req.path);
            let allow = if head_too {
                "GET, HEAD".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(Response::error(405, &message).with_header("Allow", allow));
        }
        use Endpoint::*;
        match endpoint {
            Dashboard => return Ok(respond(dashboard::response())),
            Health => {
                return Ok(respond(Response::text(
                    200,
                    "text/plain; charset=utf-8",
                    "ok",
                )))
            }
            Metrics if snap.metrics_public => return Ok(respond(self.metrics(snap, now))),
            TlsAllowed => {
                // No token: Caddy asks before each new certificate.
                if !req.local {
                    self.asks
                        .take(req.client, std::time::Instant::now())
                        .map_err(allowed::too_many)?;
                }
                return Ok(respond(allowed::answer(snap, req.query)));
            }
            _ => {}
        }
        let (who, token_id) = self.authenticate(req)?;
        let action = match endpoint {
            Dashboard | Health | TlsAllowed => unreachable!("answered before authentication"),
            Metrics => {
                admin_only(&who)?;
                respond(self.metrics(snap, now))
            }
            List => {
                let list: Vec<InstanceJson> = snap
                    .instances
                    .iter()
                    .filter(|v| may_see(&who, v))
                    .map(|v| InstanceJson::new(v, now))
                    .collect();
                respond(Response::json(200, &list))
            }
            Spawn => {
                admin_only(&who)?;
                let body: SpawnBody = parse_body(req.body)?;
                let key = InstanceKey {
                    service: known_service(snap, &body.service)?,
                    id: valid_id(&body.id)?,
                };
                let weight = body.weight.map(weight).transpose()?;
                ask(
                    Command::Spawn {
                        key,
                        weight,
                        wait: body.wait,
                    },
                    201,
                )
            }
            Stop(seg) => {
                admin_only(&who)?;
                let (key, _) = path_instance(seg, &who, snap)?;
                // 204 without a body, as the original tenement answered.
                ask(Command::Stop { key }, 204)
            }
            Restart(seg) => {
                let (key, _) = path_instance(seg, &who, snap)?;
                ask(Command::Restart { key }, 200)
            }
            Weight(seg) => {
                admin_only(&who)?;
                let (key, _) = path_instance(seg, &who, snap)?;
                let body: WeightBody = parse_body(req.body)?;
                ask(
                    Command::Weight {
                        key,
                        weight: weight(body.weight)?,
                    },
                    200,
                )
            }
            InstanceHealth(seg) => {
                let (_, view) = path_instance(seg, &who, snap)?;
                respond(Response::json(200, &health_json(view)))
            }
            Storage(seg) => {
                let (key, view) = path_instance(seg, &who, snap)?;
                let quota = view.storage_quota_bytes;
                match storage::storage_answer(&self.data_dir, &key, quota) {
                    Ok(json) => respond(Response::json(200, &json)),
                    Err(job) => Action::Offload {
                        job,
                        success_status: 200,
                    },
                }
            }
            Deploy => {
                admin_only(&who)?;
                let body: DeployBody = parse_body(req.body)?;
                let key = InstanceKey {
                    service: known_service(snap, &body.service)?,
                    id: valid_id(&body.id)?,
                };
                let weight = body
                    .weight
                    .map(weight)
                    .transpose()?
                    .unwrap_or(DEPLOY_WEIGHT);
                let timeout = body
                    .timeout_secs
                    .map(|n| bounded(&bounds::DEPLOY_TIMEOUT, n))
                    .transpose()?
                    .map_or(DEPLOY_TIMEOUT, Duration::from_secs);
                ask(
                    Command::Deploy {
                        key,
                        weight,
                        timeout,
                    },
                    200,
                )
            }
            Route => {
                admin_only(&who)?;
                let body: RouteBody = parse_body(req.body)?;
                known_service(snap, &body.service)?;
                let from = existing_instance(snap, &body.service, &body.from)?;
                let to = existing_instance(snap, &body.service, &body.to)?;
                if from == to {
                    return Err(Response::error(
                        400,
                        "`from` and `to` are the same instance",
                    ));
                }
                ask(Command::Route { from, to }, 200)
            }
            Logs => self.logs(req.query, &who, snap, now)?,
            Events => Action::Stream(
                crate::supervisor::msg::Subscription::Events {
                    tenant: match &who {
                        Principal::Admin => None,
                        Principal::Tenant(t) => Some(t.clone()),
                    },
                },
                token_id,
            ),
            LogsStream => {
                let (service, id, filter) = log_query(req.query, &who, snap, now)?;
                Action::Stream(
                    crate::supervisor::msg::Subscription::Logs {
                        service,
                        id,
                        search: filter.search,
                        stream: filter.stream,
                        tenant: match &who {
                            Principal::Admin => None,
                            Principal::Tenant(t) => Some(t.clone()),
                        },
                    },
                    token_id,
                )
            }
            Config => {
                admin_only(&who)?;
                respond(Response::json(200, &*snap.config_json))
            }
            Reload => {
                admin_only(&who)?;
                ask(Command::Reload, 200)
            }
            Upgrade => {
                admin_only(&who)?;
                let Some(control) = &self.upgrade else {
                    return Err(Response::error(503, "upgrades in place are not available"));
                };
                if req.method == "POST" {
                    let Some(attempt) = control.request() else {
                        return Err(Response::error(409, "an upgrade is already in progress"));
                    };
                    let mut json = control.json();
                    json["attempt"] = attempt.into();
                    respond(Response::json(202, &json))
                } else {
                    respond(Response::json(200, &control.json()))
                }
            }
            TlsStatus => {
                admin_only(&who)?;
                respond(Response::json(
                    200,
                    &serde_json::json!({ "enabled": self.tls.is_some() }),
                ))
            }
            Tls => {
                admin_only(&who)?;
                let now = unix_now(now);
                let certs = self.tls.as_ref().map(|t| t.to_json(now));
                respond(Response::json(200, &certs.unwrap_or(serde_json::json!([]))))
            }
            Tokens => {
                admin_only(&who)?;
                match self.tokens.list() {
                    Ok(list) => respond(Response::json(200, &serde_json::Value::Array(list))),
                    Err(why) => return Err(Response::error(500, &why)),
                }
            }
            Move(seg) => {
                admin_only(&who)?;
                let (key, _) = path_instance(seg, &who, snap)?;
                let (cmd, status) = transfer::move_command(key, req.body)?;
                ask(cmd, status)
            }
            Transfer(seg) => {
                admin_only(&who)?;
                transfer::answer(req.method, seg, req.body, snap, &self.data_dir)?
            }
            Export => {
                admin_only(&who)?;
                respond(export::answer(req.query, snap)?)
            }
            RevokeToken(id) => {
                admin_only(&who)?;
                // Written by the supervisor: the loop never waits on a disk write.
                ask(Command::RevokeToken { id: id.to_string() }, 200)
            }
        };
        Ok(action)
    }

    /// Whether the token with this id is still valid; an event stream
    /// opened with it ends once it is not. One stat of the tokens file.
    pub fn token_valid(&mut self, id: &str) -> bool {
        self.tokens.is_valid(id)
    }

    /// `GET /metrics`. Reads `/proc`; data dir sizes are the last
    /// measurements, and stale ones are measured again off the loop.
    fn metrics(&mut self, snap: &Snapshot, now: SystemTime) -> Response {
        let dirs: Vec<(String, PathBuf)> = snap
            .instances
            .iter()
            .map(|v| {
                let dir = crate::state::layout::instance_dir(&self.data_dir, &v.service, &v.id);
                (v.key(), dir)
            })
            .collect();
        let sizes = crate::state::sizes::sizes_for_metrics(&self.data_dir, &dirs);
        let sample = metrics::sample(snap, &sizes, now);
        let mut text = metrics::render(snap, &self.front, &sample);
        if let Some(tls) = &self.tls {
            metrics::render_tls(&mut text, tls, unix_now(now));
        }
        Response::text(200, metrics::CONTENT_TYPE, &text)
    }

    /// `GET /api/logs?service=&id=&search=&limit=&stream=&since=`: a job on
    /// the logs lane (the reads block).
    fn logs(
        &self,
        query: &str,
        who: &Principal,
        snap: &Snapshot,
        now: SystemTime,
    ) -> Answer<Action> {
        let (service, id, filter) = log_query(query, who, snap, now)?;
        let wanted: Vec<(String, String)> = match (service, id) {
            // One instance: read its files even if it is gone from the snapshot.
            (Some(s), Some(i)) => vec![(s, i)],
            (service, id) => snap
                .instances
                .iter()
                .filter(|v| service.as_ref().is_none_or(|s| v.service == *s))
                .filter(|v| id.as_ref().is_none_or(|i| v.id == *i))
                .map(|v| (v.service.to_string(), v.id.to_string()))
                .collect(),
        };
        let data_dir = self.data_dir.clone();
        let job = offload::Job::new(offload::Lane::Logs, move || {
            let pairs: Vec<(&str, &str)> = wanted
                .iter()
                .map(|(s, i)| (s.as_str(), i.as_str()))
                .collect();
            let lines = match pairs.as_slice() {
                [(s, i)] => logs::read_instance(&data_dir, s, i, &filter),
                _ => logs::read_merged(&data_dir, &pairs, &filter),
            };
            let json: Vec<serde_json::Value> = lines.iter().map(logs::LogLine::json).collect();
            // Serialised here: up to MAX_ANSWER_BYTES of text is too much
            // to encode on the loop.
            let body = Response::json(200, &serde_json::Value::Array(json)).body;
            Reply::Body {
                content_type: "application/json",
                body,
            }
        });
        Ok(Action::Offload {
            job,
            success_status: 200,
        })
    }
}

fn respond(response: Response) -> Action {
    Action::Respond(response)
}

fn ask(cmd: Command, success_status: u16) -> Action {
    Action::Ask {
        cmd,
        success_status,
    }
}

/// `GET /api/instances/{svc:id}/health`.
fn health_json(view: &InstanceView) -> serde_json::Value {
    serde_json::json!({
        "instance": view.key(),
        "state": view.state.as_str(),
        "health": view.health.as_str(),
        "last_check": view.stats.last_check(),
        "restarts": view.restarts,
        "isolation": view.isolation.as_str(),
        "uid": view.ids.map(|(uid, _)| uid),
        "gid": view.ids.map(|(_, gid)| gid),
    })
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

/// Seconds since the Unix epoch (0 for a clock before it).
fn unix_now(now: SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
