//! Who may publish: the one credential check every ingest source (HTTP uploads, RTMP, the API's `DELETE`) uses.
//!
//! - A **token** (`--ingest-token`) opens every stream.
//! - A **key** (`--ingest-key NAME=SECRET`) opens one stream id, or with a group name (`cams`) every rendition of
//!   that group (`cams/hd`, `cams/sd`) and the stream of that name itself.
//! - A **keys file** (`--ingest-keys-file PATH`) holds more keys, one `NAME=SECRET` a line (`#` starts a comment).
//!   It is read at start and again whenever it changes ([`KeysFile::reload_if_changed`], polled by the engine), so
//!   keys are added and revoked without a restart; a file that does not parse keeps the keys read before, with
//!   an error in the log.
//! - With none of these configured, ingest is accepted only from loopback.
//!
//! Secrets are compared in constant time (`subtle`), so the time an answer takes says nothing about how much of a
//! guess was right. HTTP carries the credential as `Authorization: Bearer SECRET`, RTMP in the stream key's query
//! (`cam1?key=SECRET`).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use playlists::StreamId;
use subtle::ConstantTimeEq;

/// A secret bound to one stream id or group.
#[derive(Clone, PartialEq, Eq)]
pub struct IngestKey {
    /// The stream id (`cam1`, `cams/hd`) or group (`cams`) the key opens.
    pub scope: String,
    /// The secret.
    pub secret: String,
}

impl fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret.
        f.debug_struct("IngestKey").field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl IngestKey {
    /// Parses `NAME=SECRET`, where `NAME` is a stream id or a group name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scope, secret) =
            s.split_once('=').ok_or_else(|| format!("ingest key '{}' is not NAME=SECRET", scope_of(s)))?;
        let (scope, secret) = (scope.trim(), secret.trim());
        StreamId::parse(scope).map_err(|e| format!("ingest key for '{scope}': {e}"))?;
        if secret.is_empty() {
            return Err(format!("ingest key for '{scope}' has an empty secret"));
        }
        Ok(Self { scope: scope.to_owned(), secret: secret.to_owned() })
    }

    /// Whether the key opens `id`.
    fn opens(&self, id: &StreamId) -> bool {
        let id = id.as_str();
        id == self.scope || id.strip_prefix(self.scope.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What precedes the `=` of a would-be key, for an error message that does not echo a secret.
fn scope_of(s: &str) -> &str {
    s.split('=').next().unwrap_or_default()
}

/// Who may ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestAuth {
    /// Secrets that open every stream. With none here, no keys and no keys file, ingest is accepted only from
    /// loopback.
    pub tokens: Vec<String>,
    /// Secrets that open one stream or group.
    pub keys: Vec<IngestKey>,
    /// More keys, from a file re-read when it changes.
    pub file: Option<Arc<KeysFile>>,
}

/// Ingest keys read from a file, one `NAME=SECRET` a line; blank lines and lines starting with `#` are skipped.
#[derive(Debug)]
pub struct KeysFile {
    path: PathBuf,
    /// The keys, and the modification time of the file last read (the keys stay those of the last good read).
    state: RwLock<(Vec<IngestKey>, Option<SystemTime>)>,
}

impl KeysFile {
    /// Reads `path`; an error if it cannot be read or a line is not a key.
    pub fn open(path: &Path) -> Result<Self, String> {
        let (keys, modified) = read_keys(path)?;
        Ok(Self { path: path.to_owned(), state: RwLock::new((keys, modified)) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again if its modification time changed. `Ok(Some(n))`: `n` keys now; `Ok(None)`: unchanged;
    /// `Err`: the file cannot be read or does not parse, and the keys read before stay in force.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, String> {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified == self.state.read().unwrap_or_else(PoisonError::into_inner).1 {
            return Ok(None);
        }
        let read = read_keys(&self.path);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        // A broken file is reported once, not again until it changes.
        state.1 = modified;
        let (keys, _) = read?;
        state.0 = keys;
        Ok(Some(state.0.len()))
    }

    /// Whether `given` is a key of the file that opens `id` (every key compared, in constant time).
    fn opens(&self, id: &StreamId, given: &str) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.0.iter().fold(false, |ok, key| ok | (same(&key.secret, given) & key.opens(id)))
    }
}

fn read_keys(path: &Path) -> Result<(Vec<IngestKey>, Option<SystemTime>), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let keys = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| IngestKey::parse(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((keys, modified))
}

/// Why ingest was refused. Every variant is a 403 over HTTP and a refused publish over RTMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credential is configured and the peer is not on loopback.
    #[error("ingest is accepted only from loopback unless tokens or keys are configured")]
    NotLoopback,
    /// Credentials are configured and none was given.
    #[error("ingest needs a credential (HTTP: Authorization: Bearer <token>; RTMP: stream key NAME?key=<key>)")]
    Missing,
    /// The credential given opens no stream, or not this one.
    #[error("bad ingest credential for this stream")]
    Bad,
}

impl Refusal {
    /// The reason as a static string (what `Display` prints).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotLoopback => "ingest is accepted only from loopback unless tokens or keys are configured",
            Refusal::Missing => {
                "ingest needs a credential (HTTP: Authorization: Bearer <token>; RTMP: stream key NAME?key=<key>)"
            }
            Refusal::Bad => "bad ingest credential for this stream",
        }
    }
}

/// Compares two secrets in constant time (for equal lengths; the length itself is not a secret worth hiding).
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl IngestAuth {
    /// Whether no credential is configured (then: loopback only). A keys file counts even while it is empty.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.keys.is_empty() && self.file.is_none()
    }

    /// Whether `credential` may publish `id` from `peer` (`None`: unknown, which is not loopback).
    pub fn check(&self, id: &StreamId, credential: Option<&str>, peer: Option<IpAddr>) -> Result<(), Refusal> {
        if self.is_open() {
            return if peer.is_some_and(|ip| ip.is_loopback()) { Ok(()) } else { Err(Refusal::NotLoopback) };
        }
        let given = credential.map(str::trim).filter(|c| !c.is_empty()).ok_or(Refusal::Missing)?;
        // Every secret is compared, so the time taken does not say which one (or whether one) matched.
        let mut ok = false;
        for token in &self.tokens {
            ok |= same(token, given);
        }
        for key in &self.keys {
            ok |= same(&key.secret, given) & key.opens(id);
        }
        if let Some(file) = &self.file {
            ok |= file.opens(id, given);
        }
        if ok {
            Ok(())
        } else {
            Err(Refusal::Bad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        StreamId::parse(s).unwrap()
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn without_credentials_only_loopback_publishes() {
        let auth = IngestAuth::default();
        assert_eq!(auth.check(&id("a"), None, LOOPBACK), Ok(()));
        assert_eq!(auth.check(&id("a"), Some("x"), REMOTE), Err(Refusal::NotLoopback));
        assert_eq!(auth.check(&id("a"), None, None), Err(Refusal::NotLoopback));
    }

    #[test]
    fn a_token_opens_every_stream_and_a_key_its_own() {
        let auth = IngestAuth {
            tokens: vec!["any".into()],
            keys: vec![IngestKey::parse("cam1=k1").unwrap(), IngestKey::parse("cams=kg").unwrap()],
            file: None,
        };
        assert_eq!(auth.check(&id("whatever"), Some("any"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cam1"), Some("k1"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cam2"), Some("k1"), REMOTE), Err(Refusal::Bad));
        assert_eq!(auth.check(&id("cams/hd"), Some("kg"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cams"), Some("kg"), REMOTE), Ok(()));
        // A group key does not open a stream whose name merely starts with the group's.
        assert_eq!(auth.check(&id("camsx"), Some("kg"), REMOTE), Err(Refusal::Bad));
        assert_eq!(auth.check(&id("cam1"), None, LOOPBACK), Err(Refusal::Missing), "loopback needs it too");
        assert_eq!(auth.check(&id("cam1"), Some("k"), REMOTE), Err(Refusal::Bad), "a prefix of a secret is not it");
        assert_eq!(auth.check(&id("cam1"), Some("k1x"), REMOTE), Err(Refusal::Bad));
    }

    #[test]
    fn a_keys_file_is_read_again_when_it_changes_and_a_broken_one_keeps_the_old_keys() {
        let dir = std::env::temp_dir().join(format!("playlists-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, "# encoders\ncam1=one\n\ncams = group\n").unwrap();
        let file = Arc::new(KeysFile::open(&path).unwrap());
        let auth = IngestAuth { file: Some(Arc::clone(&file)), ..IngestAuth::default() };
        assert_eq!(auth.check(&id("cam1"), Some("one"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cams/hd"), Some("group"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cam1"), None, LOOPBACK), Err(Refusal::Missing), "a keys file is a credential");
        assert_eq!(file.reload_if_changed(), Ok(None), "unchanged");
        // A new key replaces the old one. (Set the time apart: some filesystems keep whole seconds.)
        std::fs::write(&path, "cam1=two\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert_eq!(file.reload_if_changed(), Ok(Some(1)));
        assert_eq!(auth.check(&id("cam1"), Some("one"), REMOTE), Err(Refusal::Bad));
        assert_eq!(auth.check(&id("cam1"), Some("two"), REMOTE), Ok(()));
        // A broken file is an error and changes nothing.
        std::fs::write(&path, "cam1=three\nnot a key\n").unwrap();
        let later = later + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        let e = file.reload_if_changed().unwrap_err();
        assert!(e.contains("line 2") && !e.contains("three"), "{e}");
        assert_eq!(auth.check(&id("cam1"), Some("two"), REMOTE), Ok(()));
        assert_eq!(file.reload_if_changed(), Ok(None), "reported once, until it changes again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keys_parse_as_name_equals_secret() {
        assert_eq!(IngestKey::parse(" cam1 = s=3 ").unwrap(), IngestKey { scope: "cam1".into(), secret: "s=3".into() });
        assert!(IngestKey::parse("cam1").is_err());
        assert!(IngestKey::parse("cam1=").is_err());
        assert!(IngestKey::parse("bad name=x").is_err());
        let e = IngestKey::parse("bad name=hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!format!("{:?}", IngestKey::parse("a=hunter2").unwrap()).contains("hunter2"));
    }
}
