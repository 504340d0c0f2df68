//! Limits on what one client may hold and on what one request may be: connections (in all and per client
//! address), held requests and `/ws` sessions per address, and the size of a request's target, query and headers.
//!
//! Each limit refuses with its own status and the usual one-line JSON reason, is counted in `/metrics`
//! (`playlists_limit_refused_total{limit=...}`), and is a setting (README, "Limits"). A client address is an IPv4
//! address, or an IPv6 address's /64: one host is routinely given a whole /64, so counting its addresses one by
//! one would not limit it at all. Addresses in [`Limits::exempt`] (an edge cache in front: every viewer behind it
//! shares its address) are not limited per address; they still count towards [`Limits::max_connections`].
//!
//! Connections are counted when the HTTP layer takes them (after the TLS handshake on the TLS listener) by the
//! hook [`Clients::on_connect`] that [`crate::serve`] installs. A connection over a limit is closed at once: over
//! plain HTTP it is first sent a `503` with the reason (it has sent no request yet, so nothing else can be
//! answered); over TLS it is closed after the handshake. Held requests and `/ws` sessions take a [`Slot`] while
//! they last; one over its limit is answered `429` with `Retry-After`.

use std::any::Any;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Extensions;
use actix_web::http::header::HeaderMap;
use actix_web::http::Uri;
use dashmap::DashMap;

use super::metrics::Metrics;

/// The limits, each `0` for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, on every HTTP listener together.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_addr: usize,
    /// Requests held at once (blocking playlist reloads and parts not yet published) from one client address.
    pub max_held_per_addr: usize,
    /// `/ws` sessions open at once from one client address.
    pub max_ws_per_addr: usize,
    /// A request's target (path and query) in bytes: `414` above.
    pub max_uri_bytes: usize,
    /// A request's query in bytes: `414` above.
    pub max_query_bytes: usize,
    /// A request's headers in bytes (each name and value, plus 4 for `: ` and the line end): `431` above.
    pub max_header_bytes: usize,
    /// Addresses not limited per address (an edge cache or a load balancer in front).
    pub exempt: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Room for thousands of viewers on HTTP/1.1 (a player keeps 2 to 6 connections) within the file limit
            // the server raises itself to (`crate::serve`); a host with more raises both.
            max_connections: 16_384,
            // A household or an office behind one NAT address: dozens of players; an attacker: one address.
            max_connections_per_addr: 256,
            // A player holds two requests per rendition it follows (a playlist reload and a part).
            max_held_per_addr: 128,
            // A status page holds one session; a few tabs and a monitor.
            max_ws_per_addr: 8,
            // Our own URLs are short: `/live/{group}/{name}/index.m3u8?_HLS_msn=..&_HLS_part=..&_HLS_skip=v2`, a
            // playback token, a CDN's cache-busting parameters.
            max_uri_bytes: 4096,
            max_query_bytes: 2048,
            // Browsers send well under 2 KiB of headers; cookies of the site the player is embedded in add some.
            max_header_bytes: 16 * 1024,
            exempt: Vec::new(),
        }
    }
}

/// A limit that refused a connection or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`Limits::max_connections`].
    Connections,
    /// [`Limits::max_connections_per_addr`].
    ConnectionsPerAddr,
    /// [`Limits::max_held_per_addr`].
    HeldPerAddr,
    /// [`Limits::max_ws_per_addr`].
    WsPerAddr,
    /// [`Limits::max_uri_bytes`].
    Uri,
    /// [`Limits::max_query_bytes`].
    Query,
    /// [`Limits::max_header_bytes`].
    Headers,
}

impl Refusal {
    /// Every limit, in the order of their counters.
    pub const ALL: [Refusal; 7] = [
        Refusal::Connections,
        Refusal::ConnectionsPerAddr,
        Refusal::HeldPerAddr,
        Refusal::WsPerAddr,
        Refusal::Uri,
        Refusal::Query,
        Refusal::Headers,
    ];

    /// The `limit` label of `playlists_limit_refused_total`, the setting's name without `max_`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::ConnectionsPerAddr => "connections_per_addr",
            Refusal::HeldPerAddr => "held_per_addr",
            Refusal::WsPerAddr => "ws_per_addr",
            Refusal::Uri => "uri_bytes",
            Refusal::Query => "query_bytes",
            Refusal::Headers => "header_bytes",
        }
    }

    /// The reason given to the client.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Connections => "too many connections to this server",
            Refusal::ConnectionsPerAddr => "too many connections from this address",
            Refusal::HeldPerAddr => "too many held requests from this address",
            Refusal::WsPerAddr => "too many /ws sessions from this address",
            Refusal::Uri => "request target too long",
            Refusal::Query => "query string too long",
            Refusal::Headers => "request headers too large",
        }
    }
}

/// What a slot counts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Connection,
    Held,
    Ws,
}

/// What one client address holds now.
#[derive(Debug, Default)]
struct Held {
    connections: usize,
    held: usize,
    ws: usize,
}

impl Held {
    fn of(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Connection => &mut self.connections,
            Kind::Held => &mut self.held,
            Kind::Ws => &mut self.ws,
        }
    }
}

/// The key a client address is counted under: an IPv4 address (also when mapped into IPv6), or an IPv6 /64.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            // The /64, with a bit above any IPv4 key so the two never meet.
            None => (u128::from(v6) & !u128::from(u64::MAX)) | 1,
        },
    }
}

/// The counts behind the limits, shared by every worker.
pub struct Clients {
    limits: Limits,
    exempt: Vec<u128>,
    metrics: Arc<Metrics>,
    by_addr: DashMap<u128, Held>,
    /// When a refused connection was last logged at `warn` (milliseconds since `start`), so that a flood of them
    /// is one line every 10 s, not one per connection.
    last_warned: AtomicU64,
    start: Instant,
}

/// How often a flood of refused connections is logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl Clients {
    /// Counts for `limits`, reporting to `metrics`.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        let exempt = limits.exempt.iter().copied().map(key).collect();
        Self {
            limits,
            exempt,
            metrics,
            by_addr: DashMap::new(),
            last_warned: AtomicU64::new(u64::MAX),
            start: Instant::now(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes a slot of `kind` for `ip`, unless that address is at `max` already (0: no limit). A request with no
    /// peer address (a test request) is not counted per address.
    fn take(self: &Arc<Self>, ip: Option<IpAddr>, kind: Kind, max: usize, over: Refusal) -> Result<Slot, Refusal> {
        let key = ip.map(key).filter(|k| !self.exempt.contains(k));
        if let Some(k) = key {
            let mut held = self.by_addr.entry(k).or_default();
            let n = held.of(kind);
            if max > 0 && *n >= max {
                drop(held);
                self.forget_if_empty(k);
                self.metrics.limit_refused(over);
                return Err(over);
            }
            *n += 1;
        }
        Ok(Slot { clients: Arc::clone(self), key, kind })
    }

    fn forget_if_empty(&self, k: u128) {
        self.by_addr.remove_if(&k, |_, h| h.connections == 0 && h.held == 0 && h.ws == 0);
    }

    /// A connection from `ip` opened: its slot, or the limit it is over.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let max = self.limits.max_connections;
        let open = self.metrics.connection_opened();
        if max > 0 && open > max {
            self.metrics.connection_closed();
            self.metrics.limit_refused(Refusal::Connections);
            return Err(Refusal::Connections);
        }
        self.take(Some(ip), Kind::Connection, self.limits.max_connections_per_addr, Refusal::ConnectionsPerAddr)
            .inspect_err(|_| self.metrics.connection_closed())
    }

    /// A request from `ip` is about to be held: its slot, or [`Refusal::HeldPerAddr`].
    pub fn hold(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        self.take(ip, Kind::Held, self.limits.max_held_per_addr, Refusal::HeldPerAddr)
    }

    /// A `/ws` session from `ip` is about to open: its slot, or [`Refusal::WsPerAddr`].
    pub fn ws(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        self.take(ip, Kind::Ws, self.limits.max_ws_per_addr, Refusal::WsPerAddr)
    }

    /// The request-size limits, on a request's target, query and headers; a refusal is counted.
    pub fn check_request(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        self.sizes(uri, headers).inspect_err(|r| self.metrics.limit_refused(*r))
    }

    fn sizes(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let l = &self.limits;
        let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if l.max_uri_bytes > 0 && target > l.max_uri_bytes {
            return Err(Refusal::Uri);
        }
        if l.max_query_bytes > 0 && uri.query().map_or(0, str::len) > l.max_query_bytes {
            return Err(Refusal::Query);
        }
        if l.max_header_bytes > 0 {
            let bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
            if bytes > l.max_header_bytes {
                return Err(Refusal::Headers);
            }
        }
        Ok(())
    }

    /// The hook for `HttpServer::on_connect`: counts each connection for as long as it is open (its [`Slot`] kept
    /// in the connection's extensions), and closes one over a limit at once.
    pub fn on_connect(self: &Arc<Self>, io: &dyn Any, ext: &mut Extensions) {
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
        let (socket, plain) = if let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>() {
            (tcp, true)
        } else if let Some(tls) = io.downcast_ref::<Tls>() {
            (tls.get_ref().0, false)
        } else {
            return;
        };
        let Ok(peer) = socket.peer_addr() else { return };
        match self.connect(peer.ip()) {
            Ok(slot) => {
                ext.insert(slot);
            }
            Err(refusal) => {
                let socket = socket2::SockRef::from(socket);
                if plain {
                    // Straight to the socket (the runtime's `try_write` waits for a readiness event this fresh
                    // socket has not had yet); its send buffer is empty, so these few bytes go in one call.
                    let _ = socket.send(refusal_response(refusal).as_bytes());
                }
                // Both ways: the HTTP layer then reads the end of the stream at once and drops the connection.
                let _ = socket.shutdown(std::net::Shutdown::Both);
                self.warn_refused(peer.ip(), refusal);
            }
        }
    }

    fn warn_refused(&self, ip: IpAddr, refusal: Refusal) {
        let now = self.start.elapsed().as_millis() as u64;
        let last = self.last_warned.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due && self.last_warned.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            tracing::warn!(%ip, limit = refusal.label(), "connection refused: {} (logged once per 10 s)", refusal.reason());
        } else {
            tracing::debug!(%ip, limit = refusal.label(), "connection refused: {}", refusal.reason());
        }
    }

    /// What `ip` holds now: connections, held requests, `/ws` sessions (tests and the status API).
    pub fn held_by(&self, ip: IpAddr) -> (usize, usize, usize) {
        self.by_addr.get(&key(ip)).map_or((0, 0, 0), |h| (h.connections, h.held, h.ws))
    }
}

/// The answer written to a plain connection refused before its first request.
fn refusal_response(refusal: Refusal) -> String {
    let body = serde_json::json!({ "error": format!("unavailable: {}", refusal.reason()) }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A connection, a held request or a `/ws` session counted against its address while it lasts.
pub struct Slot {
    clients: Arc<Clients>,
    key: Option<u128>,
    kind: Kind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            if let Some(mut held) = self.clients.by_addr.get_mut(&k) {
                let n = held.of(self.kind);
                *n = n.saturating_sub(1);
            }
            self.clients.forget_if_empty(k);
        }
        if let Kind::Connection = self.kind {
            self.clients.metrics.connection_closed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(limits: Limits) -> Arc<Clients> {
        Arc::new(Clients::new(limits, Arc::new(Metrics::new())))
    }

    #[test]
    fn ipv6_is_counted_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        assert_eq!(key("::ffff:10.0.0.1".parse().unwrap()), key("10.0.0.1".parse().unwrap()));
        assert_ne!(key("::".parse().unwrap()), key("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn slots_are_counted_per_address_and_given_back_when_dropped() {
        let c = clients(Limits { max_held_per_addr: 2, max_ws_per_addr: 1, ..Limits::default() });
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let ip = Some(addr);
        let other: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        let h1 = c.hold(ip).unwrap();
        let _h2 = c.hold(ip).unwrap();
        assert_eq!(c.hold(ip).err(), Some(Refusal::HeldPerAddr));
        assert!(c.hold(other).is_ok(), "another address has its own count");
        let _w = c.ws(ip).unwrap();
        assert_eq!(c.ws(ip).err(), Some(Refusal::WsPerAddr));
        assert_eq!(c.held_by(addr), (0, 2, 1));
        drop(h1);
        assert!(c.hold(ip).is_ok(), "a slot given back can be taken again");
        assert!(c.hold(None).is_ok() && c.hold(None).is_ok() && c.hold(None).is_ok(), "no address: not counted");
        let text = c.metrics.render(&playlists::Playlists::new(playlists::Options::default()).unwrap());
        assert!(text.contains("playlists_limit_refused_total{limit=\"held_per_addr\"} 1"), "{text}");
        assert!(text.contains("playlists_limit_refused_total{limit=\"ws_per_addr\"} 1"), "{text}");
    }

    #[test]
    fn an_address_with_nothing_left_is_forgotten() {
        let c = clients(Limits::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let slots: Vec<_> = (0..3).map(|_| c.connect(ip).unwrap()).collect();
        assert_eq!(c.held_by(ip), (3, 0, 0));
        drop(slots);
        assert!(c.by_addr.is_empty());
        assert_eq!(c.metrics.connections(), 0);
    }

    #[test]
    fn the_total_and_the_per_address_connection_limits() {
        let c = clients(Limits { max_connections: 3, max_connections_per_addr: 2, ..Limits::default() });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let _a1 = c.connect(a).unwrap();
        let _a2 = c.connect(a).unwrap();
        assert_eq!(c.connect(a).err(), Some(Refusal::ConnectionsPerAddr));
        let _b1 = c.connect(b).unwrap();
        assert_eq!(c.connect(b).err(), Some(Refusal::Connections), "3 open: the server is full");
        assert_eq!(c.metrics.connections(), 3, "refusals are not left counted");
    }

    #[test]
    fn exempt_addresses_are_not_limited_per_address() {
        let edge: IpAddr = "10.1.1.1".parse().unwrap();
        let c = clients(Limits { max_connections_per_addr: 1, exempt: vec![edge], ..Limits::default() });
        let _slots: Vec<_> = (0..5).map(|_| c.connect(edge).unwrap()).collect();
        assert_eq!(c.metrics.connections(), 5, "still counted in all");
    }

    #[test]
    fn request_sizes() {
        use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
        let c = clients(Limits { max_uri_bytes: 40, max_query_bytes: 10, max_header_bytes: 29, ..Limits::default() });
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("a"), HeaderValue::from_static("0123456789"));
        let ok: actix_web::http::Uri = "/live/x/index.m3u8?_HLS_msn=1".parse().unwrap();
        assert_eq!(c.check_request(&ok, &headers), Ok(()));
        let long: actix_web::http::Uri = format!("/live/{}/index.m3u8", "a".repeat(30)).parse().unwrap();
        assert_eq!(c.check_request(&long, &headers), Err(Refusal::Uri));
        let query: actix_web::http::Uri = "/x?_HLS_msn=12".parse().unwrap();
        assert_eq!(c.check_request(&query, &headers), Err(Refusal::Query));
        headers.insert(HeaderName::from_static("b"), HeaderValue::from_static("0123456789"));
        assert_eq!(c.check_request(&ok, &headers), Err(Refusal::Headers), "2 × (1 + 10 + 4) > 29");
    }
}
