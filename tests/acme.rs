//! ACME end to end against pebble (Debian packages `pebble`, with
//! `pebble-challtestsrv`), started here on loopback with a CA of its own.
//! pebble's validation really connects to us: `pebble-challtestsrv` is its
//! DNS server and resolves every name to 127.0.0.1, and pebble's HTTP-01
//! and TLS-ALPN-01 ports are ten's listeners. Covered: HTTP-01 (with
//! `redirect_http` on), TLS-ALPN-01 with nothing on the plain port,
//! on-demand issuance at the first handshake (curl verifying against
//! pebble's root), the refusal of an unknown name, renewal of
//! short-lived certificates, and the removal of an on-demand certificate
//! `acme_on_demand_keep` after its instance is stopped (kept while it
//! sleeps). Every wait is bounded.

mod util;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::*;

/// How long issuance of the start-up certificates may take.
const ISSUE: Duration = Duration::from_secs(60);

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}\n{}", describe(&out));
}

/// How pebble is run.
#[derive(Clone, Copy, Default)]
struct PebbleOptions {
    /// Where pebble validates HTTP-01 and TLS-ALPN-01.
    http_port: u16,
    tls_port: u16,
    /// `PEBBLE_VA_ALWAYS_VALID=1`: no validation at all.
    always_valid: bool,
    /// Lifetime of issued certificates, in seconds.
    validity: Option<u64>,
}

/// pebble and its DNS server, stopped on drop.
struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    directory: String,
    /// The CA that signed pebble's own HTTPS certificate (`acme_ca_root`).
    ca: PathBuf,
    management: u16,
    scratch: Scratch,
}

impl Pebble {
    fn start(name: &str, opts: PebbleOptions) -> Option<Pebble> {
        if !tools_present(&[
            "pebble",
            "pebble-challtestsrv",
            "openssl",
            "curl",
            "python3",
        ]) {
            return None;
        }
        let scratch = Scratch::new(name);
        let dir = scratch.root.clone();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=pebble test CA",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "pebble.key",
                "-out",
                "pebble.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        scratch.write("ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "pebble.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "pebble.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.join("pebble.pem"),
                "privateKey": dir.join("pebble.key"),
                "httpPort": opts.http_port,
                "tlsPort": opts.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(v) = opts.validity {
            config["pebble"]["certificateValidityPeriod"] = v.into();
        }
        let config_path = scratch.write("pebble.json", &config.to_string());
        let log =
            |file: &str| std::fs::File::create(dir.join(file)).map_or(Stdio::null(), Stdio::from);
        let dns_server = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-management",
                &format!("127.0.0.1:{dns_management}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ])
            .current_dir(&dir)
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let mut pebble = Command::new("pebble");
        pebble
            .args(["-config"])
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .current_dir(&dir)
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"));
        if opts.always_valid {
            pebble.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        let pebble = pebble.spawn().expect("start pebble");
        let me = Pebble {
            children: vec![pebble, dns_server],
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca: dir.join("ca.pem"),
            management,
            scratch,
        };
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", listen)).is_ok()
                && TcpStream::connect(("127.0.0.1", management)).is_ok()
        });
        assert!(up, "pebble did not start:\n{}", me.log());
        Some(me)
    }

    fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.scratch.path(f)).unwrap_or_default();
        format!(
            "--- pebble ---\n{}{}\n--- challtestsrv ---\n{}",
            read("pebble.log"),
            read("pebble.err"),
            read("challtestsrv.err")
        )
    }

    /// pebble's issuing root (made at its start), as a PEM file.
    /// Stops (SIGSTOP) or resumes (SIGCONT) pebble itself: its requests
    /// wait meanwhile.
    fn pause(&self, paused: bool) {
        let pid = self.children[0].id();
        signal(pid, if paused { "STOP" } else { "CONT" });
    }

    fn root(&self) -> PathBuf {
        let path = self.scratch.path("root.pem");
        let out = curl(&[
            "--cacert",
            self.ca.to_str().expect("utf-8"),
            "-o",
            path.to_str().expect("utf-8"),
            &format!("https://127.0.0.1:{}/roots/0", self.management),
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        path
    }

    /// The `[settings.tls]` ACME keys for this pebble.
    fn tls_keys(&self, https: SocketAddr, challenge: &str) -> String {
        format!(
            "[settings.tls]\nhttps_listen = \"{https}\"\nacme_email = \"ops@acme.test\"\n\
             acme_directory = \"{}\"\nacme_ca_root = {}\nacme_challenge = \"{challenge}\"\n",
            self.directory,
            toml_str(&self.ca)
        )
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const DOMAIN: &str = "acme.test";

/// `[settings]` for domain acme.test, then `tls`, then a service `web`
/// with the instances in `ids`.
fn config(tls: &str, ids: &[&str]) -> String {
    let settings =
        settings("").replace("domain = \"localhost\"", &format!("domain = \"{DOMAIN}\""));
    let ids: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "{settings}{tls}\n{}\n[instances]\nweb = [{}]\n",
        py_service("web", "echo.py", ""),
        ids.join(", ")
    )
}

/// GET /api/tls over the local socket (never redirected).
fn api_tls(server: &Server) -> Value {
    let socket = server.data_dir.join(".tenement/ten.sock");
    let out = curl(&[
        "--unix-socket",
        socket.to_str().expect("utf-8"),
        "-H",
        &format!("Authorization: Bearer {}", server.admin_token),
        "http://localhost/api/tls",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// The `/api/tls` entry for `name`.
fn entry(list: &Value, name: &str) -> Option<Value> {
    list.as_array()?
        .iter()
        .find(|e| {
            e["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == name))
        })
        .cloned()
}

/// Waits until `name` has an issued certificate; returns its entry.
fn wait_issued(server: &Server, pebble: &Pebble, name: &str, deadline: Duration) -> Value {
    let mut last = Value::Null;
    let done = wait_until(deadline, || {
        last = api_tls(server);
        entry(&last, name).is_some_and(|e| e["not_after"].is_i64())
    });
    assert!(
        done,
        "no certificate for {name}: {last:#}\n{}\n{}",
        server.log(),
        pebble.log()
    );
    entry(&last, name).expect("just seen")
}

/// curl to `https://{host}:{port}{path}` resolved to loopback, verifying
/// against `root`.
fn curl_https(server: &Server, root: &Path, host: &str, path: &str) -> std::process::Output {
    let https = server.https.expect("an https listener");
    curl(&[
        "--max-time",
        "60",
        "--resolve",
        &format!("{host}:{}:127.0.0.1", https.port()),
        "--cacert",
        root.to_str().expect("utf-8"),
        &format!("https://{host}:{}{path}", https.port()),
    ])
}

/// pebble validating against fresh loopback ports for ten's plain and
/// HTTPS listeners: (pebble, plain port, HTTPS address). None when pebble
/// is not installed (a loud skip).
fn pebble_for(
    name: &str,
    tweak: impl FnOnce(&mut PebbleOptions),
) -> Option<(Pebble, u16, SocketAddr)> {
    let (plain, https) = (free_port(), free_port());
    let mut opts = PebbleOptions {
        http_port: plain,
        tls_port: https,
        ..Default::default()
    };
    tweak(&mut opts);
    let pebble = Pebble::start(name, opts)?;
    Some((pebble, plain, ([127, 0, 0, 1], https).into()))
}

/// Requests `https://{host}{path}` until it answers with `path` echoed
/// (the instance may still be starting), within 20 s.
fn wait_served(server: &Server, root: &Path, host: &str, path: &str) {
    let mut out = None;
    let served = wait_until(Duration::from_secs(20), || {
        let o = curl_https(server, root, host, path);
        let ok = o.status.success() && stdout(&o).contains(path);
        out = Some(o);
        ok
    });
    let out = out.expect("tried at least once");
    assert!(served, "{}\n{}", describe(&out), server.log());
}

fn start_server(name: &str, config: &str, plain_port: u16) -> Server {
    Server::start_with(name, config, &["--port", &plain_port.to_string()])
}

#[test]
fn http01_issues_the_domain_and_service_certificates_through_a_real_challenge() {
    let Some((pebble, plain, https_addr)) = pebble_for("acme-http01", |_| {}) else {
        return;
    };
    // redirect_http is on: the challenge path is still answered over HTTP.
    let tls = format!(
        "{}redirect_http = true\n",
        pebble.tls_keys(https_addr, "http-01")
    );
    let server = start_server("acme-http01", &config(&tls, &["one"]), plain);
    assert_eq!(server.addr.port(), plain);

    for name in [DOMAIN.to_string(), format!("web.{DOMAIN}")] {
        let e = wait_issued(&server, &pebble, &name, ISSUE);
        assert_eq!(e["source"], "acme", "{e:#}");
        assert!(
            e["issuer"].as_str().is_some_and(|i| i.contains("Pebble")),
            "{e:#}"
        );
        assert!(e["last_error"].is_null(), "{e:#}");
    }
    // Without PEBBLE_VA_ALWAYS_VALID pebble only issues after fetching
    // the key authorization from us over plain HTTP (its DNS says
    // 127.0.0.1, its HTTP-01 port is our listener).
    assert!(pebble.log().contains("set VALID by completed challenge"));

    // A browser's view: a valid certificate for the service host.
    let root = pebble.root();
    wait_served(&server, &root, &format!("web.{DOMAIN}"), "/hello");

    // Kept under .tenement/acme, private.
    use std::os::unix::fs::PermissionsExt;
    let dir = server.data_dir.join(".tenement/acme");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "account.key",
        "acme.test.crt",
        "acme.test.key",
        "web.acme.test.key",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }

    // After a restart the stored certificates are used, not ordered again.
    let mut server = server;
    server.restart();
    let list = api_tls(&server);
    assert!(
        entry(&list, DOMAIN).is_some_and(|e| e["not_after"].is_i64()),
        "{list:#}"
    );
    let log = server.log();
    let second = log.split("started again").nth(1).expect("restart marker");
    assert!(
        !second.contains(&format!("ordering a certificate for {DOMAIN} ")),
        "{second}"
    );
}

#[test]
fn tls_alpn01_issues_with_nothing_on_the_plain_port() {
    // pebble's HTTP-01 port has no listener: only TLS-ALPN-01 can work.
    let Some((pebble, closed, https_addr)) = pebble_for("acme-alpn", |_| {}) else {
        return;
    };
    let tls = pebble.tls_keys(https_addr, "tls-alpn-01");
    let server = Server::start("acme-alpn", &config(&tls, &["one"]));
    assert_ne!(server.addr.port(), closed);
    let e = wait_issued(&server, &pebble, &format!("web.{DOMAIN}"), ISSUE);
    assert_eq!(e["source"], "acme", "{e:#}");
    assert!(pebble.log().contains("set VALID by completed challenge"));

    // A client offering acme-tls/1 without a pending challenge gets no
    // certificate at all (a handshake alert).
    let probe = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &https_addr.to_string(),
            "-servername",
            &format!("web.{DOMAIN}"),
            "-alpn",
            "acme-tls/1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    assert!(!probe.status.success(), "{}", describe(&probe));

    let root = pebble.root();
    wait_served(&server, &root, &format!("web.{DOMAIN}"), "/alpn");
}

#[test]
fn on_demand_issues_at_the_first_handshake_and_refuses_unknown_names() {
    let Some((pebble, plain, https_addr)) = pebble_for("acme-ondemand", |_| {}) else {
        return;
    };
    let tls = format!(
        "{}acme_on_demand = true\nacme_on_demand_per_hour = 3\n",
        pebble.tls_keys(https_addr, "http-01")
    );
    let mut cfg = config(&tls, &["alice", "carol", "dave"])
        .replace("[settings]\n", "[settings]\nworkers = 1\n");
    cfg.push_str(&py_service(
        "auto",
        "echo.py",
        "autospawn = true\nmax_instances = 1",
    ));
    let server = start_server("acme-ondemand", &cfg, plain);
    wait_issued(&server, &pebble, &format!("web.{DOMAIN}"), ISSUE);
    let root = pebble.root();
    let alice = format!("alice.web.{DOMAIN}");
    assert!(
        entry(&api_tls(&server), &alice).is_none(),
        "nothing is ordered for an instance before its first handshake"
    );

    // The first handshake waits for the certificate and then succeeds;
    // meanwhile the loop (the only one here) serves other connections.
    // pebble is stopped until those are served, so the order cannot
    // settle before; once it does, the held handshake is woken at once
    // (nothing else would resume it before curl gives up).
    pebble.pause(true);
    let done = Arc::new(AtomicBool::new(false));
    let first = {
        let done = done.clone();
        let port = server.https.expect("https").port();
        let root = root.clone();
        let alice = alice.clone();
        std::thread::spawn(move || {
            let out = curl(&[
                "--max-time",
                "60",
                "--resolve",
                &format!("{alice}:{port}:127.0.0.1"),
                "--cacert",
                root.to_str().expect("utf-8"),
                &format!("https://{alice}:{port}/first"),
            ]);
            done.store(true, Ordering::SeqCst);
            out
        })
    };
    let ordered = format!("ordering a certificate for {alice}");
    assert!(
        wait_until(DEADLINE, || server.log().contains(&ordered)),
        "the first handshake ordered nothing\n{}",
        server.log()
    );
    let mut meanwhile = 0;
    for _ in 0..3 {
        let other = curl_https(&server, &root, &format!("web.{DOMAIN}"), "/other");
        assert!(other.status.success(), "{}", describe(&other));
        if !done.load(Ordering::SeqCst) {
            meanwhile += 1;
        }
    }
    pebble.pause(false);
    let out = first.join().expect("curl thread");
    assert!(out.status.success(), "{}\n{}", describe(&out), server.log());
    assert!(stdout(&out).contains("/first"), "{}", describe(&out));
    assert_eq!(
        meanwhile, 3,
        "other requests were not served while the handshake waited"
    );
    let e = entry(&api_tls(&server), &alice).expect("alice's certificate");
    assert_eq!(e["source"], "on-demand", "{e:#}");
    assert!(e["not_after"].is_i64(), "{e:#}");
    assert!(server
        .data_dir
        .join(format!(".tenement/acme/{alice}.crt"))
        .exists());

    // A name that is no instance: a handshake alert, and nothing ordered.
    let bob = format!("bob.web.{DOMAIN}");
    let out = curl_https(&server, &root, &bob, "/");
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(
        out.status.code(),
        Some(35),
        "a TLS handshake error: {}",
        describe(&out)
    );
    // An unknown service too.
    let out = curl_https(&server, &root, &format!("x.nope.{DOMAIN}"), "/");
    assert_eq!(out.status.code(), Some(35), "{}", describe(&out));
    let list = api_tls(&server);
    assert!(entry(&list, &bob).is_none(), "{list:#}");
    assert!(!server
        .log()
        .contains(&format!("ordering a certificate for {bob}")));

    // autospawn: a valid id under max_instances is served (and created);
    // past max_instances it is an unknown name.
    let out = curl_https(&server, &root, &format!("new1.auto.{DOMAIN}"), "/spawned");
    assert!(out.status.success(), "{}\n{}", describe(&out), server.log());
    assert!(stdout(&out).contains("/spawned"), "{}", describe(&out));
    let out = curl_https(&server, &root, &format!("new2.auto.{DOMAIN}"), "/");
    assert_eq!(out.status.code(), Some(35), "{}", describe(&out));

    // The hourly budget (3 here): carol is the third new name, dave over it.
    let carol = curl_https(&server, &root, &format!("carol.web.{DOMAIN}"), "/");
    assert!(
        carol.status.success(),
        "{}\n{}",
        describe(&carol),
        server.log()
    );
    let dave = curl_https(&server, &root, &format!("dave.web.{DOMAIN}"), "/");
    assert_eq!(dave.status.code(), Some(35), "{}", describe(&dave));
    // The log is read from the server's pipe by another thread.
    assert!(
        wait_until(DEADLINE, || server
            .log()
            .contains("acme_on_demand_per_hour")),
        "{}",
        server.log()
    );
}

#[test]
fn short_lived_certificates_are_renewed_with_a_third_of_their_lifetime_left() {
    let Some((pebble, plain, https_addr)) = pebble_for("acme-renew", |o| {
        o.always_valid = true;
        o.validity = Some(30);
    }) else {
        return;
    };
    let tls = pebble.tls_keys(https_addr, "http-01");
    let server = start_server("acme-renew", &config(&tls, &[]), plain);
    let name = format!("web.{DOMAIN}");
    let first = wait_issued(&server, &pebble, &name, ISSUE);
    let first_after = first["not_after"].as_i64().expect("not_after");
    // Renewed 20 s after issuance (10 s of 30 left); allow for slack.
    let mut last = Value::Null;
    let renewed = wait_until(Duration::from_secs(45), || {
        last = api_tls(&server);
        entry(&last, &name)
            .and_then(|e| e["not_after"].as_i64())
            .is_some_and(|t| t > first_after)
    });
    assert!(renewed, "not renewed: {last:#}\n{}", server.log());
    let e = entry(&last, &name).expect("entry");
    assert!(e["last_error"].is_null(), "{e:#}");
    assert!(
        e["expires_in_seconds"].as_i64().is_some_and(|s| s > 10),
        "the new certificate is in use: {e:#}"
    );
    // The handshake serves the renewed certificate.
    let root = pebble.root();
    let out = curl(&[
        "-v",
        "--resolve",
        &format!("{name}:{}:127.0.0.1", https_addr.port()),
        "--cacert",
        root.to_str().expect("utf-8"),
        "-o",
        "/dev/null",
        &format!("https://{name}:{}/", https_addr.port()),
    ]);
    let text = stderr(&out);
    assert!(text.contains("expire date"), "{text}");
}

#[test]
fn an_on_demand_certificate_goes_after_its_instance_is_stopped_and_stays_while_it_sleeps() {
    let Some((pebble, plain, https_addr)) = pebble_for("acme-keep", |o| {
        o.always_valid = true;
    }) else {
        return;
    };
    let tls = format!(
        "{}acme_on_demand = true\nacme_on_demand_keep = 2\n",
        pebble.tls_keys(https_addr, "http-01")
    );
    // `nap` instances sleep after a second without a request.
    let nap = py_service("nap", "echo.py", "idle_timeout = 1");
    let mut cfg =
        config(&tls, &["run", "gone"]).replace("[instances]\n", &format!("{nap}\n[instances]\n"));
    cfg.push_str("nap = [\"sleepy\"]\n");
    let server = start_server("acme-keep", &cfg, plain);
    wait_issued(&server, &pebble, &format!("web.{DOMAIN}"), ISSUE);
    let root = pebble.root();
    let (run, gone, sleepy) = (
        format!("run.web.{DOMAIN}"),
        format!("gone.web.{DOMAIN}"),
        format!("sleepy.nap.{DOMAIN}"),
    );
    let acme_dir = server.data_dir.join(".tenement/acme");
    for name in [&run, &gone, &sleepy] {
        wait_served(&server, &root, name, "/first");
        let e = entry(&api_tls(&server), name).expect("its certificate");
        assert_eq!(e["source"], "on-demand", "{e:#}");
        assert!(acme_dir.join(format!("{name}.crt")).exists(), "{name}");
        assert!(acme_dir.join(format!("{name}.key")).exists(), "{name}");
    }

    // sleepy is asleep before gone is stopped: whatever pass of the ACME
    // thread sees gone stopped sees sleepy asleep, for longer.
    let mut last = None;
    let asleep = wait_until(DEADLINE, || {
        last = server.instance("nap:sleepy");
        last.as_ref().is_some_and(|i| i["state"] == "sleeping")
    });
    assert!(asleep, "nap:sleepy never slept: {last:?}\n{}", server.log());
    server.ten_ok(&["stop", "web:gone"]);

    // Removed once acme_on_demand_keep (2 s) has passed since the stop
    // was seen (the thread looks at least every 15 s).
    let mut list = Value::Null;
    let removed = wait_until(Duration::from_secs(90), || {
        list = api_tls(&server);
        entry(&list, &gone).is_none()
    });
    assert!(removed, "{gone} still listed: {list:#}\n{}", server.log());
    // The log is read from the server's pipe by another thread.
    let said = format!("{gone}: its instance has been gone 2s");
    assert!(
        wait_until(DEADLINE, || server.log().contains(&said)),
        "{}",
        server.log()
    );
    for ext in ["crt", "key"] {
        assert!(!acme_dir.join(format!("{gone}.{ext}")).exists(), "{ext}");
    }
    // Its name now gets a handshake alert, and nothing is ordered again.
    let out = curl_https(&server, &root, &gone, "/");
    assert_eq!(out.status.code(), Some(35), "{}", describe(&out));
    let orders = server
        .log()
        .matches(&format!("ordering a certificate for {gone} "))
        .count();
    assert_eq!(orders, 1, "{}", server.log());

    // The running and the sleeping instance keep theirs, files included,
    // and are served with them (sleepy wakes for it).
    let state = server.instance("nap:sleepy").expect("listed")["state"].clone();
    assert_eq!(state, "sleeping", "{}", server.log());
    for name in [&run, &sleepy] {
        let e = entry(&list, name).unwrap_or_else(|| panic!("{name} dropped: {list:#}"));
        assert!(e["not_after"].is_i64(), "{e:#}");
        assert!(acme_dir.join(format!("{name}.crt")).exists(), "{name}");
        assert!(acme_dir.join(format!("{name}.key")).exists(), "{name}");
        let out = curl_https(&server, &root, name, "/again");
        assert!(out.status.success(), "{}\n{}", describe(&out), server.log());
        assert!(stdout(&out).contains("/again"), "{}", describe(&out));
    }
}
