//! `[settings.tls]`: certificate files, the ACME keys, and the original
//! tenement's TLS keys refused with their replacements. Further methods of
//! the config's `Check` (see `check.rs`); pure, no I/O.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::check_domain;
use super::Check;
use crate::config::bounds;
use crate::config::raw::RawTls;
use crate::config::{Acme, CertFiles, Tls};

impl Check<'_> {
    /// `[settings.tls]`. None when refused.
    pub(super) fn tls(&mut self, raw: Spanned<RawTls>, dir: &Path) -> Option<Tls> {
        let table = raw.span();
        let raw = raw.into_inner();
        let key = |name: &str| format!("settings.tls.{name}");
        let mut ok = true;
        let acme = self.acme(&raw, dir, &mut ok);
        let mut tls = Tls {
            https_listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            redirect_http: raw.redirect_http.is_some_and(|v| v.into_inner()),
            certs: Vec::new(),
            acme,
        };
        if let Some(v) = raw.https_listen {
            match v.get_ref().parse::<SocketAddr>() {
                Ok(addr) => tls.https_listen = addr,
                Err(_) => {
                    self.fail(
                        v.span(),
                        key("https_listen"),
                        format!(
                            "{:?} is not an address: expected IP:PORT, like \"0.0.0.0:443\"",
                            v.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        match (raw.cert, raw.key) {
            (Some(cert), Some(k)) => {
                tls.certs.push(CertFiles {
                    names: Vec::new(),
                    cert: self.file_ref(&cert, key("cert"), dir),
                    key: self.file_ref(&k, key("key"), dir),
                });
            }
            (Some(cert), None) => {
                self.fail(cert.span(), key("key"), "missing: `cert` needs its `key`");
                ok = false;
            }
            (None, Some(k)) => {
                self.fail(k.span(), key("cert"), "missing: `key` needs its `cert`");
                ok = false;
            }
            (None, None) => {}
        }
        for (i, entry) in raw
            .certs
            .map(Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let span = entry.span();
            let entry = entry.into_inner();
            let key = |name: &str| format!("settings.tls.certs[{i}].{name}");
            let (Some(cert), Some(k)) = (&entry.cert, &entry.key) else {
                let missing = if entry.cert.is_none() { "cert" } else { "key" };
                self.fail(
                    span,
                    key(missing),
                    "missing: each [[settings.tls.certs]] needs `cert` and `key`",
                );
                ok = false;
                continue;
            };
            let mut names = Vec::new();
            if let Some(list) = entry.names {
                if list.get_ref().is_empty() {
                    self.fail(
                        list.span(),
                        key("names"),
                        "must not be empty (leave it out for the names in the certificate)",
                    );
                    ok = false;
                }
                for name in list.into_inner() {
                    let lower = name.get_ref().to_ascii_lowercase();
                    let bare = lower.strip_prefix("*.").unwrap_or(&lower);
                    match check_domain(bare) {
                        Ok(()) => names.push(lower),
                        Err(why) => {
                            self.fail(name.span(), key("names"), why);
                            ok = false;
                        }
                    }
                }
            }
            tls.certs.push(CertFiles {
                names,
                cert: self.file_ref(cert, key("cert"), dir),
                key: self.file_ref(k, key("key"), dir),
            });
        }
        if ok && tls.certs.is_empty() && tls.acme.is_none() {
            self.fail(
                table,
                key("cert"),
                "missing: HTTPS needs a certificate: `cert` and `key`, [[settings.tls.certs]], or `acme_email` for ACME",
            );
            ok = false;
        }
        ok.then_some(tls)
    }

    /// The `acme_*` keys: ACME is on with `acme_email`; the others need it.
    fn acme(&mut self, raw: &RawTls, dir: &Path, ok: &mut bool) -> Option<Acme> {
        let key = |name: &str| format!("settings.tls.{name}");
        let Some(email) = &raw.acme_email else {
            let others = [
                raw.acme_directory
                    .as_ref()
                    .map(|v| ("acme_directory", v.span())),
                raw.acme_on_demand
                    .as_ref()
                    .map(|v| ("acme_on_demand", v.span())),
                raw.acme_on_demand_per_hour
                    .as_ref()
                    .map(|v| ("acme_on_demand_per_hour", v.span())),
                raw.acme_on_demand_keep
                    .as_ref()
                    .map(|v| ("acme_on_demand_keep", v.span())),
                raw.acme_challenge
                    .as_ref()
                    .map(|v| ("acme_challenge", v.span())),
                raw.acme_ca_root
                    .as_ref()
                    .map(|v| ("acme_ca_root", v.span())),
            ];
            if let Some((name, span)) = others.into_iter().flatten().next() {
                self.fail(
                    span,
                    key(name),
                    format!("`{name}` needs `acme_email` (ACME is on when `acme_email` is set)"),
                );
                *ok = false;
            }
            return None;
        };
        let mut acme = Acme {
            email: email.get_ref().clone(),
            directory: crate::config::LETS_ENCRYPT.to_string(),
            ca_root: None,
            challenge: "http-01".to_string(),
            on_demand_per_hour: None,
            on_demand_keep: Duration::from_secs(bounds::ACME_ON_DEMAND_KEEP_DEFAULT),
        };
        let e = email.get_ref();
        let valid_email = e.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !e.contains(char::is_whitespace)
        });
        if !valid_email {
            self.fail(
                email.span(),
                key("acme_email"),
                format!("{e:?} is not an email address (the CA writes there about expiring certificates)"),
            );
            *ok = false;
        }
        if let Some(v) = &raw.acme_directory {
            let url = v.get_ref();
            if url
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty())
            {
                acme.directory = url.clone();
            } else {
                self.fail(
                    v.span(),
                    key("acme_directory"),
                    format!(
                        "{url:?} is not an https:// URL (default: {})",
                        crate::config::LETS_ENCRYPT
                    ),
                );
                *ok = false;
            }
        }
        if let Some(v) = &raw.acme_challenge {
            match v.get_ref().as_str() {
                c @ ("http-01" | "tls-alpn-01") => acme.challenge = c.to_string(),
                other => {
                    self.fail(
                        v.span(),
                        key("acme_challenge"),
                        format!("{other:?} is not a challenge: \"http-01\" or \"tls-alpn-01\""),
                    );
                    *ok = false;
                }
            }
        }
        if let Some(v) = &raw.acme_ca_root {
            acme.ca_root = Some(self.file_ref(v, key("acme_ca_root"), dir));
        }
        let per_hour = raw
            .acme_on_demand_per_hour
            .as_ref()
            .map(|v| Spanned::new(v.span(), u64::from(*v.get_ref())));
        let per_hour = match per_hour {
            Some(v) => match self.bounded(
                Some(v),
                &bounds::ACME_ON_DEMAND_PER_HOUR,
                key("acme_on_demand_per_hour"),
            ) {
                Some(n) => n as u32,
                None => {
                    *ok = false;
                    20
                }
            },
            None => 20,
        };
        if let Some(v) = &raw.acme_on_demand_keep {
            match self.bounded(
                Some(v.clone()),
                &bounds::ACME_ON_DEMAND_KEEP,
                key("acme_on_demand_keep"),
            ) {
                Some(secs) => acme.on_demand_keep = Duration::from_secs(secs),
                None => *ok = false,
            }
        }
        if raw.acme_on_demand.as_ref().is_some_and(|v| *v.get_ref()) {
            acme.on_demand_per_hour = Some(per_hour);
        }
        Some(acme)
    }
}

/// The original tenement's `[settings.tls]` keys in `tls`, each with the
/// key that replaces it (REFERENCE, tenement.toml). Returns the position
/// and name of the first one in the file and the replacements of all, or
/// None when the table has none of them.
pub(super) fn original_tls(tls: &RawTls) -> Option<(Range<usize>, &'static str, String)> {
    let mut found: Vec<(Range<usize>, &'static str, String)> = Vec::new();
    if let Some(v) = &tls.enabled {
        found.push((v.span(), "enabled", "`enabled` has none: a `[settings.tls]` table with `cert` and `key`, or `acme_email`, turns TLS on".into()));
    }
    if let Some(v) = &tls.domain {
        found.push((v.span(), "domain", format!("`domain` is `settings.domain = {:?}` (with `acme_on_demand = true` each instance host gets its own certificate)", v.get_ref())));
    }
    if let Some(v) = &tls.cache_dir {
        found.push((v.span(), "cache_dir", "`cache_dir` has none: the account, certificates and keys live in `{data_dir}/.tenement/acme/`".into()));
    }
    if let Some(v) = &tls.staging {
        let fix = if *v.get_ref() {
            "`acme_directory = \"https://acme-staging-v02.api.letsencrypt.org/directory\"`"
        } else {
            "leaving `acme_directory` out (Let's Encrypt's production directory)"
        };
        found.push((
            v.span(),
            "staging",
            format!("`staging = {}` is {fix}", v.get_ref()),
        ));
    }
    if let Some(v) = &tls.https_port {
        found.push((
            v.span(),
            "https_port",
            format!(
                "`https_port = {0}` is `https_listen = \"0.0.0.0:{0}\"`",
                v.get_ref()
            ),
        ));
    }
    if let Some(v) = &tls.http_port {
        found.push((v.span(), "http_port", format!("`http_port = {0}` is `settings.listen = \"0.0.0.0:{0}\"` (with `redirect_http = true` it answers 308 to https)", v.get_ref())));
    }
    if let Some(v) = &tls.dns_provider {
        found.push((v.span(), "dns_provider", format!("`dns_provider` has none: tenement does not do the DNS challenge; for wildcard certificates put Caddy in front with `ten caddy --domain D --dns-provider {}`", v.get_ref())));
    }
    found.sort_by_key(|(span, _, _)| span.start);
    let mut replacements: Vec<&str> = found.iter().map(|(_, _, r)| r.as_str()).collect();
    if tls.acme_email.is_some() && !found.is_empty() {
        replacements.push("`acme_email` keeps its name");
    }
    let replacements = replacements.join("; ");
    let (span, name, _) = found.into_iter().next()?;
    Some((span, name, replacements))
}
