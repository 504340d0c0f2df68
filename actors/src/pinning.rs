//! One CPU per HTTP worker (`--pin-workers`).
//!
//! actix-web runs the `HttpServer::new` factory once on each worker thread as it starts; calling
//! [`Pinning::pin_current_thread`] there binds the workers, in the order they start, to the CPUs this process may
//! run on, one each, round-robin. The kernel then cannot crowd two workers onto one CPU while another idles, which
//! on small virtual machines it often does just when a part's held requests are being answered (BENCHMARKS.md,
//! held requests). The price: a worker whose CPU is busy with something else cannot move away from it, so it is
//! for hosts that run the server alone, and off by default.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Hands out the CPUs of the process, one per call, round-robin. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pinning {
    cpus: Arc<[usize]>,
    next: Arc<AtomicUsize>,
}

impl Pinning {
    /// The CPUs the process may run on now (its affinity mask, so `taskset` and cgroup limits are kept).
    pub fn new() -> std::io::Result<Self> {
        let cpus: Arc<[usize]> = imp::allowed()?.into();
        if cpus.is_empty() {
            return Err(std::io::Error::other("the process may run on no CPU"));
        }
        Ok(Self { cpus, next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The CPUs handed out, in order.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// Binds the calling thread to the next CPU; answers which.
    pub fn pin_current_thread(&self) -> std::io::Result<usize> {
        let cpu = self.cpus[self.next.fetch_add(1, Ordering::Relaxed) % self.cpus.len()];
        imp::pin(cpu)?;
        Ok(cpu)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    pub fn allowed() -> std::io::Result<Vec<usize>> {
        let set = sched_getaffinity(Pid::from_raw(0))?;
        Ok((0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect())
    }

    pub fn pin(cpu: usize) -> std::io::Result<()> {
        let mut set = CpuSet::new();
        set.set(cpu)?;
        Ok(sched_setaffinity(Pid::from_raw(0), &set)?)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    fn unsupported() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Unsupported, "pinning threads to CPUs is implemented on Linux only")
    }

    pub fn allowed() -> std::io::Result<Vec<usize>> {
        Err(unsupported())
    }

    pub fn pin(_: usize) -> std::io::Result<()> {
        Err(unsupported())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn threads_are_pinned_one_cpu_each_in_turn() {
        let pinning = Pinning::new().unwrap();
        let cpus = pinning.cpus().to_vec();
        // More threads than CPUs: the hand-out wraps around.
        let pinned: Vec<(usize, Vec<usize>)> = (0..cpus.len() + 1)
            .map(|_| {
                let p = pinning.clone();
                std::thread::spawn(move || {
                    let cpu = p.pin_current_thread().unwrap();
                    (cpu, imp::allowed().unwrap())
                })
                .join()
                .unwrap()
            })
            .collect();
        for (i, (cpu, allowed)) in pinned.iter().enumerate() {
            assert_eq!(*cpu, cpus[i % cpus.len()]);
            assert_eq!(allowed, &vec![*cpu], "thread {i} may run only on its CPU");
        }
    }
}
