//! CPU and memory of the processes under test, read from `/proc` (Linux).
//!
//! A sampler reads every process twice a second; a step takes the CPU time used between its
//! start and end, and the mean and peak resident memory seen in between.

use crate::results::ServiceUsage;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A process to watch: its name in the report and its pid.
#[derive(Debug, Clone)]
pub struct Watched {
    pub service: String,
    pub pid: u32,
}

#[derive(Default, Clone)]
struct Window {
    rss_sum: f64,
    rss_peak: u64,
    samples: u64,
}

/// Samples the watched processes until dropped.
pub struct Sampler {
    watched: Vec<Watched>,
    windows: Arc<Mutex<Vec<Window>>>,
    task: tokio::task::JoinHandle<()>,
}

/// CPU seconds of each watched process when a step began.
pub struct Mark {
    cpu: Vec<f64>,
    at: Instant,
}

impl Sampler {
    pub fn start(watched: Vec<Watched>) -> Sampler {
        let windows = Arc::new(Mutex::new(vec![Window::default(); watched.len()]));
        let pids: Vec<u32> = watched.iter().map(|w| w.pid).collect();
        let shared = windows.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let rss: Vec<Option<u64>> = pids.iter().map(|p| rss_bytes(*p)).collect();
                let mut w = shared.lock().unwrap_or_else(|e| e.into_inner());
                for (win, rss) in w.iter_mut().zip(rss) {
                    if let Some(rss) = rss {
                        win.rss_sum += rss as f64;
                        win.rss_peak = win.rss_peak.max(rss);
                        win.samples += 1;
                    }
                }
            }
        });
        Sampler {
            watched,
            windows,
            task,
        }
    }

    /// Begin a measurement window.
    pub fn mark(&self) -> Mark {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.iter_mut().for_each(|win| *win = Window::default());
        Mark {
            cpu: self.watched.iter().map(|p| cpu_seconds(p.pid)).collect(),
            at: Instant::now(),
        }
    }

    /// Usage since `mark`.
    pub fn usage(&self, mark: &Mark) -> Vec<ServiceUsage> {
        let elapsed = mark.at.elapsed().as_secs_f64().max(1e-3);
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        self.watched
            .iter()
            .zip(w.iter())
            .zip(&mark.cpu)
            .map(|((p, win), before)| ServiceUsage {
                service: p.service.clone(),
                cpu_cores: (cpu_seconds(p.pid) - before).max(0.0) / elapsed,
                rss_mean_bytes: (win.rss_sum / win.samples.max(1) as f64) as u64,
                rss_peak_bytes: win.rss_peak,
            })
            .collect()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// User + system CPU seconds of a process (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

/// Resident memory of a process, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

/// Peak resident memory of a process over its life, bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The machine in words: CPU model, cores, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{model}, {cores} cores, {mem_gib:.0} GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        // Burn a little CPU so the figure is not zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds(pid) > 0.0);
        assert!(rss_bytes(pid).unwrap() > 1_000_000);
        assert!(peak_rss_bytes(pid).unwrap() >= rss_bytes(pid).unwrap());
        assert!(machine().contains("cores"));
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }
}
