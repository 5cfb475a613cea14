//! The demo app in `examples/notes` runs under tenement as `make demo` shows
//! it: one process per tenant, each with its own notes.

mod util;

use std::path::Path;

use util::*;

#[test]
fn example_config_passes_the_check() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes/tenement.toml");
    let scratch = Scratch::new("example_check");
    let out = ten_raw(
        &scratch.root,
        &[
            "--config",
            config.to_str().expect("UTF-8"),
            "config",
            "--check",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn notes_of_alice_and_bob_are_separate() {
    if !tools_present(&["python3"]) {
        return;
    }
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes");
    let config = format!(
        "{}[service.notes]\ncommand = \"python3 app.py\"\nworkdir = {}\nhealth = \"/health\"\n\n[instances]\nnotes = [\"alice\", \"bob\"]\n",
        settings(""),
        toml_str(&app_dir)
    );
    let server = Server::start("example_notes", &config);
    server.wait_running("notes:alice");
    server.wait_running("notes:bob");

    for (host, text) in [
        ("alice.notes.localhost", "buy milk"),
        ("bob.notes.localhost", "fix the bike"),
    ] {
        let resp = server.http(
            "POST",
            host,
            "/",
            &[("Content-Type", "text/plain")],
            text.as_bytes(),
        );
        assert_eq!(
            resp.status,
            201,
            "{host}: {}\n--- server log ---\n{}",
            resp.text(),
            server.log()
        );
    }
    let notes = |host: &str| {
        let resp = server.http("GET", host, "/?format=json", &[], b"");
        assert_eq!(resp.status, 200, "{host}: {}", resp.text());
        resp.json()
    };
    let alice = notes("alice.notes.localhost");
    let bob = notes("bob.notes.localhost");
    assert_eq!(alice["tenant"], "alice");
    assert_eq!(alice["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(alice["notes"][0]["text"], "buy milk");
    assert_eq!(bob["tenant"], "bob");
    assert_eq!(bob["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(bob["notes"][0]["text"], "fix the bike");
    // Each tenant's file sits in its own data dir.
    assert!(server
        .instance_dir("notes", "alice")
        .join("notes.json")
        .is_file());
    assert!(server
        .instance_dir("notes", "bob")
        .join("notes.json")
        .is_file());
}
