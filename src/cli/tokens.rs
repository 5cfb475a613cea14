//! `ten token-gen` (mint a token, `--rotate` the admin one) and `ten token
//! list` / `ten token revoke ID`.
//!
//! `token-gen` always works on the files in `{data_dir}/.tenement` (a running
//! server picks up the change at its next request). `list` and `revoke` ask
//! the running server when there is one (over `ten.sock`, or `--server` with
//! an admin token), so "last used" is current and a revoke ends at once;
//! with the server stopped they read and write the tokens file themselves.
//! Nothing here ever prints a token's hash, and only `token-gen` prints a
//! token.

use serde_json::{json, Value};

use super::client::{Client, Endpoint, READ_TIMEOUT};
use super::{env_var, note, output, CliError, Ctx};
use crate::names;
use crate::state::tokens;

pub fn token_gen(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let tenant = inv.value("tenant");
    if inv.has("rotate") {
        if tenant.is_some() {
            return Err(inv
                .usage(
                    "--rotate replaces the admin token; a tenant token is replaced by minting \
                     another (--tenant T) and revoking the old one (`ten token revoke ID`)",
                )
                .into());
        }
        return rotate(ctx);
    }
    if let Some(t) = tenant {
        names::check("instance id", t).map_err(|e| inv.usage(format!("--tenant: {e}")))?;
    }
    let description = inv.value("description").unwrap_or("");
    let data_dir = ctx.data_dir();
    let token = tokens::mint(&data_dir, tenant, description)?;
    if ctx.json() {
        return output::print_json(&json!({"token": token, "tenant": tenant}));
    }
    // The token alone on stdout, so `ten token-gen | tr -d ' '` is the token;
    // the words around it go to stderr.
    match tenant {
        None => note(&format!(
            "New admin token (also saved to {}):\n",
            crate::state::layout::api_token_path(&data_dir).display()
        )),
        Some(t) => note(&format!(
            "New token for tenant {t} (it sees only instances with id {t}):\n"
        )),
    }
    output::print(&format!("  {token}\n"))?;
    note("It is shown only this once; tenement keeps only its hash.\nUse it with `ten --token T` or the header `Authorization: Bearer T`.\n");
    Ok(())
}

/// `ten token-gen --rotate`.
fn rotate(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let data_dir = ctx.data_dir();
    let done = tokens::rotate(&data_dir, ctx.inv.value("description"))?;
    if ctx.json() {
        return output::print_json(&json!({
            "token": done.token,
            "id": done.id,
            "tenant": null,
            "revoked": done.replaced.as_ref().map(|r| r.id.as_str()),
        }));
    }
    let saved = crate::state::layout::api_token_path(&data_dir);
    match &done.replaced {
        Some(old) => note(&format!(
            "New admin token {} (saved to {}); the old one, {}, is revoked:\n",
            done.id,
            saved.display(),
            old.id
        )),
        None => note(&format!(
            "New admin token {} (saved to {}); {} held no valid admin token, so none was revoked:\n",
            done.id,
            saved.display(),
            saved.display()
        )),
    }
    output::print(&format!("  {}\n", done.token))?;
    note("It is shown only this once; tenement keeps only its hash.\n");
    Ok(())
}

/// `ten token list` / `ten token revoke ID`.
pub fn token(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let inv = ctx.inv;
    let args: Vec<&str> = inv.positionals.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => list(ctx),
        ["revoke", id] => revoke(ctx, id),
        ["revoke"] => Err(inv
            .usage("missing the token's id: ten token revoke ID")
            .into()),
        ["list", extra] => Err(inv
            .usage(format!("unexpected argument {extra:?}: ten token list"))
            .into()),
        [other, ..] => Err(inv
            .usage(format!(
                "unknown token command {other:?}: use list or revoke"
            ))
            .into()),
        [] => unreachable!("the table asks for at least one argument"),
    }
}

/// The running server to ask: `--server`/$TENEMENT_SERVER, else `ten.sock`
/// when a server answers on it. None: no server runs; use the files.
fn server(ctx: &Ctx<'_>) -> Result<Option<Client>, CliError> {
    if ctx.inv.globals.server.is_some() || env_var("TENEMENT_SERVER").is_some() {
        return ctx.client().map(Some);
    }
    let sock = crate::state::layout::api_socket_path(&ctx.data_dir());
    // A socket file left by a server that died is not a server.
    match std::os::unix::net::UnixStream::connect(&sock) {
        Ok(_) => Ok(Some(Client::new(Endpoint::Unix(sock), None))),
        Err(e) => {
            debug!("cli", "no server on {}: {e}", sock.display());
            Ok(None)
        }
    }
}

fn list(ctx: &Ctx<'_>) -> Result<(), CliError> {
    let items: Vec<Value> = match server(ctx)? {
        Some(client) => match client.get("/api/tokens")? {
            Value::Array(items) => items,
            _ => {
                return Err(CliError::failed(
                    "the server's token list is not a JSON array",
                ))
            }
        },
        None => tokens::list(&ctx.data_dir())?
            .iter()
            .map(|r| r.public_json(None))
            .collect(),
    };
    if ctx.json() {
        return output::print_json(&Value::Array(items));
    }
    output::print(&table(&items, super::commands::now_unix()))
}

fn revoke(ctx: &Ctx<'_>, id: &str) -> Result<(), CliError> {
    if let Err(why) = tokens::check_id(&id.to_ascii_lowercase()) {
        return Err(ctx.inv.usage(why).into());
    }
    let id = id.to_ascii_lowercase();
    let (record, removed_api_token) = match server(ctx)? {
        Some(client) => {
            let v = client.call("DELETE", &format!("/api/tokens/{id}"), None, READ_TIMEOUT)?;
            let removed = v["removed_api_token"].as_bool().unwrap_or(false);
            (v["revoked"].clone(), removed)
        }
        None => match tokens::revoke(&ctx.data_dir(), &id)? {
            Some(done) => (done.record.public_json(None), done.removed_api_token),
            None => return Err(CliError::failed(format!("no token with id {id}"))),
        },
    };
    if ctx.json() {
        return output::print_json(&json!({
            "revoked": record,
            "removed_api_token": removed_api_token,
        }));
    }
    let whose = match record["tenant"].as_str() {
        Some(t) => format!("tenant {t}'s token"),
        None => "admin token".to_string(),
    };
    output::print(&format!("revoked {whose} {id}\n"))?;
    if removed_api_token {
        note(&format!(
            "{} held it and was removed; `ten token-gen` mints a new admin token\n",
            crate::state::layout::api_token_path(&ctx.data_dir()).display()
        ));
    }
    Ok(())
}

/// ID KIND TENANT CREATED LAST-USED DESCRIPTION, oldest token first.
fn table(items: &[Value], now: u64) -> String {
    let ago = |v: &Value| match v.as_u64() {
        Some(t) => format!("{} ago", output::uptime(now.saturating_sub(t))),
        None => "never".to_string(),
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            vec![
                output::cell(t.get("id")),
                output::cell(t.get("kind")),
                t["tenant"].as_str().unwrap_or("-").to_string(),
                ago(&t["created_unix"]),
                ago(&t["last_used_unix"]),
                t["description"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "KIND",
            "TENANT",
            "CREATED",
            "LAST USED",
            "DESCRIPTION",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_ages_and_never_and_no_hash() {
        let items = vec![
            json!({"id": "0badf00d", "kind": "admin", "tenant": null, "description": "ci",
                   "created_unix": 9040, "last_used_unix": 9990}),
            json!({"id": "12345678", "kind": "tenant", "tenant": "alice", "description": "",
                   "created_unix": 2800, "last_used_unix": null}),
        ];
        let text = table(&items, 10_000);
        assert_eq!(
            text,
            "ID        KIND    TENANT  CREATED  LAST USED  DESCRIPTION\n\
             0badf00d  admin   -       16m ago  10s ago    ci\n\
             12345678  tenant  alice   2h ago   never\n"
        );
    }
}
