//! The commands that work on local files and need no running server:
//! serve (hands over to `server::serve`), init, config, caddy. (`token-gen`
//! is in `tokens.rs`.)

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{env_var, output, CliError, Ctx};
use crate::config::{self, Config};
use crate::names;
use crate::server::{self, ServeOptions};

pub fn serve(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let port = inv.number::<u16>("port", 0..=u16::MAX)?;
    let bind = match inv.value("bind") {
        Some(raw) => Some(
            raw.parse::<IpAddr>()
                .map_err(|_| inv.usage(format!("--bind: expected an IP address, got {raw:?}")))?,
        ),
        None => None,
    };
    let domain = match inv.value("domain") {
        Some(d) => Some(check_domain(d).map_err(|why| inv.usage(format!("--domain: {why}")))?),
        None => None,
    };
    let opts = ServeOptions {
        config: ctx
            .config_flag()
            .map(Into::into)
            .or_else(|| env_var("TENEMENT_CONFIG").map(Into::into)),
        data_dir: ctx.data_dir_flag(),
        port,
        bind,
        domain,
    };
    server::serve(opts).map_err(CliError::Failed)
}

/// A domain as tenement and Caddy expect it: lowercase DNS labels, no scheme,
/// port or wildcard. Returns it lowercased.
fn check_domain(raw: &str) -> Result<String, String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.is_empty() || d.len() > 253 || !d.split('.').all(label_ok) {
        return Err(format!("{raw:?} is not a domain name (like example.com)"));
    }
    Ok(d)
}

pub fn init(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let name = inv.value("name").unwrap_or("app");
    names::check("service name", name).map_err(|e| inv.usage(e.to_string()))?;
    let command = inv.value("command").unwrap_or("python3 app.py");
    if command.trim().is_empty() {
        return Err(inv.usage("--command must not be empty").into());
    }
    let text = config::starter(name, command);
    let path = std::path::Path::new("tenement.toml");
    // create_new: never overwrite, even if the file appears between a check and the write.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::failed(
                "tenement.toml already exists here; not overwriting it",
            ));
        }
        Err(e) => {
            return Err(CliError::failed(format!(
                "create tenement.toml: {}",
                super::client::io_reason(&e)
            )))
        }
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            CliError::failed(format!(
                "write tenement.toml: {}",
                super::client::io_reason(&e)
            ))
        })?;
    output::print(&format!(
        "wrote tenement.toml (service {name}: {command})\nnext: ten serve, then ten spawn {name}:ID\n"
    ))
}

pub fn config(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let Some(path) = config::locate(ctx.config_flag()) else {
        return Err(CliError::failed(
            "no config file found (looked for ./tenement.toml and /etc/tenement/tenement.toml); pass --config FILE or run `ten init`",
        ));
    };
    let cfg = Config::load(&path)?;
    if ctx.inv.has("check") {
        // The certificate files are part of the config: check them as `ten
        // serve` would.
        if let Some(tls) = &cfg.settings.tls {
            crate::certs::load(tls, &cfg.settings.domain)?;
        }
        return output::print(&format!("ok: {}\n", cfg.path.display()));
    }
    let mut json = cfg.to_json();
    // The file may leave data_dir unset; show where it resolves to.
    let data_dir = config::resolve_data_dir(ctx.data_dir_flag().as_deref(), Some(&cfg));
    if let Some(settings) = json.get_mut("settings").and_then(|s| s.as_object_mut()) {
        settings.insert(
            "data_dir".into(),
            serde_json::json!(data_dir.display().to_string()),
        );
    }
    let text = serde_json::to_string_pretty(&json).expect("a json value serialises");
    output::print(&format!("{text}\n"))
}

pub fn caddy(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let raw = inv
        .value("domain")
        .ok_or_else(|| inv.usage("missing --domain D"))?;
    let domain = check_domain(raw).map_err(|why| inv.usage(format!("--domain: {why}")))?;
    let provider = match inv.value("dns-provider") {
        Some(p)
            if !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Some(p.to_ascii_lowercase())
        }
        Some(p) => {
            return Err(inv
                .usage(format!("--dns-provider: {p:?} is not a Caddy module name"))
                .into())
        }
        None => None,
    };
    let listen = ctx.config_if_found().map(|c| c.settings.listen);
    output::print(&caddyfile(&domain, provider.as_deref(), listen))
}

/// The Caddyfile: Caddy terminates TLS and proxies plain HTTP to tenement.
/// Every host name gets its own certificate on demand, at its first
/// handshake, once tenement's `GET /api/tls/allowed` says it serves that
/// name, so instance hosts (`alice.notes.D`, two labels deep, which no `*.D`
/// certificate covers) work too. With a DNS provider, `D` and `*.D` share
/// one wildcard certificate from the DNS challenge instead.
fn caddyfile(domain: &str, provider: Option<&str>, listen: Option<SocketAddr>) -> String {
    let upstream = proxy_target(listen.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))));
    let mut out = format!(
        "# Caddyfile for tenement (ten caddy --domain {domain}{}).\n",
        provider
            .map(|p| format!(" --dns-provider {p}"))
            .unwrap_or_default()
    );
    out.push_str(&format!(
        "# Caddy terminates TLS and proxies plain HTTP to tenement at {upstream}.\n\
         # Each host name gets a certificate at its first TLS handshake, only if\n\
         # tenement serves it (Caddy asks /api/tls/allowed; instance hosts such as\n\
         # alice.notes.{domain} included). In tenement.toml:\n\
         #   [settings]\n\
         #   domain = \"{domain}\"\n\
         #   listen = \"{upstream}\"     # reachable by Caddy only\n\
         #   trusted_proxies = [\"127.0.0.1\", \"::1\"]  # believe Caddy's X-Forwarded-*\n\
         {{\n\ton_demand_tls {{\n\t\task http://{upstream}/api/tls/allowed\n\t}}\n}}\n\
         \n\
         (tenement) {{\n\
         \t# Caddy passes the Host header unchanged (tenement routes on it) and\n\
         \t# sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself,\n\
         \t# replacing what the client sent; streaming and WebSocket pass through.\n\
         \treverse_proxy {upstream}\n\
         }}\n\n"
    ));
    if let Some(p) = provider {
        let var = format!("{}_API_TOKEN", p.to_ascii_uppercase().replace('-', "_"));
        out.push_str(&format!(
            "# One wildcard certificate for {domain} and *.{domain} by the DNS challenge:\n\
             # needs a Caddy build with the caddy-dns/{p} module and ${var} in Caddy's environment.\n\
             {domain}, *.{domain} {{\n\ttls {{\n\t\tdns {p} {{env.{var}}}\n\t}}\n\timport tenement\n}}\n\n"
        ));
    }
    out.push_str("https:// {\n\ttls {\n\t\ton_demand\n\t}\n\timport tenement\n}\n");
    out
}

/// Where Caddy should connect: a wildcard listen address means loopback.
fn proxy_target(listen: SocketAddr) -> String {
    super::client::loopback(listen).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowercased_and_checked() {
        assert_eq!(check_domain("Example.COM."), Ok("example.com".to_string()));
        assert_eq!(check_domain("localhost"), Ok("localhost".to_string()));
        for bad in [
            "",
            "*.example.com",
            "http://example.com",
            "a..b",
            "-a.com",
            "ex ample.com",
            "a.com:80",
        ] {
            assert!(check_domain(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn caddyfile_asks_tenement_and_proxies_every_host() {
        let listen: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let text = caddyfile("example.com", None, Some(listen));
        assert!(
            text.contains("\ton_demand_tls {\n\t\task http://127.0.0.1:8080/api/tls/allowed\n"),
            "{text}"
        );
        assert!(
            text.contains("https:// {\n\ttls {\n\t\ton_demand\n\t}\n\timport tenement\n}\n"),
            "{text}"
        );
        assert!(
            text.contains("\treverse_proxy 127.0.0.1:8080\n}\n"),
            "{text}"
        );
        assert!(
            text.contains("trusted_proxies = [\"127.0.0.1\", \"::1\"]"),
            "{text}"
        );
        assert!(!text.contains("dns "), "{text}");
        let text = caddyfile("example.com", Some("cloudflare"), Some(listen));
        assert!(
            text.contains("example.com, *.example.com {\n\ttls {\n\t\tdns cloudflare {env.CLOUDFLARE_API_TOKEN}\n\t}\n\timport tenement\n}\n"),
            "{text}"
        );
        assert!(text.contains("\t\ton_demand\n"), "{text}");
        let text = caddyfile("example.com", None, Some("[::]:9000".parse().unwrap()));
        assert!(
            text.contains("ask http://[::1]:9000/api/tls/allowed"),
            "{text}"
        );
        assert!(text.contains("reverse_proxy [::1]:9000"), "{text}");
        let text = caddyfile("example.com", Some("route53"), None);
        assert!(text.contains("reverse_proxy 127.0.0.1:8080"), "{text}");
    }
}
