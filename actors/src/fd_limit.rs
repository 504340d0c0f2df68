//! The open-file limit and the connection limit that fits in it.
//!
//! Each connection is a file descriptor. A process that runs out of them cannot accept, and then cannot answer
//! even `/healthz`; so [`fit`] raises the soft limit as far as the hard one allows (as nginx's
//! `worker_rlimit_nofile` does) and, if that is still too small, lowers `--max-connections` to what fits, with
//! a warning: connections over it are then refused with a reason instead of failing at `accept`.

/// Descriptors kept for everything but HTTP connections: listeners, RTMP sessions, files, the runtime's own.
const RESERVE: u64 = 512;

/// `max_connections`, or less if it does not fit in the file limit even after raising the soft limit towards what
/// it needs. With 0 (no limit) the soft limit is raised as far as it goes, and 0 stays.
pub fn fit(max_connections: usize) -> usize {
    if max_connections == 0 {
        raise(u64::MAX);
        return 0;
    }
    let Some(limit) = raise(max_connections as u64 + RESERVE) else { return max_connections };
    let room = usize::try_from(limit.saturating_sub(RESERVE).max(64)).unwrap_or(usize::MAX);
    if max_connections > room {
        tracing::warn!(
            open_files = limit,
            "the open-file limit leaves room for {room} connections: --max-connections lowered from \
             {max_connections} to {room} (raise the limit, e.g. LimitNOFILE= in a systemd unit, for more)"
        );
        return room;
    }
    max_connections
}

/// Raises the soft open-file limit to `wanted` (or the hard limit, if lower); the soft limit after, if known.
#[cfg(target_os = "linux")]
fn raise(wanted: u64) -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let target = wanted.min(hard);
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        return Some(target);
    }
    Some(soft)
}

#[cfg(not(target_os = "linux"))]
fn raise(_wanted: u64) -> Option<u64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_or_the_connections_fit_in_it() {
        let max = fit(4096);
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert!(max <= 4096);
        assert!(max as u64 + RESERVE <= soft.max(64 + RESERVE), "{max} connections in a limit of {soft}");
    }
}
