//! What the supervisor shows of itself: instance views and their JSON, the
//! published snapshot, and the registry it saves.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::Supervisor;
use crate::config::Service;
use crate::isolate::procfs;
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
            memory_bytes: inst
                .cgroup
                .as_ref()
                .and_then(|cg| cg.stats().memory_bytes)
                .or_else(|| pid.and_then(procfs::rss)),
            meter: inst.cgroup.as_ref().map(|cg| cg.meter()),
            oom_kills: inst.oom_kills,
            storage_bytes: inst.storage_bytes,
            storage_quota_bytes: svc.and_then(|s| s.storage_quota_mb).map(|mb| mb << 20),
            last_check: inst.last_check.clone(),
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

    pub(super) fn snapshot(&self) -> Snapshot {
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
        for (i, inst) in self.instances.values().enumerate() {
            snap.instances.push(self.view(inst));
            snap.by_key
                .insert((inst.key.service.to_string(), inst.key.id.to_string()), i);
            snap.services
                .entry(inst.key.service.to_string())
                .or_default()
                .push(i);
        }
        snap
    }

    pub(super) fn registry(&self) -> Registry {
        let instances = self
            .instances
            .values()
            .map(|inst| {
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
            })
            .collect();
        Registry {
            version: 1,
            instances,
        }
    }
}
