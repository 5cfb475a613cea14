# Nomad: one `ten serve` on every client node (a `system` job).
# Nomad places and restarts the agent; tenement runs the tenants on its node.
job "tenement" {
  datacenters = ["dc1"]
  type        = "system"

  group "node" {
    network {
      port "http" {
        static = 8080
      }
    }

    # Each node keeps its own data dir across restarts of the job.
    volume "tenement-data" {
      type      = "host"
      source    = "tenement-data"   # client { host_volume "tenement-data" { path = "/var/lib/tenement" } }
      read_only = false
    }

    task "ten" {
      driver = "raw_exec"           # tenement isolates its instances itself (namespaces, cgroups)

      volume_mount {
        volume      = "tenement-data"
        destination = "/var/lib/tenement"
      }

      config {
        command = "/usr/local/bin/ten"
        args    = ["serve", "--config", "/etc/tenement/tenement.toml",
                   "--data-dir", "/var/lib/tenement", "--bind", "0.0.0.0", "--port", "8080"]
      }

      service {
        name     = "tenement"
        port     = "http"
        provider = "nomad"
        check {
          type     = "http"
          path     = "/health"
          interval = "5s"
          timeout  = "2s"
        }
      }

      # `ten serve` stops its instances gracefully on SIGTERM.
      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
