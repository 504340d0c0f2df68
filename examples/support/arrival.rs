//! Kernel timestamps of what a socket sends and receives (Linux; elsewhere plain reads and no stamps), shared by
//! the held-request examples.

#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
pub use elsewhere::*;

#[cfg(target_os = "linux")]
mod linux {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd as _;
    use std::time::{Duration, SystemTime};

    use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, TimestampingFlag};
    use nix::sys::time::TimeSpec;
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// Asks the kernel to stamp each received packet with the (realtime) time of its arrival.
    pub fn enable(stream: &TcpStream) -> std::io::Result<()> {
        Ok(setsockopt(stream, sockopt::ReceiveTimestampns, &true)?)
    }

    fn system_time(t: TimeSpec) -> Option<SystemTime> {
        let (secs, nanos) = (u64::try_from(t.tv_sec()).ok()?, u32::try_from(t.tv_nsec()).ok()?);
        Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
    }

    /// Also asks the kernel to stamp when the last byte of each write leaves for the peer: on loopback, the moment
    /// it reaches the peer's socket.
    pub fn enable_sent(stream: &TcpStream) -> std::io::Result<()> {
        let flags = TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_OPT_TSONLY;
        Ok(setsockopt(stream, sockopt::Timestamping, &flags)?)
    }

    /// The newest send stamp waiting on the socket's error queue (the queue is emptied).
    pub fn last_sent(stream: &TcpStream) -> Option<SystemTime> {
        let fd = stream.as_raw_fd();
        let mut latest = None;
        loop {
            let mut buf = [0u8; 64];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut space = [0u8; 256];
            let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
            let Ok(msg) = recvmsg::<()>(fd, &mut iov, Some(&mut space), flags) else { return latest };
            for c in msg.cmsgs().into_iter().flatten() {
                if let ControlMessageOwned::ScmTimestampsns(t) = c {
                    latest = system_time(t.system).or(latest);
                }
            }
        }
    }

    /// One `recvmsg` into `buf`: the bytes read and the arrival time of the last packet among them.
    pub async fn read(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<SystemTime>)> {
        let fd = stream.as_raw_fd();
        stream
            .async_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(buf)];
                let mut space = nix::cmsg_space!(TimeSpec);
                let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT)?;
                let at = msg.cmsgs().ok().and_then(|mut all| {
                    all.find_map(|c| match c {
                        ControlMessageOwned::ScmTimestampns(t) => system_time(t),
                        _ => None,
                    })
                });
                Ok((msg.bytes, at))
            })
            .await
    }
}

/// Elsewhere: plain reads, no kernel timestamps.
#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use std::time::SystemTime;

    use tokio::net::TcpStream;

    pub fn enable(_: &TcpStream) -> std::io::Result<()> {
        Ok(())
    }

    pub fn enable_sent(_: &TcpStream) -> std::io::Result<()> {
        Ok(())
    }

    pub fn last_sent(_: &TcpStream) -> Option<SystemTime> {
        None
    }

    pub async fn read(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<SystemTime>)> {
        loop {
            stream.readable().await?;
            match stream.try_read(buf) {
                Ok(n) => return Ok((n, None)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
