//! The server's one configuration struct: command-line flags, environment variables and an optional TOML file,
//! in that order of precedence, over the defaults of DESIGN.md section 4.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::auth::{IngestAuth, IngestKey, KeysFile};
use crate::stream::Lifetimes;
use crate::{EngineConfig, ServeConfig};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `--config` file is not valid TOML for these settings.
    #[error("in {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The settings do not work together.
    #[error(transparent)]
    Invalid(#[from] playlists::Error),
    /// An `--ingest-key` that is not NAME=SECRET with a valid stream or group name, or an `--ingest-keys-file` that
    /// cannot be read or holds such a line.
    #[error("{0}")]
    Key(String),
    /// TLS settings that do not go together.
    #[error("{0}")]
    Tls(String),
}

/// `playlists`: a Low-Latency HLS origin. Encoders push fragmented MP4 to /ingest/{stream}; players read
/// /live/{stream}/index.m3u8.
#[derive(Debug, Clone, Default, PartialEq, Parser, Deserialize)]
#[command(name = "playlists", version, about)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A TOML file holding any of the settings below (snake_case keys); flags and environment override it.
    #[arg(long, env = "PLAYLISTS_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; 0.0.0.0:8080 to publish.
    #[arg(long, env = "PLAYLISTS_BIND")]
    pub bind: Option<SocketAddr>,
    /// Address of the HTTPS listener (HTTP/2 and HTTP/1.1), when --tls-cert and --tls-key are given [default:
    /// 127.0.0.1:8443]; the plain listener on --bind stays.
    #[arg(long, env = "PLAYLISTS_TLS_BIND")]
    pub tls_bind: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) for HTTPS; read again when the file changes and at SIGHUP.
    #[arg(long, env = "PLAYLISTS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "PLAYLISTS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Address of the RTMP listener (publish to rtmp://HOST/live/{stream}) [default: 127.0.0.1:1935].
    #[arg(long, env = "PLAYLISTS_RTMP_BIND")]
    pub rtmp_bind: Option<SocketAddr>,
    /// No RTMP listener.
    #[arg(long, env = "PLAYLISTS_NO_RTMP")]
    pub no_rtmp: bool,
    /// Ingest keys bound to one stream or group, NAME=SECRET (comma-separated); the RTMP stream key carries one
    /// as NAME?key=SECRET.
    #[arg(long = "ingest-key", env = "PLAYLISTS_INGEST_KEYS", value_delimiter = ',')]
    pub ingest_keys: Vec<String>,
    /// A file of more ingest keys, one NAME=SECRET a line, read again whenever it changes.
    #[arg(long, env = "PLAYLISTS_INGEST_KEYS_FILE")]
    pub ingest_keys_file: Option<PathBuf>,
    /// Do not run the built-in demo stream `demo`.
    #[arg(long, env = "PLAYLISTS_NO_DEMO")]
    pub no_demo: bool,
    /// Bearer tokens accepted for ingest (comma-separated); without any, ingest is accepted only from loopback.
    #[arg(long = "ingest-token", env = "PLAYLISTS_INGEST_TOKENS", value_delimiter = ',')]
    pub ingest_tokens: Vec<String>,
    /// EXT-X-TARGETDURATION in seconds, fixed for the life of a stream [default: 2].
    #[arg(long, env = "PLAYLISTS_TARGET_DURATION")]
    pub target_duration: Option<u32>,
    /// The most a stream's target duration is raised to when its first GOP is longer than --target-duration, in
    /// seconds [default: 10]; equal to --target-duration: never raised.
    #[arg(long, env = "PLAYLISTS_MAX_TARGET_DURATION")]
    pub max_target_duration: Option<u32>,
    /// The longest part, milliseconds: longer incoming fragments are cut into parts of at most this, and RTMP is
    /// packaged into parts of at most this [default: 250].
    #[arg(long, env = "PLAYLISTS_MAX_PART_MS")]
    pub max_part_ms: Option<u64>,
    /// A segment is cut at the first keyframe once it holds this many milliseconds [default: 1000].
    #[arg(long, env = "PLAYLISTS_MIN_SEGMENT_MS")]
    pub min_segment_ms: Option<u64>,
    /// Seconds of complete segments listed in a playlist, at least 6 x target duration [default: 24].
    #[arg(long, env = "PLAYLISTS_WINDOW_SECS")]
    pub window_secs: Option<u64>,
    /// Most streams at once [default: 256].
    #[arg(long, env = "PLAYLISTS_MAX_STREAMS")]
    pub max_streams: Option<usize>,
    /// Largest part (fragment) accepted, bytes [default: 16 MiB].
    #[arg(long, env = "PLAYLISTS_MAX_PART_BYTES")]
    pub max_part_bytes: Option<usize>,
    /// A stream with no part for this many seconds gets EXT-X-ENDLIST [default: 10].
    #[arg(long, env = "PLAYLISTS_IDLE_SECS")]
    pub idle_secs: Option<u64>,
    /// An ended stream stays readable this many seconds, then is removed [default: 30].
    #[arg(long, env = "PLAYLISTS_GRACE_SECS")]
    pub grace_secs: Option<u64>,
    /// An ingest connection (HTTP upload, RTMP publish) that sends nothing for this many seconds is cut off
    /// [default: 30].
    #[arg(long, env = "PLAYLISTS_INGEST_TIMEOUT_SECS")]
    pub ingest_timeout_secs: Option<u64>,
    /// Seconds in-flight requests may take to finish at shutdown [default: 5].
    #[arg(long, env = "PLAYLISTS_SHUTDOWN_SECS")]
    pub shutdown_secs: Option<u64>,
    /// HTTP worker threads [default: one per core].
    #[arg(long, env = "PLAYLISTS_WORKERS")]
    pub workers: Option<usize>,
    /// Pin the HTTP workers one per CPU (Linux), and run each stream's actor on the worker of the ingest that
    /// started it: steadier latency for held requests on a host the server has to itself.
    #[arg(long, env = "PLAYLISTS_PIN_WORKERS")]
    pub pin_workers: bool,
    /// Where the status page (`GET /`) loads hls.js from, for its previews [default:
    /// https://cdn.jsdelivr.net/npm/hls.js@1].
    #[arg(long, env = "PLAYLISTS_HLS_JS_URL")]
    pub hls_js_url: Option<String>,
}

impl Config {
    /// Reads the TOML file named by `--config`, if any, and lays these settings over it.
    pub fn load(self) -> Result<Self, ConfigError> {
        let Some(path) = &self.config else { return Ok(self) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let file: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.clone(), source: Box::new(e) })?;
        Ok(self.over(file))
    }

    /// These settings where given, `base`'s elsewhere.
    pub fn over(self, base: Config) -> Config {
        Config {
            config: self.config,
            bind: self.bind.or(base.bind),
            tls_bind: self.tls_bind.or(base.tls_bind),
            tls_cert: self.tls_cert.or(base.tls_cert),
            tls_key: self.tls_key.or(base.tls_key),
            rtmp_bind: self.rtmp_bind.or(base.rtmp_bind),
            no_rtmp: self.no_rtmp || base.no_rtmp,
            ingest_keys: if self.ingest_keys.is_empty() { base.ingest_keys } else { self.ingest_keys },
            ingest_keys_file: self.ingest_keys_file.or(base.ingest_keys_file),
            no_demo: self.no_demo || base.no_demo,
            ingest_tokens: if self.ingest_tokens.is_empty() { base.ingest_tokens } else { self.ingest_tokens },
            target_duration: self.target_duration.or(base.target_duration),
            max_target_duration: self.max_target_duration.or(base.max_target_duration),
            max_part_ms: self.max_part_ms.or(base.max_part_ms),
            min_segment_ms: self.min_segment_ms.or(base.min_segment_ms),
            window_secs: self.window_secs.or(base.window_secs),
            max_streams: self.max_streams.or(base.max_streams),
            max_part_bytes: self.max_part_bytes.or(base.max_part_bytes),
            idle_secs: self.idle_secs.or(base.idle_secs),
            grace_secs: self.grace_secs.or(base.grace_secs),
            ingest_timeout_secs: self.ingest_timeout_secs.or(base.ingest_timeout_secs),
            shutdown_secs: self.shutdown_secs.or(base.shutdown_secs),
            workers: self.workers.or(base.workers),
            pin_workers: self.pin_workers || base.pin_workers,
            hls_js_url: self.hls_js_url.or(base.hls_js_url),
        }
    }

    /// The address to listen on.
    pub fn bind(&self) -> SocketAddr {
        self.bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// The HTTPS listener's address and its certificate and key files, if HTTPS is wanted.
    pub fn tls(&self) -> Result<Option<(SocketAddr, PathBuf, PathBuf)>, ConfigError> {
        let bind = self.tls_bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((bind, cert.clone(), key.clone()))),
            (None, None) if self.tls_bind.is_none() => Ok(None),
            (None, None) => Err(ConfigError::Tls("--tls-bind needs --tls-cert and --tls-key".into())),
            _ => Err(ConfigError::Tls("--tls-cert and --tls-key go together".into())),
        }
    }

    /// The address of the RTMP listener, unless it is turned off.
    pub fn rtmp_bind(&self) -> Option<SocketAddr> {
        (!self.no_rtmp).then(|| self.rtmp_bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1935))))
    }

    /// The server settings, validated.
    pub fn serve_config(&self) -> Result<ServeConfig, ConfigError> {
        let d = playlists::Options::default();
        let target_duration = self.target_duration.unwrap_or(d.target_duration);
        let window = self.window_secs.map_or(d.window, Duration::from_secs);
        let options = playlists::Options {
            target_duration,
            // Parts are listed for the last 3 target durations (checklist item 74).
            part_window: (Duration::from_secs(3) * target_duration).min(window),
            // Never below the target duration, so that `--target-duration 12` alone is a valid setting.
            max_target_duration: self
                .max_target_duration
                .unwrap_or(d.max_target_duration.max(self.target_duration.unwrap_or(d.target_duration))),
            max_part: self.max_part_ms.map_or(d.max_part, Duration::from_millis),
            min_segment: self.min_segment_ms.map_or(d.min_segment, Duration::from_millis),
            window,
            max_streams: self.max_streams.unwrap_or(d.max_streams),
            max_part_bytes: self.max_part_bytes.unwrap_or(d.max_part_bytes),
            ..d
        };
        options.validate()?;
        let tokens: Vec<String> =
            self.ingest_tokens.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        let keys = self
            .ingest_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| IngestKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError::Key)?;
        let file = match &self.ingest_keys_file {
            Some(path) => Some(Arc::new(KeysFile::open(path).map_err(ConfigError::Key)?)),
            None => None,
        };
        // What the file and the command line leave unset is the engine's default.
        let engine = EngineConfig::default();
        Ok(ServeConfig {
            engine: EngineConfig {
                options,
                auth: IngestAuth { tokens, keys, file },
                lifetimes: Lifetimes {
                    idle: self.idle_secs.map_or(engine.lifetimes.idle, |s| Duration::from_secs(s.max(1))),
                    grace: self.grace_secs.map_or(engine.lifetimes.grace, Duration::from_secs),
                },
                hls_js_url: self.hls_js_url.clone().unwrap_or(engine.hls_js_url.clone()),
                ingest_timeout: self
                    .ingest_timeout_secs
                    .map_or(engine.ingest_timeout, |s| Duration::from_secs(s.max(1))),
                ..engine
            },
            demo: !self.no_demo,
            shutdown_timeout: Duration::from_secs(self.shutdown_secs.unwrap_or(5)),
            workers: self.workers.unwrap_or(0),
            pin_workers: self.pin_workers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: Config =
            toml::from_str("bind = \"0.0.0.0:9000\"\ntarget_duration = 4\nidle_secs = 20\npin_workers = true\n")
                .unwrap();
        let cli = Config::parse_from(["playlists", "--target-duration", "3", "--no-demo"]);
        let c = cli.over(file);
        assert_eq!(c.bind(), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.target_duration, Some(3));
        let s = c.serve_config().unwrap();
        assert_eq!(s.engine.options.target_duration, 3);
        assert_eq!(s.engine.lifetimes.idle, Duration::from_secs(20));
        assert!(!s.demo);
        assert!(s.pin_workers, "set in the file, not unset by the command line");
        assert!(!Config::default().serve_config().unwrap().pin_workers);
        assert!(Config::parse_from(["playlists", "--pin-workers"]).serve_config().unwrap().pin_workers);
        assert_eq!(Config::default().bind(), "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<Config>("bnid = \"x\"").is_err());
        let c = Config { target_duration: Some(0), ..Config::default() };
        assert!(c.serve_config().is_err());
        let c = Config { window_secs: Some(5), ..Config::default() };
        assert!(c.serve_config().is_err());
    }

    #[test]
    fn part_and_target_duration_limits() {
        let s = Config::parse_from(["playlists", "--max-part-ms", "200", "--max-target-duration", "6"]);
        let o = s.serve_config().unwrap().engine.options;
        assert_eq!((o.max_part, o.max_target_duration), (Duration::from_millis(200), 6));
        let d = Config::default().serve_config().unwrap().engine.options;
        assert_eq!((d.max_part, d.max_target_duration), (Duration::from_millis(250), 10));
        let high = Config::parse_from(["playlists", "--target-duration", "12", "--window-secs", "72"]);
        assert_eq!(high.serve_config().unwrap().engine.options.max_target_duration, 12);
        assert!(Config::parse_from(["playlists", "--max-part-ms", "5"]).serve_config().is_err());
        assert!(Config::parse_from(["playlists", "--max-target-duration", "1"]).serve_config().is_err());
        let t = Config::parse_from(["playlists", "--ingest-timeout-secs", "5"]).serve_config().unwrap();
        assert_eq!(t.engine.ingest_timeout, Duration::from_secs(5));
        assert_eq!(Config::default().serve_config().unwrap().engine.ingest_timeout, Duration::from_secs(30));
    }

    #[test]
    fn rtmp_and_keys() {
        assert_eq!(Config::default().rtmp_bind(), Some("127.0.0.1:1935".parse().unwrap()));
        assert_eq!(Config::parse_from(["playlists", "--no-rtmp"]).rtmp_bind(), None);
        let c = Config::parse_from(["playlists", "--rtmp-bind", "0.0.0.0:1936", "--ingest-key", "cam1=a,cams=b"]);
        assert_eq!(c.rtmp_bind(), Some("0.0.0.0:1936".parse().unwrap()));
        let keys = c.serve_config().unwrap().engine.auth.keys;
        assert_eq!(keys.iter().map(|k| k.scope.as_str()).collect::<Vec<_>>(), ["cam1", "cams"]);
        assert!(Config::parse_from(["playlists", "--ingest-key", "cam1"]).serve_config().is_err());
        assert!(Config::parse_from(["playlists", "--ingest-keys-file", "/nonexistent/keys"]).serve_config().is_err());
        let file: Config = toml::from_str("no_rtmp = true\ningest_keys = [\"a=b\"]\n").unwrap();
        assert_eq!(file.rtmp_bind(), None);
        assert_eq!(file.serve_config().unwrap().engine.auth.keys.len(), 1);
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        assert!(Config::default().tls().unwrap().is_none());
        let both = Config::parse_from(["playlists", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
        let (bind, cert, key) = both.tls().unwrap().unwrap();
        assert_eq!(
            (bind, cert.to_str(), key.to_str()),
            ("127.0.0.1:8443".parse().unwrap(), Some("c.pem"), Some("k.pem"))
        );
        assert!(Config::try_parse_from(["playlists", "--tls-cert", "c.pem"]).is_err(), "clap: the key is required");
        let file: Config = toml::from_str("tls_cert = \"c.pem\"\n").unwrap();
        assert!(file.tls().is_err(), "a file with a certificate and no key");
        let bind_only: Config = toml::from_str("tls_bind = \"0.0.0.0:443\"\n").unwrap();
        assert!(bind_only.tls().is_err());
    }

    #[test]
    fn tokens_come_comma_separated() {
        let c = Config::parse_from(["playlists", "--ingest-token", "a,b"]);
        assert_eq!(c.serve_config().unwrap().engine.auth.tokens, vec!["a", "b"]);
    }
}
