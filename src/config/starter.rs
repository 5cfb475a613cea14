//! The starter `tenement.toml` that `ten init` writes.
//!
//! One service, the settings an operator changes first, and the rest as
//! comments pointing at tenement.toml(5). It must always parse with
//! `Config::parse`; a test holds it to that. Pure: no I/O.

/// The text behind `config::starter`.
pub fn render(name: &str, command: &str) -> String {
    let command = toml::Value::String(command.to_string()).to_string();
    format!(
        r#"# tenement.toml: what `ten serve` runs. Every key: man 5 tenement.toml
# Relative paths are relative to this file's folder.

[settings]
domain = "localhost"             # instances answer at ID.{name}.DOMAIN
listen = "0.0.0.0:8080"
# data_dir = "data"              # default: /var/lib/tenement as root, else ./data
# health_check_interval = 10     # seconds
# max_restarts = 3               # within restart_window seconds, then "failed"
# restart_window = 300
# port_range = [30000, 40000]    # ports handed to instances as $PORT

[service.{name}]
command = {command}
# The app listens on 127.0.0.1:$PORT and keeps its files in $DATA_DIR.
# health = "/health"             # GET path, 2xx = healthy; default: TCP connect
# restart = "on-failure"         # "always" | "on-failure" | "never"
# startup_timeout = 10           # seconds to become ready
# request_timeout = 60           # seconds to wait for a response head
# max_instances = 0              # 0 = no cap
# idle_timeout = 0               # seconds idle before it sleeps; 0 = never
# socket_activation = false      # true: tenement binds $PORT, the app gets fd 3
# autospawn = false              # true: a request for ID.{name}.DOMAIN creates it

[service.{name}.env]
# Templates: {{name}} {{id}} {{data_dir}} {{port}} {{socket}}
# DATA_DIR = "{{data_dir}}/{{name}}/{{id}}"

# Instances to start with the server (more with `ten spawn {name}:ID`):
# [instances]
# {name} = ["prod"]

# [routing]
# default = "{name}"               # the bare domain goes to this service
"#
    )
}

#[cfg(test)]
mod tests {
    use crate::config::{starter, Config};
    use std::path::Path;

    #[test]
    fn starter_parses() {
        let text = starter("app", "python3 -m http.server");
        let config = Config::parse(&text, Path::new("/srv/app/tenement.toml")).unwrap();
        let app = &config.services["app"];
        assert_eq!(app.argv, ["python3", "-m", "http.server"]);
        assert_eq!(config.settings.domain, "localhost");
        assert!(config.instances.is_empty());
    }

    #[test]
    fn starter_quotes_awkward_commands() {
        let text = starter("web", r#"sh -c 'echo "hi" \ there'"#);
        let config = Config::parse(&text, Path::new("/srv/tenement.toml")).unwrap();
        assert_eq!(
            config.services["web"].argv,
            ["sh", "-c", r#"echo "hi" \ there"#]
        );
    }

    #[test]
    fn starter_commented_lines_parse_when_uncommented() {
        // Every commented example must be valid once the `# ` is removed, except prose.
        let text = starter("app", "./run");
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.contains('=') || rest.starts_with('[') => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::parse(&uncommented, Path::new("/srv/tenement.toml")).unwrap();
        assert_eq!(
            config.instances,
            [crate::names::InstanceKey::new("app", "prod").unwrap()]
        );
        assert_eq!(config.routing.default.as_deref(), Some("app"));
        assert_eq!(config.services["app"].env.len(), 1);
    }
}
