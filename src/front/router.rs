//! Host (and path) to target, and smooth weighted round robin. Pure: no I/O.
//!
//! The rules are REFERENCE.md "Routing". The front loop calls `route` once per
//! request with the newest snapshot; `Balancer` keeps one loop's weighted
//! round robin state (each loop balances on its own, so no lock is shared).

use std::collections::HashMap;

use crate::names::{InstanceId, ServiceName};
use crate::supervisor::{Snapshot, State};

/// Where a request goes. Service names are borrowed from the snapshot:
/// routing builds no string (only for an instance still to be created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// `{id}.{service}.{domain}`: this instance (index into `Snapshot::instances`).
    Instance(usize),
    /// A weighted choice among this service's instances.
    Service(&'a str),
    /// tenement's own surface: API, dashboard, `/health`, `/metrics`.
    Management,
    /// `{id}.{service}.{domain}` for an unknown but valid id of a service
    /// with `autospawn = true`: the supervisor creates and wakes it.
    Spawn {
        service: &'a ServiceName,
        id: InstanceId,
    },
    /// Unknown host, unknown service or unknown id.
    NotFound,
}

/// Routes one request. `host` is lowercased without its port (None when the
/// request had no Host, as HTTP/1.0 allows); `path` is the request path.
pub fn route<'s>(snap: &'s Snapshot, host: Option<&str>, path: &str) -> Target<'s> {
    let Some(host) = host else {
        return Target::Management;
    };
    let domain = snap.domain.as_str();
    if host == domain {
        for (prefix, service) in &snap.routing.path {
            if path_has_prefix(path, prefix) {
                return Target::Service(service);
            }
        }
        if let Some(service) = &snap.routing.default {
            return Target::Service(service);
        }
        return Target::Management;
    }
    if let Some(sub) = host
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .filter(|sub| !sub.is_empty())
    {
        return match sub.split_once('.') {
            Some((id, service)) => {
                if service.contains('.') {
                    return Target::NotFound;
                }
                if let Some(index) = snap.index_of(service, id) {
                    return Target::Instance(index);
                }
                match (snap.autospawn.get(service), InstanceId::new(id)) {
                    (Some(service), Ok(id)) => Target::Spawn { service, id },
                    _ => Target::NotFound,
                }
            }
            None => {
                if let Some((service, _)) = snap.services.get_key_value(sub) {
                    Target::Service(service)
                } else if let Some(service) = snap.routing.subdomain.get(sub) {
                    Target::Service(service)
                } else {
                    Target::NotFound
                }
            }
        };
    }
    // The local CLI talks to `localhost:PORT` or `127.0.0.1:PORT` whatever the
    // configured domain is, so those always reach the management surface.
    if host == "localhost" || is_ip_literal(host) {
        return Target::Management;
    }
    Target::NotFound
}

/// `/docs` matches `/docs`, `/docs/x` and `/docs?q`, not `/docsx`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with(['/', '?']),
        None => false,
    }
}

fn is_ip_literal(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok() || (host.starts_with('[') && host.ends_with(']'))
}

/// Whether an instance in this state may be chosen by weighted routing: it is
/// running or can be woken. Failed and stopping ones are left out.
pub fn selectable(state: State) -> bool {
    matches!(
        state,
        State::Running | State::Starting | State::Sleeping | State::Backoff
    )
}

/// Smooth weighted round robin (as nginx does it) per service, for one loop.
#[derive(Debug, Default)]
pub struct Balancer {
    /// service -> (instance id, current weight).
    current: HashMap<String, Vec<(String, i64)>>,
}

impl Balancer {
    /// Picks one instance of `service` among those with weight > 0 that are
    /// selectable and not in `skip` (indexes already tried for this request).
    /// Returns an index into `snap.instances`, or None if there is none.
    pub fn pick(&mut self, snap: &Snapshot, service: &str, skip: &[usize]) -> Option<usize> {
        let members = snap.services.get(service)?;
        let candidates: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| {
                let view = &snap.instances[i];
                view.weight > 0 && selectable(view.state) && !skip.contains(&i)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let state = self.current.entry(service.to_string()).or_default();
        // Keep the running totals of instances still present, in snapshot order.
        let mut next: Vec<(String, i64)> = Vec::with_capacity(candidates.len());
        for &i in &candidates {
            let id = &snap.instances[i].id;
            let cw = state.iter().find(|(k, _)| k == id).map_or(0, |(_, w)| *w);
            next.push((id.to_string(), cw));
        }
        let mut total = 0i64;
        let mut best = 0usize;
        for (pos, &i) in candidates.iter().enumerate() {
            let weight = i64::from(snap.instances[i].weight);
            next[pos].1 += weight;
            total += weight;
            if next[pos].1 > next[best].1 {
                best = pos;
            }
        }
        next[best].1 -= total;
        // Instances skipped for this request keep their totals for later picks.
        for (id, w) in state.iter() {
            if !next.iter().any(|(k, _)| k == id) {
                let still_member = members.iter().any(|&i| &snap.instances[i].id == id);
                if still_member {
                    next.push((id.clone(), *w));
                }
            }
        }
        *state = next;
        Some(candidates[best])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Routing;
    use crate::supervisor::InstanceView;

    /// An instance at 127.0.0.1:30000 (the front's other tests use it too).
    pub(crate) fn view(service: &str, id: &str, weight: u8, state: State) -> InstanceView {
        InstanceView {
            weight,
            ..InstanceView::for_test(service, id, state, 30000)
        }
    }

    fn snapshot(views: Vec<InstanceView>, services: &[&str], routing: Routing) -> Snapshot {
        let mut snap = Snapshot {
            domain: "example.com".into(),
            routing,
            ..Snapshot::default()
        };
        for s in services {
            snap.services.insert(s.to_string(), Vec::new());
        }
        for (i, v) in views.into_iter().enumerate() {
            snap.by_key
                .insert((v.service.to_string(), v.id.to_string()), i);
            snap.services
                .entry(v.service.to_string())
                .or_default()
                .push(i);
            snap.instances.push(v.into());
        }
        snap
    }

    #[test]
    fn hosts_route_by_the_reference_table() {
        let mut routing = Routing::default();
        routing.subdomain.insert("admin".into(), "panel".into());
        routing.path.push(("/docs".into(), "docs".into()));
        let snap = snapshot(
            vec![
                view("api", "prod", 100, State::Running),
                view("api", "staging", 100, State::Running),
            ],
            &["api", "panel", "docs"],
            routing,
        );
        assert_eq!(
            route(&snap, Some("prod.api.example.com"), "/"),
            Target::Instance(0)
        );
        assert_eq!(
            route(&snap, Some("staging.api.example.com"), "/"),
            Target::Instance(1)
        );
        assert_eq!(
            route(&snap, Some("nobody.api.example.com"), "/"),
            Target::NotFound
        );
        assert_eq!(
            route(&snap, Some("prod.web.example.com"), "/"),
            Target::NotFound
        );
        assert_eq!(
            route(&snap, Some("a.prod.api.example.com"), "/"),
            Target::NotFound
        );
        assert_eq!(
            route(&snap, Some("api.example.com"), "/"),
            Target::Service("api")
        );
        assert_eq!(
            route(&snap, Some("admin.example.com"), "/"),
            Target::Service("panel")
        );
        assert_eq!(
            route(&snap, Some("other.example.com"), "/"),
            Target::NotFound
        );
        assert_eq!(
            route(&snap, Some("example.com"), "/docs/x"),
            Target::Service("docs")
        );
        assert_eq!(
            route(&snap, Some("example.com"), "/docs"),
            Target::Service("docs")
        );
        assert_eq!(
            route(&snap, Some("example.com"), "/docsx"),
            Target::Management
        );
        assert_eq!(
            route(&snap, Some("example.com"), "/api/instances"),
            Target::Management
        );
        assert_eq!(route(&snap, Some("example.org"), "/"), Target::NotFound);
        assert_eq!(route(&snap, Some("xexample.com"), "/"), Target::NotFound);
        assert_eq!(route(&snap, Some("localhost"), "/"), Target::Management);
        assert_eq!(route(&snap, Some("127.0.0.1"), "/"), Target::Management);
        assert_eq!(route(&snap, Some("[::1]"), "/"), Target::Management);
        assert_eq!(route(&snap, None, "/"), Target::Management);
    }

    #[test]
    fn autospawn_services_route_unknown_valid_ids_to_spawn() {
        let mut snap = snapshot(
            vec![view("api", "prod", 100, State::Running)],
            &["api", "web"],
            Routing::default(),
        );
        snap.autospawn
            .insert(crate::names::ServiceName::new("api").unwrap());
        assert_eq!(
            route(&snap, Some("new.api.example.com"), "/"),
            Target::Spawn {
                service: &ServiceName::new("api").unwrap(),
                id: InstanceId::new("new").unwrap()
            }
        );
        assert_eq!(
            route(&snap, Some("prod.api.example.com"), "/"),
            Target::Instance(0)
        );
        assert_eq!(
            route(&snap, Some("-bad.api.example.com"), "/"),
            Target::NotFound
        );
        assert_eq!(
            route(&snap, Some("new.web.example.com"), "/"),
            Target::NotFound
        );
    }

    #[test]
    fn default_route_takes_the_bare_domain() {
        let routing = Routing {
            default: Some("web".into()),
            ..Routing::default()
        };
        let snap = snapshot(vec![], &["web"], routing);
        assert_eq!(
            route(&snap, Some("example.com"), "/"),
            Target::Service("web")
        );
        assert_eq!(
            route(&snap, Some("localhost"), "/api/instances"),
            Target::Management
        );
    }

    #[test]
    fn smooth_weighted_round_robin_sequence_is_exact() {
        // nginx's example: weights 5, 1, 1 give a a b a c a a.
        let snap = snapshot(
            vec![
                view("web", "a", 5, State::Running),
                view("web", "b", 1, State::Running),
                view("web", "c", 1, State::Running),
            ],
            &["web"],
            Routing::default(),
        );
        let mut lb = Balancer::default();
        let picks: Vec<String> = (0..14)
            .map(|_| {
                snap.instances[lb.pick(&snap, "web", &[]).unwrap()]
                    .id
                    .to_string()
            })
            .collect();
        assert_eq!(picks.join(""), "aabacaaaabacaa");
    }

    #[test]
    fn weight_zero_and_failed_instances_get_nothing() {
        let snap = snapshot(
            vec![
                view("web", "blue", 0, State::Running),
                view("web", "green", 100, State::Running),
                view("web", "dead", 100, State::Failed),
            ],
            &["web"],
            Routing::default(),
        );
        let mut lb = Balancer::default();
        for _ in 0..10 {
            assert_eq!(lb.pick(&snap, "web", &[]), Some(1));
        }
        assert_eq!(lb.pick(&snap, "web", &[1]), None);
        assert_eq!(lb.pick(&snap, "nope", &[]), None);
    }

    #[test]
    fn three_to_one_over_forty_requests_is_thirty_to_ten() {
        let snap = snapshot(
            vec![
                view("web", "a", 3, State::Running),
                view("web", "b", 1, State::Sleeping),
            ],
            &["web"],
            Routing::default(),
        );
        let mut lb = Balancer::default();
        let a = (0..40)
            .filter(|_| lb.pick(&snap, "web", &[]) == Some(0))
            .count();
        assert_eq!(a, 30);
    }
}
