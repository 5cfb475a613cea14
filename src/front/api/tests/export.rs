//! `GET /api/export`: the edge map of the fixture's registry, as JSON and as
//! HAProxy map lines, for admins only.

use super::*;

#[test]
fn export_lists_every_instance_and_each_served_service() {
    let mut f = Fixture::new("api-export");
    // notes:bob takes no weighted traffic; notes:alice still serves `notes`.
    let bob = f.snap.by_key[&("notes".to_string(), "bob".to_string())];
    std::sync::Arc::make_mut(&mut f.snap.instances[bob]).weight = 0;
    let r = response(f.admin("GET", "/api/export?node=node-a&format=haproxy-map", ""));
    assert_eq!(r.status, 200);
    assert_eq!(
        body_text(&r),
        "alice.api.example.com node-a\n\
         prod.api.example.com node-a\n\
         alice.notes.example.com node-a\n\
         bob.notes.example.com node-a\n\
         api.example.com node-a\n\
         notes.example.com node-a\n"
    );
    let j = body_json(&response(f.admin("GET", "/api/export?node=node-a", "")));
    assert_eq!(j["node"], "node-a");
    assert_eq!(j["domain"], "example.com");
    assert_eq!(j["entries"].as_array().unwrap().len(), 6);
    assert_eq!(
        j["entries"][2],
        serde_json::json!({"host": "alice.notes.example.com", "node": "node-a",
                           "service": "notes", "instance": "notes:alice"})
    );
    assert_eq!(
        j["entries"][5],
        serde_json::json!({"host": "notes.example.com", "node": "node-a",
                           "service": "notes", "instance": null})
    );
}

#[test]
fn export_leaves_out_services_with_no_weight_here() {
    let mut f = Fixture::new("api-export-weight");
    for v in &mut f.snap.instances {
        if v.service == "notes" {
            std::sync::Arc::make_mut(v).weight = 0;
        }
    }
    let text = body_text(&response(f.admin(
        "GET",
        "/api/export?node=n&format=haproxy-map",
        "",
    )));
    assert!(text.contains("alice.notes.example.com n\n"), "{text}");
    assert!(!text.contains("\nnotes.example.com"), "{text}");
    // `idle` has no instance here at all.
    assert!(!text.contains("idle."), "{text}");
}

#[test]
fn export_needs_an_admin_and_checks_its_query() {
    let mut f = Fixture::new("api-export-auth");
    error(f.call("GET", "/api/export", None, ""), 401);
    error(f.alice("GET", "/api/export", ""), 403);
    assert!(error(f.admin("GET", "/api/export?node=a%20b", ""), 400).contains("node"));
    assert!(error(f.admin("GET", "/api/export?format=xml", ""), 400).contains("format"));
    assert!(error(f.admin("GET", "/api/export?nod=a", ""), 400).contains("nod"));
    // The default node name is this machine's hostname (or `node`).
    let j = body_json(&response(f.admin("GET", "/api/export", "")));
    assert_eq!(j["node"], super::super::export::default_node());
}
