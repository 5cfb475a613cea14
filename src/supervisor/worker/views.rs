//! What the supervisor shows of itself: instance views and their JSON, the
//! published snapshot, and the registry it saves.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::Supervisor;
use crate::config::Service;
use crate::names::InstanceKey;
use crate::state::layout;
use crate::state::{Desired, Registry, RegistryEntry};
use crate::supervisor::lifecycle::AfterStop;
use crate::supervisor::msg::Reply;
use crate::supervisor::reply::{CommandError, Done};
use crate::supervisor::snapshot::{InstanceView, Snapshot, State};
use crate::supervisor::table::Instance;

impl Supervisor {
    pub(super) fn view(&self, inst: &Instance) -> InstanceView {
        let svc: Option<&Service> = self.config.services.get(inst.key.service.as_str());
        let pid = inst.run.as_ref().map(|r| r.pid);
        InstanceView {
            service: inst.key.service.clone(),
            id: inst.key.id.clone(),
            state: inst.life.state(),
            health: inst.life.health(),
            pid,
            port: inst.port,
            // Moved: requests go to the node it moved to.
            addr: self
                .moved_addr(&inst.key)
                .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, inst.port))),
            socket: inst
                .run
                .as_ref()
                .filter(|r| r.via_socket && inst.life.state() == State::Running)
                .map(|_| {
                    layout::instance_socket_path(&self.data_dir, &inst.key.service, &inst.key.id)
                }),
            weight: inst.weight,
            restarts: inst.life.total_restarts(),
            started_at: inst.run.as_ref().map(|r| r.started_at),
            // Only while a process runs: a sleeping instance keeps its
            // (empty) cgroup for its next start, and a listing of
            // thousands of them reads no cgroup files.
            meter: inst
                .cgroup
                .as_ref()
                .filter(|_| inst.run.is_some())
                .map(|cg| cg.meter()),
            oom_kills: inst.oom_kills,
            storage_bytes: inst.storage_bytes,
            storage_quota_bytes: svc.and_then(|s| s.storage_quota_mb).map(|mb| mb << 20),
            request_timeout: svc.map_or(Duration::from_secs(60), |s| s.request_timeout),
            startup_timeout: svc.map_or(Duration::from_secs(10), |s| s.startup_timeout),
            isolation: inst
                .run
                .as_ref()
                .map(|r| r.isolation)
                .or(svc.map(|s| s.isolation))
                .unwrap_or(crate::config::Isolation::Process),
            ids: inst.run.as_ref().and_then(|r| r.ids),
            stats: inst.stats.clone(),
            moving: inst
                .moving
                .as_ref()
                .map(|m| crate::supervisor::snapshot::MoveView {
                    to: m.to.clone(),
                    phase: m.phase.as_str(),
                    error: m.error.clone(),
                    flipped: m.flipped_at.is_some(),
                }),
        }
    }

    /// The instance as it is now, or `UnknownInstance`.
    pub(super) fn instance_reply(&self, key: &InstanceKey) -> Reply {
        match self.boxed_view(key) {
            Some(view) => Reply::Done(Done::Instance(view)),
            None => Reply::Error(CommandError::UnknownInstance(key.clone())),
        }
    }

    pub(super) fn boxed_view(&self, key: &InstanceKey) -> Option<Box<InstanceView>> {
        self.instances.get(key).map(|i| Box::new(self.view(i)))
    }

    /// The snapshot to publish: the views of instances untouched since the
    /// last publish are shared with it, the others built again.
    pub(super) fn snapshot(&mut self) -> Snapshot {
        let mut snap = Snapshot {
            domain: self.config.settings.domain.to_lowercase(),
            routing: self.config.routing.clone(),
            config_json: self.config_json.clone(),
            metrics_public: self.config.settings.metrics_public,
            trusted_proxies: self.config.settings.trusted_proxies.clone(),
            ..Snapshot::default()
        };
        for (name, service) in &self.config.services {
            snap.services.insert(name.clone(), Vec::new());
            snap.max_instances
                .insert(name.clone(), service.max_instances);
            if service.autospawn {
                snap.autospawn.insert(service.name.clone());
            }
        }
        let stale: Vec<(InstanceKey, Arc<InstanceView>)> = self
            .instances
            .values()
            .filter(|i| i.view.is_none())
            .map(|i| (i.key.clone(), Arc::new(self.view(i))))
            .collect();
        for (key, view) in stale {
            if let Some(inst) = self.instances.get_mut(&key) {
                inst.view = Some(view);
            }
        }
        // `instances` is sorted by key (a BTreeMap's order): found by binary
        // search, so `by_key` stays empty.
        snap.instances.reserve(self.instances.len());
        let mut group: Option<(&str, Vec<usize>)> = None;
        for (i, inst) in self.instances.values().enumerate() {
            let view = inst.view.clone().expect("built above");
            #[cfg(debug_assertions)]
            check_cached(&view, &self.view(inst));
            snap.instances.push(view);
            match &mut group {
                Some((service, members)) if *service == inst.key.service => members.push(i),
                _ => {
                    if let Some((service, members)) = group.take() {
                        snap.services.insert(service.to_string(), members);
                    }
                    group = Some((&inst.key.service, vec![i]));
                }
            }
        }
        if let Some((service, members)) = group {
            snap.services.insert(service.to_string(), members);
        }
        snap
    }

    /// The whole registry as it is now.
    pub(super) fn registry(&self) -> Registry {
        Registry {
            version: 1,
            generation: 0,
            instances: self.instances.values().map(entry_of).collect(),
        }
    }

    /// The entries of `keys` as they are now (an instance that is gone
    /// has none).
    pub(super) fn entries(&self, keys: &[&InstanceKey]) -> Registry {
        Registry {
            version: 1,
            generation: 0,
            instances: keys.iter().filter_map(|k| self.entry(k)).collect(),
        }
    }

    /// `key`'s entry as it is now; None when it is gone.
    pub(super) fn entry(&self, key: &InstanceKey) -> Option<RegistryEntry> {
        self.instances.get(key).map(entry_of)
    }
}

/// An instance's registry entry as it is now.
fn entry_of(inst: &Instance) -> RegistryEntry {
    let then = inst.stop.as_ref().map(|s| s.then);
    let late_move = inst
        .moving
        .as_ref()
        .is_some_and(|m| m.phase.target_may_run());
    let desired = match inst.life.state() {
        _ if then == Some(AfterStop::Forget) => Desired::Stopping,
        // It may run on the target: it must not start here.
        _ if late_move => Desired::Sleeping,
        _ if inst.resume => Desired::Running,
        State::Sleeping => Desired::Sleeping,
        State::Stopping if then == Some(AfterStop::Sleep) => Desired::Sleeping,
        State::Failed => Desired::Failed,
        _ => Desired::Running,
    };
    let run = inst.run.as_ref();
    RegistryEntry {
        service: inst.key.service.to_string(),
        id: inst.key.id.to_string(),
        port: inst.port,
        weight: inst.weight,
        desired,
        pid: run.map(|r| r.pid),
        pgid: run.map(|r| r.pgid),
        start_ticks: run.and_then(|r| r.start_ticks),
        restarts: inst.life.total_restarts(),
        uid: inst.uid,
        moving: inst.moving.as_ref().map(|m| crate::state::MoveRecord {
            to: m.to.clone(),
            addr: m.addr,
            phase: m.phase.as_str().to_string(),
        }),
    }
}

/// A view kept from an earlier publish must be what the instance would show
/// now: a change that does not touch the instance (`Timers::touch`) would
/// leave it stale. Checked on every publish in debug builds, so the test
/// suite finds such a change.
#[cfg(debug_assertions)]
fn check_cached(cached: &InstanceView, fresh: &InstanceView) {
    let fields = |v: &InstanceView| {
        format!(
            "{} {} {:?} {:?} {:?} {} {} {:?} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            v.service,
            v.id,
            v.state,
            v.health,
            v.pid,
            v.port,
            v.addr,
            v.socket,
            v.weight,
            v.restarts,
            v.started_at,
            v.oom_kills,
            v.storage_bytes,
            v.storage_quota_bytes,
            v.isolation,
            v.moving,
            v.ids,
        )
    };
    assert_eq!(
        fields(cached),
        fields(fresh),
        "a published view is stale: something changed the instance without touching it"
    );
}
