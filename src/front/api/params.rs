//! What a request asks for, checked: JSON bodies, the `{svc:id}` path
//! segment, `/api/logs` query parameters, names and weights. Every refusal is
//! a finished 400/403/404 response.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::auth::not_yours;
use super::{logs, url, Answer, Response};
use crate::config::bounds::{self, Bound};
use crate::names::{self, InstanceId, InstanceKey, NameError, ServiceName};
use crate::state::Principal;
use crate::supervisor::{InstanceView, Snapshot};

/// `POST /api/instances/spawn`. `process` is the original tenement's name
/// for `service`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpawnBody {
    #[serde(alias = "process")]
    pub(super) service: String,
    pub(super) id: String,
    #[serde(default)]
    pub(super) weight: Option<i64>,
    #[serde(default)]
    pub(super) wait: bool,
}

/// `PUT /api/instances/{svc:id}/weight`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WeightBody {
    pub(super) weight: i64,
}

/// `POST /api/deploy`. The original tenement's names are accepted too:
/// `process` for `service`, `version` for `id`, `timeout` for `timeout_secs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployBody {
    #[serde(alias = "process")]
    pub(super) service: String,
    #[serde(alias = "version")]
    pub(super) id: String,
    #[serde(default)]
    pub(super) weight: Option<i64>,
    #[serde(default, alias = "timeout")]
    pub(super) timeout_secs: Option<u64>,
}

/// `POST /api/route` (`process` for `service`, as in the original tenement).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteBody {
    #[serde(alias = "process")]
    pub(super) service: String,
    pub(super) from: String,
    pub(super) to: String,
}

/// Lines `/api/logs` returns when the query names no limit.
const LOG_LIMIT: usize = 100;

/// Parses and authorises a `/api/logs` query: (service, id, filter). A
/// tenant's id is forced to its own.
pub(super) fn log_query(
    query: &str,
    who: &Principal,
    snap: &Snapshot,
    now: SystemTime,
) -> Answer<(Option<String>, Option<String>, logs::Filter)> {
    {
        let pairs = url::query_pairs(query).map_err(|piece| {
            Response::error(400, &format!("bad percent-encoding in query `{piece}`"))
        })?;
        let mut service = None;
        let mut id = None;
        let mut level = None;
        let mut filter = logs::Filter {
            limit: LOG_LIMIT,
            ..logs::Filter::default()
        };
        for (key, value) in pairs {
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "service" | "process" => service = Some(value),
                "id" => id = Some(value),
                "search" => filter.search = Some(value),
                "stream" if logs::STREAMS.contains(&value.as_str()) => filter.stream = Some(value),
                "stream" => {
                    return Err(Response::error(
                        400,
                        &format!("invalid stream `{value}`: expected stdout, stderr or ten"),
                    ))
                }
                // The original tenement's filter: a level, mapped onto a stream.
                "level" => match names::level_stream(&value) {
                    Some(stream) => level = Some((value, stream)),
                    None => {
                        return Err(Response::error(
                            400,
                            &format!("invalid level `{value}`: {}", names::LEVEL_HELP),
                        ))
                    }
                },
                "limit" => {
                    let limit: u64 = value.parse().map_err(|_| {
                        Response::error(
                            400,
                            &format!("invalid limit `{value}`: expected a whole number"),
                        )
                    })?;
                    // Clamped, not refused: `--limit 1000000` means "all you
                    // give", and gets the newest MAX_LIMIT.
                    filter.limit = limit.min(logs::MAX_LIMIT as u64) as usize;
                }
                "since" => {
                    let back = logs::parse_since(&value).ok_or_else(|| {
                        Response::error(
                            400,
                            &format!("invalid since `{value}`: expected e.g. 90s, 10m, 2h, 1d"),
                        )
                    })?;
                    bounded(&bounds::LOG_SINCE, back.as_secs())?;
                    let epoch = now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    let at = epoch.saturating_sub(back);
                    filter.since = Some(crate::log::format_utc(at.as_secs(), at.subsec_millis()));
                }
                // Unknown parameters (e.g. a client's `follow`) are ignored.
                _ => {}
            }
        }
        match (level, &filter.stream) {
            (Some((l, stream)), Some(s)) if s != stream => {
                return Err(Response::error(
                    400,
                    &format!("level `{l}` means stream {stream}, but stream is {s}"),
                ))
            }
            (Some((_, stream)), _) => filter.stream = Some(stream.to_string()),
            (None, _) => {}
        }
        if let Some(s) = &service {
            known_service(snap, s)?;
        }
        match (who, &id) {
            (Principal::Tenant(t), Some(i)) if i != t => return Err(not_yours(t, i)),
            // A tenant's own id was checked when its token was minted.
            (Principal::Tenant(t), None) => id = Some(t.clone()),
            (_, Some(i)) => {
                valid_id(i)?;
            }
            _ => {}
        }
        Ok((service, id, filter))
    }
}

/// Resolves the `{svc:id}` path segment to a live instance.
/// Err: 400 (encoding, form, names), 403 (another tenant's id), 404 (unknown).
pub(super) fn path_instance<'s>(
    segment: &str,
    who: &Principal,
    snap: &'s Snapshot,
) -> Answer<(InstanceKey, &'s InstanceView)> {
    let decoded = url::percent_decode(segment, false)
        .ok_or_else(|| Response::error(400, &format!("bad percent-encoding in `{segment}`")))?;
    let Some((service, id)) = decoded.split_once(':') else {
        return Err(Response::error(
            400,
            &format!("invalid instance `{decoded}`: expected service:id"),
        ));
    };
    if let Principal::Tenant(t) = who {
        if id != t {
            return Err(not_yours(t, &decoded));
        }
    }
    match snap.get(service, id) {
        // Names in the snapshot were checked when the instance was created.
        Some(view) => Ok((
            InstanceKey {
                service: view.service.clone(),
                id: view.id.clone(),
            },
            view,
        )),
        None => {
            names::check("service name", service).map_err(bad_name)?;
            names::check("instance id", id).map_err(bad_name)?;
            Err(Response::error(
                404,
                &format!("unknown instance `{decoded}`"),
            ))
        }
    }
}

/// The name of a configured service; 400 unless `service` is one (with
/// the name error if it is not even a valid name).
pub(super) fn known_service(snap: &Snapshot, service: &str) -> Answer<ServiceName> {
    let name = ServiceName::new(service).map_err(bad_name)?;
    if snap.services.contains_key(service) {
        return Ok(name);
    }
    Err(Response::error(
        400,
        &format!("unknown service `{service}`"),
    ))
}

/// `id` as an instance id; 400 unless it is a valid one.
pub(super) fn valid_id(id: &str) -> Answer<InstanceId> {
    InstanceId::new(id).map_err(bad_name)
}

/// The key of instance `service:id`; 400 for a bad id, 404 unless it exists.
pub(super) fn existing_instance(snap: &Snapshot, service: &str, id: &str) -> Answer<InstanceKey> {
    if let Some(view) = snap.get(service, id) {
        return Ok(InstanceKey {
            service: view.service.clone(),
            id: view.id.clone(),
        });
    }
    valid_id(id)?;
    Err(Response::error(
        404,
        &format!("unknown instance `{service}:{id}`"),
    ))
}

pub(super) fn bad_name(e: NameError) -> Response {
    Response::error(400, &e.to_string())
}

/// 400 unless `n` is within `bound` (the table the config and the CLI
/// share), naming the field.
pub(super) fn bounded(bound: &Bound, n: u64) -> Answer<u64> {
    bound
        .check(n)
        .map_err(|why| Response::error(400, &format!("{} {why}", bound.key)))
}

/// 400 unless 0 <= n <= 100.
pub(super) fn weight(n: i64) -> Answer<u8> {
    crate::names::check_weight(n).map_err(|why| Response::error(400, &why))
}

/// Parses a JSON body; 400 with serde's message (it names the field and
/// position) when it does not fit.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Answer<T> {
    serde_json::from_slice(body)
        .map_err(|e| Response::error(400, &format!("invalid request body: {e}")))
}
