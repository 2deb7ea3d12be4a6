//! The load tool's measurements of the machine and the dispatcher: CPU busy time, a process's
//! peak RSS, latency percentiles and the seconds of a run whose events waited longest.

/// The machine's CPU counters (all cores): (busy, total) jiffies from /proc/stat.
pub fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The three seconds of publishing whose events waited longest for their first attempt, as
/// `+S s: MAX ms (N > 100 ms)`: where a latency spike sits in the run.
pub fn slowest_seconds(pairs: &[(u64, u64)]) -> String {
    let Some(start) = pairs.iter().map(|p| p.0).min() else {
        return String::new();
    };
    let mut by_sec: std::collections::BTreeMap<u64, (u64, usize)> = Default::default();
    for &(sent, lat) in pairs {
        let e = by_sec.entry((sent - start) / 1_000_000).or_default();
        e.0 = e.0.max(lat);
        e.1 += usize::from(lat > 100_000);
    }
    let mut secs: Vec<_> = by_sec.into_iter().collect();
    secs.sort_by_key(|(_, (max, _))| std::cmp::Reverse(*max));
    secs.iter()
        .take(3)
        .map(|(s, (max, over))| format!("+{s} s: {:.0} ms ({over} > 100 ms)", *max as f64 / 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `p` quantile of `sorted` microseconds, in milliseconds (NaN when empty).
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}
