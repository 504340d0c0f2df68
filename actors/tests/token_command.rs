//! `playlists token`: the built binary prints a token the server's own check accepts, and fails clearly without a
//! secret. (The server side of the token is tested over HTTP in the root crate's `tests/tokens.rs`; only this
//! crate's tests can run its binary.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

use playlists_actors::access::{self, PlaybackAuth};

const SECRET: &str = "binary-test-playback-secret";

fn playlists(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_playlists"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PLAYLISTS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

#[test]
fn the_binary_prints_a_token_for_a_stream_or_a_group() {
    let out = playlists(&["token", "--stream", "cam1", "--ttl", "1h"])
        .env("PLAYLISTS_PLAYBACK_SECRETS", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.strip_suffix('\n').unwrap();
    assert!(!token.contains(char::is_whitespace), "one token, one line: {stdout:?}");
    let auth = PlaybackAuth::new(&[SECRET]).unwrap();
    let grant = auth.verify_for(token, "cam1", access::now()).unwrap();
    assert!((3590..=3600).contains(&(grant.expires - access::now())), "{grant:?}");

    // The secret from a --config file, and a group.
    let dir = std::env::temp_dir().join(format!("playlists-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("playlists.toml");
    std::fs::write(&file, format!("playback_secrets = [\"{SECRET}\"]\n")).unwrap();
    let out =
        playlists(&["--config", file.to_str().unwrap(), "token", "--group", "grp", "--ttl", "2d"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(auth.verify_for(token.trim(), "grp/hd", access::now()).is_ok(), "{token}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_secret_the_binary_says_so_and_fails() {
    let out = playlists(&["token", "--stream", "cam1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no playback secret is set"), "{err}");
    let out = playlists(&["token", "--ttl", "1h"]).env("PLAYLISTS_PLAYBACK_SECRETS", SECRET).output().unwrap();
    assert!(!out.status.success(), "a stream or a group is required");
}
